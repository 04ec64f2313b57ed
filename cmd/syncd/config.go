package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/redact"
	"github.com/syncd/syncd/service"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/telemetry"
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
	declare(fs).String(&c.databaseURL, "database-url", "DATABASE_URL", "", "Postgres connection string")
	declare(fs).String(&c.natsURL, "nats-url", "NATS_URL", "", "external NATS server; empty runs or reaches the embedded one")
	declare(fs).String(&c.dataDir, "data-dir", "SYNCD_DATA_DIR", stream.DataDirDefault, "local state of the embedded JetStream server")
	declare(fs).String(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error", oneOf("debug", "info", "warn", "error"))
	declare(fs).String(&c.logFormat, "log-format", "LOG_FORMAT", "text", "text or json", oneOf("text", "json"))
	declare(fs).String(&c.jsSync, "jetstream-sync", "SYNCD_JETSTREAM_SYNC", string(stream.SyncAlways), "when the embedded JetStream fsyncs: always (before every acknowledgement) or interval (in the background; an OS crash loses recent events)", func(v string) error { _, err := stream.ParseSyncMode(v); return err })
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
	return slog.New(telemetry.LogHandler(redact.Handler(h, c.secrets()...))), nil
}

// secrets are the connection strings whose credentials output must hide.
func (c *common) secrets() []string { return []string{c.databaseURL, c.natsURL} }

func (c *common) pool(ctx context.Context) (*pgxpool.Pool, error) {
	if c.databaseURL == "" {
		return nil, usageError("DATABASE_URL is not set (or pass --database-url)")
	}
	pool, err := service.OpenPool(ctx, c.databaseURL)
	if errors.Is(err, service.ErrConfig) {
		return nil, usageError("--database-url: %s", strings.TrimPrefix(err.Error(), service.ErrConfig.Error()+": database URL: "))
	}
	return pool, err
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

// parseFlags applies the environment to the declared flags, then parses
// args over it (environment first, flags override) and runs the flags'
// checks, turning any error into a usage error that names the flag and
// its variable.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	return declare(fs).parse(args)
}

// applyEnv sets the declared flags from the environment; it runs once,
// before any argument is parsed (for commands that parse in pieces).
func applyEnv(fs *flag.FlagSet, stderr io.Writer) error {
	fs.SetOutput(stderr)
	return declare(fs).applyEnv()
}

// parseArgsOnly parses args over what the environment set.
func parseArgsOnly(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError("%v", err)
	}
	return declare(fs).check()
}
