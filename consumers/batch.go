package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/syncd/syncd/queries"
)

// Set-based apply. The events of a batch that only upsert a versioned row
// (users, organizations, Stripe customers, subscriptions, Connect
// accounts, the marketplace mirrors, directory users and groups) are not
// applied one statement each: per table, the batch's rows are grouped by
// key; the stored versions of those keys are read, locked, in key order
// (so two batches lock in one order and cannot deadlock); the events of each key are folded in stream order with the
// very rules of the table's upsert, which gives each event its outcome
// (applied or stale) exactly as applying them one by one would; and one
// row per key — the state the fold ends in — is written with one
// multi-row upsert carrying the same version guard. Its RETURNING must
// name exactly the keys the fold wrote; anything else (a writer outside
// syncd's routing, a database that orders event ids differently) fails the
// batch over to the per-event path.

// errSetMismatch: the multi-row upsert did not write the keys the fold
// predicted. The batch is redone event by event.
var errSetMismatch = errors.New("set-based apply: written rows differ from the fold")

// setRoute is the set-based apply of a route: add decodes an event into a
// row of its table's collector.
type setRoute struct {
	add func(s *sets, i int, ev Event) error
}

var (
	userSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		r, err := decodeUser(ev)
		s.users.add(r.p.WorkosUserID, i, r, err)
		return err
	}}
	organizationSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		r, err := decodeOrganization(ev)
		s.organizations.add(r.p.WorkosOrgID, i, r, err)
		return err
	}}
	customerSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		r, err := decodeCustomer(ev)
		s.customers.add(r.p.StripeCustomerID, i, r, err)
		return err
	}}
	subscriptionSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		r, err := decodeSubscription(ev)
		s.subscriptions.add(r.p.StripeSubscriptionID, i, r, err)
		return err
	}}
	connectAccountSet = &setRoute{add: func(s *sets, i int, ev Event) error {
		r, err := decodeConnectAccount(ev)
		s.accounts.add(r.p.StripeAccountID, i, r, err)
		return err
	}}
)

// keyed collects one table's rows of a batch by key, in stream order.
type keyed[R any] struct {
	rows map[string][]keyedRow[R]
}

type keyedRow[R any] struct {
	i int // the event's index in the batch
	r R
}

func (k *keyed[R]) add(key string, i int, r R, err error) {
	if err != nil {
		return
	}
	if k.rows == nil {
		k.rows = map[string][]keyedRow[R]{}
	}
	k.rows[key] = append(k.rows[key], keyedRow[R]{i, r})
}

// keys are sorted: rows are locked and written in key order.
func (k *keyed[R]) keys() []string {
	out := make([]string, 0, len(k.rows))
	for key := range k.rows {
		out = append(out, key)
	}
	slices.Sort(out)
	return out
}

// sets holds a batch stage's set-based rows, one collector per table.
type sets struct {
	users         keyed[userRow]
	organizations keyed[organizationRow]
	memberships   keyed[membershipRow]
	customers     keyed[customerRow]
	subscriptions keyed[subscriptionRow]
	accounts      keyed[accountRow]
	market        marketSets
	dsync         dsyncSets
	meetings      meetingSets
}

func (s *sets) empty() bool {
	return len(s.users.rows)+len(s.organizations.rows)+len(s.memberships.rows)+len(s.customers.rows)+len(s.subscriptions.rows)+len(s.accounts.rows) == 0 && s.market.empty() && s.dsync.empty() && len(s.meetings) == 0
}

// setOutcome receives an event's outcome from the fold.
type setOutcome func(i int, out Outcome)

// apply writes every table's rows, in one fixed table order; the
// meetings last, as they set the audit context of their own writes.
func (s *sets) apply(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome, mc meetingConfig) error {
	for _, step := range []func(context.Context, *queries.Queries, queries.DBTX, *linkSet, setOutcome) error{
		s.applyUsers, s.applyOrganizations, s.applyMemberships, s.applyCustomers, s.applySubscriptions, s.applyAccounts, s.applyMarket, s.applyDsync,
	} {
		if err := step(ctx, q, db, links, set); err != nil {
			return err
		}
	}
	if err := s.meetings.apply(ctx, q, db, links, set, mc); err != nil {
		return err
	}
	*s = sets{}
	return nil
}

