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
