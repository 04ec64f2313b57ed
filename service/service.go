// Package service is the one place syncd is wired: from one Config it
// opens Postgres and JetStream, applies the migrations, ensures the
// streams, and builds ingest, the consumers, provisioning, retention, the
// scheduled reconcile and the health and metrics endpoints. `syncd serve`,
// the test harness (syncdtest) and, through serve, the bench all run it,
// so what is tested is what runs.
package service

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/migrations"
	"github.com/syncd/syncd/provision"
	"github.com/syncd/syncd/redact"
	"github.com/syncd/syncd/retention"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/workosapi"
)

// ErrHardStop means Stop's context ended before every part had finished:
// the batch in flight was cut short and is redelivered after AckWait.
var ErrHardStop = errors.New("hard stop: not every part finished in time")

// Service is syncd's process: built by New, run by Start, ended by Stop.
type Service struct {
	cfg  Config
	log  *slog.Logger
	reg  *prometheus.Registry
	pool *pgxpool.Pool
	conn *stream.Conn

	ingest      *ingest.Handler
	console     *console.Console
	pruner      *retention.Pruner
	provisioner *provision.Provisioner
	mux         *http.ServeMux
	ready       []func(context.Context) error
	readiness   readiness
	draining    atomic.Bool

	ln, pprofLn    net.Listener
	srv, pprofSrv  *http.Server
	started        bool
	consumeCtx     context.Context // ends at the soft stop: consumers stop fetching
	cancelConsume  context.CancelFunc
	consumeWG      sync.WaitGroup
	runCtx         context.Context // ends after the consumers have stopped
	cancelRun      context.CancelFunc
	runWG          sync.WaitGroup
	failed         chan error
	stopOnce       sync.Once
	stopErr        error
	consumerMu     sync.Mutex
	consumer       *runningConsumer
	consumerMetric bool // the registry holds the apply consumer's metrics
}

// runningConsumer is the apply consumer while it runs.
type runningConsumer struct {
	c      *consumers.Consumer
	cancel context.CancelFunc
	done   chan error
}

