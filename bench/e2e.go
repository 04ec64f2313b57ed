package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/syncd/syncd/ingest"
	"github.com/syncd/syncd/stream"
)

type e2eResult struct {
	rate         float64
	load         loadResult
	lag          time.Duration
	pendingAtEnd uint64
	peakRSS      int64
	cpu          cpuSplit
	group        groupCommit
}

// cpuNote says where the cores went during the load.
func (r e2eResult) cpuNote() string { return "CPU during the load, of 2 cores: " + r.cpu.note() }

// benchEndToEnd runs `syncd serve` (ingest and consumers in one process) at
// a steady rate and measures webhook latency, the lag left when the load
// stops, and the process's peak memory. JetStream's store is under
// storeRoot.
func benchEndToEnd(ctx context.Context, o options, bin, storeRoot string, src source, rate float64) (e2eResult, error) {
	r := e2eResult{rate: rate}
	pool, drop, err := createDB(ctx, o.adminURL, "syncd_bench_e2e")
	if err != nil {
		return r, err
	}
	pool.Close()
	defer drop()
	u := pool.Config().ConnConfig
	dbURL := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", u.User, u.Host, u.Port, u.Database)
	p, err := startSyncdIn(bin, storeRoot, "all", dbURL, o.syncdEnv...)
	if err != nil {
		return r, err
	}
	defer p.stop()
	if err := quiesce(ctx, o.adminURL); err != nil {
		return r, err
	}
	before := sampleCPU(p.cmd.Process.Pid)
	prof := p.cpuProfile("e2e-cpu", o.loadFor)
	r.load = openLoop(ctx, p.base, src, rate, o.loadFor)
	r.cpu = sampleCPU(p.cmd.Process.Pid).since(before)
	r.group = p.groupCommit()
	<-prof
	p.heapProfile("e2e-heap")
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

// mixSource sends the realistic mix as webhooks, signed when sent, each
// event once: a provider's traffic rather than one event type.
func mixSource(fx fixtures, seed uint64) source {
	evs := fx.mix(40000, seed)
	var next atomic.Int64
	return func(int64) request {
		ev := evs[int(next.Add(1)-1)%len(evs)]
		if ev.source == "workos" {
			return request{"/webhooks/workos", "WorkOS-Signature", ingest.SignWorkOS(benchWorkOSSecret, ev.body, time.Now()), ev.body}
		}
		return request{"/webhooks/stripe", "Stripe-Signature", ingest.SignStripe(benchStripeSecret, ev.body, time.Now()), ev.body}
	}
}