// fold is what replaying one key's events through its table's upsert
// gives: which events were written, and which rows the final state takes
// its parts from (-1: none).
type fold struct {
	applied []bool
	// newest is the row the data comes from, firstDelete the one the
	// tombstone comes from.
	newest, firstDelete int
	// written: some event was, so the upsert must return the key.
	written bool
}

func newFold(n int) fold {
	return fold{applied: make([]bool, n), newest: -1, firstDelete: -1}
}

// record reports the outcomes of a key's events and adds the links of
// those applied.
func record[R interface{ link(*linkSet) }](rows []keyedRow[R], f fold, links *linkSet, set setOutcome) {
	for j, row := range rows {
		if f.applied[j] {
			set(row.i, Applied)
			row.r.link(links)
		} else {
			set(row.i, Stale)
		}
	}
}

// stripeStored is the stored version of a Stripe mirror row.
type stripeStored struct {
	v       stripeVersion
	deleted bool
}

func (a stripeVersion) less(b stripeVersion) bool {
	switch {
	case !a.created.Equal(b.created):
		return a.created.Before(b.created)
	case a.rank != b.rank:
		return a.rank < b.rank
	default:
		return a.eventID < b.eventID
	}
}

// foldStripe replays the guard of the Stripe mirrors' upserts over one
// key's events in stream order: an event is written when its version is
// newer than the row's, or — tombstoned tables — when it is the first
// deletion (then only as the tombstone). stored is nil when no row exists.
func foldStripe(stored *stripeStored, n int, at func(j int) (v stripeVersion, deleted bool), tombstones bool) fold {
	f := newFold(n)
	var cur *stripeStored
	if stored != nil {
		c := *stored
		cur = &c
	}
	var newest stripeVersion
	for j := range n {
		v, del := at(j)
		if f.newest < 0 || newest.less(v) {
			f.newest, newest = j, v
		}
		switch {
		case cur == nil:
			cur = &stripeStored{v: v, deleted: del}
		case cur.v.less(v):
			cur.v = v
			cur.deleted = cur.deleted || (tombstones && del)
		case tombstones && !cur.deleted && del:
			cur.deleted = true
		default:
			continue
		}
		f.applied[j], f.written = true, true
		if del && f.firstDelete < 0 {
			f.firstDelete = j
		}
	}
	return f
}

// workosStored is the stored version of a WorkOS row.
type workosStored struct {
	v *time.Time
}

// foldWorkOS replays the guard of UserUpsert and OrganizationUpsert (and
// of the directory users' and groups', whose stubs are stored without a
// version) over one key's events in stream order: written unless the row
// is newer (ties go to the later event); a deleted row takes newer data
// too, and stays deleted. newest is the last written event, or the last event when none
// was.
func foldWorkOS(stored *workosStored, n int, at func(j int) time.Time) fold {
	f := newFold(n)
	var cur *workosStored
	if stored != nil {
		c := *stored
		if c.v != nil {
			c.v = ptr(c.v.Truncate(time.Microsecond))
		}
		cur = &c
	}
	for j := range n {
		v := at(j).Truncate(time.Microsecond)
		switch {
		case cur == nil:
			cur = &workosStored{v: &v}
		case cur.v == nil || !v.Before(*cur.v):
			cur.v = &v
		default:
			continue
		}
		f.applied[j], f.written, f.newest = true, true, j
	}
	if f.newest < 0 {
		f.newest = n - 1
	}
	return f
}

// lastWritten returns the last row written whose value pick finds set
// (COALESCE(EXCLUDED.x, stored.x) over the sequence), else nil.
func lastWritten[R any, T any](rows []keyedRow[R], f fold, pick func(R) *T) *T {
	for j := len(rows) - 1; j >= 0; j-- {
		if f.applied[j] {
			if v := pick(rows[j].r); v != nil {
				return v
			}
		}
	}
	return nil
}

