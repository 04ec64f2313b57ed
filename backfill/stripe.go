package backfill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	stripe "github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/account"
	"github.com/stripe/stripe-go/v76/event"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/stream"
)

const (
	// StripeRetention is how far back Stripe's Events API lists.
	StripeRetention = 30 * 24 * time.Hour
	// StripeMaxTypes is the most types one listing may filter on.
	StripeMaxTypes = 20
)

// StripeConfig configures the Stripe Events API client.
type StripeConfig struct {
	APIKey string
	// BaseURL defaults to https://api.stripe.com.
	BaseURL string
	// PageSize is the listing's limit, at most PageSizeMax (the default).
	PageSize   int
	HTTPClient *http.Client
	// MaxNetworkRetries overrides stripe-go's default (2) when set.
	MaxNetworkRetries *int64
	// RateLimitRetries is how often a request answered 429 is retried
	// (honouring Retry-After); 0 means RateLimitRetriesDefault, negative
	// none.
	RateLimitRetries int
	// Wait sleeps before a retry, or returns ctx's error; tests replace it.
	Wait func(ctx context.Context, d time.Duration) error
}

// Stripe pages `GET /v1/events`, newest first, with `starting_after`: the
// platform's events, or with ForAccount one connected account's.
type Stripe struct {
	cfg      StripeConfig
	client   event.Client
	accounts account.Client
	// account, when set, is sent as Stripe-Account: the connected
	// account whose events are listed.
	account string
}

// NewStripe builds the Stripe source.
func NewStripe(cfg StripeConfig) (*Stripe, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("backfill: Stripe API key is empty")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = stripe.APIURL
	}
	if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("backfill: Stripe API URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = PageSizeMax
	}
	if cfg.PageSize < 1 || cfg.PageSize > PageSizeMax {
		return nil, fmt.Errorf("backfill: Stripe page size %d outside 1..%d", cfg.PageSize, PageSizeMax)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 80 * time.Second}
	}
	if cfg.RateLimitRetries == 0 {
		cfg.RateLimitRetries = RateLimitRetriesDefault
	}
	if cfg.Wait == nil {
		cfg.Wait = sleepCtx
	}
	if cfg.RateLimitRetries > 0 {
		hc := *cfg.HTTPClient
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.Transport = &rateLimited{base: base, retries: cfg.RateLimitRetries, wait: cfg.Wait}
		cfg.HTTPClient = &hc
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(cfg.BaseURL),
		HTTPClient:        cfg.HTTPClient,
		MaxNetworkRetries: cfg.MaxNetworkRetries,
		// Failures come back as errors and are logged by the caller.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return &Stripe{cfg: cfg, client: event.Client{B: backend, Key: cfg.APIKey}, accounts: account.Client{B: backend, Key: cfg.APIKey}}, nil
}

// ForAccount is the same client listing the events of the connected
// account id (sent as the Stripe-Account header).
func (s *Stripe) ForAccount(id string) *Stripe {
	c := *s
	c.account = id
	return &c
}

// Account is the connected account ForAccount named, or "".
func (s *Stripe) Account() string { return s.account }

// Accounts pages `GET /v1/accounts`: the platform's connected accounts.
func (s *Stripe) Accounts(ctx context.Context) ([]string, error) {
	params := &stripe.AccountListParams{ListParams: stripe.ListParams{Context: ctx, Limit: stripe.Int64(100)}}
	it := s.accounts.List(params)
	var ids []string
	for it.Next() {
		ids = append(ids, it.Account().ID)
	}
	if err := it.Err(); err != nil {
		return ids, fmt.Errorf("list Stripe connected accounts: %w", err)
	}
	return ids, nil
}

func (*Stripe) Name() string { return stream.SourceStripe }

// Check rejects a window that starts beyond the 30 days Stripe lists.
// A minute of slack lets `--since 30d` through: the command resolves it a
// moment before the window is checked again here.
func (*Stripe) Check(w Window, now time.Time) error {
	if earliest := now.Add(-StripeRetention); w.Since.Before(earliest.Add(-time.Minute)) {
		return fmt.Errorf("%w: since %s is more than 30 days ago; Stripe lists events of the last 30 days only (earliest now %s)",
			ErrWindow, w.Since.UTC().Format(time.RFC3339), earliest.UTC().Format(time.RFC3339))
	}
	return nil
}