// New checks cfg and opens and builds everything; nothing runs until
// Start. On error what was opened is closed again.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: cfg.Logger, reg: cfg.Registry, failed: make(chan error, 8)}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
		s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if cfg.DatabaseURL != "" {
		if s.pool, err = OpenPool(ctx, cfg.DatabaseURL); err != nil {
			return nil, err
		}
		s.ready = append(s.ready, func(ctx context.Context) error { return s.pool.Ping(ctx) })
		if !cfg.NoMigrate {
			applied, err := migrations.Up(ctx, s.pool)
			if err != nil {
				return nil, err
			}
			for _, m := range applied {
				s.log.Info("migration applied", "version", m.Version, "name", m.Name)
			}
		}
		if cfg.Role.Consumes() {
			// Before anything is applied: a role that row-level security
			// filters would miss rows its upserts must see.
			if err := consumers.CheckWriter(ctx, s.pool); err != nil {
				return nil, err
			}
		}
	}
	ncfg := cfg.NATS
	ncfg.Serve = true
	if ncfg.Logger == nil {
		ncfg.Logger = s.log
	}
	if s.conn, err = stream.Open(ctx, ncfg); err != nil {
		if errors.Is(err, stream.ErrDataDirInUse) {
			return nil, fmt.Errorf("%w; stop it or use another data dir", err)
		}
		return nil, err
	}
	if !s.conn.Embedded() {
		s.log.Info("external NATS: acknowledged events are on disk only if the server runs with sync_interval: always (or the stream is replicated)", "url", redact.URL(ncfg.URL))
	}
	ectx, cancel := context.WithTimeout(ctx, streamEnsureTimeout)
	scfg := cfg.Stream
	scfg.AtomicPublish = s.groupCommit()
	err = stream.Ensure(ectx, s.conn.JS, scfg, stream.ConsumerConfig{})
	cancel()
	if err != nil {
		return nil, err
	}
	s.ready = append(s.ready, s.conn.Ready)
	s.readiness.log = s.log

	s.mux = http.NewServeMux()
	s.registerHealth(s.mux)
	if cfg.Role.Ingests() {
		icfg := cfg.Ingest
		icfg.Logger, icfg.Registerer = orLogger(icfg.Logger, s.log), orRegisterer(icfg.Registerer, s.reg)
		if icfg.MaxBody, err = s.fitMaxBody(icfg); err != nil {
			return nil, err
		}
		if icfg.TracerProvider == nil {
			icfg.TracerProvider = cfg.TracerProvider
		}
		pub, err := s.publisher()
		if err != nil {
			return nil, err
		}
		if s.ingest, err = ingest.New(icfg, pub); err != nil {
			return nil, err
		}
		s.ingest.Register(s.mux)
	}
	if cfg.Role.Consumes() {
		if cfg.Retention != nil {
			rcfg := *cfg.Retention
			if rcfg.ReplayWindow == 0 {
				rcfg.ReplayWindow = cmp.Or(cfg.Stream.MaxAge, stream.MaxAgeDefault)
			}
			rcfg.Logger, rcfg.Registerer = orLogger(rcfg.Logger, s.log), orRegisterer(rcfg.Registerer, s.reg)
			if s.pruner, err = retention.New(rcfg, s.pool); err != nil {
				return nil, err
			}
		}
		if p := cfg.Provision; p != nil {
			api := p.API
			api.Registerer = orRegisterer(api.Registerer, s.reg)
			client, err := workosapi.New(api)
			if err != nil {
				return nil, err
			}
			pcfg := p.Config
			pcfg.Logger, pcfg.Registerer = orLogger(pcfg.Logger, s.log), orRegisterer(pcfg.Registerer, s.reg)
			if s.provisioner, err = provision.New(pcfg, s.pool, s.conn.JS, client); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Admin != nil {
		acfg := *cfg.Admin
		acfg.Logger = orLogger(acfg.Logger, s.log)
		if acfg.Gatherer == nil {
			acfg.Gatherer = s.reg
		}
		if acfg.WebhookAddr == "" {
			acfg.WebhookAddr = cfg.HTTPAddr
		}
		if s.console, err = console.New(acfg, s.pool, s.conn); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// fitMaxBody is the max body ingest runs with: one whose webhooks, with
// their headers and their dead-letter copy's, fit the NATS server's
// max_payload. The default is lowered to fit; a configured size that does
// not fit is refused, as each such webhook would be a 503 forever.
func (s *Service) fitMaxBody(icfg ingest.Config) (int64, error) {
	want := cmp.Or(icfg.MaxBody, ingest.MaxBodyDefault)
	err := s.conn.CheckMaxBody(want)
	switch {
	case err == nil:
		return icfg.MaxBody, nil
	case icfg.MaxBody != 0:
		return 0, fmt.Errorf("%w: %w: %v", ErrConfig, ErrMaxBody, err)
	}
	mp := s.conn.NC.MaxPayload()
	icfg.MaxBody = mp - stream.HeaderRoom
	if err := icfg.Check(); err != nil {
		return 0, fmt.Errorf("NATS max_payload %d leaves no usable body size: %w", mp, err)
	}
	s.log.Warn("max body lowered to fit the NATS server's max_payload", "max_body", icfg.MaxBody, "max_payload", mp)
	return icfg.MaxBody, nil
}

// OpenPool opens and pings Postgres; a malformed URL is ErrConfig. No
// message names the password.
func OpenPool(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	cfg, err := parseDatabaseURL(dsn)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open Postgres pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, postgresReachTimeout)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("reach Postgres at %s: %w", redact.URL(cfg.ConnConfig.Host), err)
	}
	return pool, nil
}

// CheckDatabaseURL reports a connection string OpenPool could not parse
// (ErrConfig), without its password, before anything is dialled.
func CheckDatabaseURL(dsn string) error {
	_, err := parseDatabaseURL(dsn)
	return err
}

func parseDatabaseURL(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(encodeUserinfo(dsn))
	if err != nil {
		return nil, fmt.Errorf("%w: database URL: %s", ErrConfig, redact.Error(err, dsn))
	}
	return cfg, nil
}

// encodeUserinfo percent-encodes the user and password of a URL: Go reads
// a raw '@' in a password as part of it (the host follows the last '@'),
// but pgx cuts at the first and would dial part of the password as the
// host.
func encodeUserinfo(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.String()
}

// Start listens and runs every part in the background. A part that fails
// while running is reported on Failed; the caller then calls Stop.
func (s *Service) Start(ctx context.Context) error {
	if s.started {
		return errors.New("service already started")
	}
	s.started = true
	// The parts end by Stop, not by ctx: a soft stop needs them running
	// until their turn.
	base := context.WithoutCancel(ctx)
	s.consumeCtx, s.cancelConsume = context.WithCancel(base)
	s.runCtx, s.cancelRun = context.WithCancel(base)

	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.HTTPAddr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.mux, MaxHeaderBytes: maxHeaderBytes, ReadHeaderTimeout: httpReadHeaderTimeout, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go s.serveHTTP(s.srv, ln, "http")
	if s.cfg.PprofAddr != "" {
		// Profiling stays off the public listener.
		if s.pprofLn, err = net.Listen("tcp", s.cfg.PprofAddr); err != nil {
			return fmt.Errorf("listen on %s (pprof): %w", s.cfg.PprofAddr, err)
		}
		s.pprofSrv = &http.Server{Handler: pprofMux(), ReadHeaderTimeout: httpReadHeaderTimeout}
		go s.serveHTTP(s.pprofSrv, s.pprofLn, "pprof")
	}

	if s.cfg.Role.Consumes() && !s.cfg.HoldConsumer {
		if err := s.StartConsumer(s.cfg.Consumers, nil); err != nil {
			return err
		}
	}
	if s.provisioner != nil {
		s.goConsume("provisioning", s.provisioner.Run)
	}
	if s.pruner != nil {
		s.goRun(func(ctx context.Context) error {
			if err := s.pruner.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Warn("retention stopped", "err", err)
			}
			return nil
		})
	}
	if s.cfg.Reconcile.Every > 0 {
		s.goRun(func(ctx context.Context) error { s.reconcile(ctx); return nil })
	}
	s.goRun(func(ctx context.Context) error { s.monitor(ctx); return nil })
	s.log.Info("syncd serving", "addr", ln.Addr().String(), "role", s.cfg.Role, "embedded_nats", s.conn.Embedded())
	if s.console != nil {
		if err := s.console.Start(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) serveHTTP(srv *http.Server, ln net.Listener, name string) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.fail(fmt.Errorf("%s: %w", name, err))
	}
}

