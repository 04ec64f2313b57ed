package consumers

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/syncd/syncd/queries"
)

// The set-based apply of the meeting routes (Checkout Sessions,
// PaymentIntents, refunds, disputes). Their rows are not one per event:
// a booking's Session and PaymentIntent may each have made a meeting row
// that a later event merges into one, a refund reaches its meeting
// through the PaymentIntent's facts, a payment transfer rides on the
// booking. So, per batch stage:
//
//   - the events are decoded and the keys they name gathered (Sessions,
//     PaymentIntents, the charges of disputes that name no PaymentIntent);
//   - the PaymentIntents' advisory locks are taken, in key order (the same
//     locks the per-event path takes: a replay beside the consumer is a
//     second writer), and every row those keys reach is read once, locked
//     in key order: meetings, stripe_payment_intents, the noted Checkout
//     Sessions and, when a booking carries one, payment transfers;
//   - the events are applied in stream order by the per-event path's own
//     handlers, against those rows held in memory (memMeetings), which
//     gives each event its outcome;
//   - each row that changed is written once, one statement per table
//     (rows merged away deleted first).
//
// A read the loaded rows cannot answer (a key outside them) and a write
// that does not return exactly the rows the fold changed fail the batch
// over to the per-event path (errSetMismatch).

var (
	checkoutSessionSet = meetingSet(decodeCheckoutSession)
	paymentIntentSet   = meetingSet(decodePaymentIntent)
	chargeRefundedSet  = meetingSet(decodeChargeRefunded)
	disputeCreatedSet  = meetingSet(decodeDisputeCreated)
)

func meetingSet(decode func(Event) (meetingEvent, error)) *setRoute {
	return &setRoute{add: func(s *sets, i int, ev Event) error {
		e, err := decode(ev)
		if err != nil {
			return err
		}
		s.meetings = append(s.meetings, meetingSetEvent{i: i, ev: ev, e: e})
		return nil
	}}
}

// meetingSets are a stage's meeting events, in stream order.
type meetingSets []meetingSetEvent

type meetingSetEvent struct {
	i  int // the event's index in the batch
	ev Event
	e  meetingEvent
}

// meetingConfig is what the meetings' apply needs beyond the other
// tables': the handlers' log, and whether the audit trail is on.
type meetingConfig struct {
	log   *slog.Logger
	audit bool
}

// apply folds the stage's meeting events over their rows and writes them.
func (ms meetingSets) apply(ctx context.Context, q *queries.Queries, db queries.DBTX, links *linkSet, set setOutcome, cfg meetingConfig) error {
	if len(ms) == 0 {
		return nil
	}
	mem, err := loadMeetings(ctx, q, db, ms.keys())
	if err != nil {
		return err
	}
	mt := meetingTx{st: mem, links: links, log: cfg.log}
	for j, m := range ms {
		mem.cur = j
		out, err := m.e.apply(ctx, mt, m.ev)
		if err != nil {
			return fmt.Errorf("apply %s %s: %w", m.ev.Source, m.ev.Envelope.ID, err)
		}
		set(m.i, out)
	}
	return mem.write(ctx, q, db, ms, cfg.audit)
}

// meetingKeys are the keys a stage's meeting events name.
type meetingKeys struct {
	sessions, payments, charges map[string]bool
	// transfers: a booking carries a payment transfer.
	transfers bool
}

func (ms meetingSets) keys() meetingKeys {
	k := meetingKeys{sessions: map[string]bool{}, payments: map[string]bool{}, charges: map[string]bool{}}
	add := func(m map[string]bool, id *string) {
		if id != nil && *id != "" {
			m[*id] = true
		}
	}
	for _, m := range ms {
		e := m.e
		if e.ignored {
			continue
		}
		add(k.sessions, e.meeting.sessionID)
		add(k.payments, e.meeting.paymentIntentID)
		if p := e.payment; p != nil {
			if p.paymentIntentID != "" {
				k.payments[p.paymentIntentID] = true
			} else {
				k.charges[e.disputedCharge] = true
			}
		}
		if b := e.booking; b != nil {
			add(k.sessions, b.session)
			add(k.payments, b.paymentIntent)
			k.transfers = k.transfers || metaString(b.metadata, "payment") != nil || metaString(b.metadata, "transfer") != nil
		}
	}
	return k
}

