package service

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/provision"
	"github.com/syncd/syncd/retention"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/workosapi"
)

// Role says which parts run in a process.
type Role string

const (
	RoleAll     Role = "all"     // ingest and consumers
	RoleIngest  Role = "ingest"  // webhooks only
	RoleConsume Role = "consume" // consumers only
)

// Defaults of the service's own settings.
const (
	HTTPAddrDefault = ":8080"
	// ShutdownTimeoutDefault is how long `syncd serve` gives a soft stop.
	ShutdownTimeoutDefault = 30 * time.Second
	RoleDefault            = RoleAll
	ReconcileWindowMin     = time.Hour
	ReconcileEveryMin      = time.Minute
	StreamReplicasMax      = 5
	ReplayWindowMin        = time.Hour
	readyCheckTimeout      = 2 * time.Second
	streamEnsureTimeout    = 30 * time.Second
	postgresReachTimeout   = 10 * time.Second
	monitorInterval        = 5 * time.Second
	httpReadHeaderTimeout  = 10 * time.Second
)

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAll, RoleIngest, RoleConsume:
		return r, nil
	}
	return "", fmt.Errorf("role %q: want all, ingest or consume", s)
}

// Ingests reports whether the role serves webhooks.
func (r Role) Ingests() bool { return r == RoleAll || r == RoleIngest }

// Consumes reports whether the role applies events (and owns the ledger:
// retention and provisioning run where the consumers do).
func (r Role) Consumes() bool { return r == RoleAll || r == RoleConsume }

// Config is everything `syncd serve` runs, in one place.
type Config struct {
	Role Role
	// DatabaseURL is required where the role consumes; an ingest-only
	// process opens Postgres only when it is set (readiness, reconcile).
	DatabaseURL string
	// NoMigrate skips applying the embedded migrations at start.
	NoMigrate bool
	// NATS says where JetStream is; Serve is set by the service.
	NATS stream.ConnConfig
	// Stream configures WEBHOOKS and DEADLETTER.
	Stream stream.Config
	// HTTPAddr is the listener of the webhooks, health and metrics;
	// "127.0.0.1:0" picks a free port (see Service.Addr).
	HTTPAddr string
	// PprofAddr, when set, serves net/http/pprof on its own listener.
	PprofAddr string

	// Ingest configures the webhooks. A MaxBody of zero is the default,
	// lowered to fit the NATS server's max_payload; a MaxBody set that
	// does not fit is refused (ErrMaxBody).
	Ingest    ingest.Config
	Consumers consumers.Config
	// HoldConsumer leaves the apply consumer stopped at Start, for tests
	// that choose when events are applied (Service.StartConsumer).
	HoldConsumer bool
	// Retention, when set, runs the ledger pruner beside the consumers.
	Retention *retention.Config
	// Provision, when set, runs the provisioning consumer beside them.
	Provision *Provisioning
	// Reconcile backfills on a schedule; off when Every is zero.
	Reconcile Reconcile
	// Admin, when set, runs the admin console on its own listener; its
	// Gatherer and Logger default to the service's.
	Admin *console.Config

	Logger *slog.Logger
	// TracerProvider traces requests and batches; default the global one
	// (see telemetry.Setup).
	TracerProvider trace.TracerProvider
	// Registry receives every component's metrics and is served on
	// /metrics; default a new one with the Go and process collectors.
	Registry *prometheus.Registry
}

// Provisioning is the provisioning consumer and its WorkOS client.
type Provisioning struct {
	Config provision.Config
	API    workosapi.Config
}

// Reconcile is the scheduled backfill of each source over a trailing
// window, so a webhook that never arrived is applied anyway.
type Reconcile struct {
	Every, Window time.Duration
	// Connect adds the Stripe connected accounts' events to each run; it
	// needs a *backfill.Stripe among Sources.
	Connect bool
	Sources []backfill.Source
}

// ErrConfig marks configuration the service refuses.
var ErrConfig = errors.New("service config")

// ErrMaxBody means the configured max body does not fit the NATS server's
// max_payload (with its headers): every such webhook would be a 503.
var ErrMaxBody = errors.New("max body over the NATS server's max_payload")

func (c Config) withDefaults() Config {
	if c.Role == "" {
		c.Role = RoleDefault
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = HTTPAddrDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Reconcile.Every > 0 && c.Reconcile.Window == 0 {
		c.Reconcile.Window = max(2*c.Reconcile.Every, ReconcileWindowMin)
	}
	return c
}

func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if _, err := ParseRole(string(c.Role)); err != nil {
		return bad("%v", err)
	}
	if c.Role.Consumes() && c.DatabaseURL == "" {
		return bad("DatabaseURL is required where the consumers run")
	}
	if c.Stream.Replicas < 0 || c.Stream.Replicas > StreamReplicasMax {
		return bad("stream replicas %d: want 1 to %d", c.Stream.Replicas, StreamReplicasMax)
	}
	if c.Stream.MaxAge != 0 && c.Stream.MaxAge < ReplayWindowMin {
		return bad("replay window %s: want at least %s", c.Stream.MaxAge, ReplayWindowMin)
	}
	if c.Role.Ingests() {
		if err := c.Ingest.Check(); err != nil {
			return err
		}
	}
	if c.Admin != nil {
		if err := c.Admin.Check(); err != nil {
			return err
		}
	}
	if c.Role.Consumes() {
		if err := c.Consumers.Check(); err != nil {
			return err
		}
		if c.Retention != nil {
			if err := c.Retention.Check(); err != nil {
				return err
			}
		}
		if c.Provision != nil {
			if err := c.Provision.Config.Check(); err != nil {
				return err
			}
			if err := c.Provision.API.Check(); err != nil {
				return err
			}
		}
	}
	if r := c.Reconcile; r.Every != 0 {
		switch {
		case r.Every < ReconcileEveryMin:
			return bad("reconcile every %s: want at least %s (or 0 for off)", r.Every, ReconcileEveryMin)
		case c.DatabaseURL == "":
			return bad("reconcile needs DatabaseURL: the backfill cursors live in Postgres")
		case r.Window < r.Every:
			return bad("reconcile window %s is shorter than its period %s: events would fall between runs", r.Window, r.Every)
		case len(r.Sources) == 0:
			return bad("reconcile has no source")
		case r.Connect && r.stripe() == nil:
			return bad("reconcile of Connect accounts needs the Stripe source")
		}
	}
	return nil
}

// Check reports what New would reject in cfg, before anything is opened.
func (c Config) Check() error { return c.withDefaults().validate() }

func (r Reconcile) stripe() *backfill.Stripe {
	for _, s := range r.Sources {
		if s, ok := s.(*backfill.Stripe); ok {
			return s
		}
	}
	return nil
}
