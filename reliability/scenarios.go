package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/stream"
)

// Recovery thresholds of the done-when: a clean restart resumes
// within seconds, anything that leaves held events behind (a kill, a lost
// node, a dead replica, a dependency that went away) within ~30 s.
const (
	cleanLimit = 5 * time.Second
	killLimit  = 35 * time.Second
)

// Scenario pacing: load before the fault, after it, and the burst that
// makes the consumer hold a batch when it is killed.
const (
	warmup    = 5 * time.Second
	afterward = 8 * time.Second
	burstSize = 400
)

type scenario struct {
	name, title string
	limit       time.Duration // recovery threshold; 0: not measured
	run         func(ctx context.Context, h *harness, r *result) error
}

var scenarios = []scenario{
	{"kill", "SIGKILL mid-batch, restart", killLimit, runKill},
	{"term", "SIGTERM, restart", cleanLimit, runTerm},
	{"postgres", "Postgres stopped 30 s", killLimit, runPostgres},
	{"nats", "external NATS restarted", killLimit, runNATS},
	{"cluster", "R3 cluster loses its stream leader", killLimit, runCluster},
	{"replicas", "two replicas, one killed", killLimit, runReplicas},
	{"poison", "poison events among the load", 0, runPoison},
	{"hostile", "hostile envelopes", 0, runHostile},
}

func (h *harness) prefix(name string) string { return h.runID + name }

