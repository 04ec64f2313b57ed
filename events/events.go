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
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tidwall/gjson"
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

// The envelopes are read with gjson: ingest decodes every webhook on its
// hot path and needs five fields of a body of several kilobytes, and
// encoding/json spent half of ingest's handler time validating and then
// walking the whole body twice.

// fields validates body as a JSON object and reads the named fields.
func fields(body []byte, names ...string) ([]gjson.Result, error) {
	if !gjson.ValidBytes(body) {
		return nil, fmt.Errorf("%w: body is not valid JSON", ErrNotEvent)
	}
	// JSON between systems is UTF-8 (RFC 8259), and both providers send
	// it so. encoding/json would decode a stray byte as U+FFFD, so two
	// ids differing only in invalid bytes would name one row.
	if !utf8.Valid(body) {
		return nil, fmt.Errorf("%w: body is not valid UTF-8", ErrNotEvent)
	}
	// The same holds for an escaped half of a UTF-16 pair: "\ud800" and
	// "\udc00" both decode as U+FFFD.
	if unpairedSurrogate(body) {
		return nil, fmt.Errorf("%w: body escapes an unpaired UTF-16 surrogate", ErrNotEvent)
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrNotEvent)
	}
	return gjson.GetManyBytes(body, names...), nil
}

// unpairedSurrogate reports a \uD800–\uDFFF escape in body that is not a
// high half followed by a low one. body is valid JSON, so a backslash is
// always an escape inside a string.
func unpairedSurrogate(body []byte) bool {
	for i := 0; i < len(body); i++ {
		j := bytes.IndexByte(body[i:], '\\')
		if j < 0 {
			return false
		}
		i += j
		r, ok := escapedRune(body[i:])
		switch {
		case !ok:
			i++ // a one-character escape: skip what it escapes
		case utf16.IsSurrogate(r) && r < 0xDC00:
			low, ok := escapedRune(body[i+6:])
			if !ok || low < 0xDC00 || low > 0xDFFF {
				return true
			}
			i += 11
		case utf16.IsSurrogate(r):
			return true // a low half alone
		default:
			i += 5
		}
	}
	return false
}

