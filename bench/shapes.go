package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The limit's statements in the best shape known for them. The applier
// passes a batch's rows as one JSON array (jsonb_populate_recordset); for
// the customer upsert, the hot-key workload's whole write, one array per
// column through unnest is faster (bench/NOTES.md), so the limit sends
// that, with the applier's own ON CONFLICT guard, and the rows decoded
// before the clock starts.

const customerUpsertName = "-- name: StripeCustomerUpsertMany "

const customerUnnest = `FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::timestamptz[], $8::timestamptz[], $9::int2[], $10::text[], $11::timestamptz[])
  AS r(stripe_customer_id, email, name, workos_user_id, workos_org_id, metadata,
       object_created, stripe_created, stripe_event_rank, stripe_event_id, deleted_at)`

// bestShapes rewrites the statements of txs that have a better shape.
func bestShapes(txs [][]stmt) ([][]stmt, error) {
	for _, tx := range txs {
		for i, s := range tx {
			if !strings.HasPrefix(s.sql, customerUpsertName) {
				continue
			}
			u, err := customerUpsertUnnest(s)
			if err != nil {
				return nil, err
			}
			tx[i] = u
		}
	}
	return txs, nil
}

func customerUpsertUnnest(s stmt) (stmt, error) {
	from := "FROM jsonb_populate_recordset(NULL::stripe_customers, $1::jsonb) AS r"
	sel := "r.workos_org_id, r.metadata,"
	if !strings.Contains(s.sql, from) || !strings.Contains(s.sql, sel) || len(s.args) != 1 {
		return s, fmt.Errorf("limit: StripeCustomerUpsertMany changed shape; update bench/shapes.go")
	}
	raw, ok := s.args[0].(json.RawMessage)
	if !ok {
		return s, fmt.Errorf("limit: StripeCustomerUpsertMany takes %T, want json.RawMessage", s.args[0])
	}
	var rows []struct {
		ID            string          `json:"stripe_customer_id"`
		Email         *string         `json:"email"`
		Name          *string         `json:"name"`
		User          *string         `json:"workos_user_id"`
		Org           *string         `json:"workos_org_id"`
		Metadata      json.RawMessage `json:"metadata"`
		ObjectCreated *time.Time      `json:"object_created"`
		Created       time.Time       `json:"stripe_created"`
		Rank          int16           `json:"stripe_event_rank"`
		EventID       string          `json:"stripe_event_id"`
		Deleted       *time.Time      `json:"deleted_at"`
	}
	if err := json.Unmarshal(raw, &rows); err != nil {
		return s, fmt.Errorf("limit: StripeCustomerUpsertMany rows: %w", err)
	}
	n := len(rows)
	ids, emails, names, users, orgs, meta := make([]string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
	objCreated, created, ranks, events, deleted := make([]*time.Time, n), make([]time.Time, n), make([]int16, n), make([]string, n), make([]*time.Time, n)
	for i, r := range rows {
		ids[i], emails[i], names[i], users[i], orgs[i] = r.ID, r.Email, r.Name, r.User, r.Org
		if len(r.Metadata) > 0 && string(r.Metadata) != "null" {
			m := string(r.Metadata)
			meta[i] = &m
		}
		objCreated[i], created[i], ranks[i], events[i], deleted[i] = r.ObjectCreated, r.Created, r.Rank, r.EventID, r.Deleted
	}
	sql := strings.Replace(strings.Replace(s.sql, from, customerUnnest, 1), sel, "r.workos_org_id, r.metadata::jsonb,", 1)
	return stmt{sql, []any{ids, emails, names, users, orgs, meta, objCreated, created, ranks, events, deleted}}, nil
}
