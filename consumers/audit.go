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
// transaction-local settings. syncd.audit_event names the event whose
// statements run now (pipelined and direct events, the isolated path).
// syncd.audit_events maps entity keys to events for the statements that
// belong to no one event, set before each of them, as small as it can be
// (the triggers parse it on every statement it serves): before a stage's
// set-based upserts, the WorkOS rows' key and version of the stage's events
// (a set-based upsert writes the state of one event per row, whose version
// the row then holds); before the meetings' and payment transfers' writes,
// their PaymentIntents, each with the last event that changed its row
// (meetings_write.go); before the batch's links, the entity keys of the
// batch's events, the last of each key in stream order. With the audit
// off, neither is set and the triggers return at once.

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

// auditKeys is syncd.audit_events for the events idx of evs: their entity
// keys (links) or their rows' keys and versions (set-based upserts).
func (a *Applier) auditKeys(evs []Event, idx []int, versions bool) (string, error) {
	m := make(map[string]auditEvent, len(idx))
	for _, i := range idx {
		ev := evs[i]
		r := a.routes.route(ev)
		if r == nil {
			continue
		}
		var keys []string
		if versions {
			keys = versionKeys(r, ev)
		} else if r.Key != nil {
			keys = []string{r.Key(ev)}
		}
		for _, k := range keys {
			if k != "" {
				m[k] = newAuditEvent(ev)
			}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode audit events: %w", err)
	}
	return string(b), nil
}

// versionKeys are the keys the audit trigger finds the events of the
// set-based WorkOS routes by: "<table>:<WorkOS id>@<version in µs>" for
// users and organizations, the version the upsert stores as the trigger
// reads it back from the row; a membership's user and organization (the
// trigger finds a membership's event by its user, and a parent stub's by
// its id), so the stage's newest membership event of a user is named for
// its memberships and stubs.
func versionKeys(r *Route, ev Event) []string {
	switch r.set {
	case userSet:
		if u, err := decodeUser(ev); err == nil {
			return []string{"users:" + u.p.WorkosUserID + "@" + strconv.FormatInt(u.p.WorkosUpdatedAt.UnixMicro(), 10)}
		}
	case organizationSet:
		if o, err := decodeOrganization(ev); err == nil {
			return []string{"organizations:" + o.p.WorkosOrgID + "@" + strconv.FormatInt(o.p.WorkosUpdatedAt.UnixMicro(), 10)}
		}
	case membershipSet:
		// Two fields, read without decoding the event a second time.
		return []string{bodyKey("user", "data.user_id")(ev), bodyKey("org", "data.organization_id")(ev)}
	}
	return nil
}

// auditFor names the event whose statements follow in db (a transaction
// or a pipeline), and so turns the audit trail on for the transaction.
func (a *Applier) auditFor(ctx context.Context, db queries.DBTX, ev *Event) error {
	if a.cfg.AuditOff {
		return nil
	}
	b, err := json.Marshal(newAuditEvent(*ev))
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	if err := a.q.AuditEventSet(ctx, db, string(b)); err != nil {
		return fmt.Errorf("audit event: %w", err)
	}
	return nil
}

// auditStage prepares the stage's set-based upserts: no current event, the
// stage's events by row key and version.
func (b *batchRun) auditStage(ctx context.Context) error {
	idx := b.stageSets
	b.stageSets = b.stageSets[:0]
	return b.auditKeyed(ctx, idx, true)
}

// auditLinks prepares the batch's links: no current event, the batch's
// events by entity key.
func (b *batchRun) auditLinks(ctx context.Context) error {
	if !b.links.any || b.linksReady {
		return nil
	}
	return b.auditKeyed(ctx, b.todo, false)
}

// auditLinksQueued queues the links' audit context at the end of the last
// stage's pipeline when nothing runs after it, saving its round trip.
func (b *batchRun) auditLinksQueued(ctx context.Context, last *stage) (failed bool) {
	if b.a.cfg.AuditOff || len(last.direct) > 0 || last.pipe.empty() {
		return false
	}
	keys, err := b.a.auditKeys(b.evs, b.todo, false)
	if err == nil {
		err = b.a.q.AuditContextSet(ctx, &last.pipe, queries.AuditContextSetParams{Events: keys})
	}
	b.linksReady = err == nil
	return err != nil
}

func (b *batchRun) auditKeyed(ctx context.Context, idx []int, versions bool) error {
	if b.a.cfg.AuditOff {
		return nil
	}
	keys, err := b.a.auditKeys(b.evs, idx, versions)
	if err != nil {
		return err
	}
	if err := b.a.q.AuditContextSet(ctx, b.tx, queries.AuditContextSetParams{Events: keys}); err != nil {
		return fmt.Errorf("audit context: %w", err)
	}
	return nil
}