// escapedRune reads a \uXXXX escape at the start of b.
func escapedRune(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// str reads a field that must be a string when present.
func str(r gjson.Result, name string) (string, error) {
	switch r.Type {
	case gjson.Null:
		return "", nil
	case gjson.String:
		return r.Str, nil
	}
	return "", fmt.Errorf("%w: field %s has the wrong type", ErrNotEvent, name)
}

// DecodeWorkOS reads a WorkOS event envelope:
// {"object":"event","id":"event_…","event":"user.created","data":{…},"created_at":"…"}.
func DecodeWorkOS(body []byte) (Envelope, error) {
	names := []string{"object", "id", "event", "created_at", "data"}
	f, err := fields(body, names...)
	if err != nil {
		return Envelope{}, err
	}
	var env Envelope
	var object string
	for i, dst := range []*string{&object, &env.ID, &env.Type} {
		if *dst, err = str(f[i], names[i]); err != nil {
			return Envelope{}, err
		}
	}
	if env.ID == "" || env.Type == "" {
		return Envelope{}, fmt.Errorf("%w: id and event are required", ErrNotEvent)
	}
	if object != "" && object != "event" {
		return Envelope{}, fmt.Errorf("%w: object is %q, want \"event\"", ErrNotEvent, object)
	}
	if d := f[4]; !d.Exists() || d.Type == gjson.Null {
		return Envelope{}, fmt.Errorf("%w: data is required", ErrNotEvent)
	}
	var created WorkOSTime
	if c := f[3]; c.Exists() {
		if c.Type != gjson.String && c.Type != gjson.Number && c.Type != gjson.Null {
			return Envelope{}, fmt.Errorf("%w: field created_at has the wrong type", ErrNotEvent)
		}
		if err := created.parse([]byte(c.Raw), false); err != nil {
			return Envelope{}, fmt.Errorf("%w: created_at: %v", ErrNotEvent, err)
		}
	}
	env.Created = created.Time
	return env, nil
}

// DecodeStripe reads a Stripe event envelope of any API version.
func DecodeStripe(body []byte) (Envelope, error) {
	names := []string{"object", "id", "type", "account", "data.object", "created"}
	f, err := fields(body, names...)
	if err != nil {
		return Envelope{}, err
	}
	var env Envelope
	var object string
	for i, dst := range []*string{&object, &env.ID, &env.Type, &env.Account} {
		if *dst, err = str(f[i], names[i]); err != nil {
			return Envelope{}, err
		}
	}
	if env.ID == "" || env.Type == "" {
		return Envelope{}, fmt.Errorf("%w: id and type are required", ErrNotEvent)
	}
	if object != "" && object != "event" {
		return Envelope{}, fmt.Errorf("%w: object is %q, want \"event\"", ErrNotEvent, object)
	}
	if o := f[4]; !o.Exists() || o.Type == gjson.Null {
		return Envelope{}, fmt.Errorf("%w: data.object is required", ErrNotEvent)
	}
	switch c := f[5]; c.Type {
	case gjson.Null:
	case gjson.Number:
		if n := c.Int(); n > 0 {
			env.Created = time.Unix(n, 0).UTC()
		}
	default:
		return Envelope{}, fmt.Errorf("%w: field created has the wrong type", ErrNotEvent)
	}
	return env, nil
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

// The plausible window of a provider's time. A time outside it is not a
// version syncd believes: a millisecond timestamp read as seconds lands in
// the year 58010 and, stored as a row's version, would make every later
// update of the row "stale". The consumers refuse such an event as
// undecodable (CheckTime) instead of applying it.
var (
	// MinTime is older than any event of either provider.
	MinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	// MaxAhead is how far past now a provider's clock may be.
	MaxAhead = 24 * time.Hour
)

// ErrImplausibleTime means a time outside [MinTime, now+MaxAhead].
var ErrImplausibleTime = errors.New("time outside the plausible window")

// CheckTime reports whether a provider's time t is inside the plausible
// window; the zero time (absent) passes.
func CheckTime(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	if t.Before(MinTime) || t.After(time.Now().Add(MaxAhead)) {
		return fmt.Errorf("%w: %s is not within %s .. now+%s", ErrImplausibleTime,
			t.UTC().Format(time.RFC3339Nano), MinTime.Format(time.DateOnly), MaxAhead)
	}
	return nil
}

// WorkOSTime is a time in a WorkOS object (created_at, updated_at, …):
// a string in any ParseTime form or, should WorkOS send one, a JSON number
// in WorkOS's unit, unix milliseconds. It must be within the plausible
// window (CheckTime): these times are the objects' versions.
type WorkOSTime struct{ time.Time }

// UnmarshalJSON decodes and checks the time; null or "" is zero.
func (t *WorkOSTime) UnmarshalJSON(b []byte) error { return t.parse(b, true) }

func (t *WorkOSTime) parse(b []byte, check bool) error {
	b = bytes.TrimSpace(b)
	t.Time = time.Time{}
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			return nil
		}
		v, err := ParseTime(s)
		if err != nil {
			return err
		}
		t.Time = v
	default:
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("unrecognised time %.40s", b)
		}
		t.Time = time.UnixMilli(n).UTC()
	}
	if check {
		return CheckTime(t.Time)
	}
	return nil
}

// Ptr returns nil for the zero time, for nullable columns.
func (t WorkOSTime) Ptr() *time.Time {
	if t.IsZero() {
		return nil
	}
	v := t.Time
	return &v
}

// Time is a JSON timestamp decoded with ParseTime; null or "" is zero. A
// number is unix seconds, Stripe's unit.
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