// firstWritten returns the first row written whose value pick finds set
// (COALESCE(stored.x, EXCLUDED.x) over the sequence), else nil.
func firstWritten[R any, T any](rows []keyedRow[R], f fold, pick func(R) *T) *T {
	for j := range rows {
		if f.applied[j] {
			if v := pick(rows[j].r); v != nil {
				return v
			}
		}
	}
	return nil
}

// verify checks that the upsert wrote the keys the fold said it would.
func verify(table Table, want map[string]bool, got []string) error {
	n := 0
	for _, k := range got {
		if !want[k] {
			return fmt.Errorf("%w: %s %s written", errSetMismatch, table, k)
		}
		n++
	}
	if n != len(want) {
		return fmt.Errorf("%w: %s: %d rows written, %d expected", errSetMismatch, table, n, len(want))
	}
	return nil
}

// applyMirror folds and writes one Stripe mirror's rows of a batch: lock
// reads the stored versions, at gives an event's version and whether it
// deletes, final builds the row a key's events end in.
func applyMirror[R interface{ link(*linkSet) }, P any](
	ctx context.Context, table Table, k *keyed[R], links *linkSet, set setOutcome, tombstones bool,
	lock func(keys []string) (map[string]*stripeStored, error),
	at func(R) (stripeVersion, bool),
	final func([]keyedRow[R], fold) P,
	write func(json.RawMessage) ([]string, error),
) error {
	return applyKeyed(ctx, table, k, links, set, lock,
		func(stored *stripeStored, rows []keyedRow[R]) fold {
			return foldStripe(stored, len(rows), func(j int) (stripeVersion, bool) { return at(rows[j].r) }, tombstones)
		}, final, write)
}

// applyKeyed is the frame of a table's set-based apply: lock reads the
// stored rows of the batch's keys (S: nil when none), foldKey replays a
// key's events against its stored row, final builds the row the key ends
// in; every row is written with one statement and checked against the
// fold, and every event gets its outcome.
func applyKeyed[R interface{ link(*linkSet) }, S any, P any](
	ctx context.Context, table Table, k *keyed[R], links *linkSet, set setOutcome,
	lock func(keys []string) (map[string]S, error),
	foldKey func(S, []keyedRow[R]) fold,
	final func([]keyedRow[R], fold) P,
	write func(json.RawMessage) ([]string, error),
) error {
	if len(k.rows) == 0 {
		return nil
	}
	keys := k.keys()
	stored, err := lock(keys)
	if err != nil {
		return fmt.Errorf("lock %s: %w", table, err)
	}
	out := make([]P, 0, len(keys))
	want := map[string]bool{}
	for _, key := range keys {
		rows := k.rows[key]
		f := foldKey(stored[key], rows)
		out = append(out, final(rows, f))
		if f.written {
			want[key] = true
		}
		record(rows, f, links, set)
	}
	return writeMany(ctx, table, out, want, write)
}

func (s *sets) applyCustomers(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome) error {
	return applyMirror(ctx, TableStripeCustomers, &s.customers, links, set, true,
		func(keys []string) (map[string]*stripeStored, error) {
			locked, err := q.StripeCustomerLockMany(ctx, db, keys)
			stored := make(map[string]*stripeStored, len(locked))
			for _, r := range locked {
				stored[r.StripeCustomerID] = &stripeStored{v: stripeVersion{r.StripeCreated.UTC(), r.StripeEventRank, r.StripeEventID}, deleted: r.Deleted}
			}
			return stored, err
		},
		func(r customerRow) (stripeVersion, bool) { return r.v, r.p.DeletedAt != nil },
		func(rows []keyedRow[customerRow], f fold) queries.StripeCustomerUpsertParams {
			p := rows[f.newest].r.p
			p.DeletedAt = nil
			if f.firstDelete >= 0 {
				p.DeletedAt = rows[f.firstDelete].r.p.DeletedAt
			}
			p.ObjectCreated = lastWritten(rows, f, func(r customerRow) *time.Time { return r.p.ObjectCreated })
			return p
		},
		func(b json.RawMessage) ([]string, error) { return q.StripeCustomerUpsertMany(ctx, db, b) })
}

