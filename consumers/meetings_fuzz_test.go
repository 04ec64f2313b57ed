package consumers

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/syncd/syncd/events"
)

// FuzzMeetingMetadata feeds the app's booking JSON (Stripe metadata
// "meeting") to the parser: it fails only when the value is not a JSON
// object, never panics, and what it keeps is in range: a duration of whole
// non-negative minutes that fits the column, a UTC start, no empty strings.
func FuzzMeetingMetadata(f *testing.F) {
	for _, s := range []string{
		`{"id":"5b0a6c1e-3a4e-4d0a-9a53-2f3f0c6e2a11","expert":"user_01EHWNCE74X7JSDV0X3SZ3KJNY","guest":"guest@example.com","guestName":"Guest","start":"2026-12-01T10:00:00Z","dur":45,"notes":"","timezone":"Europe/Lisbon","locale":"pt"}`,
		`{"id":"not-a-uuid","guest":"guest.person@example.com","dur":45.5,"start":"soon"}`,
		`{"dur":"30"}`, `{"dur":-1}`, `{"dur":1e300}`, `{"dur":2147483648}`, `{"dur":null,"start":null}`,
		`{"start":1767225600}`, `{"start":1767225600000}`, `{"start":"1767225600000"}`, `{"start":"9999-12-31T23:59:59Z"}`,
		`{"guest":"   "}`, `{"guest":42}`, `{}`, `[1,2,3]`, `"a string"`, `null`, `42`, ``, `{`, `{"id":{"nested":true}}`,
		"{\"notes\":\"\xff\xfe\"}", `{"timezone":"\u0000"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := decodeMeetingMetadata(raw)
		var obj map[string]json.RawMessage
		isObject := json.Unmarshal([]byte(raw), &obj) == nil && obj != nil
		if (err == nil) != isObject {
			t.Fatalf("decodeMeetingMetadata(%q): err %v, but a JSON object: %v", raw, err, isObject)
		}
		// Through the event path, as applyCheckoutSession calls it.
		meta, _ := json.Marshal(map[string]string{"meeting": raw})
		ev := Event{Source: "stripe", Envelope: events.Envelope{ID: "evt_fuzz", Type: "checkout.session.completed", Created: time.Unix(1767225600, 0).UTC()}}
		fallback := "typed@example.com"
		d, err := parseMeeting(ev, meta, &fallback)
		if strings.TrimSpace(raw) == "" {
			// metadata "meeting" of "" or blanks counts as no booking or
			// not an object; either way no details.
			if d != nil && err == nil && !isObject {
				t.Fatalf("blank booking %q gave details", raw)
			}
			return
		}
		if err != nil {
			if d != nil {
				t.Fatalf("error %v with details", err)
			}
			return
		}
		if d == nil {
			return
		}
		if d.duration != nil && *d.duration < 0 {
			t.Fatalf("duration %d from %q", *d.duration, raw)
		}
		if d.start != nil && d.start.Location() != time.UTC {
			t.Fatalf("start %v not UTC", d.start)
		}
		for _, p := range []*string{d.expert, d.guestEmail, d.guestName, d.notes, d.timezone, d.locale} {
			if p != nil && strings.TrimFunc(*p, unicode.IsSpace) == "" {
				t.Fatalf("blank string kept from %q", raw)
			}
		}
		if d.guestEmail == nil {
			t.Fatalf("guest email lost: the checkout's email is the fallback (%q)", raw)
		}
	})
}