// openJS connects the checker to a syncd's JetStream: its NATS_URL, or
// the embedded server of the running process through its data dir.
func openJS(ctx context.Context, s *syncd) (*stream.Conn, error) {
	if !s.alive() {
		return nil, fmt.Errorf("%s is not running: its embedded JetStream cannot be read", s.name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return stream.Open(ctx, stream.ConnConfig{URL: s.opts.natsURL, DataDir: s.opts.dataDir, Name: "reliability-check"})
}

// checkWith opens JetStream through s, runs the check and closes it.
func checkWith(ctx context.Context, h *harness, s *syncd, db *scenarioDB, g *generator, faultEnd time.Time, r *result) error {
	conn, err := openJS(ctx, s)
	if err != nil {
		return err
	}
	defer func() { conn.Close() }()
	restarts := 0
	reopen := func() (jetstream.JetStream, error) {
		conn.Close()
		if !s.alive() {
			if restarts++; restarts > 3 {
				return nil, fmt.Errorf("%s keeps exiting", s.name)
			}
			r.note("%s exited during the check (%s); restarted", s.name, logTail(s))
			if err := s.restart(); err != nil {
				return nil, err
			}
		}
		c, err := openJS(ctx, s)
		if err != nil {
			return nil, err
		}
		conn = c
		return c.JS, nil
	}
	return check(ctx, checkRun{db: db, gen: g, js: conn.JS, faultEnd: faultEnd, drain: h.drain, reopen: reopen}, r)
}

// holdWrites blocks every write to users and stripe_customers until
// release: the consumer's batch waits on the lock holding its messages, so
// a stop lands mid-batch with a backlog buffered, every time.
func holdWrites(ctx context.Context, db *scenarioDB) (release func(), err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		conn.Release()
		return nil, err
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE users, stripe_customers IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		_ = tx.Rollback(ctx)
		conn.Release()
		return nil, err
	}
	return once(func() { _ = tx.Rollback(context.WithoutCancel(ctx)); conn.Release() }), nil
}

func ledgerCount(ctx context.Context, db *scenarioDB) int {
	var n int
	_ = db.pool.QueryRow(ctx, "SELECT count(*) FROM webhook_events").Scan(&n)
	return n
}

// restartScenario is SIGKILL or SIGTERM mid-batch with the embedded
// server, then a restart over the same store.
func restartScenario(ctx context.Context, h *harness, r *result, name string, kill bool) error {
	db, err := newScenarioDB(ctx, h.adminURL, "reliability_"+name)
	if err != nil {
		return err
	}
	defer db.close()
	s, err := h.startSyncd(name, syncdOpts{dbURL: db.url})
	if err != nil {
		return err
	}
	g := newGenerator(h.prefix(name), s.url())
	stop := once(g.steady(ctx, h.rate))
	defer stop()
	if err := sleep(ctx, warmup); err != nil {
		return err
	}
	before := ledgerCount(ctx, db)
	release, err := holdWrites(ctx, db)
	if err != nil {
		return err
	}
	defer release()
	g.burst(burstSize, 16)
	// The consumer has fetched the burst and waits on the lock.
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	t := time.Now()
	if kill {
		s.kill()
		release()
	} else {
		// The batch in flight may finish: the lock goes soon after the
		// signal, well within the shutdown timeout.
		time.AfterFunc(500*time.Millisecond, release)
		if !s.term(45 * time.Second) {
			r.fail("syncd did not stop within 45 s of SIGTERM (killed)")
		}
	}
	stopped := time.Since(t)
	if applied := ledgerCount(ctx, db); applied < before+burstSize {
		r.note("stopped with %d of the burst's %d events not yet applied", before+burstSize-applied, burstSize)
	}
	if !kill {
		r.note("SIGTERM to exit %.1f s", stopped.Seconds())
	}
	// Down a moment: the load meets a closed port, as providers would.
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	faultEnd := time.Now()
	if err := s.restart(); err != nil {
		return err
	}
	if err := sleep(ctx, afterward); err != nil {
		return err
	}
	stop()
	return checkWith(ctx, h, s, db, g, faultEnd, r)
}

func runKill(ctx context.Context, h *harness, r *result) error {
	return restartScenario(ctx, h, r, "kill", true)
}

func runTerm(ctx context.Context, h *harness, r *result) error {
	return restartScenario(ctx, h, r, "term", false)
}

// runPostgres stops the harness's own Postgres for 30 s under load.
func runPostgres(ctx context.Context, h *harness, r *result) error {
	pg, err := h.ownPG()
	if err != nil {
		return err
	}
	db, err := newScenarioDB(ctx, pg.adminURL(), "reliability_postgres")
	if err != nil {
		return err
	}
	defer db.close()
	s, err := h.startSyncd("postgres", syncdOpts{dbURL: db.url})
	if err != nil {
		return err
	}
	g := newGenerator(h.prefix("pg"), s.url())
	stop := once(g.steady(ctx, h.rate))
	defer stop()
	if err := sleep(ctx, warmup); err != nil {
		return err
	}
	if err := pg.stop(); err != nil {
		return err
	}
	down := time.Now()
	if err := sleep(ctx, 30*time.Second); err != nil {
		return err
	}
	if err := pg.start(); err != nil {
		return err
	}
	faultEnd := time.Now()
	okDuring := 0
	for _, e := range g.snapshot() {
		if e.ok() && e.at.After(down) {
			okDuring++
		}
	}
	r.note("%d webhooks 2xx'd while Postgres was down", okDuring)
	if err := sleep(ctx, afterward); err != nil {
		return err
	}
	stop()
	if !s.alive() {
		r.fail("syncd exited while Postgres was down: %v", s.err)
		if err := s.restart(); err != nil {
			return err
		}
	}
	return checkWith(ctx, h, s, db, g, faultEnd, r)
}

// runNATS restarts an external nats-server under syncd.
func runNATS(ctx context.Context, h *harness, r *result) error {
	db, err := newScenarioDB(ctx, h.adminURL, "reliability_nats")
	if err != nil {
		return err
	}
	defer db.close()
	nodes, err := h.startNATS("nats", 1)
	if err != nil {
		return err
	}
	s, err := h.startSyncd("nats-syncd", syncdOpts{dbURL: db.url, natsURL: nodes[0].url()})
	if err != nil {
		return err
	}
	g := newGenerator(h.prefix("nats"), s.url())
	stop := once(g.steady(ctx, h.rate))
	defer stop()
	if err := sleep(ctx, warmup); err != nil {
		return err
	}
	if !nodes[0].term(15 * time.Second) {
		r.note("nats-server did not stop within 15 s of SIGTERM (killed)")
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	if err := nodes[0].start(); err != nil {
		return err
	}
	faultEnd := time.Now()
	if err := sleep(ctx, afterward); err != nil {
		return err
	}
	stop()
	if !s.alive() {
		r.fail("syncd exited while NATS was down: %v", s.err)
		if err := s.restart(); err != nil {
			return err
		}
	}
	return checkWith(ctx, h, s, db, g, faultEnd, r)
}

// awaitJetStream waits, bounded, until a JetStream cluster has elected its
// meta leader and answers.
func awaitJetStream(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("JetStream cluster not ready: %w", err)
		}
		time.Sleep(250 * time.Millisecond) // polling the cluster's election
	}
}

