package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
)

// Meetings are booked through Stripe Checkout. The app puts the booking in
// the metadata key "meeting" of both the Checkout Session and its
// PaymentIntent; whichever event arrives first creates the meeting row, the
// others complete it. Refunds and disputes reach it through the
// PaymentIntent, whose facts are also kept in stripe_payment_intents so one
// that arrives before the booking is folded in when the booking arrives.

// paymentRanks orders a meeting's payment status. The tier (rank / 10)
// only goes up: once paid, a meeting is never pending, failed, canceled or
// expired again. Inside tier 0 the newer event wins, because a failed
// payment can be retried and then be processing again; in the same second
// the higher rank wins (a payment that fails or is canceled was processing
// first). Succeeded < partially refunded < refunded < disputed: a refund or
// a dispute can only follow the payment, and a disputed charge cannot be
// refunded. Pending never replaces another status: it is what a checkout
// says before any payment event. migrations/00002_stripe.sql states the
// same order.
var paymentRanks = map[string]int16{
	"pending":            0, // Checkout completed, payment not settled yet
	"processing":         1,
	"failed":             2,
	"canceled":           3,
	"expired":            4,
	"succeeded":          10,
	"partially_refunded": 20,
	"refunded":           30,
	"disputed":           40,
}

// paymentStatus is a status with the time of the event that reported it.
type paymentStatus struct {
	status string
	rank   int16
	at     time.Time
}

func newPaymentStatus(status string, at time.Time) paymentStatus {
	return paymentStatus{status: status, rank: paymentRanks[status], at: at.UTC()}
}

// supersedes reports whether p replaces the stored q: the key
// (tier, time, rank) of p is greater.
func (p paymentStatus) supersedes(q paymentStatus) bool {
	switch {
	case p.status == "":
		return false
	case q.status == "":
		return true
	case p.status == "pending":
		// Pending only starts a meeting: an unpaid checkout that arrives
		// after the payment began says nothing newer about the payment.
		return false
	case p.rank/10 != q.rank/10:
		return p.rank/10 > q.rank/10
	case !p.at.Equal(q.at):
		return p.at.After(q.at)
	default:
		return p.rank > q.rank
	}
}

// meetingMetadata is the JSON string in metadata "meeting".
type meetingMetadata struct {
	ID        string      `json:"id"`
	Expert    string      `json:"expert"`
	Guest     string      `json:"guest"`
	GuestName string      `json:"guestName"`
	Start     events.Time `json:"start"`
	Dur       looseInt    `json:"dur"`
	Notes     string      `json:"notes"`
	Timezone  string      `json:"timezone"`
	Locale    string      `json:"locale"`
}

// decodeMeetingMetadata reads the app's booking JSON field by field: only
// a value that is not a JSON object at all is an error; a field of the
// wrong shape is left out.
func decodeMeetingMetadata(raw string) (meetingMetadata, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &fields); err != nil || fields == nil {
		return meetingMetadata{}, fmt.Errorf("not a JSON object")
	}
	var m meetingMetadata
	for name, dst := range map[string]any{
		"id": &m.ID, "expert": &m.Expert, "guest": &m.Guest, "guestName": &m.GuestName,
		"start": &m.Start, "dur": &m.Dur, "notes": &m.Notes, "timezone": &m.Timezone, "locale": &m.Locale,
	} {
		if v, ok := fields[name]; ok {
			_ = json.Unmarshal(v, dst)
		}
	}
	return m, nil
}

// looseInt accepts a JSON number or a numeric string.
type looseInt struct {
	v  int64
	ok bool
}

func (n *looseInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) || bytes.Equal(b, []byte(`""`)) {
		*n = looseInt{}
		return nil
	}
	s := strings.Trim(string(b), `"`)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != float64(int64(f)) {
		return fmt.Errorf("want whole minutes, got %s", b)
	}
	*n = looseInt{v: int64(f), ok: true}
	return nil
}

// meetingDetails is the booking as one event tells it, versioned by the
// event (time, id). A newer event's values win; an older one only fills
// what is missing.
type meetingDetails struct {
	bookableEventID                                        *uuid.UUID
	expert, guestEmail, guestName, notes, timezone, locale *string
	start                                                  *time.Time
	duration                                               *int32
	at                                                     time.Time
	eventID                                                string
}