func (s *sets) applySubscriptions(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome) error {
	return applyMirror(ctx, TableStripeSubscriptions, &s.subscriptions, links, set, true,
		func(keys []string) (map[string]*stripeStored, error) {
			locked, err := q.StripeSubscriptionLockMany(ctx, db, keys)
			stored := make(map[string]*stripeStored, len(locked))
			for _, r := range locked {
				stored[r.StripeSubscriptionID] = &stripeStored{v: stripeVersion{r.StripeCreated.UTC(), r.StripeEventRank, r.StripeEventID}, deleted: r.Deleted}
			}
			return stored, err
		},
		func(r subscriptionRow) (stripeVersion, bool) { return r.v, r.p.DeletedAt != nil },
		func(rows []keyedRow[subscriptionRow], f fold) queries.StripeSubscriptionUpsertParams {
			p := rows[f.newest].r.p
			p.DeletedAt = nil
			if f.firstDelete >= 0 {
				p.DeletedAt = rows[f.firstDelete].r.p.DeletedAt
			}
			p.ObjectCreated = lastWritten(rows, f, func(r subscriptionRow) *time.Time { return r.p.ObjectCreated })
			return p
		},
		func(b json.RawMessage) ([]string, error) { return q.StripeSubscriptionUpsertMany(ctx, db, b) })
}

func (s *sets) applyAccounts(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome) error {
	return applyMirror(ctx, TableStripeConnectAccounts, &s.accounts, links, set, false,
		func(keys []string) (map[string]*stripeStored, error) {
			locked, err := q.StripeConnectAccountLockMany(ctx, db, keys)
			stored := make(map[string]*stripeStored, len(locked))
			for _, r := range locked {
				// account.updated is decided by the version of the
				// account's data, not by a deauthorization's (which
				// carries none); a row with no data yet takes any.
				if r.DataStripeCreated != nil && r.DataEventRank != nil && r.DataEventID != nil {
					stored[r.StripeAccountID] = &stripeStored{v: stripeVersion{r.DataStripeCreated.UTC(), *r.DataEventRank, *r.DataEventID}}
				}
			}
			return stored, err
		},
		func(r accountRow) (stripeVersion, bool) { return r.v, false },
		func(rows []keyedRow[accountRow], f fold) queries.StripeConnectAccountUpsertParams {
			p := rows[f.newest].r.p
			p.ObjectCreated = lastWritten(rows, f, func(r accountRow) *time.Time { return r.p.ObjectCreated })
			return p
		},
		func(b json.RawMessage) ([]string, error) { return q.StripeConnectAccountUpsertMany(ctx, db, b) })
}

func (s *sets) applyUsers(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome) error {
	return applyKeyed(ctx, TableUsers, &s.users, links, set,
		func(keys []string) (map[string]*workosStored, error) {
			locked, err := q.UserLockMany(ctx, db, keys)
			stored := make(map[string]*workosStored, len(locked))
			for _, r := range locked {
				stored[r.WorkosUserID] = &workosStored{v: r.WorkosUpdatedAt}
			}
			return stored, err
		},
		foldUpdatedAt[userRow](func(r userRow) time.Time { return *r.p.WorkosUpdatedAt }),
		func(rows []keyedRow[userRow], f fold) queries.UserUpsertParams { return rows[f.newest].r.p },
		func(b json.RawMessage) ([]string, error) { return q.UserUpsertMany(ctx, db, b) })
}

