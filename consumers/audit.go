package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/syncd/syncd/queries"
)

// The audit trail (audit_logs) is written by statement-level triggers on
// the app's tables (migration 00010): one multi-row INSERT per statement
// that changed rows, in the statement's transaction, with the old and new
// values of the columns that changed. So every write path of the applier —
// set-based upserts, pipelined statements, direct handlers, links — is
// covered without each handler knowing, a rolled-back batch leaves no audit
// row, and a statement that changes nothing (a stale event, a skipped one)
// writes none.
//
// What the triggers cannot see is the event: the applier tells them, in two
// transaction-local settings. syncd.audit_events, set once per batch
// transaction, maps the entity keys of the batch's events to the event (the
// last of each key in stream order), and the WorkOS rows' key and version to
// the event that carries that version: a set-based upsert writes the state
// of one event per row, whose version the row then holds. syncd.audit_event
// names the event whose statements run now (pipelined and direct events,
// the isolated path) and is empty while the set-based upserts and the
// batch's links run. With the audit off, neither is set and the triggers
// return at once.

// auditEvent is what an audit row records of the event behind a change.
type auditEvent struct {
	Source string `json:"source"`
	ID     string `json:"id"`
	Type   string `json:"type"`
	// Delivery is the JetStream delivery attempt (0 outside the stream).
	Delivery uint64 `json:"delivery,omitempty"`
	// Mode is live (the durable consumer) or replay (syncd replay).
	Mode string `json:"mode"`
}

func newAuditEvent(ev Event) auditEvent {
	mode := "live"
	if ev.Replay {
		mode = "replay"
	}
	return auditEvent{Source: ev.Source, ID: ev.Envelope.ID, Type: ev.Envelope.Type, Delivery: ev.Delivery, Mode: mode}
}

// auditKeys is syncd.audit_events for the events todo of evs.
func (a *Applier) auditKeys(evs []Event, todo []int) (string, error) {
	m := make(map[string]auditEvent, len(todo))
	for _, i := range todo {
		ev := evs[i]
		r := a.routes.route(ev)
		if r == nil {
			continue
		}
		ae := newAuditEvent(ev)
		if r.Key != nil {
			if k := r.Key(ev); k != "" {
				m[k] = ae
			}
		}
		if k := versionKey(r, ev); k != "" {
			m[k] = ae
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode audit events: %w", err)
	}
	return string(b), nil
}

// versionKey is "<table>:<WorkOS id>@<version in µs>" for the events of
// the set-based WorkOS routes: the version the upsert stores, as the
// trigger reads it back from the row.
func versionKey(r *Route, ev Event) string {
	switch r.set {
	case userSet:
		if u, err := decodeUser(ev); err == nil {
			return "users:" + u.p.WorkosUserID + "@" + strconv.FormatInt(u.p.WorkosUpdatedAt.UnixMicro(), 10)
		}
	case organizationSet:
		if o, err := decodeOrganization(ev); err == nil {
			return "organizations:" + o.p.WorkosOrgID + "@" + strconv.FormatInt(o.p.WorkosUpdatedAt.UnixMicro(), 10)
		}
	}
	return ""
}

// auditBegin turns the audit trail on for a batch transaction.
func (a *Applier) auditBegin(ctx context.Context, db queries.DBTX, evs []Event, todo []int) error {
	if a.cfg.AuditOff {
		return nil
	}
	keys, err := a.auditKeys(evs, todo)
	if err != nil {
		return err
	}
	if err := a.q.AuditContextSet(ctx, db, queries.AuditContextSetParams{Events: keys}); err != nil {
		return fmt.Errorf("audit context: %w", err)
	}
	return nil
}

// auditFor names the event whose statements follow in db (a transaction
// or a pipeline); nil: none, the rows are resolved by their keys.
func (a *Applier) auditFor(ctx context.Context, db queries.DBTX, ev *Event) error {
	if a.cfg.AuditOff {
		return nil
	}
	var s string
	if ev != nil {
		b, err := json.Marshal(newAuditEvent(*ev))
		if err != nil {
			return fmt.Errorf("encode audit event: %w", err)
		}
		s = string(b)
	}
	if err := a.q.AuditEventSet(ctx, db, s); err != nil {
		return fmt.Errorf("audit event: %w", err)
	}
	return nil
}

// auditClear ends the current event of a batch before statements that
// belong to no one event (set-based upserts, links).
func (b *batchRun) auditClear(ctx context.Context) error {
	if !b.auditCur {
		return nil
	}
	b.auditCur = false
	return b.a.auditFor(ctx, b.tx, nil)
}