// parseMeeting reads metadata "meeting"; nil when there is none. The
// guest's email falls back to the one the customer typed at checkout.
func parseMeeting(ev Event, metadata json.RawMessage, guestEmail *string) (*meetingDetails, error) {
	raw := metaString(metadata, "meeting")
	if raw == nil {
		return nil, nil
	}
	m, err := decodeMeetingMetadata(*raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s metadata.meeting: %v", ErrUndecodable, ev.Envelope.Type, err)
	}
	v := versionOf(ev)
	d := &meetingDetails{
		expert:     nonEmpty(m.Expert),
		guestEmail: nonEmpty(m.Guest),
		guestName:  nonEmpty(m.GuestName),
		notes:      nonEmpty(m.Notes),
		timezone:   nonEmpty(m.Timezone),
		locale:     nonEmpty(m.Locale),
		start:      utc(m.Start.Ptr()),
		at:         v.created,
		eventID:    v.eventID,
	}
	// A detail the app wrote badly is left out rather than failing the
	// event: the payment it carries must still be recorded.
	if id, err := uuid.Parse(m.ID); err == nil {
		d.bookableEventID = &id
	}
	if m.Dur.ok && m.Dur.v >= 0 && m.Dur.v <= 1<<31-1 {
		d.duration = ptr(int32(m.Dur.v))
	}
	if d.guestEmail == nil && guestEmail != nil {
		d.guestEmail = nonEmpty(*guestEmail)
	}
	return d, nil
}

// meetingFacts is what one event says about a meeting. The PaymentIntent's
// own facts (status, amounts, refunds) come from stripe_payment_intents.
type meetingFacts struct {
	sessionID       *string
	paymentIntentID *string
	customerID      *string
	details         *meetingDetails
	// A Checkout Session's amount; the PaymentIntent's wins when known.
	amount   *int64
	currency *string
	status   paymentStatus
}