// Listings splits the filter into listings of at most 20 types each.
func (*Stripe) Listings(types []string) [][]string {
	if len(types) == 0 {
		return [][]string{nil}
	}
	var out [][]string
	for len(types) > StripeMaxTypes {
		out = append(out, types[:StripeMaxTypes])
		types = types[StripeMaxTypes:]
	}
	return append(out, types)
}

// Page lists one page through stripe-go. Stripe lists newest first; the
// cursor is the id of the oldest event stored so far, so a resumed run
// continues further into the past and new events arriving meanwhile do not
// shift its pages. stripe-go keeps the page's raw body on the list's
// LastResponse; each event is published as the API sent it.
func (s *Stripe) Page(ctx context.Context, w Window, types []string, cursor string) (Page, error) {
	params := &stripe.EventListParams{
		ListParams: stripe.ListParams{
			Context: ctx,
			Limit:   stripe.Int64(int64(s.cfg.PageSize)),
			Single:  true,
		},
		CreatedRange: &stripe.RangeQueryParams{
			GreaterThanOrEqual: w.Since.Unix(),
			LesserThanOrEqual:  w.Until.Unix(),
		},
	}
	if cursor != "" {
		params.StartingAfter = stripe.String(cursor)
	}
	if s.account != "" {
		params.SetStripeAccount(s.account)
	}
	if len(types) == 1 {
		params.Type = stripe.String(types[0])
	} else if len(types) > 1 {
		params.Types = stripe.StringSlice(types)
	}
	it := s.client.List(params)
	if err := it.Err(); err != nil {
		return Page{}, err
	}
	list := it.EventList()
	if list.LastResponse == nil {
		return Page{}, errors.New("Stripe events page: no response body kept")
	}
	var raw struct {
		Data    []json.RawMessage `json:"data"`
		HasMore bool              `json:"has_more"`
	}
	if err := json.Unmarshal(list.LastResponse.RawJSON, &raw); err != nil {
		return Page{}, fmt.Errorf("decode Stripe events page: %w", err)
	}
	if len(raw.Data) != len(list.Data) {
		return Page{}, fmt.Errorf("Stripe events page: SDK read %d events, body has %d", len(list.Data), len(raw.Data))
	}
	page := Page{Events: make([]Event, 0, len(raw.Data))}
	for i, item := range raw.Data {
		body := []byte(item)
		env, err := events.DecodeStripe(body)
		if err != nil {
			page.Invalid++
			continue
		}
		if list.Data[i].ID != env.ID {
			return Page{}, fmt.Errorf("Stripe events page: item %d is %s in the SDK, %s in the body", i, list.Data[i].ID, env.ID)
		}
		if s.account != "" && env.Account != s.account {
			if env.Account != "" {
				// Not the account asked for: publishing it as this
				// account's would misattribute it.
				page.Invalid++
				continue
			}
			// The consumers read the account from the body, as the Connect
			// webhook carries it; an event listed without it gets it here.
			if body, env, err = withAccount(body, s.account); err != nil {
				page.Invalid++
				continue
			}
		}
		page.Events = append(page.Events, Event{Envelope: env, Body: body})
	}
	if raw.HasMore && len(list.Data) > 0 {
		page.Next = list.Data[len(list.Data)-1].ID
	}
	return page, nil
}

// withAccount adds `"account": id` to an event body that lacks it, the
// rest of the bytes unchanged.
func withAccount(body []byte, id string) ([]byte, events.Envelope, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, events.Envelope{}, errors.New("event is not a JSON object")
	}
	field, _ := json.Marshal(id)
	out := make([]byte, 0, len(trimmed)+len(field)+12)
	out = append(out, `{"account":`...)
	out = append(out, field...)
	if rest := bytes.TrimLeft(trimmed[1:], " \t\r\n"); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	out = append(out, trimmed[1:]...)
	env, err := events.DecodeStripe(out)
	if err != nil {
		return nil, events.Envelope{}, err
	}
	return out, env, nil
}
