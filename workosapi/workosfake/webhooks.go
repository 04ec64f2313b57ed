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
	"slices"
	"strconv"
	"strings"
	"time"
)

// Event is a WorkOS webhook the fake would send for what it created.
type Event struct {
	ID, Type string
	// Body is the event as WorkOS sends it.
	Body []byte
	// CreatedAt is the event's created_at.
	CreatedAt time.Time
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
	at := s.now()
	body, err := json.Marshal(map[string]any{
		"object":     "event",
		"id":         id,
		"event":      typ,
		"data":       json.RawMessage(data),
		"created_at": at,
		"context":    map[string]any{},
	})
	if err != nil {
		panic(err)
	}
	created, _ := time.Parse(timeFormat, at)
	s.events = append(s.events, Event{ID: id, Type: typ, Body: body, CreatedAt: created})
}

// magicAuthEvent is the data of magic_auth.created: the object without
// its code.
type magicAuthEvent struct {
	Object    string `json:"object"`
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	Email     string `json:"email"`
	ExpiresAt string `json:"expires_at"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// listEvents answers GET /events as WorkOS does: oldest first, filtered by
// the events[] types and range_start/range_end, paged by the after
// cursor. The caller holds the lock.
func (s *Server) listEvents(r *http.Request) (int, any) {
	q := r.URL.Query()
	var types []string
	for _, k := range []string{"events", "events[]"} {
		for _, v := range q[k] {
			types = append(types, strings.Split(v, ",")...)
		}
	}
	var from, to time.Time
	for name, dst := range map[string]*time.Time{"range_start": &from, "range_end": &to} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return http.StatusUnprocessableEntity, map[string]any{"code": "invalid_request_parameters", "message": name + " is not a date"}
			}
			*dst = t
		}
	}
	var out []json.RawMessage
	var ids []string
	for _, ev := range s.events {
		if (len(types) > 0 && !slices.Contains(types, ev.Type)) ||
			(!from.IsZero() && ev.CreatedAt.Before(from)) || (!to.IsZero() && ev.CreatedAt.After(to)) {
			continue
		}
		out = append(out, ev.Body)
		ids = append(ids, ev.ID)
	}
	if after := q.Get("after"); after != "" {
		i := slices.Index(ids, after)
		if i < 0 {
			return http.StatusUnprocessableEntity, map[string]any{"code": "invalid_request_parameters", "message": "after: unknown event " + after}
		}
		out, ids = out[i+1:], ids[i+1:]
	}
	limit := 10
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return http.StatusUnprocessableEntity, map[string]any{"code": "invalid_request_parameters", "message": "limit must be between 1 and 100"}
		}
		limit = n
	}
	next := ""
	if len(out) > limit {
		out, next = out[:limit], ids[limit-1]
	}
	return http.StatusOK, list(out, next)
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
