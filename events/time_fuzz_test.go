package events

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// FuzzParseTime: any string parses to a UTC time or fails with an error,
// never a panic; a parsed time of a year RFC 3339 can write reads back as
// itself; the JSON forms (string and number) agree with ParseTime.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2023-04-28T20:05:31.093Z", "2023-04-28 20:05:31.093", "2023-04-28T22:05:31.093+02:00",
		"2023-04-28 20:05:31.093Z", "2023-04-28", "1682712331093", "1682712331", "9999-12-31T23:59:59Z",
		"0001-01-01T00:00:00Z", "253402300799", "9223372036854775807", "-5", "", " ", "soon", "2023-02-30",
		"2023-04-28T20:05:31.093+24:00", "1e12", "0x10",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s)
		if err != nil {
			if !got.IsZero() {
				t.Fatalf("ParseTime(%q) failed with a time %v", s, got)
			}
		} else {
			if got.Location() != time.UTC {
				t.Fatalf("ParseTime(%q) = %v, not UTC", s, got)
			}
			if y := got.Year(); y >= 0 && y <= 9999 {
				back, err := ParseTime(got.Format(time.RFC3339Nano))
				if err != nil || !back.Equal(got) {
					t.Fatalf("ParseTime(%q) = %v, which reads back as %v, %v", s, got, back, err)
				}
			}
		}
		// As a JSON string the same text means the same time ("" is zero).
		var v Time
		b, _ := json.Marshal(s)
		jerr := json.Unmarshal(b, &v)
		switch {
		case s == "":
			if jerr != nil || !v.IsZero() {
				t.Fatalf(`"" as JSON = %v, %v; want zero`, v, jerr)
			}
		case (jerr == nil) != (err == nil) || (err == nil && !v.Equal(got)):
			t.Fatalf("%s as JSON = %v, %v; ParseTime says %v, %v", b, v.Time, jerr, got, err)
		}
		// A number never panics and is UTC when accepted.
		if _, perr := strconv.ParseInt(s, 10, 64); perr == nil {
			if err := json.Unmarshal([]byte(s), &v); err == nil && !v.IsZero() && v.Location() != time.UTC {
				t.Fatalf("%s as a JSON number = %v, not UTC", s, v.Time)
			}
		}
	})
}