func (s *sets) applyOrganizations(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome) error {
	return applyKeyed(ctx, TableOrganizations, &s.organizations, links, set,
		func(keys []string) (map[string]*workosStored, error) {
			locked, err := q.OrganizationLockMany(ctx, db, keys)
			stored := make(map[string]*workosStored, len(locked))
			for _, r := range locked {
				stored[r.WorkosOrgID] = &workosStored{v: r.WorkosUpdatedAt}
			}
			return stored, err
		},
		foldUpdatedAt[organizationRow](func(r organizationRow) time.Time { return *r.p.WorkosUpdatedAt }),
		func(rows []keyedRow[organizationRow], f fold) queries.OrganizationUpsertParams {
			p := rows[f.newest].r.p
			if f.written {
				// slug and type keep the first value they get; WorkOS's
				// customer id the last one sent.
				p.Slug = firstWritten(rows, f, func(r organizationRow) *string { return r.p.Slug })
				p.Type = firstWritten(rows, f, func(r organizationRow) *string { return r.p.Type })
				p.StripeCustomerID = lastWritten(rows, f, func(r organizationRow) *string { return r.p.StripeCustomerID })
			}
			return p
		},
		func(b json.RawMessage) ([]string, error) { return q.OrganizationUpsertMany(ctx, db, b) })
}

// foldUpdatedAt is applyKeyed's fold for a WorkOS row versioned by
// updated_at (foldWorkOS).
func foldUpdatedAt[R any](v func(R) time.Time) func(*workosStored, []keyedRow[R]) fold {
	return func(stored *workosStored, rows []keyedRow[R]) fold {
		return foldWorkOS(stored, len(rows), func(j int) time.Time { return v(rows[j].r) })
	}
}

// writeMany sends rows as the JSON array the multi-row upserts read, and
// checks what they wrote.
func writeMany[P any](ctx context.Context, table Table, rows []P, want map[string]bool, write func(json.RawMessage) ([]string, error)) error {
	b, err := rowsJSON(rows)
	if err != nil {
		return fmt.Errorf("encode %s rows: %w", table, err)
	}
	got, err := write(b)
	if err != nil {
		return fmt.Errorf("upsert %s: %w", table, err)
	}
	return verify(table, want, got)
}

// rowsJSON encodes query parameter structs as a JSON array of objects
// keyed by column name (the snake case of the field names sqlc derived
// from the columns), for jsonb_populate_recordset. Times are cut to
// microseconds first, as pgx does when it sends one: Postgres would round
// the text form instead.
func rowsJSON[P any](rows []P) (json.RawMessage, error) {
	fields := columnNames(reflect.TypeFor[P]())
	var b []byte
	b = append(b, '[')
	for i := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		v := reflect.ValueOf(&rows[i]).Elem()
		for f, c := range fields {
			if f > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, c.name...)
			b = append(b, '"', ':')
			var x any
			switch fv := v.FieldByIndex(c.index).Interface().(type) {
			case time.Time:
				x = fv.Truncate(time.Microsecond)
			case *time.Time:
				if fv != nil {
					x = fv.Truncate(time.Microsecond)
				}
			case json.RawMessage:
				if fv == nil {
					x = nil
				} else {
					x = fv
				}
			default:
				x = fv
			}
			enc, err := json.Marshal(x)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			b = append(b, enc...)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	return b, nil
}

var columnCache sync.Map // reflect.Type → []column

// column is a struct field and the column it holds.
type column struct {
	index []int
	name  string
}

// columnNames maps sqlc's field names back to the column names:
// StripeCustomerID → stripe_customer_id, ProfilePictureUrl →
// profile_picture_url. The fields of an embedded struct are the row's own
// (a query's parameters plus a column the query computes itself).
func columnNames(t reflect.Type) []column {
	if v, ok := columnCache.Load(t); ok {
		return v.([]column)
	}
	var cols []column
	for _, f := range reflect.VisibleFields(t) {
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			continue
		}
		cols = append(cols, column{index: f.Index, name: snake(f.Name)})
	}
	columnCache.Store(t, cols)
	return cols
}

func snake(name string) string {
	var b strings.Builder
	r := []rune(name)
	for i, c := range r {
		if unicode.IsUpper(c) {
			// A word starts at an upper-case letter after a lower-case one,
			// or before one that ends an acronym (IDs → i_ds is not used).
			if i > 0 && (unicode.IsLower(r[i-1]) || (i+1 < len(r) && unicode.IsLower(r[i+1]) && unicode.IsUpper(r[i-1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}