// applyMeeting merges facts into the meeting row(s) of the session and
// payment intent, creating the meeting when the event carries the booking.
// Ignored: no meeting and no booking in the event.
func applyMeeting(ctx context.Context, mt meetingTx, f meetingFacts) (Outcome, error) {
	if f.paymentIntentID != nil {
		if err := mt.st.lockPaymentIntent(ctx, *f.paymentIntentID); err != nil {
			return "", fmt.Errorf("lock payment intent %s: %w", *f.paymentIntentID, err)
		}
	}
	// A concurrent transaction may insert the same meeting between the
	// lookup and the insert; the insert then does nothing and the next
	// lookup finds and locks its row.
	session := f.sessionID
	if session == nil && f.paymentIntentID != nil {
		// The Session noted with this PaymentIntent may have a row of its
		// own (a booking that named no PaymentIntent): it is found and
		// merged too, or the insert below would conflict with it on every
		// try.
		sid, err := mt.st.checkoutSessionOf(ctx, *f.paymentIntentID)
		switch {
		case err == nil:
			session = &sid
		case !errors.Is(err, queries.ErrNotFound):
			return "", fmt.Errorf("checkout session of %s: %w", *f.paymentIntentID, err)
		}
	}
	for range 3 {
		rows, err := mt.st.meetingsForUpdate(ctx, session, f.paymentIntentID)
		if err != nil {
			return "", fmt.Errorf("lock meeting: %w", err)
		}
		if len(rows) == 0 && f.details == nil {
			if f.sessionID == nil || f.paymentIntentID == nil {
				return Ignored, nil
			}
			// A Session without the booking: the meeting its
			// PaymentIntent creates later takes its id.
			if err := mt.st.noteCheckoutSession(ctx, queries.StripeCheckoutSessionNoteParams{
				StripeSessionID: *f.sessionID, StripePaymentIntentID: *f.paymentIntentID,
			}); err != nil {
				return "", fmt.Errorf("note checkout session %s: %w", *f.sessionID, err)
			}
			return Applied, nil
		}
		var m, before queries.Meeting
		if len(rows) > 0 {
			m = normalized(rows[0])
			before = m
		}
		// The Session's and the PaymentIntent's rows were each created
		// before the link between them was known: they become one.
		if len(rows) > 1 {
			if err := mergeMeetingRow(&m, normalized(rows[1])); err != nil {
				return "", err
			}
		}
		if err := mergeMeetingFacts(&m, f); err != nil {
			return "", err
		}
		if m.StripePaymentIntentID != nil {
			p, err := mt.st.paymentIntent(ctx, *m.StripePaymentIntentID, false)
			switch {
			case err == nil:
				foldPaymentIntent(&m, p)
			case !errors.Is(err, queries.ErrNotFound):
				return "", fmt.Errorf("payment intent %s: %w", *m.StripePaymentIntentID, err)
			}
		}
		if m.StripeSessionID == nil && m.StripePaymentIntentID != nil {
			sid, err := mt.st.checkoutSessionOf(ctx, *m.StripePaymentIntentID)
			switch {
			case err == nil:
				m.StripeSessionID = &sid
			case !errors.Is(err, queries.ErrNotFound):
				return "", fmt.Errorf("checkout session of %s: %w", *m.StripePaymentIntentID, err)
			}
		}
		if m.PaymentStatus == "" {
			return "", fmt.Errorf("%w: meeting without a payment status", ErrInvariant)
		}
		if len(rows) == 0 {
			id, err := mt.st.insertMeeting(ctx, meetingInsertParams(m))
			if errors.Is(err, queries.ErrNotFound) {
				continue
			} else if err != nil {
				return "", fmt.Errorf("insert meeting: %w", err)
			}
			linkGuest(mt.links, id)
			return Applied, nil
		}
		if len(rows) > 1 {
			// Deleted first: it holds the key the merged row takes over.
			if err := mt.st.deleteMeeting(ctx, rows[1].ID); err != nil {
				return "", fmt.Errorf("merge meeting %s into %s: %w", rows[1].ID, m.ID, err)
			}
		}
		if len(rows) == 1 && reflect.DeepEqual(m, before) {
			return Stale, nil
		}
		if err := mt.st.updateMeeting(ctx, meetingUpdateParams(m)); err != nil {
			return "", fmt.Errorf("update meeting %s: %w", m.ID, err)
		}
		linkGuest(mt.links, m.ID)
		return Applied, nil
	}
	return "", fmt.Errorf("meeting of session %v / payment intent %v: insert kept conflicting", deref(f.sessionID), deref(f.paymentIntentID))
}

func linkGuest(links *linkSet, id uuid.UUID) {
	links.add(queries.MeetingLinkGuestsParams{
		MeetingIds: []uuid.UUID{id}, Emails: []string{}, WorkosUserIds: []string{},
	})
}

func mergeMeetingFacts(m *queries.Meeting, f meetingFacts) error {
	if err := joinID(&m.StripeSessionID, f.sessionID, "Checkout Session"); err != nil {
		return err
	}
	if err := joinID(&m.StripePaymentIntentID, f.paymentIntentID, "PaymentIntent"); err != nil {
		return err
	}
	fill(&m.StripeCustomerID, f.customerID)
	if f.details != nil {
		mergeDetails(m, *f.details)
	}
	fill(&m.Amount, f.amount)
	fill(&m.Currency, f.currency)
	mergeStatus(m, f.status)
	return nil
}

// mergeMeetingRow folds another row of the same meeting into m.
func mergeMeetingRow(m *queries.Meeting, o queries.Meeting) error {
	if err := joinID(&m.StripeSessionID, o.StripeSessionID, "Checkout Session"); err != nil {
		return err
	}
	if err := joinID(&m.StripePaymentIntentID, o.StripePaymentIntentID, "PaymentIntent"); err != nil {
		return err
	}
	fill(&m.StripeCustomerID, o.StripeCustomerID)
	if o.DetailsVersion != nil {
		mergeDetails(m, meetingDetails{
			bookableEventID: o.BookableEventID,
			expert:          o.ExpertWorkosUserID,
			guestEmail:      o.GuestEmail,
			guestName:       o.GuestName,
			notes:           o.Notes,
			timezone:        o.Timezone,
			locale:          o.Locale,
			start:           o.StartTime,
			duration:        o.DurationMinutes,
			at:              *o.DetailsVersion,
			eventID:         deref(o.DetailsEventID),
		})
	}
	fill(&m.Amount, o.Amount)
	fill(&m.Currency, o.Currency)
	fill(&m.ApplicationFeeAmount, o.ApplicationFeeAmount)
	m.AmountRefunded = max(m.AmountRefunded, o.AmountRefunded)
	mergeStatus(m, paymentStatus{status: o.PaymentStatus, rank: o.PaymentStatusRank, at: o.PaymentStatusVersion})
	return nil
}

