package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/syncd/syncd/queries"
)

// The write of the meetings' set-based apply (meetings_sets.go): each row
// the stage's events changed, once, one statement per table, checked
// against the fold.
//
// The audit trail (audit.go) finds the event behind a meeting's or a
// payment transfer's change by the row's PaymentIntent, in
// syncd.audit_events: "payment:<id>" names the last event of the stage
// that changed a row of that PaymentIntent. A row without a PaymentIntent
// (a Checkout Session's alone) is written in a statement of its own under
// its event (syncd.audit_event); such rows are rare.

// write sends what the fold changed.
func (m *memMeetings) write(ctx context.Context, q *queries.Queries, db queries.DBTX, ms meetingSets, audit bool) error {
	if err := m.writePayments(ctx, q, db); err != nil {
		return err
	}
	if err := m.writeCheckouts(ctx, q, db); err != nil {
		return err
	}
	au := auditWriter{on: audit, q: q, db: db, ms: ms}
	err := writeByKeys(ctx, TableMeetings, &m.meetings, au,
		func(ids []uuid.UUID) ([]uuid.UUID, error) { return q.MeetingDeleteMany(ctx, db, ids) },
		func(b json.RawMessage) ([]uuid.UUID, error) { return q.MeetingUpsertMany(ctx, db, b) })
	if err != nil {
		return err
	}
	return writeByKeys(ctx, TablePaymentTransfers, &m.transfers, au,
		func(ids []uuid.UUID) ([]uuid.UUID, error) { return q.PaymentTransferDeleteMany(ctx, db, ids) },
		func(b json.RawMessage) ([]uuid.UUID, error) { return q.PaymentTransferUpsertMany(ctx, db, b) })
}

func (m *memMeetings) writePayments(ctx context.Context, q *queries.Queries, db queries.DBTX) error {
	var rows []queries.StripePaymentIntent
	want := map[string]bool{}
	for id, p := range m.payments {
		if old, ok := m.paymentsRead[id]; !ok || !reflect.DeepEqual(*p, old) {
			rows = append(rows, *p)
			want[id] = true
		}
	}
	if len(rows) == 0 {
		return nil
	}
	slices.SortFunc(rows, func(a, b queries.StripePaymentIntent) int {
		return strings.Compare(a.StripePaymentIntentID, b.StripePaymentIntentID)
	})
	return writeMany(ctx, TableStripePaymentIntents, rows, want, func(b json.RawMessage) ([]string, error) {
		return q.StripePaymentIntentUpsertMany(ctx, db, b)
	})
}

func (m *memMeetings) writeCheckouts(ctx context.Context, q *queries.Queries, db queries.DBTX) error {
	if len(m.noted) == 0 {
		return nil
	}
	rows := make([]queries.StripeCheckoutSession, 0, len(m.noted))
	want := map[string]bool{}
	for _, s := range m.noted {
		rows = append(rows, m.checkouts[s])
		want[s] = true
	}
	return writeMany(ctx, TableStripeCheckouts, rows, want, func(b json.RawMessage) ([]string, error) {
		return q.StripeCheckoutSessionNoteMany(ctx, db, b)
	})
}

// writeByKeys writes a meetings-like table: the rows merged away deleted
// first (the rows they merged into take over their keys), then the new
// and changed rows.
func writeByKeys[R any](ctx context.Context, table Table, k *rowsByKeys[R], au auditWriter,
	del func([]uuid.UUID) ([]uuid.UUID, error), upsert func(json.RawMessage) ([]uuid.UUID, error),
) error {
	deleted, written := k.changes()
	if len(deleted)+len(written) == 0 {
		return nil
	}
	// Rows without a PaymentIntent, when the audit needs their event.
	alone := func(rows []R) (keyed, single []R) {
		if !au.on {
			return rows, nil
		}
		for _, r := range rows {
			if k.keysOf(&r).pi == nil {
				single = append(single, r)
			} else {
				keyed = append(keyed, r)
			}
		}
		return keyed, single
	}
	keyedDel, singleDel := alone(deleted)
	keyedOut, singleOut := alone(written)
	events := map[string]int{}
	for _, r := range slices.Concat(keyedDel, keyedOut) {
		rk := k.keysOf(&r)
		key := "payment:" + *rk.pi
		if j, ok := events[key]; !ok || k.writer[rk.id] > j {
			events[key] = k.writer[rk.id]
		}
	}
	keyedCtx := func() error {
		if !au.on {
			return nil
		}
		return au.keyed(ctx, events)
	}
	deleteRows := func(rows []R) error {
		if len(rows) == 0 {
			return nil
		}
		ids := make([]uuid.UUID, len(rows))
		for i := range rows {
			ids[i] = k.keysOf(&rows[i]).id
		}
		got, err := del(ids)
		if err != nil {
			return fmt.Errorf("delete %s merged away: %w", table, err)
		}
		return verifyIDs(table, ids, got)
	}
	writeRows := func(rows []R) error {
		if len(rows) == 0 {
			return nil
		}
		want := map[string]bool{}
		for i := range rows {
			want[k.keysOf(&rows[i]).id.String()] = true
		}
		return writeMany(ctx, table, rows, want, func(b json.RawMessage) ([]string, error) {
			ids, err := upsert(b)
			out := make([]string, len(ids))
			for i, id := range ids {
				out[i] = id.String()
			}
			return out, err
		})
	}
	// Each of the rows alone under its own event.
	one := func(rows []R, apply func([]R) error) error {
		for _, r := range rows {
			if err := au.event(ctx, k.writer[k.keysOf(&r).id]); err != nil {
				return err
			}
			if err := apply([]R{r}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := keyedCtx(); err != nil {
		return err
	}
	if err := deleteRows(keyedDel); err != nil {
		return err
	}
	if err := one(singleDel, deleteRows); err != nil {
		return err
	}
	if len(singleDel) > 0 {
		if err := keyedCtx(); err != nil {
			return err
		}
	}
	if err := writeRows(keyedOut); err != nil {
		return err
	}
	if err := one(singleOut, writeRows); err != nil {
		return err
	}
	if len(singleOut) > 0 {
		return keyedCtx() // no event current after these rows
	}
	return nil
}

// verifyIDs checks that a statement touched exactly the rows named.
func verifyIDs(table Table, want, got []uuid.UUID) error {
	w := map[string]bool{}
	for _, id := range want {
		w[id.String()] = true
	}
	g := make([]string, len(got))
	for i, id := range got {
		g[i] = id.String()
	}
	return verify(table, w, g)
}

// auditWriter tells the audit triggers which events the meetings' writes
// belong to.
type auditWriter struct {
	on bool
	q  *queries.Queries
	db queries.DBTX
	ms meetingSets
}

// keyed names the events by PaymentIntent, with no current event.
func (a auditWriter) keyed(ctx context.Context, events map[string]int) error {
	m := make(map[string]auditEvent, len(events))
	for k, j := range events {
		m[k] = newAuditEvent(a.ms[j].ev)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode audit events: %w", err)
	}
	if err := a.q.AuditContextSet(ctx, a.db, queries.AuditContextSetParams{Events: string(b)}); err != nil {
		return fmt.Errorf("audit context: %w", err)
	}
	return nil
}

// event makes event j of the stage the current one.
func (a auditWriter) event(ctx context.Context, j int) error {
	b, err := json.Marshal(newAuditEvent(a.ms[j].ev))
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	if err := a.q.AuditEventSet(ctx, a.db, string(b)); err != nil {
		return fmt.Errorf("audit event: %w", err)
	}
	return nil
}
