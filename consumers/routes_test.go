package consumers_test

import (
	"context"
	"slices"
	"testing"

	"github.com/syncd/syncd/consumers"
	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/syncdtest"
)

// TestNewRouteIsAppliedWithoutTouchingTheEngine: an event type added to the
// route table alone is applied. One that reads a RETURNING value gets the
// real value (it says Reads and runs directly, whatever its name), one
// that only writes is queued with the batch; both have ledger rows, and
// the batch's built-in types apply beside them.
func TestNewRouteIsAppliedWithoutTouchingTheEngine(t *testing.T) {
	t.Parallel()
	pool := syncdtest.DB(t)
	reader := consumers.Route{
		Source: "stripe", Type: "customer.tax_id.created", Writes: []consumers.Table{consumers.TableStripeCustomers}, Reads: true,
		Handle: func(ctx context.Context, tx consumers.Tx, ev consumers.Event) (consumers.Outcome, error) {
			var id string
			if err := tx.DB.QueryRow(ctx, `INSERT INTO stripe_customers (stripe_customer_id, stripe_created, stripe_event_rank, stripe_event_id)
				VALUES ('cus_tax', now(), 0, $1) RETURNING stripe_customer_id`, ev.Envelope.ID).Scan(&id); err != nil {
				return "", err
			}
			_, err := tx.DB.Exec(ctx, `UPDATE stripe_customers SET name = 'read ' || $1 WHERE stripe_customer_id = $1`, id)
			return consumers.Applied, err
		},
	}
	writer := consumers.Route{
		Source: "stripe", Type: "customer.discount.created", Writes: []consumers.Table{consumers.TableStripeCustomers},
		Handle: func(ctx context.Context, tx consumers.Tx, ev consumers.Event) (consumers.Outcome, error) {
			_, err := tx.DB.Exec(ctx, `UPDATE stripe_customers SET email = 'discounted@x.test' WHERE stripe_customer_id = 'cus_tax'`)
			return consumers.Applied, err
		},
	}
	a := applier(t, pool, append(consumers.Routes(), reader, writer))
	customer := map[string]any{"id": "cus_other", "object": "customer", "email": "o@x.test", "metadata": map[string]any{}}
	evs := []consumers.Event{
		decoded(t, "stripe", stripeEventAt("evt_c", "customer.updated", s0, "2023-10-16", customer)),
		decoded(t, "stripe", stripeEventAt("evt_tax", "customer.tax_id.created", s0, "2023-10-16", map[string]any{"id": "txi_1"})),
		decoded(t, "stripe", stripeEventAt("evt_disc", "customer.discount.created", s0, "2023-10-16", map[string]any{"id": "di_1"})),
	}
	res, err := a.Apply(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	q := queries.New()
	for i, ev := range evs {
		row, err := q.EventLedgerGet(context.Background(), pool, queries.EventLedgerGetParams{Source: "stripe", EventID: ev.Envelope.ID})
		if res[i].Err != nil || res[i].Outcome != consumers.Applied || err != nil || row.Outcome != "applied" {
			t.Fatalf("%s: result %q %v, ledger %q %v; want applied", ev.Envelope.Type, res[i].Outcome, res[i].Err, row.Outcome, err)
		}
	}
	c, err := q.StripeCustomerGet(context.Background(), pool, "cus_tax")
	if err != nil || c.Name == nil || *c.Name != "read cus_tax" || c.Email == nil || *c.Email != "discounted@x.test" {
		t.Fatalf("customer %+v %v: want the name from the RETURNING value and the queued update after it", c, err)
	}
	if _, err := q.StripeCustomerGet(context.Background(), pool, "cus_other"); err != nil {
		t.Fatalf("built-in route beside the new ones: %v", err)
	}
}

// TestHandledTypesComeFromTheRouteTable: backfill's default types are the
// routes', per source.
func TestHandledTypesComeFromTheRouteTable(t *testing.T) {
	t.Parallel()
	n := 0
	for _, r := range consumers.Routes() {
		if !slices.Contains(consumers.HandledTypes(r.Source), r.Type) {
			t.Errorf("%s %s has a route but is not handled", r.Source, r.Type)
		}
		n++
	}
	if got := len(consumers.HandledTypes("workos")) + len(consumers.HandledTypes("stripe")); got != n {
		t.Errorf("%d handled types, %d routes", got, n)
	}
}