// loadMeetings takes the locks and reads the rows the keys reach.
func loadMeetings(ctx context.Context, q *queries.Queries, db queries.DBTX, k meetingKeys) (*memMeetings, error) {
	m := newMemMeetings()
	if len(k.charges) > 0 {
		found, err := q.StripePaymentIntentIDsByCharges(ctx, db, sortedKeys(k.charges))
		if err != nil {
			return nil, fmt.Errorf("payment intents of disputed charges: %w", err)
		}
		for _, r := range found {
			k.payments[r.StripePaymentIntentID] = true
		}
		m.charges = k.charges
	}
	sessions, payments := sortedKeys(k.sessions), sortedKeys(k.payments)
	lock, err := q.MeetingLockPaymentIntents(ctx, db, payments)
	if err != nil {
		return nil, fmt.Errorf("lock payment intents: %w", err)
	}
	m.now = lock.Now.UTC()
	maps.Copy(m.locked, k.payments)

	checkouts, err := q.StripeCheckoutSessionGetMany(ctx, db, queries.StripeCheckoutSessionGetManyParams{StripeSessionIds: sessions, StripePaymentIntentIds: payments})
	if err != nil {
		return nil, fmt.Errorf("checkout sessions: %w", err)
	}
	for _, r := range checkouts {
		r.CreatedAt = r.CreatedAt.UTC()
		m.checkouts[r.StripeSessionID] = r
	}
	m.checkoutSessions, m.checkoutPayments = k.sessions, k.payments

	// A Session noted with one of the PaymentIntents may have a meeting row
	// of its own (a booking that named no PaymentIntent), which the
	// PaymentIntent's events find and merge: its row is read too.
	withNoted := maps.Clone(k.sessions)
	for _, r := range checkouts {
		withNoted[r.StripeSessionID] = true
	}
	sessions = sortedKeys(withNoted)

	meetings, err := q.MeetingLockMany(ctx, db, queries.MeetingLockManyParams{StripeSessionIds: sessions, StripePaymentIntentIds: payments})
	if err != nil {
		return nil, fmt.Errorf("lock meetings: %w", err)
	}
	m.meetings.sessions, m.meetings.payments = withNoted, k.payments
	// The PaymentIntents of the meetings found by their Session: their
	// facts are folded into the meeting.
	more := maps.Clone(k.payments)
	for _, r := range meetings {
		m.meetings.load(normalized(r))
		if r.StripePaymentIntentID != nil {
			more[*r.StripePaymentIntentID] = true
		}
	}
	rows, err := q.StripePaymentIntentLockMany(ctx, db, sortedKeys(more))
	if err != nil {
		return nil, fmt.Errorf("lock payment intents: %w", err)
	}
	for _, r := range rows {
		r = normalizedPayment(r)
		m.payments[r.StripePaymentIntentID] = &r
		m.paymentsRead[r.StripePaymentIntentID] = r
	}
	m.paymentsLoaded = more
	if !k.transfers {
		return m, nil
	}

	// A payment transfer is written under its PaymentIntent's lock, and is
	// found by the keys its meeting knows.
	if extra := sortedKeys(more, k.payments); len(extra) > 0 {
		if _, err := q.MeetingLockPaymentIntents(ctx, db, extra); err != nil {
			return nil, fmt.Errorf("lock payment intents: %w", err)
		}
		maps.Copy(m.locked, more)
	}
	ts := maps.Clone(k.sessions)
	for _, r := range m.meetings.rows {
		if r.StripeSessionID != nil {
			ts[*r.StripeSessionID] = true
		}
	}
	for s := range m.checkouts {
		ts[s] = true
	}
	transfers, err := q.PaymentTransferLockMany(ctx, db, queries.PaymentTransferLockManyParams{
		StripeSessionIds: sortedKeys(ts), StripePaymentIntentIds: sortedKeys(more),
	})
	if err != nil {
		return nil, fmt.Errorf("lock payment transfers: %w", err)
	}
	for _, r := range transfers {
		m.transfers.load(normalizedTransfer(r))
	}
	m.transfers.sessions, m.transfers.payments = ts, more
	return m, nil
}

