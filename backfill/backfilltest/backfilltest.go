// Package backfilltest fakes the providers' Events APIs over httptest,
// paging as the real ones page: WorkOS `GET /events` oldest first with the
// `after` cursor and `list_metadata`, `limit` at most 100; Stripe
// `GET /v1/events` newest first with `has_more` and `starting_after`, at
// most 20 types a request, the platform's events or, with a
// `Stripe-Account` header, that connected account's (403 for an account
// the platform does not reach), and `GET /v1/accounts`.
package backfilltest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncd/syncd/events"
)

// Request is one listing request the fake served (or failed).
type Request struct {
	// Path is the listing's path: "/v1/events", "/v1/accounts", "/events".
	Path string
	// Account is the Stripe-Account header: the connected account whose
	// events were asked for.
	Account string
	Cursor  string
	Types   []string
	Limit   int
	Status  int
}

// API is a fake Events API.
type API struct {
	*httptest.Server
	Key string

	// RetryAfter is the Retry-After header of an injected 429 ("" for
	// none).
	RetryAfter string

	mu     sync.Mutex
	events []item
	// accounts are the Stripe connected accounts, in the order added;
	// their events are listed only with their Stripe-Account header.
	accounts []*connected
	reqs     []Request
	// FailOn, if set, is asked before each request with its number (from
	// 1); a non-zero status fails the request with it.
	failOn func(n int, r Request) int
}

type item struct {
	id, typ string
	created time.Time
	body    []byte
}

type connected struct {
	id string
	// unlisted accounts answer their events but are missing from
	// GET /v1/accounts.
	unlisted bool
	events   []item
}

// Requests returns the requests served so far.
func (a *API) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.reqs)
}

// FailOn sets the failure hook (nil to stop failing).
func (a *API) FailOn(f func(n int, r Request) int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failOn = f
}

// Add stores raw event bodies. Their id, type and time are read with the
// same decoders ingest uses.
func (a *API) Add(t testing.TB, workos bool, bodies ...[]byte) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range bodies {
		dec := events.DecodeStripe
		if workos {
			dec = events.DecodeWorkOS
		}
		env, err := dec(b)
		if err != nil {
			t.Fatalf("fake API event: %v", err)
		}
		a.events = append(a.events, item{id: env.ID, typ: env.Type, created: env.Created, body: b})
	}
}

// AddConnected stores raw event bodies of the Stripe connected account
// id, listed only to requests with its Stripe-Account header, and makes
// the account part of GET /v1/accounts.
func (a *API) AddConnected(t testing.TB, id string, bodies ...[]byte) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	acct := a.account(id)
	if acct == nil {
		acct = &connected{id: id}
		a.accounts = append(a.accounts, acct)
	}
	for _, b := range bodies {
		env, err := events.DecodeStripe(b)
		if err != nil {
			t.Fatalf("fake API event: %v", err)
		}
		acct.events = append(acct.events, item{id: env.ID, typ: env.Type, created: env.Created, body: b})
	}
}

// Unlist leaves the connected account out of GET /v1/accounts; its events
// are still listed with its Stripe-Account header.
func (a *API) Unlist(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if acct := a.account(id); acct != nil {
		acct.unlisted = true
	}
}

func (a *API) account(id string) *connected {
	for _, acct := range a.accounts {
		if acct.id == id {
			return acct
		}
	}
	return nil
}

func (a *API) begin(w http.ResponseWriter, r *http.Request, req Request) bool {
	req.Path = r.URL.Path
	req.Account = r.Header.Get("Stripe-Account")
	a.mu.Lock()
	n := len(a.reqs) + 1
	if a.failOn != nil {
		req.Status = a.failOn(n, req)
	}
	if req.Status == 0 {
		req.Status = http.StatusOK
	}
	a.reqs = append(a.reqs, req)
	retryAfter := a.RetryAfter
	a.mu.Unlock()
	switch req.Status {
	case http.StatusOK:
		return true
	case http.StatusTooManyRequests:
		// What Stripe answers over its rate limit.
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		writeJSON(w, req.Status, map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "rate_limit",
			"message": "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits."}})
	default:
		writeJSON(w, req.Status, map[string]any{"message": "injected failure", "error": map[string]any{"type": "api_error", "message": "injected failure"}})
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeList writes a list response with the stored bodies byte for byte
// (an encoder would compact and escape them), then the other fields.
func writeList(w http.ResponseWriter, list []item, rest map[string]any) {
	var b bytes.Buffer
	b.WriteString(`{"object":"list","data":[`)
	for i, it := range list {
		if i > 0 {
			b.WriteString(",\n  ")
		}
		b.Write(it.body)
	}
	b.WriteString("]")
	for k, v := range rest {
		enc, _ := json.Marshal(v)
		fmt.Fprintf(&b, ",%q:%s", k, enc)
	}
	b.WriteString("}")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b.Bytes())
}

