// Package ingest is syncd's HTTP front: it reads each webhook's raw body
// once, verifies it with the provider's signature scheme, publishes the
// bytes to JetStream, and answers 200 only after the PubAck.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/telemetry"
)

// Defaults of Config.
const (
	// MaxBodyDefault is the largest webhook body accepted.
	MaxBodyDefault = 1 << 20
	// The accepted timestamp skews: WorkOS's and Stripe's SDKs' own.
	WorkOSToleranceDefault = 180 * time.Second
	StripeToleranceDefault = 300 * time.Second
	PublishTimeoutDefault  = 5 * time.Second
	// MaxInFlightDefault is well under the client's outstanding async
	// publishes (stream.MaxPendingPublishes), past which a publish stalls
	// and then fails.
	MaxInFlightDefault = 1024
)

// Config configures the webhook endpoints.
type Config struct {
	WorkOSSecrets        string // comma-separated, several during rotation
	StripeSecrets        string
	StripeConnectSecrets string
	WorkOSTolerance      time.Duration
	StripeTolerance      time.Duration
	MaxBody              int64
	// MemoryBudget caps the bytes of request bodies held at once, across
	// all requests in flight; default MemoryBudgetDefault, or four of the
	// largest body if that is more. It must hold two of the largest body.
	MemoryBudget int64
	// MemoryWait is how long a request waits for room in the budget
	// before it is answered 503.
	MemoryWait time.Duration
	// PublishTimeout bounds the wait for JetStream's PubAck; past it the
	// provider gets a 503 and retries.
	PublishTimeout time.Duration
	// MaxInFlight caps the verified webhooks waiting for their PubAck at
	// once; one more is answered 503 with Retry-After at once. When
	// JetStream falls behind, requests would otherwise pile up (each a
	// connection, a goroutine and its buffers) until the process spends
	// its time collecting garbage; a fast refusal keeps memory bounded and
	// the connections few.
	MaxInFlight int
	// RetryAfter is the Retry-After sent with a 503.
	RetryAfter time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// TracerProvider traces each request; default the global one (no-op
	// unless OTLP export is configured).
	TracerProvider trace.TracerProvider
	// Now is the clock; tests set it.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.WorkOSTolerance == 0 {
		c.WorkOSTolerance = WorkOSToleranceDefault
	}
	if c.StripeTolerance == 0 {
		c.StripeTolerance = StripeToleranceDefault
	}
	if c.MaxBody == 0 {
		c.MaxBody = MaxBodyDefault
	}
	if c.MemoryBudget == 0 {
		c.MemoryBudget = max(MemoryBudgetDefault, 4*classSize(classIndex(c.MaxBody)))
	}
	if c.MemoryWait == 0 {
		c.MemoryWait = MemoryWaitDefault
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = PublishTimeoutDefault
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = 5 * time.Second
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = MaxInFlightDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	if len(splitSecrets(c.WorkOSSecrets)) == 0 && len(splitSecrets(c.StripeSecrets)) == 0 && len(splitSecrets(c.StripeConnectSecrets)) == 0 {
		return errors.New("ingest: no webhook secret configured: set WORKOS_WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET or STRIPE_CONNECT_WEBHOOK_SECRET")
	}
	if c.WorkOSTolerance < 0 || c.StripeTolerance < 0 {
		return errors.New("ingest: signature tolerance must be positive")
	}
	if c.MaxBody < 1024 {
		return fmt.Errorf("ingest: MaxBody %d is below 1 KiB", c.MaxBody)
	}
	if need := 2 * classSize(classIndex(c.MaxBody)); c.MemoryBudget < need {
		return fmt.Errorf("ingest: MemoryBudget (--ingest-memory, SYNCD_INGEST_MEMORY) %d bytes cannot hold two bodies of MaxBody %d (buffers grow by doubling): want at least %d", c.MemoryBudget, c.MaxBody, need)
	}
	if c.MemoryWait < 0 {
		return fmt.Errorf("ingest: MemoryWait %s must not be negative", c.MemoryWait)
	}
	if c.PublishTimeout <= 0 {
		return fmt.Errorf("ingest: PublishTimeout %s must be positive", c.PublishTimeout)
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > stream.MaxPendingPublishes {
		return fmt.Errorf("ingest: MaxInFlight %d must be from 1 to %d (the publishes a NATS connection keeps pending)", c.MaxInFlight, stream.MaxPendingPublishes)
	}
	if c.RetryAfter < time.Second {
		return fmt.Errorf("ingest: RetryAfter %s is below 1s", c.RetryAfter)
	}
	return nil
}

// Check reports what New would reject in cfg, so a command can refuse bad
// configuration before it opens anything.
func (c Config) Check() error { return c.withDefaults().validate() }

// Publisher stores a message in JetStream and reports the PubAck.
type Publisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// provider is one webhook endpoint's verification and envelope decoding.
type provider interface {
	source() string
	endpoint() string
	verify(h http.Header, body []byte, now time.Time) error
	decode(body []byte) (events.Envelope, error)
}

// Handler serves the webhook routes.
type Handler struct {
	cfg     Config
	js      Publisher
	log     *slog.Logger
	metrics *metrics
	tracer  trace.Tracer
	bodies  *bodies
	// inFlight counts the webhooks whose message the client holds.
	inFlight atomic.Int64
	// retryAfter is the Retry-After header of a 503.
	retryAfter string
}

// New builds the webhook handler.
func New(cfg Config, js Publisher) (*Handler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := newBodies(cfg.MemoryBudget, cfg.MemoryWait, cfg.MaxBody)
	m, err := newMetrics(cfg.Registerer, b)
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, js: js, log: cfg.Logger, metrics: m, bodies: b, tracer: telemetry.Tracer(cfg.TracerProvider),
		retryAfter: strconv.Itoa(int(cfg.RetryAfter.Seconds()))}, nil
}