func mergeDetails(m *queries.Meeting, d meetingDetails) {
	newer := m.DetailsVersion == nil || d.at.After(*m.DetailsVersion) ||
		(d.at.Equal(*m.DetailsVersion) && d.eventID >= deref(m.DetailsEventID))
	take(&m.BookableEventID, d.bookableEventID, newer)
	take(&m.ExpertWorkosUserID, d.expert, newer)
	take(&m.GuestEmail, d.guestEmail, newer)
	take(&m.GuestName, d.guestName, newer)
	take(&m.StartTime, d.start, newer)
	take(&m.DurationMinutes, d.duration, newer)
	take(&m.Notes, d.notes, newer)
	take(&m.Timezone, d.timezone, newer)
	take(&m.Locale, d.locale, newer)
	if newer {
		m.DetailsVersion, m.DetailsEventID = &d.at, &d.eventID
	}
}

func mergeStatus(m *queries.Meeting, s paymentStatus) {
	if s.supersedes(paymentStatus{status: m.PaymentStatus, rank: m.PaymentStatusRank, at: m.PaymentStatusVersion}) {
		m.PaymentStatus, m.PaymentStatusRank, m.PaymentStatusVersion = s.status, s.rank, s.at
	}
}

// foldPaymentIntent brings what the PaymentIntent's events said into its
// meeting. Its amounts are the ones charged: they win over the Session's.
func foldPaymentIntent(m *queries.Meeting, p queries.StripePaymentIntent) {
	mergeStatus(m, paymentStatus{status: p.PaymentStatus, rank: p.PaymentStatusRank, at: p.PaymentStatusVersion.UTC()})
	m.AmountRefunded = max(m.AmountRefunded, p.AmountRefunded)
	if p.Amount != nil {
		m.Amount = p.Amount
		take(&m.Currency, p.Currency, true)
	}
	take(&m.ApplicationFeeAmount, p.ApplicationFeeAmount, true)
	fill(&m.StripeCustomerID, p.StripeCustomerID)
}

// paymentFacts is what one payment_intent.*, charge.* or dispute event
// says about a PaymentIntent.
type paymentFacts struct {
	paymentIntentID string
	status          paymentStatus
	amountRefunded  int64
	chargeID        *string
	// The PaymentIntent object itself, from payment_intent.* events only.
	object *paymentIntentObject
}

type paymentIntentObject struct {
	customerID, chargeID, currency *string
	amount, fee                    *int64
	at                             time.Time
	eventID                        string
}

