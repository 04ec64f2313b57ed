package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

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

func (c *common) register(cmd *cobra.Command) {
	d := declare(cmd)
	d.String(&c.databaseURL, "database-url", "DATABASE_URL", "", "Postgres connection string", databaseURL)
	d.String(&c.natsURL, "nats-url", "NATS_URL", "", "external NATS server; empty runs or reaches the embedded one", natsServers)
	d.String(&c.dataDir, "data-dir", "SYNCD_DATA_DIR", stream.DataDirDefault, "local state of the embedded JetStream server")
	d.Enum(&c.logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error", "debug", "info", "warn", "error")
	d.Enum(&c.logFormat, "log-format", "LOG_FORMAT", "text", "text or json", "text", "json")
	d.String(&c.jsSync, "jetstream-sync", "SYNCD_JETSTREAM_SYNC", string(stream.SyncAlways), "when the embedded JetStream fsyncs: always (before every acknowledgement) or interval (in the background; an OS crash loses recent events)", func(v string) error { _, err := stream.ParseSyncMode(v); return err })
	d.complete("jetstream-sync", string(stream.SyncAlways), string(stream.SyncInterval))
}

// logger logs to w at the level and in the format given; both were
// checked when the flags were parsed (Enum).
func (c *common) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.logLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.logFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Whoever logs (a driver, a library), no connection string's
	// credentials reach the log.
	return slog.New(telemetry.LogHandler(redact.Handler(h, c.secrets()...)))
}

// syncMode is --jetstream-sync, checked when the flags were parsed.
func (c *common) syncMode() stream.SyncMode {
	m, _ := stream.ParseSyncMode(c.jsSync)
	return m
}

// secrets are the connection strings whose credentials output must hide.
func (c *common) secrets() []string { return []string{c.databaseURL, c.natsURL} }

func (c *common) pool(ctx context.Context) (*pgxpool.Pool, error) {
	if c.databaseURL == "" {
		return nil, usageError("DATABASE_URL is not set (or pass --database-url)")
	}
	pool, err := service.OpenPool(ctx, c.databaseURL)
	if errors.Is(err, service.ErrConfig) {
		return nil, badFlag("database-url", ": %s", strings.TrimPrefix(err.Error(), service.ErrConfig.Error()+": database URL: "))
	}
	return pool, err
}

func (c *common) jetstream(ctx context.Context, log *slog.Logger, serve bool) (*stream.Conn, error) {
	conn, err := stream.Open(ctx, stream.ConnConfig{URL: c.natsURL, DataDir: c.dataDir, Serve: serve, Sync: c.syncMode(), Logger: log})
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
	log = c.logger(stderr)
	if pool, err = c.pool(ctx); err != nil {
		return nil, nil, nil, nil, err
	}
	if conn, err = c.jetstream(ctx, log, false); err != nil {
		pool.Close()
		return nil, nil, nil, nil, err
	}
	return log, pool, conn, func() { conn.Close(); pool.Close() }, nil
}
