// Package events decodes the envelopes of provider events — id, type and
// time — the same way for ingest, the consumers, replay and backfill, and
// parses the providers' timestamps leniently.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrNotEvent means a body is not a JSON event of the provider.
var ErrNotEvent = errors.New("not a provider event")

// Envelope is what syncd needs of any event before applying it.
type Envelope struct {
	ID      string
	Type    string
	Created time.Time
	// Account is the connected account of a Stripe Connect event.
	Account string
}

type workosEnvelope struct {
	Object    string          `json:"object"`
	ID        string          `json:"id"`
	Event     string          `json:"event"`
	CreatedAt string          `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// DecodeWorkOS reads a WorkOS event envelope:
// {"object":"event","id":"event_…","event":"user.created","data":{…},"created_at":"…"}.
func DecodeWorkOS(body []byte) (Envelope, error) {
	var e workosEnvelope
	if err := json.Unmarshal(body, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrNotEvent, jsonReason(err))
	}
	if e.ID == "" || e.Event == "" {
		return Envelope{}, fmt.Errorf("%w: id and event are required", ErrNotEvent)
	}
	if e.Object != "" && e.Object != "event" {
		return Envelope{}, fmt.Errorf("%w: object is %q, want \"event\"", ErrNotEvent, e.Object)
	}
	if len(bytes.TrimSpace(e.Data)) == 0 || bytes.Equal(bytes.TrimSpace(e.Data), []byte("null")) {
		return Envelope{}, fmt.Errorf("%w: data is required", ErrNotEvent)
	}
	env := Envelope{ID: e.ID, Type: e.Event}
	if e.CreatedAt != "" {
		t, err := ParseTime(e.CreatedAt)
		if err != nil {
			return Envelope{}, fmt.Errorf("%w: created_at: %v", ErrNotEvent, err)
		}
		env.Created = t
	}
	return env, nil
}

type stripeEnvelope struct {
	Object  string `json:"object"`
	ID      string `json:"id"`
	Type    string `json:"type"`
	Created int64  `json:"created"`
	Account string `json:"account"`
	Data    struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// DecodeStripe reads a Stripe event envelope of any API version.
func DecodeStripe(body []byte) (Envelope, error) {
	var e stripeEnvelope
	if err := json.Unmarshal(body, &e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %v", ErrNotEvent, jsonReason(err))
	}
	if e.ID == "" || e.Type == "" {
		return Envelope{}, fmt.Errorf("%w: id and type are required", ErrNotEvent)
	}
	if e.Object != "" && e.Object != "event" {
		return Envelope{}, fmt.Errorf("%w: object is %q, want \"event\"", ErrNotEvent, e.Object)
	}
	if len(e.Data.Object) == 0 || bytes.Equal(e.Data.Object, []byte("null")) {
		return Envelope{}, fmt.Errorf("%w: data.object is required", ErrNotEvent)
	}
	env := Envelope{ID: e.ID, Type: e.Type, Account: e.Account}
	if e.Created > 0 {
		env.Created = time.Unix(e.Created, 0).UTC()
	}
	return env, nil
}

func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s has the wrong type", te.Field)
	}
	return "invalid JSON"
}

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02",
}

// ParseTime parses a provider timestamp: RFC 3339, the space-separated form
// some WorkOS samples use (`2023-04-28 20:05:31.093`, taken as UTC), or unix
// seconds or milliseconds as a string.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
		if n > 1e12 {
			return time.UnixMilli(n).UTC(), nil
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("unrecognised time %q", s)
}

// Time is a JSON timestamp decoded with ParseTime; null or "" is zero.
type Time struct{ time.Time }

// UnmarshalJSON accepts a string in any ParseTime form, a number of unix
// seconds, or null.
func (t *Time) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		t.Time = time.Time{}
		return nil
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			t.Time = time.Time{}
			return nil
		}
		v, err := ParseTime(s)
		if err != nil {
			return err
		}
		t.Time = v
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return fmt.Errorf("unrecognised time %s", b)
	}
	t.Time = time.Unix(n, 0).UTC()
	return nil
}

// Ptr returns nil for the zero time, for nullable columns.
func (t Time) Ptr() *time.Time {
	if t.IsZero() {
		return nil
	}
	v := t.Time
	return &v
}
