package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/redact"
	"github.com/syncd/syncd/stream"
)

// env returns the variable's value or def: configuration is environment
// first, flags override.
func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// common are the connection flags every subcommand shares.
type common struct {
	databaseURL string
	natsURL     string
	dataDir     string
	logLevel    string
	logFormat   string
	jsSync      string
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.databaseURL, "database-url", env("DATABASE_URL", ""), "Postgres connection string (env DATABASE_URL)")
	fs.StringVar(&c.natsURL, "nats-url", env("NATS_URL", ""), "external NATS server; empty runs or reaches the embedded one (env NATS_URL)")
	fs.StringVar(&c.dataDir, "data-dir", env("SYNCD_DATA_DIR", "./data"), "local state of the embedded JetStream server (env SYNCD_DATA_DIR)")
	fs.StringVar(&c.logLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", env("LOG_FORMAT", "text"), "text or json (env LOG_FORMAT)")
	fs.StringVar(&c.jsSync, "jetstream-sync", string(stream.SyncAlways), "when the embedded JetStream fsyncs: always (before every acknowledgement) or interval (in the background; an OS crash loses recent events) (env SYNCD_JETSTREAM_SYNC)")
}

func (c *common) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", c.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch c.logFormat {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, usageError("--log-format %q: want text or json", c.logFormat)
	}
	// Whoever logs (a driver, a library), no connection string's
	// credentials reach the log.
	return slog.New(redact.Handler(h, c.secrets()...)), nil
}

// secrets are the connection strings whose credentials output must hide.
func (c *common) secrets() []string { return []string{c.databaseURL, c.natsURL} }

func (c *common) pool(ctx context.Context) (*pgxpool.Pool, error) {
	if c.databaseURL == "" {
		return nil, usageError("DATABASE_URL is not set (or pass --database-url)")
	}
	cfg, err := pgxpool.ParseConfig(encodeUserinfo(c.databaseURL))
	if err != nil {
		return nil, usageError("--database-url: %s", redact.Error(err, c.databaseURL))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open Postgres pool: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("reach Postgres at %s: %w", redact.URL(cfg.ConnConfig.Host), err)
	}
	return pool, nil
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

func (c *common) jetstream(ctx context.Context, log *slog.Logger, serve bool) (*stream.Conn, error) {
	sync, err := stream.ParseSyncMode(c.jsSync)
	if err != nil {
		return nil, usageError("--jetstream-sync: %v", err)
	}
	conn, err := stream.Open(ctx, stream.ConnConfig{URL: c.natsURL, DataDir: c.dataDir, Serve: serve, Sync: sync, Logger: log})
	if err != nil {
		if errors.Is(err, stream.ErrDataDirInUse) {
			return nil, fmt.Errorf("%w; stop it or use another --data-dir", err)
		}
		return nil, err
	}
	return conn, nil
}

// connect opens what the operations commands need: the logger, Postgres
// and JetStream (the running serve's embedded server, or NATS_URL). close
// releases both.
func (c *common) connect(ctx context.Context, stderr io.Writer) (log *slog.Logger, pool *pgxpool.Pool, conn *stream.Conn, close func(), err error) {
	if log, err = c.logger(stderr); err != nil {
		return nil, nil, nil, nil, err
	}
	if pool, err = c.pool(ctx); err != nil {
		return nil, nil, nil, nil, err
	}
	if conn, err = c.jetstream(ctx, log, false); err != nil {
		pool.Close()
		return nil, nil, nil, nil, err
	}
	return log, pool, conn, func() { conn.Close(); pool.Close() }, nil
}

// envInUsage finds the variable a flag's usage names: "(env NAME".
var envInUsage = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)`)

// parseFlags applies the environment to the flags whose usage names a
// variable, then parses args over it (environment first, flags override),
// turning either's errors into usage errors that name the variable or flag.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := applyEnv(fs, stderr); err != nil {
		return err
	}
	return parseArgsOnly(fs, args)
}

// applyEnv sets the flags whose usage names a variable from the
// environment; it runs once, before any argument is parsed.
func applyEnv(fs *flag.FlagSet, stderr io.Writer) error {
	fs.SetOutput(stderr)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		m := envInUsage.FindStringSubmatch(f.Usage)
		if m == nil || envErr != nil {
			return
		}
		if v := os.Getenv(m[1]); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = usageError("%s=%q: %v", m[1], v, err)
			}
		}
	})
	return envErr
}

// parseArgsOnly parses args over what the environment set.
func parseArgsOnly(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError("%v", err)
	}
	return nil
}