// recordPayment merges facts into stripe_payment_intents and reports
// whether the row changed.
func recordPayment(ctx context.Context, mt meetingTx, f paymentFacts) (bool, error) {
	if err := mt.st.lockPaymentIntent(ctx, f.paymentIntentID); err != nil {
		return false, fmt.Errorf("lock payment intent %s: %w", f.paymentIntentID, err)
	}
	for range 3 {
		p, err := mt.st.paymentIntent(ctx, f.paymentIntentID, true)
		switch {
		case errors.Is(err, queries.ErrNotFound):
			p = queries.StripePaymentIntent{StripePaymentIntentID: f.paymentIntentID}
			mergePayment(&p, f)
			err := mt.st.insertPaymentIntent(ctx, queries.StripePaymentIntentInsertParams{
				StripePaymentIntentID: p.StripePaymentIntentID,
				StripeChargeID:        p.StripeChargeID,
				StripeCustomerID:      p.StripeCustomerID,
				Amount:                p.Amount,
				ApplicationFeeAmount:  p.ApplicationFeeAmount,
				Currency:              p.Currency,
				AmountRefunded:        p.AmountRefunded,
				PaymentStatus:         p.PaymentStatus,
				PaymentStatusRank:     p.PaymentStatusRank,
				PaymentStatusVersion:  p.PaymentStatusVersion,
				StripeCreated:         p.StripeCreated,
				StripeEventID:         p.StripeEventID,
			})
			if errors.Is(err, queries.ErrNotFound) {
				continue // inserted by a concurrent transaction: lock it and merge
			} else if err != nil {
				return false, fmt.Errorf("insert payment intent %s: %w", f.paymentIntentID, err)
			}
			return true, nil
		case err != nil:
			return false, fmt.Errorf("lock payment intent %s: %w", f.paymentIntentID, err)
		}
		p = normalizedPayment(p)
		before := p
		mergePayment(&p, f)
		if reflect.DeepEqual(p, before) {
			return false, nil
		}
		return true, mt.st.updatePaymentIntent(ctx, queries.StripePaymentIntentUpdateParams{
			StripeChargeID:        p.StripeChargeID,
			StripeCustomerID:      p.StripeCustomerID,
			Amount:                p.Amount,
			ApplicationFeeAmount:  p.ApplicationFeeAmount,
			Currency:              p.Currency,
			AmountRefunded:        p.AmountRefunded,
			PaymentStatus:         p.PaymentStatus,
			PaymentStatusRank:     p.PaymentStatusRank,
			PaymentStatusVersion:  p.PaymentStatusVersion,
			StripeCreated:         p.StripeCreated,
			StripeEventID:         p.StripeEventID,
			StripePaymentIntentID: p.StripePaymentIntentID,
		})
	}
	return false, fmt.Errorf("payment intent %s: insert kept conflicting", f.paymentIntentID)
}

func mergePayment(p *queries.StripePaymentIntent, f paymentFacts) {
	if f.status.supersedes(paymentStatus{status: p.PaymentStatus, rank: p.PaymentStatusRank, at: p.PaymentStatusVersion}) {
		p.PaymentStatus, p.PaymentStatusRank, p.PaymentStatusVersion = f.status.status, f.status.rank, f.status.at
	}
	p.AmountRefunded = max(p.AmountRefunded, f.amountRefunded)
	if o := f.object; o != nil {
		newer := p.StripeCreated == nil || o.at.After(*p.StripeCreated) ||
			(o.at.Equal(*p.StripeCreated) && o.eventID >= deref(p.StripeEventID))
		take(&p.StripeCustomerID, o.customerID, newer)
		take(&p.StripeChargeID, o.chargeID, newer)
		take(&p.Amount, o.amount, newer)
		take(&p.ApplicationFeeAmount, o.fee, newer)
		take(&p.Currency, o.currency, newer)
		if newer {
			p.StripeCreated, p.StripeEventID = &o.at, &o.eventID
		}
	}
	fill(&p.StripeChargeID, f.chargeID)
}

// meetingEvent is what one Checkout Session, PaymentIntent, refund or
// dispute event says, decoded. The per-event handlers apply it at once;
// the set-based path decodes a batch's events first, to read the rows
// their keys name in one go, then applies each to those rows.
type meetingEvent struct {
	ignored bool
	meeting meetingFacts
	// payment is what the event says about its PaymentIntent
	// (payment_intent.*, charge.refunded, charge.dispute.created).
	payment *paymentFacts
	// disputedCharge is the charge of a dispute that names no
	// PaymentIntent: it is found from the charge when the event is applied.
	disputedCharge string
	// review: a refund or a dispute marks the payment transfer for review.
	review bool
	// booking is the payment transfer's side of a booking event.
	booking *bookingFacts
}

// apply merges the event into its rows and gives its outcome.
func (e meetingEvent) apply(ctx context.Context, mt meetingTx, ev Event) (Outcome, error) {
	if e.ignored {
		return Ignored, nil
	}
	if e.payment != nil && e.payment.paymentIntentID == "" {
		id, err := mt.st.paymentIntentByCharge(ctx, e.disputedCharge)
		if err != nil && !errors.Is(err, queries.ErrNotFound) {
			return "", fmt.Errorf("payment intent of charge %s: %w", e.disputedCharge, err)
		}
		if id == "" {
			return Ignored, nil // not a PaymentIntent's charge: no booking's
		}
		p := *e.payment
		p.paymentIntentID = id
		e.payment, e.meeting.paymentIntentID = &p, &id
	}
	changed := false
	if e.payment != nil {
		var err error
		if changed, err = recordPayment(ctx, mt, *e.payment); err != nil {
			return "", err
		}
	}
	out, err := applyMeeting(ctx, mt, e.meeting)
	if e.review {
		mt.links.add(paymentTransferLink{paymentIntent: e.payment.paymentIntentID}) // marks it for review
	}
	if e.payment != nil {
		out, err = paymentOutcome(changed, out, err)
	}
	if err != nil {
		return "", err
	}
	if e.booking == nil {
		return out, nil
	}
	return withPaymentTransfer(ctx, mt, ev, out, *e.booking)
}

