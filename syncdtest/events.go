package syncdtest

import (
	"encoding/json"
	"time"
)

// WorkOSEvent builds a WorkOS event body around data.
func WorkOSEvent(id, typ string, data map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"object":     "event",
		"id":         id,
		"event":      typ,
		"data":       data,
		"created_at": time.Now().UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// StripeEvent builds a Stripe event body around object at the given
// created time (unix seconds) and API version.
func StripeEvent(id, typ string, created int64, object map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"id":          id,
		"object":      "event",
		"type":        typ,
		"created":     created,
		"api_version": "2023-10-16",
		"livemode":    false,
		"data":        map[string]any{"object": object},
	})
	if err != nil {
		panic(err)
	}
	return b
}

// WithID returns a copy of a fixture body with a new event id.
func WithID(body []byte, id string) []byte {
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil {
		panic(err)
	}
	ev["id"] = id
	b, _ := json.Marshal(ev)
	return b
}

// Millis formats t as WorkOS does.
func Millis(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
