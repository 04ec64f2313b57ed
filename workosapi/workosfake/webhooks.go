package workosfake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Event is a WorkOS webhook the fake would send for what it created.
type Event struct {
	ID, Type string
	// Body is the event as WorkOS sends it.
	Body []byte
}

// record keeps the event of a write; the caller holds the lock. The data
// is the object as the API returned it, in WorkOS's envelope (the shape
// of testdata/fixtures/workos).
func (s *Server) record(typ string, object any) {
	data, err := json.Marshal(object)
	if err != nil {
		panic(err)
	}
	id := s.newID("event")
	body, err := json.Marshal(map[string]any{
		"object":     "event",
		"id":         id,
		"event":      typ,
		"data":       json.RawMessage(data),
		"created_at": s.now(),
		"context":    map[string]any{},
	})
	if err != nil {
		panic(err)
	}
	s.events = append(s.events, Event{ID: id, Type: typ, Body: body})
}

// Events returns every event of what the fake created, in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Sign returns the WorkOS-Signature header for body: "t=<ms>, v1=<hex
// HMAC-SHA256 of "<t>.<body>">".
func Sign(secret string, body []byte, at time.Time) string {
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ", v1=" + hex.EncodeToString(mac.Sum(nil))
}

// DeliverWebhooks posts the events not delivered yet to url, signed with
// secret, in order, and returns how many it delivered. It stops at the
// first answer that is not 2xx; that event stays undelivered.
func (s *Server) DeliverWebhooks(ctx context.Context, url, secret string) (int, error) {
	n := 0
	for {
		s.mu.Lock()
		if s.delivered >= len(s.events) {
			s.mu.Unlock()
			return n, nil
		}
		ev := s.events[s.delivered]
		s.mu.Unlock()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(ev.Body))
		if err != nil {
			return n, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("WorkOS-Signature", Sign(secret, ev.Body, time.Now()))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return n, fmt.Errorf("deliver %s %s: %w", ev.Type, ev.ID, err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return n, fmt.Errorf("deliver %s %s: %s", ev.Type, ev.ID, resp.Status)
		}
		s.mu.Lock()
		s.delivered++
		s.mu.Unlock()
		n++
	}
}
