package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	workosevents "github.com/workos/workos-go/v4/pkg/events"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/stream"
)

// WorkOSConfig configures the WorkOS Events API client.
type WorkOSConfig struct {
	APIKey string
	// BaseURL defaults to https://api.workos.com.
	BaseURL string
	// PageSize is the listing's limit, at most PageSizeMax (the default).
	PageSize   int
	HTTPClient *http.Client
}

// WorkOS pages `GET /events`, oldest first, with the `after` cursor.
type WorkOS struct {
	cfg WorkOSConfig
}

// NewWorkOS builds the WorkOS source.
func NewWorkOS(cfg WorkOSConfig) (*WorkOS, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("backfill: WorkOS API key is empty")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://api.workos.com"
	}
	if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backfill: WorkOS API URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = PageSizeMax
	}
	if cfg.PageSize < 1 || cfg.PageSize > PageSizeMax {
		return nil, fmt.Errorf("backfill: WorkOS page size %d outside 1..%d", cfg.PageSize, PageSizeMax)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	return &WorkOS{cfg: cfg}, nil
}

func (*WorkOS) Name() string { return stream.SourceWorkOS }

// Check accepts any window: WorkOS's retention (30 or 90 days depending on
// the docs' age) is left for the API to enforce.
func (*WorkOS) Check(Window, time.Time) error { return nil }

// Listings is one listing: the API takes the whole filter at once.
func (*WorkOS) Listings(types []string) [][]string { return [][]string{types} }

// Page lists through the SDK's client. The SDK's Event keeps only id,
// event, data and created_at (it drops object and context, and cannot read
// a non-RFC 3339 created_at), so the page's raw body is kept on the way
// through and each event is published as the API sent it.
func (w *WorkOS) Page(ctx context.Context, win Window, types []string, cursor string) (Page, error) {
	rec := &recorder{base: w.cfg.HTTPClient.Transport}
	hc := *w.cfg.HTTPClient
	hc.Transport = rec
	client := &workosevents.Client{APIKey: w.cfg.APIKey, Endpoint: w.cfg.BaseURL, HTTPClient: &hc}
	resp, err := client.ListEvents(ctx, workosevents.ListEventsOpts{
		Events:     types,
		Limit:      w.cfg.PageSize,
		After:      cursor,
		RangeStart: win.Since.UTC().Format(time.RFC3339Nano),
		RangeEnd:   win.Until.UTC().Format(time.RFC3339Nano),
	})
	var sdkDecode *json.SyntaxError
	var sdkType *json.UnmarshalTypeError
	var sdkTime *time.ParseError
	if err != nil && !(rec.ok() && (errors.As(err, &sdkDecode) || errors.As(err, &sdkType) || errors.As(err, &sdkTime))) {
		return Page{}, err
	}
	var raw struct {
		Data         []json.RawMessage `json:"data"`
		ListMetadata struct {
			After *string `json:"after"`
		} `json:"list_metadata"`
	}
	if jerr := json.Unmarshal(rec.body, &raw); jerr != nil {
		return Page{}, fmt.Errorf("decode WorkOS events page: %w", jerr)
	}
	if err == nil && len(resp.Data) != len(raw.Data) {
		return Page{}, fmt.Errorf("WorkOS events page: SDK read %d events, body has %d", len(resp.Data), len(raw.Data))
	}
	page := Page{Events: make([]Event, 0, len(raw.Data))}
	for i, item := range raw.Data {
		env, derr := events.DecodeWorkOS(item)
		if derr != nil {
			page.Invalid++
			continue
		}
		if err == nil && resp.Data[i].ID != env.ID {
			return Page{}, fmt.Errorf("WorkOS events page: item %d is %s in the SDK, %s in the body", i, resp.Data[i].ID, env.ID)
		}
		page.Events = append(page.Events, Event{Envelope: env, Body: []byte(item)})
	}
	if raw.ListMetadata.After != nil {
		page.Next = *raw.ListMetadata.After
	}
	return page, nil
}

// recorder keeps the body of the response it passes through.
type recorder struct {
	base   http.RoundTripper
	status int
	body   []byte
}

func (r *recorder) ok() bool { return r.status >= 200 && r.status < 300 && r.body != nil }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	base := r.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	// A page is at most 100 events; 64 MiB is far beyond any real one.
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read WorkOS response: %w", err)
	}
	r.status, r.body = resp.StatusCode, b
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}
