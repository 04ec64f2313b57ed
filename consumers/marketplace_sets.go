package consumers

import (
	"context"
	"encoding/json"
	"time"

	"github.com/syncd/syncd/queries"
)

// The set-based apply of the marketplace mirrors (see batch.go): per
// batch, one locked read and one multi-row upsert per table, folded with
// the rules of the table's upsert.

var (
	payoutSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		r, err := decodePayout(ev)
		s.market.payouts.add(r.p.StripePayoutID, i, r, err)
		return err
	}}
	externalAccountSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		r, err := decodeExternalAccount(ev)
		s.market.externalAccounts.add(r.p.StripeExternalAccountID, i, r, err)
		return err
	}}
	identitySessionSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		r, err := decodeIdentitySession(ev)
		s.market.identities.add(r.p.StripeVerificationSessionID, i, r, err)
		return err
	}}
	transferSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		r, err := decodeTransfer(ev)
		s.market.transfers.add(r.p.StripeTransferID, i, r, err)
		return err
	}}
)

// marketSets holds a stage's marketplace rows, one collector per table.
type marketSets struct {
	payouts          keyed[payoutRow]
	externalAccounts keyed[externalAccountRow]
	identities       keyed[identityRow]
	transfers        keyed[transferRow]
}

func (m *marketSets) empty() bool {
	return len(m.payouts.rows)+len(m.externalAccounts.rows)+len(m.identities.rows)+len(m.transfers.rows) == 0
}

// apply writes the marketplace tables, in one fixed order.
func (s *sets) applyMarket(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome) error {
	m := &s.market
	err := applyMirror(ctx, TableStripePayouts, &m.payouts, links, set, false,
		func(keys []string) (map[string]*stripeStored, error) {
			locked, err := q.StripePayoutLockMany(ctx, db, keys)
			stored := make(map[string]*stripeStored, len(locked))
			for _, r := range locked {
				stored[r.StripePayoutID] = &stripeStored{v: stripeVersion{r.StripeCreated.UTC(), r.StripeEventRank, r.StripeEventID}}
			}
			return stored, err
		},
		func(r payoutRow) (stripeVersion, bool) { return r.v, false },
		func(rows []keyedRow[payoutRow], f fold) queries.StripePayoutUpsertParams {
			p := rows[f.newest].r.p
			p.StripeAccountID = lastWritten(rows, f, func(r payoutRow) *string { return r.p.StripeAccountID })
			p.ObjectCreated = lastWritten(rows, f, func(r payoutRow) *time.Time { return r.p.ObjectCreated })
			return p
		},
		func(b json.RawMessage) ([]string, error) { return q.StripePayoutUpsertMany(ctx, db, b) })
	if err != nil {
		return err
	}
	err = applyMirror(ctx, TableStripeExternalAccounts, &m.externalAccounts, links, set, true,
		func(keys []string) (map[string]*stripeStored, error) {
			locked, err := q.StripeExternalAccountLockMany(ctx, db, keys)
			stored := make(map[string]*stripeStored, len(locked))
			for _, r := range locked {
				stored[r.StripeExternalAccountID] = &stripeStored{v: stripeVersion{r.StripeCreated.UTC(), r.StripeEventRank, r.StripeEventID}, deleted: r.Deleted}
			}
			return stored, err
		},
		func(r externalAccountRow) (stripeVersion, bool) { return r.v, r.p.DeletedAt != nil },
		func(rows []keyedRow[externalAccountRow], f fold) queries.StripeExternalAccountUpsertParams {
			p := rows[f.newest].r.p
			p.DeletedAt = nil
			if f.firstDelete >= 0 {
				p.DeletedAt = rows[f.firstDelete].r.p.DeletedAt
			}
			return p
		},
		func(b json.RawMessage) ([]string, error) { return q.StripeExternalAccountUpsertMany(ctx, db, b) })
	if err != nil {
		return err
	}
	err = applyMirror(ctx, TableStripeIdentitySessions, &m.identities, links, set, false,
		func(keys []string) (map[string]*stripeStored, error) {
			locked, err := q.StripeIdentityVerificationSessionLockMany(ctx, db, keys)
			stored := make(map[string]*stripeStored, len(locked))
			for _, r := range locked {
				stored[r.StripeVerificationSessionID] = &stripeStored{v: stripeVersion{r.StripeCreated.UTC(), r.StripeEventRank, r.StripeEventID}}
			}
			return stored, err
		},
		func(r identityRow) (stripeVersion, bool) { return r.v, false },
		func(rows []keyedRow[identityRow], f fold) queries.StripeIdentityVerificationSessionUpsertParams {
			p := rows[f.newest].r.p
			p.ObjectCreated = lastWritten(rows, f, func(r identityRow) *time.Time { return r.p.ObjectCreated })
			return p
		},
		func(b json.RawMessage) ([]string, error) {
			return q.StripeIdentityVerificationSessionUpsertMany(ctx, db, b)
		})
	if err != nil {
		return err
	}
	return applyMirror(ctx, TableStripeTransfers, &m.transfers, links, set, true,
		func(keys []string) (map[string]*stripeStored, error) {
			locked, err := q.StripeTransferLockMany(ctx, db, keys)
			stored := make(map[string]*stripeStored, len(locked))
			for _, r := range locked {
				stored[r.StripeTransferID] = &stripeStored{v: stripeVersion{r.StripeCreated.UTC(), r.StripeEventRank, r.StripeEventID}, deleted: r.Reversed}
			}
			return stored, err
		},
		// A reversal in full is kept like a tombstone.
		func(r transferRow) (stripeVersion, bool) { return r.v, r.p.Reversed },
		func(rows []keyedRow[transferRow], f fold) queries.StripeTransferUpsertParams {
			p := rows[f.newest].r.p
			p.Reversed = f.firstDelete >= 0
			p.AmountReversed = 0
			for j, row := range rows {
				if f.applied[j] {
					p.AmountReversed = max(p.AmountReversed, row.r.p.AmountReversed)
				}
			}
			p.ObjectCreated = lastWritten(rows, f, func(r transferRow) *time.Time { return r.p.ObjectCreated })
			return p
		},
		func(b json.RawMessage) ([]string, error) { return q.StripeTransferUpsertMany(ctx, db, b) })
}
