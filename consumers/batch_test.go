package consumers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/stream"
	"github.com/syncd/syncd/syncdtest"
)

// roundTrips counts what a pool sends Postgres: single statements and
// pipelined batches, each one round trip.
type roundTrips struct {
	queries, batches, begins atomic.Int64
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.queries.Add(1)
	if strings.HasPrefix(strings.ToLower(d.SQL), "begin") {
		r.begins.Add(1)
	}
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.batches.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}
func (r *roundTrips) total() int64                                                        { return r.queries.Load() + r.batches.Load() }
func (r *roundTrips) reset()                                                              { r.queries.Store(0); r.batches.Store(0); r.begins.Store(0) }

func tracedConsumer(t *testing.T) (*consumers.Consumer, *pgxpool.Pool, *roundTrips) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(syncdtest.DatabaseURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rt := &roundTrips{}
	cfg.ConnConfig.Tracer = rt
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	c, err := consumers.New(consumers.Config{}, pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, pool, rt
}

func workosEvent(t *testing.T, id, typ string, data map[string]any) consumers.Event {
	t.Helper()
	body := syncdtest.WorkOSEvent(id, typ, data)
	env, err := events.DecodeWorkOS(body)
	if err != nil {
		t.Fatal(err)
	}
	return consumers.Event{Source: "workos", Envelope: env, Body: body, ReceivedAt: time.Now()}
}

// TestBatchIsPipelined: a batch of write-only events costs a handful of
// round trips, as many for 300 events as for 30 (a few statements per
// table, not several per event), and keeps every outcome right.
func TestBatchIsPipelined(t *testing.T) {
	t.Parallel()
	c, pool, rt := tracedConsumer(t)
	batch := func(ns string, n int) []consumers.Event {
		var evs []consumers.Event
		for i := range n {
			u, o := fmt.Sprintf("user_%s%d", ns, i), fmt.Sprintf("org_%s%d", ns, i)
			evs = append(evs,
				workosEvent(t, fmt.Sprintf("e%s%d_u", ns, i), "user.created", userData(u, u+"@x.test", 2)),
				workosEvent(t, fmt.Sprintf("e%s%d_m", ns, i), "organization_membership.created", membershipData("om_"+u, u, o, "admin", "active", 1)),
				workosEvent(t, fmt.Sprintf("e%s%d_o", ns, i), "organization.created", orgData(o, "Org", 1)),
				// Older than the user.created above, in the same batch: stale.
				workosEvent(t, fmt.Sprintf("e%s%d_old", ns, i), "user.updated", userData(u, "old@x.test", 1)),
				workosEvent(t, fmt.Sprintf("e%s%d_x", ns, i), "some.future_type", map[string]any{"id": "x"}),
			)
		}
		return evs
	}
	ctx := context.Background()
	rt.reset()
	if _, err := c.Apply(ctx, batch("s", 6)); err != nil {
		t.Fatal(err)
	}
	small := rt.total()
	evs := batch("p", 60)
	rt.reset()
	res, err := c.Apply(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	if n := rt.total(); n != small || n > 24 {
		t.Errorf("a batch of %d events took %d round trips, one of 30 %d; want the same handful (pipelined, set-based)", len(evs), n, small)
	}
	want := map[string]consumers.Outcome{"_u": consumers.Applied, "_m": consumers.Applied, "_o": consumers.Applied, "_old": consumers.Stale, "_x": consumers.Ignored}
	q := queries.New()
	for i, ev := range evs {
		suffix := ev.Envelope.ID[strings.Index(ev.Envelope.ID, "_"):]
		if res[i].Err != nil || res[i].Outcome != want[suffix] {
			t.Fatalf("%s: outcome %q err %v, want %q", ev.Envelope.ID, res[i].Outcome, res[i].Err, want[suffix])
		}
		row, err := q.EventLedgerGet(ctx, pool, queries.EventLedgerGetParams{Source: "workos", EventID: ev.Envelope.ID})
		if err != nil || row.Outcome != string(want[suffix]) {
			t.Fatalf("%s: ledger %+v %v, want outcome %q", ev.Envelope.ID, row, err, want[suffix])
		}
	}
	m, err := q.MembershipGetByWorkOSID(ctx, pool, "om_user_p7")
	if err != nil || m.DeletedAt != nil || *m.Role != "admin" {
		t.Fatalf("membership %+v %v", m, err)
	}
	o, _ := q.OrganizationGetByWorkOSID(ctx, pool, "org_p7")
	if m.OrgID != o.ID || o.IsStub {
		t.Fatalf("membership org %v, organization %v (stub %v)", m.OrgID, o.ID, o.IsStub)
	}
	u, _ := q.UserGetByWorkOSID(ctx, pool, "user_p7")
	if *u.Email != "user_p7@x.test" {
		t.Fatalf("a stale update won: %s", *u.Email)
	}

	// The same batch again is settled from the ledger, without a
	// transaction.
	rt.reset()
	res, err = c.Apply(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range res {
		if res[i].Outcome != consumers.Skipped {
			t.Fatalf("replayed %s: %q, want skipped", evs[i].Envelope.ID, res[i].Outcome)
		}
	}
	if b := rt.begins.Load(); b != 0 {
		t.Errorf("the skip path opened %d transactions", b)
	}
}

// TestBadEventDoesNotFailBatchMates: one event that cannot apply is rolled
// back alone; the rest of its batch commits.
func TestBadEventDoesNotFailBatchMates(t *testing.T) {
	t.Parallel()
	c, pool, _ := tracedConsumer(t)
	var evs []consumers.Event
	for i := range 20 {
		u := fmt.Sprintf("user_b%d", i)
		evs = append(evs, workosEvent(t, "e"+u, "user.created", userData(u, u+"@x.test", 1)))
		if i == 10 {
			evs = append(evs, workosEvent(t, "e_bad", "user.created", map[string]any{"id": 42}))
		}
	}
	ctx := context.Background()
	res, err := c.Apply(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if ev.Envelope.ID == "e_bad" {
			if !errors.Is(res[i].Err, consumers.ErrUndecodable) {
				t.Fatalf("bad event: %v, want ErrUndecodable", res[i].Err)
			}
			continue
		}
		if res[i].Err != nil || res[i].Outcome != consumers.Applied {
			t.Fatalf("%s: %q %v", ev.Envelope.ID, res[i].Outcome, res[i].Err)
		}
	}
	var users, ledger int
	_ = pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&users)
	_ = pool.QueryRow(ctx, "SELECT count(*) FROM webhook_events").Scan(&ledger)
	if users != 20 || ledger != 20 {
		t.Fatalf("users=%d ledger=%d, want 20 each (the bad event leaves no trace)", users, ledger)
	}
}

// A message published with server instructions (expected stream, as
// backfill does) is still dead-lettered: the copy carries the event's
// headers, not the original's Nats-* instructions.
func TestDeadLetterOfMessageWithServerHeaders(t *testing.T) {
	h := syncdtest.NewHarness(t)
	h.ConsumerConfig.MaxAttempts = 1
	h.StartConsumer()
	ctx := context.Background()
	body := []byte(`{"object":"event","id":"event_poison","event":"user.created","data":"not an object"}`)
	msg := nats.NewMsg("webhooks.workos.user.created")
	msg.Data = body
	msg.Header.Set(stream.HeaderSource, "workos")
	if _, err := h.NATS.JS.PublishMsg(ctx, msg, jetstream.WithMsgID("workos:event_poison"), jetstream.WithExpectStream(stream.Webhooks)); err != nil {
		t.Fatal(err)
	}
	syncdtest.Eventually(t, 20*time.Second, "dead letter stored", func() bool {
		s, err := h.NATS.JS.Stream(ctx, stream.DeadLetter)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		return err == nil && info.State.Msgs == 1
	})
	h.WaitSettled()
}