// applyDecoded is a meeting route's handler on the per-event path.
func applyDecoded(decode func(Event) (meetingEvent, error)) Handler {
	return func(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
		e, err := decode(ev)
		if err != nil {
			return "", err
		}
		return e.apply(ctx, perEvent(tx), ev)
	}
}

var (
	applyCheckoutSession = applyDecoded(decodeCheckoutSession)
	applyPaymentIntent   = applyDecoded(decodePaymentIntent)
	applyChargeRefunded  = applyDecoded(decodeChargeRefunded)
	applyDisputeCreated  = applyDecoded(decodeDisputeCreated)
)

type stripeCheckoutSession struct {
	ID              string          `json:"id"`
	PaymentIntent   stripeID        `json:"payment_intent"`
	Customer        stripeID        `json:"customer"`
	CustomerEmail   *string         `json:"customer_email"`
	AmountTotal     *int64          `json:"amount_total"`
	Currency        *string         `json:"currency"`
	PaymentStatus   string          `json:"payment_status"`
	Metadata        json.RawMessage `json:"metadata"`
	CustomerDetails *struct {
		Email *string `json:"email"`
	} `json:"customer_details"`
}

func decodeCheckoutSession(ev Event) (meetingEvent, error) {
	var s stripeCheckoutSession
	if err := decodeObject(ev, &s); err != nil {
		return meetingEvent{}, err
	}
	if err := requireID(ev, "id", s.ID); err != nil {
		return meetingEvent{}, err
	}
	var status string
	switch ev.Envelope.Type {
	case "checkout.session.completed":
		// Delayed payment methods complete the Session unpaid; their
		// outcome comes with async_payment_succeeded or _failed.
		status = "pending"
		if s.PaymentStatus == "paid" || s.PaymentStatus == "no_payment_required" {
			status = "succeeded"
		}
	case "checkout.session.async_payment_succeeded":
		status = "succeeded"
	case "checkout.session.async_payment_failed":
		status = "failed"
	case "checkout.session.expired":
		status = "expired"
	default:
		return meetingEvent{ignored: true}, nil
	}
	email := s.CustomerEmail
	if s.CustomerDetails != nil && s.CustomerDetails.Email != nil {
		email = s.CustomerDetails.Email
	}
	details, err := parseMeeting(ev, s.Metadata, email)
	if err != nil {
		return meetingEvent{}, err
	}
	return meetingEvent{
		meeting: meetingFacts{
			sessionID:       &s.ID,
			paymentIntentID: s.PaymentIntent.ptr(),
			customerID:      s.Customer.ptr(),
			details:         details,
			amount:          s.AmountTotal,
			currency:        s.Currency,
			status:          newPaymentStatus(status, versionOf(ev).created),
		},
		booking: &bookingFacts{
			session: &s.ID, paymentIntent: s.PaymentIntent.ptr(), metadata: s.Metadata, currency: s.Currency, details: details,
		},
	}, nil
}

type stripePaymentIntent struct {
	ID                   string          `json:"id"`
	Amount               *int64          `json:"amount"`
	ApplicationFeeAmount *int64          `json:"application_fee_amount"`
	Currency             *string         `json:"currency"`
	Customer             stripeID        `json:"customer"`
	LatestCharge         stripeID        `json:"latest_charge"`
	ReceiptEmail         *string         `json:"receipt_email"`
	Metadata             json.RawMessage `json:"metadata"`
	// API versions before 2022-11-15 list the charges instead of
	// latest_charge.
	Charges *struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	} `json:"charges"`
}

