package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/syncd/syncd/stream"
)

type e2eResult struct {
	rate         float64
	load         loadResult
	lag          time.Duration
	pendingAtEnd uint64
	peakRSS      int64
}

// benchEndToEnd runs `syncd serve` (ingest and consumers in one process) at
// a steady rate and measures webhook latency, the lag left when the load
// stops, and the process's peak memory.
func benchEndToEnd(ctx context.Context, o options, bin, tmp string, workos, stripe source, rate float64) (e2eResult, error) {
	r := e2eResult{rate: rate}
	pool, drop, err := createDB(ctx, o.adminURL, "syncd_bench_e2e")
	if err != nil {
		return r, err
	}
	pool.Close()
	defer drop()
	u := pool.Config().ConnConfig
	dbURL := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", u.User, u.Host, u.Port, u.Database)
	p, err := startSyncd(bin, tmp, "all", dbURL, o.profiles)
	if err != nil {
		return r, err
	}
	defer p.stop()
	mixed := func(n int64) request {
		if rand.IntN(2) == 0 {
			return workos(n)
		}
		return stripe(n)
	}
	r.load = openLoop(ctx, p.base, mixed, rate, o.loadFor)
	conn, err := stream.Open(ctx, stream.ConnConfig{DataDir: p.dataDir()})
	if err != nil {
		return r, err
	}
	defer conn.Close()
	end := time.Now()
	if c, err := conn.JS.Consumer(ctx, stream.Webhooks, stream.Consumer); err == nil {
		if info, err := c.Info(ctx); err == nil {
			r.pendingAtEnd = info.NumPending + uint64(info.NumAckPending)
		}
	}
	if err := waitSettled(ctx, conn.JS, 5*time.Minute); err != nil {
		return r, err
	}
	r.lag = time.Since(end)
	r.peakRSS = p.peakRSS()
	return r, nil
}
