package consumers_test

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/syncdtest"
)

// direct is syncd's applier over a database of the test's own. Handler
// tests apply provider bodies with it, without HTTP or JetStream between,
// so they run in parallel; a few tests per provider keep the whole path.
type direct struct {
	t    *testing.T
	Pool *pgxpool.Pool
	a    *consumers.Applier
	// perEvent makes arrive apply each event in a batch of its own.
	perEvent bool
}

func newDirect(t *testing.T) *direct {
	t.Helper()
	pool := syncdtest.DB(t)
	return &direct{t: t, Pool: pool, a: applier(t, pool, nil)}
}

// bothWays runs scenario twice, in parallel subtests on databases of their
// own: events that arrive together are applied one batch per event (the
// stored rows' version guards decide) and all in one batch (the batch's
// own reduction decides). A consumer takes them either way, so the rows
// the scenario checks must not tell the two apart.
func bothWays(t *testing.T, scenario func(t *testing.T, d *direct)) {
	t.Helper()
	for _, perEvent := range []bool{true, false} {
		name := "one batch"
		if perEvent {
			name = "batch per event"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := newDirect(t)
			d.perEvent = perEvent
			scenario(t, d)
		})
	}
}

// arrive applies events that arrive together, in order: one batch, or one
// batch per event (see bothWays). Any event that fails fails the test.
func (d *direct) arrive(evs ...consumers.Event) []consumers.Result {
	d.t.Helper()
	if !d.perEvent {
		return applyAll(d.t, d.a, evs...)
	}
	var res []consumers.Result
	for _, ev := range evs {
		res = append(res, applyAll(d.t, d.a, ev)...)
	}
	return res
}

// workos, stripe and connect apply bodies as the WorkOS, Stripe platform
// and Stripe Connect endpoints would have received them (see arrive).
func (d *direct) workos(bodies ...[]byte) []consumers.Result {
	d.t.Helper()
	return d.arrive(d.events("workos", "", bodies)...)
}

func (d *direct) stripe(bodies ...[]byte) []consumers.Result {
	d.t.Helper()
	return d.arrive(d.events("stripe", "", bodies)...)
}

func (d *direct) connect(bodies ...[]byte) []consumers.Result {
	d.t.Helper()
	return d.arrive(d.events("stripe", "connect", bodies)...)
}

func (d *direct) events(source, endpoint string, bodies [][]byte) []consumers.Event {
	d.t.Helper()
	evs := make([]consumers.Event, len(bodies))
	for i, b := range bodies {
		evs[i] = decoded(d.t, source, b)
		evs[i].Endpoint = endpoint
	}
	return evs
}

// expectOutcomes fails the test unless every result is want.
func expectOutcomes(t *testing.T, res []consumers.Result, want consumers.Outcome) {
	t.Helper()
	for i, r := range res {
		if r.Outcome != want {
			t.Errorf("event %d of %d: outcome %q, want %q", i, len(res), r.Outcome, want)
		}
	}
}