// goConsume runs a part that pulls from JetStream: it stops at the soft
// stop, before anything else.
func (s *Service) goConsume(name string, run func(context.Context) error) {
	s.consumeWG.Add(1)
	go func() {
		defer s.consumeWG.Done()
		if err := run(s.consumeCtx); err != nil && !errors.Is(err, context.Canceled) {
			s.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

// goRun runs a background part that stops after the consumers.
func (s *Service) goRun(run func(context.Context) error) {
	s.runWG.Add(1)
	go func() {
		defer s.runWG.Done()
		if err := run(s.runCtx); err != nil {
			s.fail(err)
		}
	}()
}

func (s *Service) fail(err error) {
	select {
	case s.failed <- err:
	default: // one report is enough to stop
	}
}

// Failed reports a part that stopped on its own with an error.
func (s *Service) Failed() <-chan error { return s.failed }

// StartConsumer runs the apply consumer with cfg (Start does so with the
// configured one unless HoldConsumer is set); setup, if not nil, is called
// with the consumer before it runs (tests add handlers with it). Logger
// and Registerer default to the service's; a consumer started again after
// StopConsumer gets a registry of its own, as its metrics are already
// registered.
func (s *Service) StartConsumer(cfg consumers.Config, setup func(*consumers.Consumer)) error {
	if !s.started {
		return errors.New("service not started")
	}
	if !s.cfg.Role.Consumes() {
		return fmt.Errorf("role %s runs no consumer", s.cfg.Role)
	}
	s.consumerMu.Lock()
	defer s.consumerMu.Unlock()
	if s.consumer != nil {
		return errors.New("consumer already running")
	}
	if s.consumeCtx.Err() != nil {
		return errors.New("service stopping")
	}
	cfg.Logger = orLogger(cfg.Logger, s.log)
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = s.cfg.TracerProvider
	}
	if cfg.Registerer == nil && !s.consumerMetric {
		cfg.Registerer, s.consumerMetric = s.reg, true
	}
	c, err := consumers.New(cfg, s.pool, s.conn.JS)
	if err != nil {
		return err
	}
	if setup != nil {
		setup(c)
	}
	ctx, cancel := context.WithCancel(s.consumeCtx)
	rc := &runningConsumer{c: c, cancel: cancel, done: make(chan error, 1)}
	s.consumer = rc
	s.consumeWG.Add(1)
	go func() {
		defer s.consumeWG.Done()
		err := c.Run(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		if err != nil {
			s.fail(fmt.Errorf("consumer: %w", err))
		}
		rc.done <- err
	}()
	return nil
}

// StopConsumer stops the apply consumer softly (no more fetching, the
// batch in flight finishes and is acked, buffered messages go back) and
// waits for it, at most until ctx ends. It returns the consumer's error.
func (s *Service) StopConsumer(ctx context.Context) error {
	s.consumerMu.Lock()
	rc := s.consumer
	s.consumer = nil
	s.consumerMu.Unlock()
	if rc == nil {
		return nil
	}
	rc.cancel()
	select {
	case err := <-rc.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("stop consumer: %w", ctx.Err())
	}
}

// Stop ends the service: readiness fails at once; the consumers stop
// fetching, finish and ack the batch in flight and hand back what they
// had buffered, while JetStream is still there; then the other parts are
// cancelled; then the webhooks in flight get their answers (health goes
// last); then NATS is drained (the embedded server stops) and Postgres
// closed. Past ctx it stops hard and returns ErrHardStop.
func (s *Service) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.stop(ctx) })
	return s.stopErr
}