// InFlight is the number of webhooks waiting for their PubAck now.
func (h *Handler) InFlight() int64 { return h.inFlight.Load() }

// MemoryInUse is the bytes of request bodies held now, against the budget.
func (h *Handler) MemoryInUse() int64 { return h.bodies.inUse.Load() }

// Register adds the webhook routes to mux. A provider without secrets
// answers 404, so a misrouted provider fails loudly instead of being
// accepted unverified.
func (h *Handler) Register(mux *http.ServeMux) {
	routes := []struct {
		path string
		p    provider
		ok   bool
	}{
		{"/webhooks/workos", workOS{secrets: splitSecrets(h.cfg.WorkOSSecrets), tolerance: h.cfg.WorkOSTolerance}, h.cfg.WorkOSSecrets != ""},
		{"/webhooks/stripe", stripe{secrets: splitSecrets(h.cfg.StripeSecrets), tolerance: h.cfg.StripeTolerance}, h.cfg.StripeSecrets != ""},
		{"/webhooks/stripe/connect", stripe{secrets: splitSecrets(h.cfg.StripeConnectSecrets), tolerance: h.cfg.StripeTolerance, connect: true}, h.cfg.StripeConnectSecrets != ""},
	}
	for _, r := range routes {
		if r.ok {
			mux.Handle(r.path, h.webhook(r.p))
		} else {
			mux.Handle(r.path, notConfigured(r.path))
		}
	}
}

func notConfigured(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_configured", path+" has no signing secret configured")
	})
}

