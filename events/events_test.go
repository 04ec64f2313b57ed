package events

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	want := time.Date(2023, 4, 28, 20, 5, 31, 93e6, time.UTC)
	for _, s := range []string{
		"2023-04-28T20:05:31.093Z",
		"2023-04-28 20:05:31.093",
		"2023-04-28T22:05:31.093+02:00",
		"2023-04-28 20:05:31.093Z",
		"1682712331093",
	} {
		got, err := ParseTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if got, err := ParseTime("1682712331"); err != nil || !got.Equal(want.Truncate(time.Second)) {
		t.Errorf("unix seconds: %v %v", got, err)
	}
	for _, bad := range []string{"", "yesterday", "2023-13-45", "-5"} {
		if _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) succeeded", bad)
		}
	}
}

func TestTimeJSON(t *testing.T) {
	var v struct {
		A, B, C, D Time
	}
	if err := json.Unmarshal([]byte(`{"A":"2023-04-28 20:05:31.093","B":null,"C":"","D":1682712331}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A.IsZero() || !v.B.IsZero() || !v.C.IsZero() || v.D.Unix() != 1682712331 || v.B.Ptr() != nil {
		t.Fatalf("%+v", v)
	}
	if err := json.Unmarshal([]byte(`{"A":"not a time"}`), &v); err == nil {
		t.Fatal("bad time accepted")
	}
}

func TestDecodeEnvelopes(t *testing.T) {
	env, err := DecodeWorkOS([]byte(`{"object":"event","id":"event_1","event":"user.created","data":{"id":"u"},"created_at":"2023-04-28 20:05:31.093"}`))
	if err != nil || env.ID != "event_1" || env.Type != "user.created" || env.Created.IsZero() {
		t.Fatalf("%+v %v", env, err)
	}
	env, err = DecodeStripe([]byte(`{"id":"evt_1","object":"event","type":"account.updated","created":1700000000,"api_version":"2099-01-01.future","account":"acct_1","data":{"object":{"id":"acct_1"}}}`))
	if err != nil || env.Account != "acct_1" || env.Created.Unix() != 1700000000 {
		t.Fatalf("%+v %v", env, err)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{}`, `"x"`, `{"id":"e","event":"x"}`, `{"id":"e","event":"x","data":null}`,
		`{"id":5,"event":"x","data":{}}`, `{"object":"list","id":"e","event":"x","data":{}}`,
		`{"id":"e","event":"x","data":{},"created_at":"soon"}`,
	} {
		if _, err := DecodeWorkOS([]byte(bad)); !errors.Is(err, ErrNotEvent) {
			t.Errorf("DecodeWorkOS(%q) = %v, want ErrNotEvent", bad, err)
		}
	}
	for _, bad := range []string{``, `{}`, `{"id":"evt","type":"x"}`, `{"id":"evt","type":"x","data":{"object":null}}`, `{"id":"evt","type":"x","created":"yes","data":{"object":{}}}`} {
		if _, err := DecodeStripe([]byte(bad)); !errors.Is(err, ErrNotEvent) {
			t.Errorf("DecodeStripe(%q) = %v, want ErrNotEvent", bad, err)
		}
	}
}

func FuzzDecodeWorkOS(f *testing.F) {
	f.Add([]byte(`{"object":"event","id":"event_1","event":"user.created","data":{},"created_at":"2023-04-28 20:05:31.093"}`))
	f.Add([]byte(`{"id":"","event":"","data":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeWorkOS(b)
		if err == nil && (env.ID == "" || env.Type == "") {
			t.Fatalf("accepted an event without id or type: %q", b)
		}
	})
}

func FuzzDecodeStripe(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","object":"event","type":"x","created":1,"data":{"object":{}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := DecodeStripe(b)
		if err == nil && (env.ID == "" || env.Type == "") {
			t.Fatalf("accepted an event without id or type: %q", b)
		}
	})
}

// WorkOS times in a number are unix milliseconds, WorkOS's unit: read as
// seconds, 2023 would become the year 55000.
func TestWorkOSTimeNumberIsMilliseconds(t *testing.T) {
	var v struct{ A, B WorkOSTime }
	if err := json.Unmarshal([]byte(`{"A":1682712331093,"B":"2023-04-28 20:05:31.093"}`), &v); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2023, 4, 28, 20, 5, 31, 93e6, time.UTC)
	if !v.A.Equal(want) || !v.B.Equal(want) {
		t.Fatalf("number %s, string %s; want %s", v.A, v.B, want)
	}
	env, err := DecodeWorkOS([]byte(`{"id":"e","event":"user.created","data":{},"created_at":1682712331093}`))
	if err != nil || !env.Created.Equal(want) {
		t.Fatalf("numeric created_at: %v %v, want %s", env.Created, err, want)
	}
}

// Times outside 2000-01-01 .. now+1 day are refused: as a version they
// would outrank every real one.
func TestTimesOutsideThePlausibleWindow(t *testing.T) {
	for _, ok := range []time.Time{{}, MinTime, time.Now(), time.Now().Add(MaxAhead - time.Minute)} {
		if err := CheckTime(ok); err != nil {
			t.Errorf("CheckTime(%s) = %v", ok, err)
		}
	}
	for _, bad := range []time.Time{MinTime.Add(-time.Second), time.Now().Add(MaxAhead + time.Minute), time.UnixMilli(1682712331093 * 1000)} {
		if err := CheckTime(bad); !errors.Is(err, ErrImplausibleTime) {
			t.Errorf("CheckTime(%s) = %v, want ErrImplausibleTime", bad, err)
		}
	}
	for _, body := range []string{
		`{"updated_at":"2999-01-01T00:00:00Z"}`,
		`{"updated_at":"1999-12-31T23:59:59Z"}`,
		`{"updated_at":1682712331093000}`,
		`{"updated_at":1682712331}`, // seconds, read as WorkOS's milliseconds: 1970
	} {
		var v struct {
			UpdatedAt WorkOSTime `json:"updated_at"`
		}
		if err := json.Unmarshal([]byte(body), &v); !errors.Is(err, ErrImplausibleTime) {
			t.Errorf("%s: %v, want ErrImplausibleTime", body, err)
		}
	}
}

// Bodies that encoding/json would read with U+FFFD in place of what they
// hold are not events: invalid UTF-8, and an escaped half of a UTF-16
// pair. A whole pair, and backslashes that only look like one, are fine.
func TestBodiesThatDecodeLossilyAreRefused(t *testing.T) {
	body := func(id string) []byte {
		return []byte(`{"object":"event","id":"evt_1","event":"organization.created","created_at":"2026-01-15T12:00:00.000Z","data":{"id":"` + id + `"}}`)
	}
	for id, ok := range map[string]bool{
		"org_1":            true,
		`org_\ud83d\ude00`: true, // 😀, a whole pair
		`org_\\ud800`:      true, // an escaped backslash, then text
		`org_\u00e9\"\n`:   true,
		"org_\xff":         false,
		`org_\ud800`:       false,
		`org_\udc00`:       false,
		`org_\ud800\u0041`: false,
		`org_\ud800x`:      false,
		`org_\uD800\uDC00`: true,
		`org_\\\ud800`:     false, // an escaped backslash, then a lone half
		`org_\ud83d\ud83d`: false,
		`org_\u0041\udfff`: false,
	} {
		_, err := DecodeWorkOS(body(id))
		if (err == nil) != ok {
			t.Errorf("%q: %v, want accepted %v", id, err, ok)
		}
	}
}
