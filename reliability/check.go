package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/migrations"
	"github.com/syncd/syncd/stream"
)

// result is one row of the table.
type result struct {
	name          string
	sent          int // requests sent
	ok            int // answered 2xx
	serverErr     int // answered 5xx or not at all
	rejected      int // answered 4xx (expected of hostile envelopes only)
	applied       int // 2xx'd events with their ledger row
	lost          int // 2xx'd events neither applied, dead-lettered nor in the stream
	late          int // 2xx'd events still in the stream, unapplied at the deadline
	twice         int // events applied more than once
	deadLettered  int // 2xx'd events in DEADLETTER
	recovery      time.Duration
	recoveryKnown bool
	recoveryLimit time.Duration // 0: not measured in this scenario
	notes         []string
	failures      []string
	took          time.Duration
}

func (r *result) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}
func (r *result) fail(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}
func (r *result) passed() bool { return len(r.failures) == 0 }

// scenarioDB is a scenario's own database, migrated, with triggers that
// record every write to the rows the load creates: an event applied twice
// writes its row twice, even when the second write changes nothing.
type scenarioDB struct {
	name, url, adminURL string
	pool                *pgxpool.Pool
}

func newScenarioDB(ctx context.Context, adminURL, name string) (*scenarioDB, error) {
	url, err := createDatabase(ctx, adminURL, name)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	db := &scenarioDB{name: name, url: url, adminURL: adminURL, pool: pool}
	if _, err := migrations.Up(ctx, pool); err != nil {
		db.close()
		return nil, fmt.Errorf("migrate %s: %w", name, err)
	}
	_, err = pool.Exec(ctx, `
		CREATE TABLE reliability_writes (k text NOT NULL);
		CREATE FUNCTION reliability_user_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO reliability_writes VALUES ('workos:' || NEW.workos_user_id); RETURN NEW; END $$;
		CREATE TRIGGER reliability_user_write AFTER INSERT OR UPDATE ON users
		FOR EACH ROW EXECUTE FUNCTION reliability_user_write();
		CREATE FUNCTION reliability_customer_write() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO reliability_writes VALUES ('stripe:' || NEW.stripe_customer_id); RETURN NEW; END $$;
		CREATE TRIGGER reliability_customer_write AFTER INSERT OR UPDATE ON stripe_customers
		FOR EACH ROW EXECUTE FUNCTION reliability_customer_write();`)
	if err != nil {
		db.close()
		return nil, fmt.Errorf("install write triggers: %w", err)
	}
	return db, nil
}

func (db *scenarioDB) close() {
	db.pool.Close()
	dropDatabase(db.adminURL, db.name)
}

// ledgerRow is what the ledger says of one event.
type ledgerRow struct {
	rows      int
	outcome   string
	appliedAt time.Time
}

type eventKey struct{ source, id string }

func keyOf(e *sent) eventKey { return eventKey{e.source, e.id} }

// ledger reads the ledger rows of the given events.
func (db *scenarioDB) ledger(ctx context.Context, evs []*sent) (map[eventKey]ledgerRow, error) {
	var sources, ids []string
	for _, e := range evs {
		// Postgres text holds neither NUL nor invalid UTF-8: such an id
		// cannot be in the ledger as sent.
		if !utf8.ValidString(e.id) || strings.ContainsRune(e.id, 0) {
			continue
		}
		sources, ids = append(sources, e.source), append(ids, e.id)
	}
	rows, err := db.pool.Query(ctx, `
		SELECT w.source, w.event_id, count(*), min(w.outcome), min(w.applied_at)
		FROM webhook_events w JOIN unnest($1::text[], $2::text[]) AS s(source, event_id) USING (source, event_id)
		GROUP BY 1, 2`, sources, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[eventKey]ledgerRow{}
	for rows.Next() {
		var k eventKey
		var r ledgerRow
		if err := rows.Scan(&k.source, &k.id, &r.rows, &r.outcome, &r.appliedAt); err != nil {
			return nil, err
		}
		out[k] = r
	}
	return out, rows.Err()
}

// entityRows reads, for the rows the given events write (a WorkOS user or
// a Stripe customer each), whether the row exists and how many times it
// was written.
func (db *scenarioDB) entityRows(ctx context.Context, evs []*sent) (present map[string]bool, writes map[string]int, err error) {
	var users, customers []string
	for _, e := range evs {
		if e.source == stream.SourceWorkOS {
			users = append(users, e.entity)
		} else {
			customers = append(customers, e.entity)
		}
	}
	present, writes = map[string]bool{}, map[string]int{}
	rows, err := db.pool.Query(ctx, `
		SELECT 'workos:' || workos_user_id FROM users WHERE workos_user_id = ANY($1) AND NOT is_stub
		UNION ALL SELECT 'stripe:' || stripe_customer_id FROM stripe_customers WHERE stripe_customer_id = ANY($2)`, users, customers)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return nil, nil, err
		}
		present[k] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = db.pool.Query(ctx, `SELECT k, count(*) FROM reliability_writes GROUP BY k`)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, nil, err
		}
		writes[k] = n
	}
	return present, writes, rows.Err()
}

func entityOf(e *sent) string { return e.source + ":" + e.entity }

// eventIDs reads the Syncd-Source and Syncd-Event-Id headers of every
// message of a stream.
func eventIDs(ctx context.Context, js jetstream.JetStream, name string) (map[eventKey]bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	last := s.CachedInfo().State.LastSeq
	out := map[eventKey]bool{}
	if s.CachedInfo().State.Msgs == 0 {
		return out, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{HeadersOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	for range 10000 { // bounded: 500 a fetch
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		n := 0
		var seq uint64
		for m := range batch.Messages() {
			n++
			h := m.Headers()
			out[eventKey{h.Get(stream.HeaderSource), h.Get(stream.HeaderEventID)}] = true
			if md, err := m.Metadata(); err == nil {
				seq = md.Sequence.Stream
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		if n == 0 || seq >= last {
			break
		}
	}
	return out, nil
}

// consumerLag is what the durable consumer still has to deliver or settle.
func consumerLag(ctx context.Context, js jetstream.JetStream) (pending uint64, ackPending int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream.Webhooks, stream.Consumer)
	if err != nil {
		return 0, 0, err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	return info.NumPending, info.NumAckPending, nil
}

// checkRun is what a scenario hands the checker.
type checkRun struct {
	db  *scenarioDB
	gen *generator
	// js reaches the scenario's JetStream (the running syncd's embedded
	// server, or the external NATS).
	js jetstream.JetStream
	// faultEnd is when the fault ended (restart, Postgres or NATS back, a
	// node or replica killed); zero when the scenario has none.
	faultEnd time.Time
	drain    time.Duration
	// reopen, when set, reconnects js after a read failed (the syncd whose
	// embedded server it reads exited and was restarted).
	reopen func() (jetstream.JetStream, error)
}

// read reads a stream's event ids, reconnecting once through reopen.
func (c *checkRun) read(ctx context.Context, name string) (map[eventKey]bool, error) {
	ids, err := eventIDs(ctx, c.js, name)
	if err != nil && c.reopen != nil {
		js, rerr := c.reopen()
		if rerr != nil {
			return nil, fmt.Errorf("%w; reconnect: %v", err, rerr)
		}
		c.js = js
		ids, err = eventIDs(ctx, c.js, name)
	}
	return ids, err
}

// check waits, bounded, for every 2xx'd event to be applied (load and
// follower events) or set aside (poison and hostile ones), then fills r:
// counts, lost, applied twice, dead-lettered, recovery time.
func check(ctx context.Context, c checkRun, r *result) error {
	evs := c.gen.snapshot()
	var accepted, mustApply []*sent
	for _, e := range evs {
		r.sent++
		switch {
		case e.ok():
			r.ok++
			accepted = append(accepted, e)
			if e.kind == kindLoad || e.kind == kindFollower {
				mustApply = append(mustApply, e)
			}
		case e.status >= 400 && e.status < 500:
			r.rejected++
		default:
			r.serverErr++
		}
	}
	start := c.faultEnd
	if start.IsZero() {
		start = time.Now()
	}
	deadline := start.Add(c.drain)
	if min := time.Now().Add(10 * time.Second); deadline.Before(min) {
		deadline = min
	}
	var ledger map[eventKey]ledgerRow
	var dead map[eventKey]bool
	for {
		var err error
		if ledger, err = c.db.ledger(ctx, accepted); err != nil {
			return fmt.Errorf("read ledger: %w", err)
		}
		if dead, err = c.read(ctx, stream.DeadLetter); err != nil {
			return err
		}
		settled := 0
		for _, e := range accepted {
			if _, ok := ledger[keyOf(e)]; ok || dead[keyOf(e)] {
				settled++
			}
		}
		if settled == len(accepted) || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil { // polling Postgres and the stream
			return err
		}
	}
	present, writes, err := c.db.entityRows(ctx, mustApply)
	if err != nil {
		return fmt.Errorf("read rows: %w", err)
	}
	// Each event applied writes its row once: more writes than applied
	// events of a row means one was applied twice.
	appliedOf := map[string]int{}
	for _, e := range accepted {
		if l, ok := ledger[keyOf(e)]; ok && l.outcome == "applied" && e.entity != "" {
			appliedOf[entityOf(e)]++
		}
	}
	for ent, n := range writes {
		if n > appliedOf[ent] && appliedOf[ent] > 0 {
			r.twice += n - appliedOf[ent]
			r.fail("row %s written %d times by %d applied events", short(ent), n, appliedOf[ent])
		}
	}
	var inStream map[eventKey]bool
	var unapplied []*sent
	for _, e := range accepted {
		k := keyOf(e)
		l, inLedger := ledger[k]
		if inLedger {
			r.applied++
		}
		if dead[k] {
			r.deadLettered++
		}
		if l.rows > 1 {
			r.twice++
			r.fail("%s has %d ledger rows", short(e.id), l.rows)
		}
		switch e.kind {
		case kindLoad, kindFollower:
			if dead[k] {
				r.fail("%s event %s dead-lettered: nothing was wrong with it", e.kind, e.id)
			}
			if inLedger && l.outcome == "applied" && !present[entityOf(e)] {
				r.lost++
				r.fail("%s applied but its row %s is missing", e.id, e.entity)
			}
			if inLedger && l.outcome != "applied" {
				r.fail("%s event %s recorded %s, want applied", e.kind, e.id, l.outcome)
			}
		case kindPoison, kindHostile:
			if e.mayApply && inLedger && l.outcome != "applied" {
				r.fail("%s %s (%s) recorded %s, want applied or set aside", e.kind, short(e.id), e.class, l.outcome)
			}
			if inLedger && !dead[k] && !e.mayApply {
				r.fail("%s %s (%s) was stored and applied (%s) instead of refused or dead-lettered", e.kind, short(e.id), e.class, l.outcome)
			}
		}
		if !inLedger && !dead[k] {
			unapplied = append(unapplied, e)
		}
	}
	if len(unapplied) > 0 {
		if inStream, err = c.read(ctx, stream.Webhooks); err != nil {
			return err
		}
		for _, e := range unapplied {
			if inStream[keyOf(e)] {
				r.late++
			} else {
				r.lost++
			}
		}
		if r.late > 0 {
			r.fail("%d 2xx'd events still in the stream, neither applied nor dead-lettered, at the deadline (%s after the fault or the load ended), e.g. %s (%s)",
				r.late, c.drain, short(unapplied[0].id), unapplied[0].kind)
		}
	}
	if r.lost > 0 {
		r.fail("%d 2xx'd events lost", r.lost)
	}
	if pending, ackPending, err := consumerLag(ctx, c.js); err != nil {
		r.note("consumer lag unknown: %v", err)
	} else if pending+uint64(ackPending) > 0 {
		r.note("consumer at the end: %d pending, %d unacknowledged", pending, ackPending)
	}
	if !c.faultEnd.IsZero() {
		recovery(c, mustApply, ledger, r)
	}
	return nil
}

// recovery is from the fault's end until applying has resumed: the first
// event applied after it, and every load event 2xx'd before it (the
// backlog, including what the stopped consumer held) applied.
func recovery(c checkRun, evs []*sent, ledger map[eventKey]ledgerRow, r *result) {
	var resumed, backlog time.Time
	missing := 0
	for _, e := range evs {
		l, ok := ledger[keyOf(e)]
		if e.at.Before(c.faultEnd) {
			if !ok {
				missing++
				continue
			}
			if l.appliedAt.After(backlog) {
				backlog = l.appliedAt
			}
		}
		if ok && l.appliedAt.After(c.faultEnd) && (resumed.IsZero() || l.appliedAt.Before(resumed)) {
			resumed = l.appliedAt
		}
	}
	if resumed.IsZero() {
		r.fail("no event was applied within %s after the fault ended", c.drain)
		return
	}
	if missing > 0 {
		r.fail("first event applied %.1f s after the fault ended, but %d events 2xx'd before it were still unapplied %s after it", resumed.Sub(c.faultEnd).Seconds(), missing, c.drain)
		return
	}
	r.recovery, r.recoveryKnown = max(resumed.Sub(c.faultEnd), backlog.Sub(c.faultEnd), 0), true
	r.note("first event applied %.1f s after the fault ended, backlog done after %.1f s", resumed.Sub(c.faultEnd).Seconds(), max(0, backlog.Sub(c.faultEnd).Seconds()))
	if r.recoveryLimit > 0 && r.recovery > r.recoveryLimit {
		r.fail("recovery %.1f s over %s", r.recovery.Seconds(), r.recoveryLimit)
	}
}

// short keeps ids of 10 KB and raw control bytes out of the report.
func short(s string) string {
	n := len(s)
	if n > 40 {
		s = s[:40]
	}
	q := strconv.Quote(s)
	q = q[1 : len(q)-1]
	if n > 40 {
		q += fmt.Sprintf("…(%d bytes)", n)
	}
	return q
}