func (h *Handler) webhook(p provider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r, span := h.startSpan(r, p)
		status := h.serve(w, r, p)
		endSpan(span, status)
		h.metrics.requests.WithLabelValues(p.source(), p.endpoint(), strconv.Itoa(status)).Inc()
		h.metrics.latency.WithLabelValues(p.source()).Observe(time.Since(start).Seconds())
	})
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, p provider) int {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
	}
	if r.ContentLength > h.cfg.MaxBody {
		return writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("body over %d bytes", h.cfg.MaxBody))
	}
	body, err := h.bodies.read(w, r, h.cfg.MaxBody)
	if err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("body over %d bytes", h.cfg.MaxBody))
		case errors.Is(err, errNoMemory):
			h.metrics.memoryRefused.Inc()
			w.Header().Set("Retry-After", h.retryAfter)
			// Closing the connection stops the rest of the body from
			// being read and discarded.
			w.Header().Set("Connection", "close")
			return writeError(w, http.StatusServiceUnavailable, "busy", "too many request bodies in flight; retry later")
		}
		return writeError(w, http.StatusBadRequest, "body_unreadable", "could not read the request body")
	}
	// Handed to the publish once there is one (see below).
	owned := true
	defer func() {
		if owned {
			h.bodies.put(body)
		}
	}()
	now := h.cfg.Now()
	_, verifySpan := h.tracer.Start(r.Context(), "verify")
	err = p.verify(r.Header, body, now)
	verifySpan.End()
	if err != nil {
		h.log.DebugContext(r.Context(), "webhook rejected", "source", p.source(), "reason", err)
		switch {
		case errors.Is(err, ErrMissingSignature):
			return writeError(w, http.StatusBadRequest, "missing_signature", err.Error())
		case errors.Is(err, ErrMalformedSignature):
			return writeError(w, http.StatusBadRequest, "malformed_signature", err.Error())
		case errors.Is(err, ErrTimestampTolerance):
			return writeError(w, http.StatusUnauthorized, "timestamp_out_of_tolerance", err.Error())
		default:
			return writeError(w, http.StatusUnauthorized, "invalid_signature", err.Error())
		}
	}
	env, err := p.decode(body)
	if err != nil {
		return writeError(w, http.StatusBadRequest, "invalid_event", err.Error())
	}

	msg, err := stream.EventMsg(p.source(), env, body, now, p.endpoint())
	if err != nil {
		return writeError(w, http.StatusBadRequest, "invalid_event", err.Error())
	}
	eventAttrs(r.Context(), env)
	if n := h.inFlight.Add(1); n > int64(h.cfg.MaxInFlight) {
		h.inFlight.Add(-1)
		h.metrics.shed.WithLabelValues(p.source()).Inc()
		h.log.DebugContext(r.Context(), "webhook refused: too many waiting for JetStream", "source", p.source(), "event_id", env.ID, "in_flight", n-1)
		w.Header().Set("Retry-After", h.retryAfter)
		return writeError(w, http.StatusServiceUnavailable, "busy", "too many webhooks waiting to be stored; retry later")
	}
	// The slot and the body are the publish's until the client is done with
	// the message: at its PubAck or error, which may come after this
	// request gave up waiting.
	owned = false
	ack, err := h.publish(r.Context(), msg, func() {
		h.inFlight.Add(-1)
		h.bodies.put(body)
	})
	if err != nil {
		h.log.WarnContext(r.Context(), "webhook not stored", "source", p.source(), "event_id", env.ID, "type", env.Type, "err", err)
		h.metrics.publishFailures.WithLabelValues(p.source()).Inc()
		w.Header().Set("Retry-After", h.retryAfter)
		return writeError(w, http.StatusServiceUnavailable, "not_stored", "event could not be stored; retry later")
	}
	if ack.Duplicate {
		h.metrics.duplicates.WithLabelValues(p.source()).Inc()
	}
	h.log.DebugContext(r.Context(), "webhook stored", "source", p.source(), "event_id", env.ID, "type", env.Type, "seq", ack.Sequence, "duplicate", ack.Duplicate)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"status":"stored"}`))
	return http.StatusOK
}

// publish waits for the PubAck within PublishTimeout. A request whose
// client went away still waits: the provider will retry, and the stored
// copy is then a duplicate.
// publish stores msg and waits for its PubAck, at most PublishTimeout.
// done runs once the client is finished with msg — at the PubAck or the
// error, also when that comes after the wait gave up (the client's own
// timeout bounds it), or on a panic here — so the caller's slot and body
// are never released while the client still holds them, nor kept forever.
func (h *Handler) publish(ctx context.Context, msg *nats.Msg, done func()) (_ *jetstream.PubAck, err error) {
	settled := true
	defer func() {
		if settled {
			done()
		}
	}()
	ctx, span := h.tracer.Start(ctx, "publish", trace.WithSpanKind(trace.SpanKindProducer))
	defer func() { endPublish(span, err) }()
	stream.InjectTrace(ctx, msg.Header)
	fut, err := h.js.PublishMsgAsync(msg)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	timer := time.NewTimer(h.cfg.PublishTimeout)
	defer timer.Stop()
	select {
	case ack := <-fut.Ok():
		return ack, nil
	case err := <-fut.Err():
		return nil, fmt.Errorf("publish %s: %w", msg.Subject, err)
	case <-timer.C:
		settled = false
		go func() {
			select {
			case <-fut.Ok():
			case <-fut.Err():
			}
			done()
		}()
		return nil, fmt.Errorf("publish %s: no PubAck within %s", msg.Subject, h.cfg.PublishTimeout)
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) int {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, msg})
	return status
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }
