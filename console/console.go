// Package console is syncd's admin console: server-rendered pages and a
// JSON API under /admin/api/ on a listener of its own (ADMIN_ADDR, never
// the webhook port), behind a token. It watches the pipeline (package
// status), drains dead letters (package deadletter), looks up events in
// the ledger and the stream, and starts replays and backfills (packages
// replay and backfill): the same code `syncd status`, `dlq`, `replay` and
// `backfill` run, so the console and the CLI cannot disagree.
package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/deadletter"
	"github.com/syncd/syncd/stream"
)

// Defaults and limits.
const (
	SessionTTLDefault = 12 * time.Hour
	PageSizeDefault   = 50
	PageSizeMax       = 1000
	// TokenMinLength keeps a guessable token off the admin listener.
	TokenMinLength = 16
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the console.
type Config struct {
	// Addr is the admin listener's address (ADMIN_ADDR); Start listens
	// on it.
	Addr string
	// Token is the admin token (ADMIN_TOKEN); TokenFile names a file
	// holding it (ADMIN_TOKEN_FILE), surrounding whitespace trimmed.
	// Exactly one is set.
	Token, TokenFile string
	// WebhookAddr is the webhook listener's address: the console refuses
	// to share its port.
	WebhookAddr string
	// SessionTTL is how long a login lasts.
	SessionTTL time.Duration
	// PageSize is the dead letters shown per page.
	PageSize int
	// Gatherer is the process's metrics registry; the overview reads the
	// consumer's paused gauge from it. Nil shows paused as unknown.
	Gatherer prometheus.Gatherer
	// BackfillSource builds a provider's Events API client, as `syncd
	// backfill` does from the environment. Nil turns backfill off.
	BackfillSource func(provider string) (backfill.Source, error)
	Logger         *slog.Logger
	// Now is the clock; tests set it.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.SessionTTL == 0 {
		c.SessionTTL = SessionTTLDefault
	}
	if c.PageSize == 0 {
		c.PageSize = PageSizeDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Token != "" && c.TokenFile != "":
		return errors.New("console: ADMIN_TOKEN and ADMIN_TOKEN_FILE are both set: give one")
	case c.Token == "" && c.TokenFile == "":
		return errors.New("console: ADMIN_ADDR needs ADMIN_TOKEN or ADMIN_TOKEN_FILE: nothing is served without a token")
	case c.SessionTTL < time.Minute:
		return fmt.Errorf("console: session TTL %s: want at least 1m", c.SessionTTL)
	case c.PageSize < 1 || c.PageSize > PageSizeMax:
		return fmt.Errorf("console: page size %d: want 1..%d", c.PageSize, PageSizeMax)
	}
	if c.Addr != "" {
		_, port, err := net.SplitHostPort(c.Addr)
		if err != nil {
			return fmt.Errorf("console: ADMIN_ADDR %q: %v", c.Addr, err)
		}
		if c.WebhookAddr != "" && port != "0" && port != "" {
			if _, wport, err := net.SplitHostPort(c.WebhookAddr); err == nil && wport == port {
				return fmt.Errorf("console: ADMIN_ADDR %q shares its port with the webhook listener HTTP_ADDR %q: give the console a port of its own", c.Addr, c.WebhookAddr)
			}
		}
	}
	return nil
}

// Check reports what New would reject in cfg (but the token file, read
// by New), so a command can refuse bad configuration before it opens
// anything.
func (c Config) Check() error { return c.withDefaults().validate() }

// token reads the configured token.
func (c Config) token() (string, error) {
	tok := c.Token
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return "", fmt.Errorf("console: ADMIN_TOKEN_FILE: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if len(tok) < TokenMinLength {
		// The length only, never the token.
		return "", fmt.Errorf("console: admin token is %d characters: want at least %d", len(tok), TokenMinLength)
	}
	return tok, nil
}

// Console is the admin console's http.Handler, and its listener once
// started.
type Console struct {
	cfg      Config
	log      *slog.Logger
	tokenSum [sha256.Size]byte
	pool     *pgxpool.Pool
	conn     *stream.Conn
	dl       *deadletter.Store
	sessions *sessions
	jobs     *jobs
	pages    map[string]*template.Template
	mux      *http.ServeMux
	static   http.Handler

	srv *http.Server
	ln  net.Listener
}

// New builds the console over Postgres and JetStream, which must hold
// the streams (`syncd serve` ensures them first).
func New(cfg Config, pool *pgxpool.Pool, conn *stream.Conn) (*Console, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if pool == nil {
		return nil, errors.New("console: ADMIN_ADDR needs DATABASE_URL: the ledger, replays and backfills live in Postgres")
	}
	if conn == nil {
		return nil, errors.New("console: no JetStream connection")
	}
	tok, err := cfg.token()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dl, err := deadletter.Open(ctx, conn.JS)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(staticFS, "static")
	c := &Console{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "console"),
		tokenSum: sha256.Sum256([]byte(tok)),
		pool:     pool,
		conn:     conn,
		dl:       dl,
		sessions: newSessions(cfg.SessionTTL, cfg.Now),
		jobs:     newJobs(),
		pages:    pages,
		mux:      http.NewServeMux(),
		static:   http.StripPrefix("/admin/static/", http.FileServerFS(sub)),
	}
	c.routes()
	return c, nil
}

// Start listens on Config.Addr and serves in the background; errors of
// the listener after the start are logged.
func (c *Console) Start() error {
	if c.cfg.Addr == "" {
		return errors.New("console: no ADMIN_ADDR to listen on")
	}
	ln, err := net.Listen("tcp", c.cfg.Addr)
	if err != nil {
		return fmt.Errorf("console: listen on %s: %w", c.cfg.Addr, err)
	}
	c.ln = ln
	// Bulk retries and purges run inside the request: the write timeout
	// gives them minutes, not seconds.
	c.srv = &http.Server{Handler: c, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 10 * time.Minute, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := c.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("admin listener stopped", "err", err)
		}
	}()
	c.log.Info("admin console serving", "addr", ln.Addr().String())
	return nil
}

// Addr is the address Start listens on.
func (c *Console) Addr() string {
	if c.ln == nil {
		return ""
	}
	return c.ln.Addr().String()
}

// Shutdown stops the listener, then the replays and backfills running:
// a replay is safe to run again (the ledger), a backfill resumes from its
// stored cursor.
func (c *Console) Shutdown(ctx context.Context) error {
	var err error
	if c.srv != nil {
		err = c.srv.Shutdown(ctx)
	}
	c.jobs.stop()
	c.jobs.wait(ctx)
	return err
}