// WorkOS starts a fake WorkOS Events API accepting key.
func WorkOS(t testing.TB, key string) *API {
	a := &API{Key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Unauthorized"})
			return
		}
		q := r.URL.Query()
		types := append(q["events"], q["events[]"]...)
		limit := 10
		if s := q.Get("limit"); s != "" {
			var err error
			if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 100 {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "limit must be between 1 and 100"})
				return
			}
		}
		req := Request{Cursor: q.Get("after"), Types: types, Limit: limit}
		var from, to time.Time
		for name, dst := range map[string]*time.Time{"range_start": &from, "range_end": &to} {
			if s := q.Get(name); s != "" {
				t, err := time.Parse(time.RFC3339Nano, s)
				if err != nil {
					writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": name + " is not a date"})
					return
				}
				*dst = t
			}
		}
		if !a.begin(w, r, req) {
			return
		}
		a.mu.Lock()
		list := slices.Clone(a.events)
		a.mu.Unlock()
		// Oldest first.
		slices.SortStableFunc(list, func(x, y item) int { return x.created.Compare(y.created) })
		list = slices.DeleteFunc(list, func(it item) bool {
			return (len(types) > 0 && !slices.Contains(types, it.typ)) ||
				(!from.IsZero() && it.created.Before(from)) || (!to.IsZero() && it.created.After(to))
		})
		if req.Cursor != "" {
			i := slices.IndexFunc(list, func(it item) bool { return it.id == req.Cursor })
			if i < 0 {
				writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "after: unknown event " + req.Cursor})
				return
			}
			list = list[i+1:]
		}
		var after any
		if len(list) > limit {
			list = list[:limit]
			after = list[limit-1].id
		}
		writeList(w, list, map[string]any{"list_metadata": map[string]any{"before": nil, "after": after}})
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

// Stripe starts a fake Stripe Events API accepting key.
func Stripe(t testing.TB, key string) *API {
	a := &API{Key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "Invalid API Key provided"}})
			return
		}
		q := r.URL.Query()
		var types []string
		for k, v := range q {
			if strings.HasPrefix(k, "types[") {
				types = append(types, v...)
			}
		}
		slices.Sort(types)
		single := q.Get("type")
		if single != "" && len(types) > 0 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "You may pass either type or types, but not both."}})
			return
		}
		if len(types) > 20 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": fmt.Sprintf("types: at most 20, got %d", len(types))}})
			return
		}
		if single != "" {
			types = []string{single}
		}
		limit := 10
		if s := q.Get("limit"); s != "" {
			var err error
			if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 100 {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "limit must be between 1 and 100"}})
				return
			}
		}
		bound := func(k string) (int64, bool) {
			n, err := strconv.ParseInt(q.Get(k), 10, 64)
			return n, err == nil
		}
		gte, hasGte := bound("created[gte]")
		lte, hasLte := bound("created[lte]")
		req := Request{Cursor: q.Get("starting_after"), Types: types, Limit: limit, Account: r.Header.Get("Stripe-Account")}
		if !a.begin(w, r, req) {
			return
		}
		a.mu.Lock()
		list := slices.Clone(a.events)
		if req.Account != "" {
			acct := a.account(req.Account)
			if acct == nil {
				a.mu.Unlock()
				writeJSON(w, http.StatusForbidden, map[string]any{"error": map[string]any{"type": "invalid_request_error", "code": "account_invalid",
					"message": fmt.Sprintf("The provided key '%s' does not have access to account '%s' (or that account does not exist). Application access may have been revoked.", redact(key), req.Account)}})
				return
			}
			list = slices.Clone(acct.events)
		}
		a.mu.Unlock()
		// Newest first; same-second events newest-added first.
		slices.Reverse(list)
		slices.SortStableFunc(list, func(x, y item) int { return y.created.Compare(x.created) })
		list = slices.DeleteFunc(list, func(it item) bool {
			return (len(types) > 0 && !slices.Contains(types, it.typ)) ||
				(hasGte && it.created.Unix() < gte) || (hasLte && it.created.Unix() > lte)
		})
		if req.Cursor != "" {
			i := slices.IndexFunc(list, func(it item) bool { return it.id == req.Cursor })
			if i < 0 {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "No such event: " + req.Cursor}})
				return
			}
			list = list[i+1:]
		}
		more := len(list) > limit
		if more {
			list = list[:limit]
		}
		writeList(w, list, map[string]any{"url": "/v1/events", "has_more": more})
	})
	// The platform's connected accounts, newest first, as Stripe pages
	// them.
	mux.HandleFunc("GET /v1/accounts", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+key {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "Invalid API Key provided"}})
			return
		}
		q := r.URL.Query()
		limit := 10
		if s := q.Get("limit"); s != "" {
			var err error
			if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 100 {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "limit must be between 1 and 100"}})
				return
			}
		}
		req := Request{Cursor: q.Get("starting_after"), Limit: limit}
		if !a.begin(w, r, req) {
			return
		}
		a.mu.Lock()
		var ids []string
		for _, acct := range slices.Backward(a.accounts) {
			if !acct.unlisted {
				ids = append(ids, acct.id)
			}
		}
		a.mu.Unlock()
		if req.Cursor != "" {
			i := slices.Index(ids, req.Cursor)
			if i < 0 {
				writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{"type": "invalid_request_error", "message": "No such account: " + req.Cursor}})
				return
			}
			ids = ids[i+1:]
		}
		more := len(ids) > limit
		if more {
			ids = ids[:limit]
		}
		data := make([]map[string]any, len(ids))
		for i, id := range ids {
			data[i] = map[string]any{"id": id, "object": "account", "type": "express", "charges_enabled": true, "payouts_enabled": true}
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "url": "/v1/accounts", "has_more": more, "data": data})
	})
	a.Server = httptest.NewServer(mux)
	t.Cleanup(a.Close)
	return a
}

// redact shortens a key as Stripe's messages do.
func redact(key string) string {
	if len(key) <= 8 {
		return "***"
	}
	return key[:8] + "***" + key[len(key)-4:]
}
