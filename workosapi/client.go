// Package workosapi is syncd's client of the WorkOS API for writing users,
// organizations and memberships: provisioning and the Clerk import share
// it. Calls go through workos-go/v4 over one HTTP transport that bounds
// the requests in flight, paces writes under WorkOS's AuthKit limit
// (500 writes per 10 s), retries 429 and 5xx honouring Retry-After and
// counts every attempt by endpoint and status. Failures come back as
// *Error with WorkOS's code and request id.
//
// WorkOS's Idempotency-Key is not a guarantee for these endpoints, so the
// Ensure* helpers make writes idempotent with lookups: a taken email
// adopts the user holding it, an organization is looked up by its external
// id before it is created, a membership is listed before one is made.
package workosapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/workos/workos-go/v4/pkg/organizations"
	"github.com/workos/workos-go/v4/pkg/usermanagement"
)

// The SDK's objects, under shorter names.
type (
	User                   = usermanagement.User
	Organization           = organizations.Organization
	OrganizationMembership = usermanagement.OrganizationMembership
	MagicAuth              = usermanagement.MagicAuth
	CreateUserOpts         = usermanagement.CreateUserOpts
	CreateOrganizationOpts = organizations.CreateOrganizationOpts
)

// DefaultBaseURL is WorkOS's API.
const DefaultBaseURL = "https://api.workos.com"

// Defaults and bounds of Config.
const (
	MaxInFlightDefault = 8
	// WriteRateDefault and WriteBurstDefault allow at most 40 + 40×10 =
	// 440 writes in any 10 s, under AuthKit's 500.
	WriteRateDefault   = 40.0
	WriteBurstDefault  = 40
	MaxAttemptsDefault = 5
	RetryMinDefault    = 250 * time.Millisecond
	RetryMaxDefault    = 5 * time.Second
	// MaxRetryAfterDefault is the longest Retry-After the transport waits
	// out itself; a longer one is returned to the caller.
	MaxRetryAfterDefault = 30 * time.Second
	TimeoutDefault       = 30 * time.Second
)

// Config configures a Client.
type Config struct {
	APIKey string
	// BaseURL defaults to DefaultBaseURL; tests point it at a fake.
	BaseURL string
	// MaxInFlight bounds concurrent requests.
	MaxInFlight int
	// WriteRate (per second) and WriteBurst pace POST/PUT/PATCH/DELETE.
	WriteRate  float64
	WriteBurst int
	// Unpaced turns the write pacing off. Only for tests against
	// workosfake, which has no write limit: real WorkOS answers a burst
	// over its limit with 429s for everyone sharing the environment.
	Unpaced bool
	// MaxAttempts is how often the transport tries a call that answers
	// 429/5xx before handing the answer back.
	MaxAttempts int
	// RetryMin and RetryMax bound the backoff when no Retry-After is given.
	RetryMin, RetryMax time.Duration
	MaxRetryAfter      time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
	// Transport is the base RoundTripper (default http.DefaultTransport).
	Transport  http.RoundTripper
	Registerer prometheus.Registerer
	// MetricPrefix names the calls counter: <prefix>_workos_calls_total.
	MetricPrefix string
}

func (c Config) withDefaults() Config {
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = MaxInFlightDefault
	}
	if c.WriteRate == 0 {
		c.WriteRate = WriteRateDefault
	}
	if c.WriteBurst == 0 {
		c.WriteBurst = WriteBurstDefault
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = MaxAttemptsDefault
	}
	if c.RetryMin == 0 {
		c.RetryMin = RetryMinDefault
	}
	if c.RetryMax == 0 {
		c.RetryMax = RetryMaxDefault
	}
	if c.MaxRetryAfter == 0 {
		c.MaxRetryAfter = MaxRetryAfterDefault
	}
	if c.Timeout == 0 {
		c.Timeout = TimeoutDefault
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.MetricPrefix == "" {
		c.MetricPrefix = "syncd"
	}
	return c
}

func (c Config) validate() error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case c.APIKey == "":
		return errors.New("workosapi: APIKey is empty (WORKOS_API_KEY)")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("workosapi: BaseURL %q is not an http(s) URL (WORKOS_API_URL)", c.BaseURL)
	case c.MaxInFlight < 1 || c.MaxInFlight > 256:
		return fmt.Errorf("workosapi: MaxInFlight %d outside 1..256", c.MaxInFlight)
	case !c.Unpaced && (c.WriteRate <= 0 || c.WriteRate > 50):
		return fmt.Errorf("workosapi: WriteRate %g outside (0, 50] per second (WorkOS allows 500 writes per 10 s)", c.WriteRate)
	case !c.Unpaced && (c.WriteBurst < 1 || float64(c.WriteBurst)+10*c.WriteRate > 500):
		return fmt.Errorf("workosapi: WriteBurst %d with WriteRate %g allows more than 500 writes per 10 s", c.WriteBurst, c.WriteRate)
	case c.MaxAttempts < 1:
		return fmt.Errorf("workosapi: MaxAttempts %d below 1", c.MaxAttempts)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("workosapi: retry backoff %s..%s is not a range", c.RetryMin, c.RetryMax)
	case c.MaxRetryAfter < 0 || c.Timeout < 0:
		return errors.New("workosapi: MaxRetryAfter and Timeout must not be negative")
	}
	return nil
}

// Check reports what New would reject in cfg.
func (c Config) Check() error { return c.withDefaults().validate() }

// Client calls the WorkOS API.
type Client struct {
	um  *usermanagement.Client
	org *organizations.Client
	tr  *transport
}

// New builds a client. Its counter <prefix>_workos_calls_total{endpoint,
// status} is registered with cfg.Registerer.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	calls := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: cfg.MetricPrefix + "_workos_calls_total",
		Help: "WorkOS API requests, each attempt, by endpoint and HTTP status (error: no answer).",
	}, []string{"endpoint", "status"})
	if err := cfg.Registerer.Register(calls); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("workosapi metrics: %w", err)
		}
		calls = are.ExistingCollector.(*prometheus.CounterVec)
	}
	tr := &transport{
		// The timeout applies to each attempt, inside the retries.
		base:          &timeoutTransport{base: cfg.Transport, timeout: cfg.Timeout},
		inFlight:      make(chan struct{}, cfg.MaxInFlight),
		writes:        newLimiter(cfg.WriteRate, cfg.WriteBurst, cfg.Unpaced),
		maxAttempts:   cfg.MaxAttempts,
		retryMin:      cfg.RetryMin,
		retryMax:      cfg.RetryMax,
		maxRetryAfter: cfg.MaxRetryAfter,
		calls:         calls,
		sleep:         sleepCtx,
	}
	hc := &http.Client{Transport: tr}
	return &Client{
		um:  &usermanagement.Client{APIKey: cfg.APIKey, Endpoint: cfg.BaseURL, HTTPClient: hc, JSONEncode: json.Marshal},
		org: &organizations.Client{APIKey: cfg.APIKey, Endpoint: cfg.BaseURL, HTTPClient: hc, JSONEncode: json.Marshal},
		tr:  tr,
	}, nil
}

// timeoutTransport bounds one attempt.
type timeoutTransport struct {
	base    http.RoundTripper
	timeout time.Duration
}

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.timeout <= 0 {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