// sortedKeys lists the keys of m that are not in any of except, sorted.
func sortedKeys(m map[string]bool, except ...map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if !slices.ContainsFunc(except, func(e map[string]bool) bool { return e[k] }) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// notLoaded: the fold asked for a row the batch did not read.
func notLoaded(what, key string) error {
	return fmt.Errorf("%w: %s %s was not read for the batch", errSetMismatch, what, key)
}

// memMeetings is the meetingStore of the set-based path: a stage's rows,
// as read and then as its events change them. It answers as the queries
// would: rows oldest first, an insert that meets a held key does nothing,
// times kept as Postgres keeps them (UTC, microseconds).
type memMeetings struct {
	// now is the transaction's time: the created_at of new rows.
	now time.Time
	// cur is the event being applied (its place in the stage).
	cur int
	// locked: the PaymentIntents whose advisory lock is held.
	locked   map[string]bool
	meetings rowsByKeys[queries.Meeting]

	payments map[string]*queries.StripePaymentIntent
	// paymentsRead are the rows as read; paymentsLoaded the ids read.
	paymentsRead   map[string]queries.StripePaymentIntent
	paymentsLoaded map[string]bool
	// charges: the disputed charges whose PaymentIntents were read.
	charges map[string]bool

	checkouts                          map[string]queries.StripeCheckoutSession
	checkoutSessions, checkoutPayments map[string]bool
	// noted are the Sessions noted by the stage's events, in order.
	noted []string

	transfers rowsByKeys[queries.PaymentTransfer]
}

func newMemMeetings() *memMeetings {
	return &memMeetings{
		locked: map[string]bool{},
		meetings: newRowsByKeys(func(m *queries.Meeting) rowKeys {
			return rowKeys{m.ID, m.StripeSessionID, m.StripePaymentIntentID, m.CreatedAt}
		}),
		payments:       map[string]*queries.StripePaymentIntent{},
		paymentsRead:   map[string]queries.StripePaymentIntent{},
		paymentsLoaded: map[string]bool{},
		checkouts:      map[string]queries.StripeCheckoutSession{},
		transfers: newRowsByKeys(func(p *queries.PaymentTransfer) rowKeys {
			return rowKeys{p.ID, p.StripeSessionID, p.StripePaymentIntentID, p.CreatedAt}
		}),
	}
}

func (m *memMeetings) lockPaymentIntent(_ context.Context, pi string) error {
	if !m.locked[pi] {
		return notLoaded("lock of PaymentIntent", pi)
	}
	return nil
}

func (m *memMeetings) meetingsForUpdate(_ context.Context, session, pi *string) ([]queries.Meeting, error) {
	return m.meetings.find("meetings", session, pi)
}

func (m *memMeetings) meetingBySession(_ context.Context, session string) (queries.Meeting, error) {
	return m.meetings.one("meeting", &session, nil)
}

func (m *memMeetings) meetingByPaymentIntent(_ context.Context, pi string) (queries.Meeting, error) {
	return m.meetings.one("meeting", nil, &pi)
}

func (m *memMeetings) insertMeeting(_ context.Context, p queries.MeetingInsertParams) (uuid.UUID, error) {
	if m.meetings.held(p.StripeSessionID, p.StripePaymentIntentID, uuid.Nil) {
		return uuid.Nil, queries.ErrNotFound // ON CONFLICT DO NOTHING
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return uuid.Nil, fmt.Errorf("meeting id: %w", err)
	}
	row := queries.Meeting{ID: id, CreatedAt: m.now, UpdatedAt: m.now}
	setMeeting(&row, p)
	return id, m.meetings.put(row, m.cur)
}

func (m *memMeetings) updateMeeting(_ context.Context, p queries.MeetingUpdateParams) error {
	cur, ok := m.meetings.rows[p.ID]
	if !ok {
		return nil // UPDATE of no row
	}
	row := *cur
	setMeeting(&row, queries.MeetingInsertParams{
		StripeSessionID: p.StripeSessionID, StripePaymentIntentID: p.StripePaymentIntentID, StripeCustomerID: p.StripeCustomerID,
		BookableEventID: p.BookableEventID, ExpertWorkosUserID: p.ExpertWorkosUserID, GuestEmail: p.GuestEmail, GuestName: p.GuestName,
		StartTime: p.StartTime, DurationMinutes: p.DurationMinutes, Notes: p.Notes, Timezone: p.Timezone, Locale: p.Locale,
		Amount: p.Amount, ApplicationFeeAmount: p.ApplicationFeeAmount, AmountRefunded: p.AmountRefunded, Currency: p.Currency,
		PaymentStatus: p.PaymentStatus, PaymentStatusRank: p.PaymentStatusRank, PaymentStatusVersion: p.PaymentStatusVersion,
		DetailsVersion: p.DetailsVersion, DetailsEventID: p.DetailsEventID,
	})
	return m.meetings.put(row, m.cur)
}

// setMeeting stores the columns MeetingInsert and MeetingUpdate write.
func setMeeting(m *queries.Meeting, p queries.MeetingInsertParams) {
	m.StripeSessionID, m.StripePaymentIntentID, m.StripeCustomerID = p.StripeSessionID, p.StripePaymentIntentID, p.StripeCustomerID
	m.BookableEventID, m.ExpertWorkosUserID, m.GuestEmail, m.GuestName = p.BookableEventID, p.ExpertWorkosUserID, p.GuestEmail, p.GuestName
	m.StartTime, m.DurationMinutes, m.Notes = dbTime(p.StartTime), p.DurationMinutes, p.Notes
	m.Timezone, m.Locale = p.Timezone, p.Locale
	m.Amount, m.ApplicationFeeAmount, m.AmountRefunded, m.Currency = p.Amount, p.ApplicationFeeAmount, p.AmountRefunded, p.Currency
	m.PaymentStatus, m.PaymentStatusRank, m.PaymentStatusVersion = p.PaymentStatus, p.PaymentStatusRank, *dbTime(&p.PaymentStatusVersion)
	m.DetailsVersion, m.DetailsEventID = dbTime(p.DetailsVersion), p.DetailsEventID
}

func (m *memMeetings) deleteMeeting(_ context.Context, id uuid.UUID) error {
	m.meetings.remove(id, m.cur)
	return nil
}

func (m *memMeetings) paymentIntent(_ context.Context, id string, _ bool) (queries.StripePaymentIntent, error) {
	if !m.paymentsLoaded[id] {
		return queries.StripePaymentIntent{}, notLoaded("PaymentIntent", id)
	}
	p, ok := m.payments[id]
	if !ok {
		return queries.StripePaymentIntent{}, queries.ErrNotFound
	}
	return *p, nil
}

func (m *memMeetings) insertPaymentIntent(_ context.Context, p queries.StripePaymentIntentInsertParams) error {
	switch {
	case !m.paymentsLoaded[p.StripePaymentIntentID]:
		return notLoaded("PaymentIntent", p.StripePaymentIntentID)
	case m.payments[p.StripePaymentIntentID] != nil:
		return queries.ErrNotFound // ON CONFLICT DO NOTHING
	}
	m.payments[p.StripePaymentIntentID] = &queries.StripePaymentIntent{
		StripePaymentIntentID: p.StripePaymentIntentID,
		StripeChargeID:        p.StripeChargeID,
		StripeCustomerID:      p.StripeCustomerID,
		Amount:                p.Amount,
		ApplicationFeeAmount:  p.ApplicationFeeAmount,
		Currency:              p.Currency,
		AmountRefunded:        p.AmountRefunded,
		PaymentStatus:         p.PaymentStatus,
		PaymentStatusRank:     p.PaymentStatusRank,
		PaymentStatusVersion:  *dbTime(&p.PaymentStatusVersion),
		StripeCreated:         dbTime(p.StripeCreated),
		StripeEventID:         p.StripeEventID,
		CreatedAt:             m.now,
		UpdatedAt:             m.now,
	}
	return nil
}

func (m *memMeetings) updatePaymentIntent(_ context.Context, p queries.StripePaymentIntentUpdateParams) error {
	r := m.payments[p.StripePaymentIntentID]
	if r == nil {
		return nil // UPDATE of no row
	}
	r.StripeChargeID, r.StripeCustomerID, r.Amount = p.StripeChargeID, p.StripeCustomerID, p.Amount
	r.ApplicationFeeAmount, r.Currency, r.AmountRefunded = p.ApplicationFeeAmount, p.Currency, p.AmountRefunded
	r.PaymentStatus, r.PaymentStatusRank, r.PaymentStatusVersion = p.PaymentStatus, p.PaymentStatusRank, *dbTime(&p.PaymentStatusVersion)
	r.StripeCreated, r.StripeEventID = dbTime(p.StripeCreated), p.StripeEventID
	return nil
}

func (m *memMeetings) paymentIntentByCharge(_ context.Context, charge string) (string, error) {
	if !m.charges[charge] {
		return "", notLoaded("PaymentIntent of charge", charge)
	}
	// Every PaymentIntent that named the charge was read; a charge has one.
	found := ""
	for id, p := range m.payments {
		if p.StripeChargeID != nil && *p.StripeChargeID == charge && (found == "" || id < found) {
			found = id
		}
	}
	if found == "" {
		return "", queries.ErrNotFound
	}
	return found, nil
}

func (m *memMeetings) noteCheckoutSession(_ context.Context, p queries.StripeCheckoutSessionNoteParams) error {
	if !m.checkoutSessions[p.StripeSessionID] {
		return notLoaded("Checkout Session", p.StripeSessionID)
	}
	if _, ok := m.checkouts[p.StripeSessionID]; !ok { // else ON CONFLICT DO NOTHING
		m.checkouts[p.StripeSessionID] = queries.StripeCheckoutSession{
			StripeSessionID: p.StripeSessionID, StripePaymentIntentID: p.StripePaymentIntentID, CreatedAt: m.now,
		}
		m.noted = append(m.noted, p.StripeSessionID)
	}
	return nil
}

func (m *memMeetings) checkoutSessionOf(_ context.Context, pi string) (string, error) {
	if !m.checkoutPayments[pi] {
		return "", notLoaded("Checkout Sessions of PaymentIntent", pi)
	}
	// The first noted (a PaymentIntent has one Session; byte order stands
	// in for the database's collation among several of one instant).
	var first *queries.StripeCheckoutSession
	for _, c := range m.checkouts {
		if c.StripePaymentIntentID == pi && (first == nil || c.CreatedAt.Before(first.CreatedAt) ||
			c.CreatedAt.Equal(first.CreatedAt) && c.StripeSessionID < first.StripeSessionID) {
			first = &c
		}
	}
	if first == nil {
		return "", queries.ErrNotFound
	}
	return first.StripeSessionID, nil
}

func (m *memMeetings) paymentTransfersForUpdate(_ context.Context, p queries.PaymentTransferGetForUpdateParams) ([]queries.PaymentTransfer, error) {
	return m.transfers.find("payment transfers", p.StripeSessionID, p.StripePaymentIntentID)
}

func (m *memMeetings) insertPaymentTransfer(_ context.Context, p queries.PaymentTransferInsertParams) error {
	if m.transfers.held(p.StripeSessionID, p.StripePaymentIntentID, uuid.Nil) {
		return queries.ErrNotFound // ON CONFLICT DO NOTHING
	}
	id, err := uuid.NewRandom()
	if err != nil {
		return fmt.Errorf("payment transfer id: %w", err)
	}
	return m.transfers.put(queries.PaymentTransfer{
		ID:                     id,
		StripeSessionID:        p.StripeSessionID,
		StripePaymentIntentID:  p.StripePaymentIntentID,
		EventID:                p.EventID,
		ExpertConnectAccountID: p.ExpertConnectAccountID,
		ExpertWorkosUserID:     p.ExpertWorkosUserID,
		Amount:                 p.Amount,
		PlatformFee:            p.PlatformFee,
		TotalAmount:            p.TotalAmount,
		Currency:               p.Currency,
		Country:                p.Country,
		SessionStartTime:       dbTime(p.SessionStartTime),
		ScheduledTransferTime:  dbTime(p.ScheduledTransferTime),
		Status:                 "PENDING",
		RequiresApproval:       p.RequiresApproval,
		CreatedAt:              m.now,
		UpdatedAt:              m.now,
	}, m.cur)
}

// fillPaymentTransfer is PaymentTransferFill: what is missing is filled,
// and the row counts as changed when something was.
func (m *memMeetings) fillPaymentTransfer(_ context.Context, p queries.PaymentTransferFillParams) (int64, error) {
	cur, ok := m.transfers.rows[p.ID]
	if !ok {
		return 0, nil
	}
	r := *cur
	changed := fillAny(&r.StripeSessionID, p.StripeSessionID)
	changed = fillAny(&r.StripePaymentIntentID, p.StripePaymentIntentID) || changed
	changed = fillAny(&r.EventID, p.EventID) || changed
	changed = fillAny(&r.ExpertConnectAccountID, p.ExpertConnectAccountID) || changed
	changed = fillAny(&r.ExpertWorkosUserID, p.ExpertWorkosUserID) || changed
	changed = fillAny(&r.TotalAmount, p.TotalAmount) || changed
	changed = fillAny(&r.Currency, p.Currency) || changed
	changed = fillAny(&r.Country, p.Country) || changed
	changed = fillAny(&r.SessionStartTime, dbTime(p.SessionStartTime)) || changed
	changed = fillAny(&r.ScheduledTransferTime, dbTime(p.ScheduledTransferTime)) || changed
	changed = fillAny(&r.StripeTransferID, p.StripeTransferID) || changed
	if !r.RequiresApproval && p.RequiresApproval {
		r.RequiresApproval, changed = true, true
	}
	if !changed {
		return 0, nil
	}
	return 1, m.transfers.put(r, m.cur)
}

// fillAny is fill that reports whether it filled.
func fillAny[T any](dst **T, v *T) bool {
	if *dst == nil && v != nil {
		*dst = v
		return true
	}
	return false
}

func (m *memMeetings) deletePaymentTransfer(_ context.Context, id uuid.UUID) error {
	m.transfers.remove(id, m.cur)
	return nil
}

// dbTime is a time as Postgres stores it: UTC, cut to microseconds as pgx
// sends it.
func dbTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

func normalizedTransfer(p queries.PaymentTransfer) queries.PaymentTransfer {
	p.SessionStartTime, p.ScheduledTransferTime = utc(p.SessionStartTime), utc(p.ScheduledTransferTime)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p
}

// rowKeys are a row's id, its two unique keys and its age.
type rowKeys struct {
	id          uuid.UUID
	session, pi *string
	created     time.Time
}

// rowsByKeys holds the rows of a table keyed by a Checkout Session and a
// PaymentIntent, each unique (meetings, payment transfers).
type rowsByKeys[R any] struct {
	keysOf func(*R) rowKeys
	rows   map[uuid.UUID]*R
	// read are the rows as read.
	read               map[uuid.UUID]R
	bySession, byPI    map[string]uuid.UUID
	sessions, payments map[string]bool // the keys whose rows were all read
	// writer is the last event that changed each row.
	writer map[uuid.UUID]int
}

func newRowsByKeys[R any](keysOf func(*R) rowKeys) rowsByKeys[R] {
	return rowsByKeys[R]{
		keysOf: keysOf, rows: map[uuid.UUID]*R{}, read: map[uuid.UUID]R{},
		bySession: map[string]uuid.UUID{}, byPI: map[string]uuid.UUID{}, writer: map[uuid.UUID]int{},
	}
}

func (k *rowsByKeys[R]) load(r R) {
	k.read[k.keysOf(&r).id] = r
	k.index(&r)
}

func (k *rowsByKeys[R]) index(r *R) {
	rk := k.keysOf(r)
	k.rows[rk.id] = r
	if rk.session != nil {
		k.bySession[*rk.session] = rk.id
	}
	if rk.pi != nil {
		k.byPI[*rk.pi] = rk.id
	}
}

func (k *rowsByKeys[R]) unindex(id uuid.UUID) {
	r, ok := k.rows[id]
	if !ok {
		return
	}
	rk := k.keysOf(r)
	if rk.session != nil && k.bySession[*rk.session] == id {
		delete(k.bySession, *rk.session)
	}
	if rk.pi != nil && k.byPI[*rk.pi] == id {
		delete(k.byPI, *rk.pi)
	}
	delete(k.rows, id)
}

// find is the rows of a Session and of a PaymentIntent, oldest first.
func (k *rowsByKeys[R]) find(what string, session, pi *string) ([]R, error) {
	if session != nil && !k.sessions[*session] {
		return nil, notLoaded(what+" of Checkout Session", *session)
	}
	if pi != nil && !k.payments[*pi] {
		return nil, notLoaded(what+" of PaymentIntent", *pi)
	}
	var out []R
	var ids []uuid.UUID
	if session != nil {
		if id, ok := k.bySession[*session]; ok {
			ids = append(ids, id)
		}
	}
	if pi != nil {
		if id, ok := k.byPI[*pi]; ok && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		out = append(out, *k.rows[id])
	}
	slices.SortFunc(out, func(a, b R) int {
		x, y := k.keysOf(&a), k.keysOf(&b)
		if c := x.created.Compare(y.created); c != 0 {
			return c
		}
		return bytes.Compare(x.id[:], y.id[:])
	})
	return out, nil
}

// one is the row of a Session or of a PaymentIntent.
func (k *rowsByKeys[R]) one(what string, session, pi *string) (R, error) {
	var zero R
	rows, err := k.find(what, session, pi)
	switch {
	case err != nil:
		return zero, err
	case len(rows) == 0:
		return zero, queries.ErrNotFound
	}
	return rows[0], nil
}

// held reports whether a row other than except holds the Session or the
// PaymentIntent.
func (k *rowsByKeys[R]) held(session, pi *string, except uuid.UUID) bool {
	if session != nil {
		if id, ok := k.bySession[*session]; ok && id != except {
			return true
		}
	}
	if pi != nil {
		if id, ok := k.byPI[*pi]; ok && id != except {
			return true
		}
	}
	return false
}

// put stores a row as inserted or updated by event cur. A key another
// row holds fails, as its unique index would.
func (k *rowsByKeys[R]) put(r R, cur int) error {
	rk := k.keysOf(&r)
	if k.held(rk.session, rk.pi, rk.id) {
		return fmt.Errorf("%w: row %s takes Checkout Session %s / PaymentIntent %s that another row holds",
			ErrInvariant, rk.id, deref(rk.session), deref(rk.pi))
	}
	k.unindex(rk.id)
	k.index(&r)
	k.writer[rk.id] = cur
	return nil
}

func (k *rowsByKeys[R]) remove(id uuid.UUID, cur int) {
	k.unindex(id)
	k.writer[id] = cur
}

// changes are the rows to delete (as read) and to write (as they are now),
// in id order.
func (k *rowsByKeys[R]) changes() (deleted, written []R) {
	for id, r := range k.read {
		if _, ok := k.rows[id]; !ok {
			deleted = append(deleted, r)
		}
	}
	for id, r := range k.rows {
		if old, ok := k.read[id]; !ok || !reflect.DeepEqual(*r, old) {
			written = append(written, *r)
		}
	}
	byID := func(a, b R) int {
		x, y := k.keysOf(&a).id, k.keysOf(&b).id
		return bytes.Compare(x[:], y[:])
	}
	slices.SortFunc(deleted, byID)
	slices.SortFunc(written, byID)
	return deleted, written
}