func decodePaymentIntent(ev Event) (meetingEvent, error) {
	var pi stripePaymentIntent
	if err := decodeObject(ev, &pi); err != nil {
		return meetingEvent{}, err
	}
	if err := requireID(ev, "id", pi.ID); err != nil {
		return meetingEvent{}, err
	}
	status := strings.TrimPrefix(ev.Envelope.Type, "payment_intent.")
	if status == "payment_failed" {
		status = "failed"
	}
	if _, ok := paymentRanks[status]; !ok {
		return meetingEvent{ignored: true}, nil
	}
	charge := pi.LatestCharge.ptr()
	if charge == nil && pi.Charges != nil && len(pi.Charges.Data) > 0 {
		charge = nonEmpty(pi.Charges.Data[0].ID)
	}
	details, err := parseMeeting(ev, pi.Metadata, pi.ReceiptEmail)
	if err != nil {
		return meetingEvent{}, err
	}
	v := versionOf(ev)
	session := metaString(pi.Metadata, "checkout_session_id", "checkoutSessionId")
	return meetingEvent{
		payment: &paymentFacts{
			paymentIntentID: pi.ID,
			status:          newPaymentStatus(status, v.created),
			object: &paymentIntentObject{
				customerID: pi.Customer.ptr(),
				chargeID:   charge,
				currency:   pi.Currency,
				amount:     pi.Amount,
				fee:        pi.ApplicationFeeAmount,
				at:         v.created,
				eventID:    v.eventID,
			},
		},
		meeting: meetingFacts{
			sessionID:       session,
			paymentIntentID: &pi.ID,
			customerID:      pi.Customer.ptr(),
			details:         details,
		},
		booking: &bookingFacts{
			session: session, paymentIntent: &pi.ID, metadata: pi.Metadata, currency: pi.Currency, details: details,
		},
	}, nil
}

// paymentOutcome: an event that changed the PaymentIntent's facts was
// applied even if no meeting is known for it yet.
func paymentOutcome(changed bool, meeting Outcome, err error) (Outcome, error) {
	switch {
	case err != nil:
		return "", err
	case changed || meeting == Applied:
		return Applied, nil
	default:
		return Stale, nil
	}
}

type stripeCharge struct {
	ID             string   `json:"id"`
	PaymentIntent  stripeID `json:"payment_intent"`
	AmountRefunded int64    `json:"amount_refunded"`
	Refunded       bool     `json:"refunded"`
}

func decodeChargeRefunded(ev Event) (meetingEvent, error) {
	var c stripeCharge
	if err := decodeObject(ev, &c); err != nil {
		return meetingEvent{}, err
	}
	if err := requireID(ev, "id", c.ID); err != nil {
		return meetingEvent{}, err
	}
	if c.PaymentIntent == "" {
		return meetingEvent{ignored: true}, nil // a charge without a PaymentIntent is no booking's
	}
	status := "partially_refunded"
	if c.Refunded {
		status = "refunded"
	}
	return meetingEvent{
		payment: &paymentFacts{
			paymentIntentID: string(c.PaymentIntent),
			status:          newPaymentStatus(status, versionOf(ev).created),
			amountRefunded:  c.AmountRefunded,
			chargeID:        &c.ID,
		},
		meeting: meetingFacts{paymentIntentID: c.PaymentIntent.ptr()},
		review:  true,
	}, nil
}

type stripeDispute struct {
	ID            string   `json:"id"`
	Charge        stripeID `json:"charge"`
	PaymentIntent stripeID `json:"payment_intent"`
}

func decodeDisputeCreated(ev Event) (meetingEvent, error) {
	var d stripeDispute
	if err := decodeObject(ev, &d); err != nil {
		return meetingEvent{}, err
	}
	if err := requireID(ev, "id", d.ID); err != nil {
		return meetingEvent{}, err
	}
	if d.PaymentIntent == "" && d.Charge == "" {
		return meetingEvent{ignored: true}, nil // not a PaymentIntent's charge: no booking's
	}
	return meetingEvent{
		payment: &paymentFacts{
			paymentIntentID: string(d.PaymentIntent),
			status:          newPaymentStatus("disputed", versionOf(ev).created),
			chargeID:        d.Charge.ptr(),
		},
		meeting:        meetingFacts{paymentIntentID: d.PaymentIntent.ptr()},
		disputedCharge: string(d.Charge),
		review:         true,
	}, nil
}

