package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
)

// Payment transfers: the expert's share of a paid booking, from the
// metadata the app sets on the Checkout Session and the PaymentIntent
// beside "meeting":
//
//	payment:  {"amount": "<total>", "fee": "<platform fee>", "expert": "<expert's share>"}
//	transfer: {"status": "PENDING", "account": "acct_…", "country": "PT",
//	           "delay": {…}, "scheduled": "<RFC 3339>"}
//	approval: "true" when the transfer needs manual approval
//
// Whichever of the two objects' events arrives first creates the row; the
// other fills what is missing. A bad value leaves the row out, with the
// reason logged, and never fails the event: its meeting and payment are
// still applied. The row's transfer, status and review reason are derived
// from the mirrors by PaymentTransferSettle (marketplace_links.go).

// bookingTransfer is a payment transfer as one event's metadata tells it.
type bookingTransfer struct {
	expert, fee int64
	total       *int64
	account     string
	country     *string
	scheduled   *time.Time
	approval    bool
}

// errNoPaymentTransfer: the metadata carries neither "payment" nor
// "transfer", so the booking has no payment transfer.
var errNoPaymentTransfer = errors.New("no payment transfer")

// parsePaymentTransfer reads metadata "payment", "transfer" and
// "approval". Its error, other than errNoPaymentTransfer, is the reason
// the row is left out.
func parsePaymentTransfer(metadata json.RawMessage) (bookingTransfer, error) {
	payment, transfer := metaString(metadata, "payment"), metaString(metadata, "transfer")
	switch {
	case payment == nil && transfer == nil:
		return bookingTransfer{}, errNoPaymentTransfer
	case payment == nil:
		return bookingTransfer{}, errors.New("metadata payment is missing")
	case transfer == nil:
		return bookingTransfer{}, errors.New("metadata transfer is missing")
	}
	var b bookingTransfer
	var p map[string]json.RawMessage
	if err := json.Unmarshal([]byte(*payment), &p); err != nil || p == nil {
		return b, errors.New("metadata payment is not a JSON object")
	}
	amount := func(name string, required bool) (*int64, error) {
		raw, ok := p[name]
		var n looseInt
		if ok {
			if err := json.Unmarshal(raw, &n); err != nil {
				return nil, fmt.Errorf("metadata payment.%s: want minor units, got %.40s", name, raw)
			}
		}
		switch {
		case !n.ok && required:
			return nil, fmt.Errorf("metadata payment.%s is missing", name)
		case !n.ok:
			return nil, nil
		case n.v < 0:
			return nil, fmt.Errorf("metadata payment.%s is negative (%d)", name, n.v)
		}
		return &n.v, nil
	}
	expert, err := amount("expert", true)
	if err != nil {
		return b, err
	}
	fee, err := amount("fee", true)
	if err != nil {
		return b, err
	}
	if b.total, err = amount("amount", false); err != nil {
		return b, err
	}
	b.expert, b.fee = *expert, *fee

	var t struct {
		Account   json.RawMessage `json:"account"`
		Country   json.RawMessage `json:"country"`
		Scheduled json.RawMessage `json:"scheduled"`
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal([]byte(*transfer), &probe); err != nil || probe == nil {
		return b, errors.New("metadata transfer is not a JSON object")
	}
	_ = json.Unmarshal([]byte(*transfer), &t)
	var account string
	if json.Unmarshal(t.Account, &account) != nil || !strings.HasPrefix(strings.TrimSpace(account), "acct_") {
		return b, fmt.Errorf("metadata transfer.account: want a Connect account id, got %.40s", t.Account)
	}
	b.account = strings.TrimSpace(account)
	var country string
	if json.Unmarshal(t.Country, &country) == nil {
		b.country = nonEmpty(country)
	}
	var scheduled events.Time
	if err := json.Unmarshal(t.Scheduled, &scheduled); err != nil || scheduled.IsZero() {
		return b, fmt.Errorf("metadata transfer.scheduled: want an RFC 3339 time, got %.40s", t.Scheduled)
	}
	b.scheduled = utc(scheduled.Ptr())
	if a := metaString(metadata, "approval"); a != nil {
		b.approval = strings.EqualFold(*a, "true")
	}
	return b, nil
}

// bookingFacts is what a Checkout Session or PaymentIntent event says
// about its booking's payment transfer.
type bookingFacts struct {
	session, paymentIntent *string
	metadata               json.RawMessage
	currency               *string
	details                *meetingDetails
}

// withPaymentTransfer applies the payment transfer of a booking event
// whose meeting was applied with outcome out, and gives the event's
// outcome.
func withPaymentTransfer(ctx context.Context, mt meetingTx, ev Event, out Outcome, f bookingFacts) (Outcome, error) {
	changed, err := applyPaymentTransfer(ctx, mt, ev, f)
	switch {
	case err != nil:
		return "", err
	case changed:
		return Applied, nil
	}
	return out, nil
}

// applyPaymentTransfer creates or completes the booking's payment
// transfer, and reports whether it changed.
func applyPaymentTransfer(ctx context.Context, mt meetingTx, ev Event, f bookingFacts) (bool, error) {
	// Settled whatever the metadata says: this event may have brought the
	// charge a transfer names, or the refund that marks it for review.
	mt.links.add(paymentTransferLink{paymentIntent: deref(f.paymentIntent), session: deref(f.session)})
	b, err := parsePaymentTransfer(f.metadata)
	if errors.Is(err, errNoPaymentTransfer) {
		return false, nil
	}
	if err != nil {
		if mt.log != nil {
			mt.log.Warn("payment transfer left out: bad booking metadata",
				"source", ev.Source, "event_id", ev.Envelope.ID, "type", ev.Envelope.Type, "reason", err.Error())
		}
		return false, nil
	}
	if err := joinBookingIDs(ctx, mt, &f); err != nil {
		return false, err
	}
	if f.session == nil && f.paymentIntent == nil {
		return false, nil
	}
	mt.links.add(paymentTransferLink{paymentIntent: deref(f.paymentIntent), session: deref(f.session)})
	fill := queries.PaymentTransferFillParams{
		StripeSessionID:        f.session,
		StripePaymentIntentID:  f.paymentIntent,
		ExpertConnectAccountID: &b.account,
		TotalAmount:            b.total,
		Currency:               f.currency,
		Country:                b.country,
		ScheduledTransferTime:  b.scheduled,
		RequiresApproval:       b.approval,
	}
	if d := f.details; d != nil {
		fill.EventID, fill.ExpertWorkosUserID, fill.SessionStartTime = d.bookableEventID, d.expert, d.start
	}
	for range 3 {
		rows, err := mt.st.paymentTransfersForUpdate(ctx, queries.PaymentTransferGetForUpdateParams{
			StripeSessionID: f.session, StripePaymentIntentID: f.paymentIntent,
		})
		if err != nil {
			return false, fmt.Errorf("lock payment transfer: %w", err)
		}
		if len(rows) == 0 {
			err := mt.st.insertPaymentTransfer(ctx, queries.PaymentTransferInsertParams{
				StripeSessionID:        fill.StripeSessionID,
				StripePaymentIntentID:  fill.StripePaymentIntentID,
				EventID:                fill.EventID,
				ExpertConnectAccountID: fill.ExpertConnectAccountID,
				ExpertWorkosUserID:     fill.ExpertWorkosUserID,
				Amount:                 b.expert,
				PlatformFee:            b.fee,
				TotalAmount:            fill.TotalAmount,
				Currency:               fill.Currency,
				Country:                fill.Country,
				SessionStartTime:       fill.SessionStartTime,
				ScheduledTransferTime:  fill.ScheduledTransferTime,
				RequiresApproval:       fill.RequiresApproval,
			})
			if errors.Is(err, queries.ErrNotFound) {
				continue // inserted by a concurrent transaction: lock it and fill
			} else if err != nil {
				return false, fmt.Errorf("insert payment transfer: %w", err)
			}
			return true, nil
		}
		changed := false
		if len(rows) > 1 {
			// The Session's and the PaymentIntent's rows, each created
			// before the other's id was known: the first takes the second
			// in. Deleted first: it holds a key the first takes over.
			if err := mt.st.deletePaymentTransfer(ctx, rows[1].ID); err != nil {
				return false, fmt.Errorf("merge payment transfer %s into %s: %w", rows[1].ID, rows[0].ID, err)
			}
			o := rows[1]
			if _, err := mt.st.fillPaymentTransfer(ctx, queries.PaymentTransferFillParams{
				ID: rows[0].ID, StripeSessionID: o.StripeSessionID, StripePaymentIntentID: o.StripePaymentIntentID,
				EventID: o.EventID, ExpertConnectAccountID: o.ExpertConnectAccountID, ExpertWorkosUserID: o.ExpertWorkosUserID,
				TotalAmount: o.TotalAmount, Currency: o.Currency, Country: o.Country, SessionStartTime: o.SessionStartTime,
				ScheduledTransferTime: o.ScheduledTransferTime, RequiresApproval: o.RequiresApproval, StripeTransferID: o.StripeTransferID,
			}); err != nil {
				return false, fmt.Errorf("merge payment transfer %s into %s: %w", rows[1].ID, rows[0].ID, err)
			}
			changed = true
		}
		fill.ID = rows[0].ID
		if ids := rows[0]; ids.StripeSessionID != nil && f.session != nil && *ids.StripeSessionID != *f.session ||
			ids.StripePaymentIntentID != nil && f.paymentIntent != nil && *ids.StripePaymentIntentID != *f.paymentIntent {
			return false, fmt.Errorf("%w: payment transfer of Session %s / PaymentIntent %s is also claimed by %s / %s", ErrInvariant,
				deref(ids.StripeSessionID), deref(ids.StripePaymentIntentID), deref(f.session), deref(f.paymentIntent))
		}
		n, err := mt.st.fillPaymentTransfer(ctx, fill)
		if err != nil {
			return false, fmt.Errorf("fill payment transfer %s: %w", fill.ID, err)
		}
		return changed || n > 0, nil
	}
	return false, fmt.Errorf("payment transfer of session %v / payment intent %v: insert kept conflicting", deref(f.session), deref(f.paymentIntent))
}

// joinBookingIDs completes the Session and PaymentIntent ids of a
// booking from its meeting, which knows both once either event linked
// them, and takes the PaymentIntent's lock, under which its payment
// transfer is written.
func joinBookingIDs(ctx context.Context, mt meetingTx, f *bookingFacts) error {
	var m queries.Meeting
	var err error
	switch {
	case f.session != nil && f.paymentIntent != nil:
	case f.paymentIntent != nil:
		m, err = mt.st.meetingByPaymentIntent(ctx, *f.paymentIntent)
	case f.session != nil:
		m, err = mt.st.meetingBySession(ctx, *f.session)
	}
	switch {
	case err == nil:
		fill(&f.session, m.StripeSessionID)
		fill(&f.paymentIntent, m.StripePaymentIntentID)
	case !errors.Is(err, queries.ErrNotFound):
		return fmt.Errorf("meeting of the booking: %w", err)
	}
	if f.paymentIntent != nil {
		if err := mt.st.lockPaymentIntent(ctx, *f.paymentIntent); err != nil {
			return fmt.Errorf("lock payment intent %s: %w", *f.paymentIntent, err)
		}
	}
	return nil
}
