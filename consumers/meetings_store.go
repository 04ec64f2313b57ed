package consumers

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	"github.com/syncd/syncd/queries"
)

// meetingStore is where the meeting handlers (meetings.go,
// payment_transfers.go) read and write their rows: the transaction itself
// on the per-event path (txMeetings), or on the set-based path the batch's
// rows, read once and held in memory (memMeetings, meetings_sets.go). One
// set of handlers runs against both, so the two paths fold events by the
// very same rules. Errors come through queries.Check: a lookup that finds
// nothing and an insert that conflicts are queries.ErrNotFound.
type meetingStore interface {
	// lockPaymentIntent serializes the writers of one PaymentIntent
	// (MeetingLockPaymentIntent).
	lockPaymentIntent(ctx context.Context, pi string) error

	// meetingsForUpdate: the rows of a Session and of a PaymentIntent,
	// oldest first (MeetingGetForUpdate).
	meetingsForUpdate(ctx context.Context, session, pi *string) ([]queries.Meeting, error)
	meetingBySession(ctx context.Context, session string) (queries.Meeting, error)
	meetingByPaymentIntent(ctx context.Context, pi string) (queries.Meeting, error)
	insertMeeting(ctx context.Context, p queries.MeetingInsertParams) (uuid.UUID, error)
	updateMeeting(ctx context.Context, p queries.MeetingUpdateParams) error
	deleteMeeting(ctx context.Context, id uuid.UUID) error

	paymentIntent(ctx context.Context, id string, forUpdate bool) (queries.StripePaymentIntent, error)
	insertPaymentIntent(ctx context.Context, p queries.StripePaymentIntentInsertParams) error
	updatePaymentIntent(ctx context.Context, p queries.StripePaymentIntentUpdateParams) error
	paymentIntentByCharge(ctx context.Context, charge string) (string, error)

	noteCheckoutSession(ctx context.Context, p queries.StripeCheckoutSessionNoteParams) error
	checkoutSessionOf(ctx context.Context, pi string) (string, error)

	paymentTransfersForUpdate(ctx context.Context, p queries.PaymentTransferGetForUpdateParams) ([]queries.PaymentTransfer, error)
	insertPaymentTransfer(ctx context.Context, p queries.PaymentTransferInsertParams) error
	fillPaymentTransfer(ctx context.Context, p queries.PaymentTransferFillParams) (int64, error)
	deletePaymentTransfer(ctx context.Context, id uuid.UUID) error
}

// meetingTx is what the meeting handlers work with: their rows, the
// batch's links and the log.
type meetingTx struct {
	st    meetingStore
	links *linkSet
	log   *slog.Logger
}

// perEvent is the meetingTx of a handler run against the transaction.
func perEvent(tx Tx) meetingTx {
	return meetingTx{st: txMeetings{q: tx.Q, db: tx.DB}, links: tx.Links, log: tx.Log}
}

// txMeetings is the meetingStore of the per-event path: each call one
// statement in the transaction.
type txMeetings struct {
	q  *queries.Queries
	db queries.DBTX
}

func (s txMeetings) lockPaymentIntent(ctx context.Context, pi string) error {
	return s.q.MeetingLockPaymentIntent(ctx, s.db, pi)
}

func (s txMeetings) meetingsForUpdate(ctx context.Context, session, pi *string) ([]queries.Meeting, error) {
	return s.q.MeetingGetForUpdate(ctx, s.db, queries.MeetingGetForUpdateParams{StripeSessionID: session, StripePaymentIntentID: pi})
}

func (s txMeetings) meetingBySession(ctx context.Context, session string) (queries.Meeting, error) {
	m, err := s.q.MeetingGetBySessionID(ctx, s.db, &session)
	return m, queries.Check(err)
}

func (s txMeetings) meetingByPaymentIntent(ctx context.Context, pi string) (queries.Meeting, error) {
	m, err := s.q.MeetingGetByPaymentIntentID(ctx, s.db, &pi)
	return m, queries.Check(err)
}

func (s txMeetings) insertMeeting(ctx context.Context, p queries.MeetingInsertParams) (uuid.UUID, error) {
	id, err := s.q.MeetingInsert(ctx, s.db, p)
	return id, queries.Check(err)
}

func (s txMeetings) updateMeeting(ctx context.Context, p queries.MeetingUpdateParams) error {
	return s.q.MeetingUpdate(ctx, s.db, p)
}

func (s txMeetings) deleteMeeting(ctx context.Context, id uuid.UUID) error {
	return s.q.MeetingDelete(ctx, s.db, id)
}

func (s txMeetings) paymentIntent(ctx context.Context, id string, forUpdate bool) (queries.StripePaymentIntent, error) {
	get := s.q.StripePaymentIntentGet
	if forUpdate {
		get = s.q.StripePaymentIntentGetForUpdate
	}
	p, err := get(ctx, s.db, id)
	return p, queries.Check(err)
}

func (s txMeetings) insertPaymentIntent(ctx context.Context, p queries.StripePaymentIntentInsertParams) error {
	_, err := s.q.StripePaymentIntentInsert(ctx, s.db, p)
	return queries.Check(err)
}

func (s txMeetings) updatePaymentIntent(ctx context.Context, p queries.StripePaymentIntentUpdateParams) error {
	return s.q.StripePaymentIntentUpdate(ctx, s.db, p)
}

func (s txMeetings) paymentIntentByCharge(ctx context.Context, charge string) (string, error) {
	id, err := s.q.StripePaymentIntentIDByCharge(ctx, s.db, &charge)
	return id, queries.Check(err)
}

func (s txMeetings) noteCheckoutSession(ctx context.Context, p queries.StripeCheckoutSessionNoteParams) error {
	return s.q.StripeCheckoutSessionNote(ctx, s.db, p)
}

func (s txMeetings) checkoutSessionOf(ctx context.Context, pi string) (string, error) {
	id, err := s.q.StripeCheckoutSessionByPaymentIntent(ctx, s.db, pi)
	return id, queries.Check(err)
}

func (s txMeetings) paymentTransfersForUpdate(ctx context.Context, p queries.PaymentTransferGetForUpdateParams) ([]queries.PaymentTransfer, error) {
	return s.q.PaymentTransferGetForUpdate(ctx, s.db, p)
}

func (s txMeetings) insertPaymentTransfer(ctx context.Context, p queries.PaymentTransferInsertParams) error {
	_, err := s.q.PaymentTransferInsert(ctx, s.db, p)
	return queries.Check(err)
}

func (s txMeetings) fillPaymentTransfer(ctx context.Context, p queries.PaymentTransferFillParams) (int64, error) {
	return s.q.PaymentTransferFill(ctx, s.db, p)
}

func (s txMeetings) deletePaymentTransfer(ctx context.Context, id uuid.UUID) error {
	return s.q.PaymentTransferDelete(ctx, s.db, id)
}
