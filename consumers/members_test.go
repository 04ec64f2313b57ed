package consumers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// sameAs checks decodeMembers against json.Unmarshal for one struct type:
// the same value, or an error from both.
func sameAs[T any](t *testing.T, raw string) {
	t.Helper()
	var want, got T
	werr := json.Unmarshal([]byte(raw), &want)
	gerr := decodeMembers(gjson.Parse(raw), &got)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%T from %.200s: encoding/json says %v, decodeMembers %v", want, raw, werr, gerr)
	}
	if werr == nil && !reflect.DeepEqual(want, got) {
		t.Fatalf("%T from %.200s:\nencoding/json %+v\ndecodeMembers %+v", want, raw, want, got)
	}
}

// sameForAll runs sameAs for every struct a handler decodes an object into.
func sameForAll(t *testing.T, raw string) {
	t.Helper()
	sameAs[stripeCustomer](t, raw)
	sameAs[stripeSubscription](t, raw)
	sameAs[stripeAccount](t, raw)
	sameAs[stripePayout](t, raw)
	sameAs[stripeExternalAccount](t, raw)
	sameAs[stripeVerificationSession](t, raw)
	sameAs[stripeTransfer](t, raw)
	sameAs[stripeCheckoutSession](t, raw)
	sameAs[stripePaymentIntent](t, raw)
	sameAs[stripeCharge](t, raw)
	sameAs[stripeDispute](t, raw)
	sameAs[workosUser](t, raw)
	sameAs[workosOrganization](t, raw)
	sameAs[workosMembership](t, raw)
	sameAs[dsyncDirectory](t, raw)
	sameAs[dsyncUser](t, raw)
	sameAs[dsyncGroup](t, raw)
	sameAs[dsyncMembership](t, raw)
}

// fixtureObjects is the object of every fixture event: Stripe's
// data.object, WorkOS's data.
func fixtureObjects(t testing.TB) []string {
	files, err := filepath.Glob("../testdata/fixtures/*/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("fixtures: %v (%d files)", err, len(files))
	}
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"data.object", "data"} {
			if r := gjson.GetBytes(b, path); r.IsObject() {
				out = append(out, r.Raw)
				break
			}
		}
	}
	return out
}

// The hot structs take the member-by-member path; were they to fall back
// to encoding/json whole, the tests below would compare it with itself.
func TestDecodeMembersPlansTheHandlersStructs(t *testing.T) {
	for _, v := range []any{stripeCustomer{}, stripeSubscription{}, stripeAccount{}, workosUser{}, workosOrganization{}, stripeCheckoutSession{}, stripePaymentIntent{}} {
		if planOf(reflect.TypeOf(v)).members == nil {
			t.Errorf("%T is decoded by encoding/json whole", v)
		}
	}
	// Rules beyond a flat list of named fields stay encoding/json's.
	type embedded struct{ stripeCustomer }
	type quoted struct {
		N int `json:"n,string"`
	}
	type folded struct {
		A string `json:"id"`
		B string `json:"ID"`
	}
	for _, v := range []any{embedded{}, quoted{}, folded{}, stripeID("")} {
		if planOf(reflect.TypeOf(v)).members != nil {
			t.Errorf("%T is planned member by member", v)
		}
	}
}

func TestDecodeMembersMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, raw := range fixtureObjects(t) {
		sameForAll(t, raw)
	}
	for _, raw := range []string{
		`{}`,
		`null`,
		`[]`,
		`"cus_1"`,
		`{"id":"cus_1","ID":"cus_2"}`, // case-insensitive, the last wins
		`{"Id":"cus_1","EMAIL":"A@x.io","Name":null}`,              // folded keys
		`{"id":"cus_1","email":"a@x.io","email":null}`,             // a later null clears
		`{"id":"cus_1","email":5}`,                                 // wrong type: an error
		`{"id":7}`,                                                 // wrong type for a string
		`{"id":"cus_1","deleted":"yes"}`,                           // wrong type for a bool
		`{"id":"cus_1","deleted":null,"deleted":true}`,             // null leaves a bool alone
		`{"id":"cus_\u0031","name":"a\"b\\c\n\u00e9\ud83d\ude00"}`, // escapes
		`{"\u0069d":"cus_1","na\u006de":"x"}`,                      // escaped keys
		`{"ſtatus":"active","id":"sub_1"}`,                         // U+017F folds to s
		`{"metadata":{"workos_user_id":"user_1"},"metadata":null}`,
		`{"metadata":[1,2],"created":"not a time"}`,
		`{"created":1700000000,"created":null}`,
		`{"customer":{"id":"cus_9","object":"customer"},"id":"sub_1"}`,
		`{"customer":17,"id":"sub_1"}`,
		`{"items":{"data":[{"price":{"id":"p"}}]},"items":{"data":null}}`,
		`{"requirements":{"currently_due":["a"]},"requirements":null}`,
		`{"domains":[{"domain":"x.io"},"y.io"],"id":"org_1"}`,
		`{ "id" : "cus_1" , "email" : "a@x.io" }`,
	} {
		sameForAll(t, raw)
	}
}

// FuzzDecodeMembers holds decodeMembers to encoding/json on any valid JSON.
func FuzzDecodeMembers(f *testing.F) {
	for _, raw := range fixtureObjects(f) {
		f.Add(raw)
	}
	f.Add(`{"id":"cus_1","ID":null,"email":"a@x.io","metadata":{"a":"b"}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		// decodeMembers takes a body validated when its envelope was read
		// (events.fields: valid JSON, valid UTF-8).
		if !json.Valid([]byte(raw)) || !gjson.Valid(raw) || !utf8.ValidString(raw) || strings.TrimSpace(raw) != raw {
			return
		}
		sameForAll(t, raw)
	})
}

func TestMetaStringMatchesAMapDecode(t *testing.T) {
	t.Parallel()
	// metaString as it was: the metadata decoded into a map.
	viaMap := func(metadata json.RawMessage, keys ...string) *string {
		var m map[string]json.RawMessage
		if json.Unmarshal(metadata, &m) != nil {
			return nil
		}
		for _, k := range keys {
			var s string
			if json.Unmarshal(m[k], &s) == nil && strings.TrimSpace(s) != "" {
				s = strings.TrimSpace(s)
				return &s
			}
		}
		return nil
	}
	for _, raw := range []string{
		``, `null`, `[]`, `"x"`, `{}`,
		`{"workos_user_id":"user_1"}`,
		`{"workosUserId":"user_2"}`,
		`{"workos_user_id":" ","workosUserId":"user_2"}`,
		`{"workos_user_id":5,"workosUserId":"user_2"}`,
		`{"workos_user_id":"user_1","workos_user_id":"user_3"}`,
		`{"workosUserId":"user_2","workos_user_id":"user_1"}`, // the keys' order, not the object's
		`{"workos_user_id":"user_1","workos_user_id":null,"workosUserId":"user_2"}`,
		`{"workos_user_id":"us\u0065r_\"1"}`,
		`{"workos\u005fuser_id":" user_4 "}`,
		`{"WORKOS_USER_ID":"user_5"}`,
	} {
		want, got := viaMap(json.RawMessage(raw), userMetaKeys...), metaString(json.RawMessage(raw), userMetaKeys...)
		if (want == nil) != (got == nil) || want != nil && *want != *got {
			t.Errorf("metadata %s: a map decode gives %q (set %t), metaString %q (set %t)", raw, deref(want), want != nil, deref(got), got != nil)
		}
	}
}
