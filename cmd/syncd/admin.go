package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/syncd/syncd/backfill"
	"github.com/syncd/syncd/console"
	"github.com/syncd/syncd/stream"
)

// adminFlags turn on the admin console inside `syncd serve`, on a
// listener of its own.
type adminFlags struct {
	addr, tokenFile string
}

func (a *adminFlags) register(c *cobra.Command) {
	d := declare(c)
	d.String(&a.addr, "admin-addr", "ADMIN_ADDR", "", "serve the admin console and /admin/api/ on this address, never the webhook port; empty is off; token in env ADMIN_TOKEN or --admin-token-file", listenAddr(true))
	d.String(&a.tokenFile, "admin-token-file", "ADMIN_TOKEN_FILE", "", "file holding the admin token")
}

// config is the console's configuration; the token itself comes only
// from the environment, never a flag (ps would show it).
func (a *adminFlags) config(webhookAddr string, log *slog.Logger, reg prometheus.Gatherer) console.Config {
	return console.Config{
		Addr: a.addr, Token: os.Getenv("ADMIN_TOKEN"), TokenFile: a.tokenFile, WebhookAddr: webhookAddr,
		Gatherer: reg, Logger: log,
		BackfillSource: func(p string) (backfill.Source, error) { return backfillSource(p, 100) },
	}
}

// start runs the console when --admin-addr is set; stop shuts it down.
func (a *adminFlags) start(webhookAddr string, pool *pgxpool.Pool, conn *stream.Conn, reg prometheus.Gatherer, log *slog.Logger) (stop func(), err error) {
	if a.addr == "" {
		return func() {}, nil
	}
	c, err := console.New(a.config(webhookAddr, log, reg), pool, conn)
	if err != nil {
		return nil, usageError("%v", err)
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Shutdown(ctx)
	}, nil
}