// runCluster kills the WEBHOOKS stream leader of a three-node cluster.
func runCluster(ctx context.Context, h *harness, r *result) error {
	db, err := newScenarioDB(ctx, h.adminURL, "reliability_cluster")
	if err != nil {
		return err
	}
	defer db.close()
	nodes, err := h.startNATS("jsc", 3)
	if err != nil {
		return err
	}
	url := natsURLs(nodes)
	if err := awaitJetStream(ctx, url); err != nil {
		return err
	}
	s, err := h.startSyncd("cluster-syncd", syncdOpts{dbURL: db.url, natsURL: url, replicas: 3})
	if err != nil {
		return err
	}
	g := newGenerator(h.prefix("jsc"), s.url())
	stop := once(g.steady(ctx, h.rate))
	defer stop()
	if err := sleep(ctx, warmup); err != nil {
		return err
	}
	conn, err := openJS(ctx, s)
	if err != nil {
		return err
	}
	streamLeader, consumerLeader, replicas, err := leaders(ctx, conn.JS)
	conn.Close()
	if err != nil {
		return err
	}
	r.note("stream replicas %d; stream leader %s, consumer leader %s", replicas, streamLeader, consumerLeader)
	if replicas != 3 {
		r.fail("WEBHOOKS has %d replicas, want 3", replicas)
	}
	var victim *natsNode
	for _, nd := range nodes {
		if nd.name == streamLeader {
			victim = nd
		}
	}
	if victim == nil {
		return fmt.Errorf("stream leader %q is none of the nodes", streamLeader)
	}
	g.burst(burstSize/2, 16)
	victim.kill()
	faultEnd := time.Now()
	if err := sleep(ctx, 10*time.Second); err != nil {
		return err
	}
	// The node comes back, as after a host reboot.
	if err := victim.start(); err != nil {
		return err
	}
	if err := sleep(ctx, afterward/2); err != nil {
		return err
	}
	stop()
	return checkWith(ctx, h, s, db, g, faultEnd, r)
}

func leaders(ctx context.Context, js jetstream.JetStream) (streamLeader, consumerLeader string, replicas int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream.Webhooks)
	if err != nil {
		return "", "", 0, err
	}
	info := st.CachedInfo()
	if info.Cluster == nil {
		return "", "", 0, errors.New("WEBHOOKS has no cluster info: not clustered")
	}
	c, err := st.Consumer(ctx, stream.Consumer)
	if err != nil {
		return "", "", 0, err
	}
	ci := c.CachedInfo()
	if ci.Cluster != nil {
		consumerLeader = ci.Cluster.Leader
	}
	return info.Cluster.Leader, consumerLeader, info.Config.Replicas, nil
}

// runReplicas runs two syncd sharing one NATS and the durable consumer,
// and kills one of them for good.
func runReplicas(ctx context.Context, h *harness, r *result) error {
	db, err := newScenarioDB(ctx, h.adminURL, "reliability_replicas")
	if err != nil {
		return err
	}
	defer db.close()
	nodes, err := h.startNATS("rep", 1)
	if err != nil {
		return err
	}
	a, err := h.startSyncd("replica-a", syncdOpts{dbURL: db.url, natsURL: nodes[0].url()})
	if err != nil {
		return err
	}
	b, err := h.startSyncd("replica-b", syncdOpts{dbURL: db.url, natsURL: nodes[0].url()})
	if err != nil {
		return err
	}
	g := newGenerator(h.prefix("rep"), a.url(), b.url())
	stop := once(g.steady(ctx, h.rate))
	defer stop()
	if err := sleep(ctx, warmup); err != nil {
		return err
	}
	before := ledgerCount(ctx, db)
	release, err := holdWrites(ctx, db)
	if err != nil {
		return err
	}
	defer release()
	g.burst(burstSize, 16)
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	a.kill()
	release()
	g.setTargets(b.url())
	faultEnd := time.Now()
	if applied := ledgerCount(ctx, db); applied < before+burstSize {
		r.note("replica killed with %d of the burst's %d events not yet applied", before+burstSize-applied, burstSize)
	}
	if err := sleep(ctx, afterward); err != nil {
		return err
	}
	stop()
	return checkWith(ctx, h, b, db, g, faultEnd, r)
}

// once makes a stop func safe to call twice (explicitly, then deferred).
func once(f func()) func() {
	done := false
	return func() {
		if !done {
			done = true
			f()
		}
	}
}