func (s *Service) stop(ctx context.Context) error {
	s.log.Info("syncd stopping")
	s.draining.Store(true)
	hard := false
	if s.started {
		_ = s.StopConsumer(ctx)
		s.cancelConsume()
		hard = !wait(ctx, &s.consumeWG)
		s.cancelRun()
		hard = !wait(ctx, &s.runWG) || hard
		if s.srv != nil { // nil when Start could not listen
			if err := s.srv.Shutdown(ctx); err != nil {
				s.log.Warn("http shutdown", "err", err)
				hard = true
			}
		}
		if s.console != nil {
			if err := s.console.Shutdown(ctx); err != nil {
				s.log.Warn("admin console shutdown", "err", err)
			}
		}
		if s.pprofSrv != nil {
			_ = s.pprofSrv.Close()
		}
	}
	if hard {
		s.log.Warn("hard stop: not every part finished in time")
		if s.conn != nil {
			s.conn.Close()
		}
		// The pool waits for its connections; a part still in a query
		// would hold Close up, and the process is ending anyway.
		return ErrHardStop
	}
	s.close()
	s.log.Info("syncd stopped")
	return nil
}

// close releases JetStream and Postgres.
func (s *Service) close() {
	if s.conn != nil {
		s.conn.Close()
	}
	if s.pool != nil {
		s.pool.Close()
	}
}

// wait waits for wg until ctx ends; false if ctx ended first.
func wait(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Pool is the service's Postgres pool (nil for an ingest-only process
// without DatabaseURL).
func (s *Service) Pool() *pgxpool.Pool { return s.pool }

// NATS is the service's JetStream connection.
func (s *Service) NATS() *stream.Conn { return s.conn }

// Ingest is the webhook handler (nil where the role does not ingest).
func (s *Service) Ingest() *ingest.Handler { return s.ingest }

// Consumer is the running apply consumer, or nil.
func (s *Service) Consumer() *consumers.Consumer {
	s.consumerMu.Lock()
	defer s.consumerMu.Unlock()
	if s.consumer == nil {
		return nil
	}
	return s.consumer.c
}

// Handler serves the webhooks, health and metrics routes.
func (s *Service) Handler() http.Handler { return s.mux }

// Registry holds the service's metrics.
func (s *Service) Registry() *prometheus.Registry { return s.reg }

// Addr is the HTTP listener's address once started.
func (s *Service) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

func orLogger(l, def *slog.Logger) *slog.Logger {
	if l == nil {
		return def
	}
	return l
}

func orRegisterer(r prometheus.Registerer, def prometheus.Registerer) prometheus.Registerer {
	if r == nil {
		return def
	}
	return r
}