func meetingInsertParams(m queries.Meeting) queries.MeetingInsertParams {
	return queries.MeetingInsertParams{
		StripeSessionID:       m.StripeSessionID,
		StripePaymentIntentID: m.StripePaymentIntentID,
		StripeCustomerID:      m.StripeCustomerID,
		BookableEventID:       m.BookableEventID,
		ExpertWorkosUserID:    m.ExpertWorkosUserID,
		GuestEmail:            m.GuestEmail,
		GuestName:             m.GuestName,
		StartTime:             m.StartTime,
		DurationMinutes:       m.DurationMinutes,
		Notes:                 m.Notes,
		Timezone:              m.Timezone,
		Locale:                m.Locale,
		Amount:                m.Amount,
		ApplicationFeeAmount:  m.ApplicationFeeAmount,
		AmountRefunded:        m.AmountRefunded,
		Currency:              m.Currency,
		PaymentStatus:         m.PaymentStatus,
		PaymentStatusRank:     m.PaymentStatusRank,
		PaymentStatusVersion:  m.PaymentStatusVersion,
		DetailsVersion:        m.DetailsVersion,
		DetailsEventID:        m.DetailsEventID,
	}
}

func meetingUpdateParams(m queries.Meeting) queries.MeetingUpdateParams {
	p := meetingInsertParams(m)
	return queries.MeetingUpdateParams{
		ID:                    m.ID,
		StripeSessionID:       p.StripeSessionID,
		StripePaymentIntentID: p.StripePaymentIntentID,
		StripeCustomerID:      p.StripeCustomerID,
		BookableEventID:       p.BookableEventID,
		ExpertWorkosUserID:    p.ExpertWorkosUserID,
		GuestEmail:            p.GuestEmail,
		GuestName:             p.GuestName,
		StartTime:             p.StartTime,
		DurationMinutes:       p.DurationMinutes,
		Notes:                 p.Notes,
		Timezone:              p.Timezone,
		Locale:                p.Locale,
		Amount:                p.Amount,
		ApplicationFeeAmount:  p.ApplicationFeeAmount,
		AmountRefunded:        p.AmountRefunded,
		Currency:              p.Currency,
		PaymentStatus:         p.PaymentStatus,
		PaymentStatusRank:     p.PaymentStatusRank,
		PaymentStatusVersion:  p.PaymentStatusVersion,
		DetailsVersion:        p.DetailsVersion,
		DetailsEventID:        p.DetailsEventID,
	}
}

// normalized puts a row's times in UTC, so that an unchanged row compares
// equal to its merge.
func normalized(m queries.Meeting) queries.Meeting {
	m.StartTime = utc(m.StartTime)
	m.PaymentStatusVersion = m.PaymentStatusVersion.UTC()
	m.DetailsVersion = utc(m.DetailsVersion)
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	return m
}

func normalizedPayment(p queries.StripePaymentIntent) queries.StripePaymentIntent {
	p.PaymentStatusVersion = p.PaymentStatusVersion.UTC()
	p.StripeCreated = utc(p.StripeCreated)
	p.CreatedAt, p.UpdatedAt = p.CreatedAt.UTC(), p.UpdatedAt.UTC()
	return p
}

// joinID sets an id of a meeting, refusing to replace a different one: a
// Session has one PaymentIntent and the other way round.
func joinID(dst **string, v *string, what string) error {
	switch {
	case v == nil || *v == "":
		return nil
	case *dst != nil && **dst != *v:
		return fmt.Errorf("%w: meeting of %s %s is also claimed by %s", ErrInvariant, what, **dst, *v)
	}
	*dst = v
	return nil
}

// take sets *dst to v when v is known and either the source is newer or
// nothing is stored yet.
func take[T any](dst **T, v *T, newer bool) {
	if v != nil && (newer || *dst == nil) {
		*dst = v
	}
}

// fill sets *dst to v when nothing is stored yet.
func fill[T any](dst **T, v *T) { take(dst, v, false) }

func nonEmpty(s string) *string {
	if s = strings.TrimSpace(s); s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
