package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/stream"
)

type auditResult struct {
	events   int
	on, off  float64 // events/s
	auditRow int64   // audit rows one drain with the audit on wrote
}

// benchAudit drains the realistic mix from one pre-filled stream into a
// fresh database with the audit trail off and on, alternating, two rounds
// each; the best round of each counts, as for ingest.
func benchAudit(ctx context.Context, o options, fx fixtures) (auditResult, error) {
	evs := fx.mix(o.entities, 5)
	r := auditResult{events: len(evs)}
	dir, err := os.MkdirTemp("", "syncd-bench-js-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: dir})
	if err != nil {
		return r, err
	}
	defer conn.Close()
	if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
		return r, err
	}
	if err := prefill(ctx, conn.JS, evs); err != nil {
		return r, err
	}
	for round := range 2 {
		for _, off := range []bool{true, false} {
			pool, drop, err := createDB(ctx, o.adminURL, fmt.Sprintf("syncd_bench_audit_%d", round))
			if err != nil {
				return r, err
			}
			// From the stream's start again, as a fresh durable.
			_ = conn.JS.DeleteConsumer(ctx, stream.Webhooks, stream.Consumer)
			if err := stream.Ensure(ctx, conn.JS, stream.Config{}, stream.ConsumerConfig{}); err != nil {
				drop()
				return r, err
			}
			took, err := drainAudit(ctx, o.workers, off, pool, conn.JS)
			if err == nil && !off {
				err = pool.QueryRow(ctx, "SELECT count(*) FROM audit_logs").Scan(&r.auditRow)
			}
			drop()
			if err != nil {
				return r, err
			}
			rate := float64(len(evs)) / took.Seconds()
			if off {
				r.off = max(r.off, rate)
			} else {
				r.on = max(r.on, rate)
			}
		}
	}
	return r, nil
}

// drainAudit is drainWith with the audit trail on or off.
func drainAudit(ctx context.Context, workers int, off bool, pool *pgxpool.Pool, js jetstream.JetStream) (time.Duration, error) {
	c, err := consumers.New(consumers.Config{Registerer: prometheus.NewRegistry(), ApplyWorkers: workers, AuditOff: off}, pool, js)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- c.Run(rctx) }()
	err = waitSettled(ctx, js, 10*time.Minute)
	took := time.Since(start)
	cancel()
	<-done
	return took, err
}

// auditRows states the measurement and its ratio.
func auditRows(a auditResult) []row {
	ratio := a.on / a.off
	return []row{
		{fmt.Sprintf("9. Apply, realistic mix, audit trail off (%d events)", a.events), fmt.Sprintf("%.0f events/s", a.off), "", ""},
		{"9. Apply, realistic mix, audit trail on", fmt.Sprintf("%.0f events/s, %.2f× off (%d audit rows)", a.on, ratio, a.auditRow), "≥ 0.75×", verdict(ratio >= 0.75, "")},
	}
}
