package consumers

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
)

// The marketplace mirrors: the payouts, bank accounts and cards, identity
// checks and transfers of the experts' Connect accounts. Each is a
// write-only versioned mirror, applied set-based (marketplace_sets.go) or
// event by event with the handlers here; what users and payment_transfers
// show of them is derived by link queries (links.go). Events arrive on
// either endpoint: a Connect event names its account in `account`.

const (
	TableStripePayouts          Table = "stripe_payouts"
	TableStripeExternalAccounts Table = "stripe_external_accounts"
	TableStripeIdentitySessions Table = "stripe_identity_verification_sessions"
	TableStripeTransfers        Table = "stripe_transfers"
	TablePaymentTransfers       Table = "payment_transfers"
)

// payoutRanks orders a payout's events of one second by its status: a
// payout pays, or fails or is canceled, after it was pending and in
// transit, and a paid payout can still fail when the bank returns it.
var payoutRanks = map[string]int16{"pending": 0, "in_transit": 1, "paid": 2, "canceled": 3, "failed": 4}

// statusVersion is the version of an event whose object moves through
// statuses: its created, then the status's rank, then the event id.
func statusVersion(ev Event, rank int16) stripeVersion {
	v := versionOf(ev)
	v.rank = rank
	return v
}

type stripePayout struct {
	ID             string      `json:"id"`
	Amount         *int64      `json:"amount"`
	Currency       *string     `json:"currency"`
	ArrivalDate    events.Time `json:"arrival_date"`
	Status         string      `json:"status"`
	FailureCode    *string     `json:"failure_code"`
	FailureMessage *string     `json:"failure_message"`
	Method         *string     `json:"method"`
	Destination    stripeID    `json:"destination"`
	Created        events.Time `json:"created"`
}

type payoutRow struct {
	p queries.StripePayoutUpsertParams
	v stripeVersion
}

func decodePayout(ev Event) (payoutRow, error) {
	var po stripePayout
	if err := decodeObject(ev, &po); err != nil {
		return payoutRow{}, err
	}
	if err := requireID(ev, "id", po.ID); err != nil {
		return payoutRow{}, err
	}
	if po.Status == "" {
		po.Status = strings.TrimPrefix(ev.Envelope.Type, "payout.")
	}
	rank, ok := payoutRanks[po.Status]
	if !ok {
		// A status Stripe may add later: ordered with the updates.
		rank = payoutRanks["in_transit"]
	}
	v := statusVersion(ev, rank)
	return payoutRow{v: v, p: queries.StripePayoutUpsertParams{
		StripePayoutID:  po.ID,
		StripeAccountID: nonEmpty(ev.Envelope.Account),
		Amount:          po.Amount,
		Currency:        po.Currency,
		ArrivalDate:     po.ArrivalDate.Ptr(),
		Status:          po.Status,
		FailureCode:     po.FailureCode,
		FailureMessage:  po.FailureMessage,
		Method:          po.Method,
		Destination:     po.Destination.ptr(),
		ObjectCreated:   po.Created.Ptr(),
		StripeCreated:   v.created,
		StripeEventRank: v.rank,
		StripeEventID:   v.eventID,
	}}, nil
}

// A payout reaches its expert through the Connect account: nothing to
// link.
func (payoutRow) link(*linkSet) {}

func applyPayout(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodePayout(ev)
	if err != nil {
		return "", err
	}
	_, err = tx.Q.StripePayoutUpsert(ctx, tx.DB, r.p)
	return upserted(err)
}

type stripeExternalAccount struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	Account            stripeID        `json:"account"`
	Last4              *string         `json:"last4"`
	BankName           *string         `json:"bank_name"`
	Brand              *string         `json:"brand"`
	Country            *string         `json:"country"`
	Currency           *string         `json:"currency"`
	DefaultForCurrency *bool           `json:"default_for_currency"`
	Status             *string         `json:"status"`
	Metadata           json.RawMessage `json:"metadata"`
	Deleted            bool            `json:"deleted"`
}

type externalAccountRow struct {
	p queries.StripeExternalAccountUpsertParams
	v stripeVersion
}

func decodeExternalAccount(ev Event) (externalAccountRow, error) {
	var e stripeExternalAccount
	if err := decodeObject(ev, &e); err != nil {
		return externalAccountRow{}, err
	}
	if err := requireID(ev, "id", e.ID); err != nil {
		return externalAccountRow{}, err
	}
	if e.Object == "" {
		e.Object = "bank_account"
		if strings.HasPrefix(e.ID, "card_") {
			e.Object = "card"
		}
	}
	account := e.Account.ptr()
	if account == nil {
		account = nonEmpty(ev.Envelope.Account)
	}
	name := e.BankName
	if e.Object == "card" {
		name = e.Brand
	}
	v := versionOf(ev)
	var deleted *time.Time
	if e.Deleted || ev.Envelope.Type == "account.external_account.deleted" {
		deleted = &v.created
	}
	return externalAccountRow{v: v, p: queries.StripeExternalAccountUpsertParams{
		StripeExternalAccountID: e.ID,
		StripeAccountID:         account,
		Object:                  e.Object,
		Last4:                   e.Last4,
		BankName:                name,
		Country:                 e.Country,
		Currency:                e.Currency,
		DefaultForCurrency:      e.DefaultForCurrency != nil && *e.DefaultForCurrency,
		Status:                  e.Status,
		Metadata:                jsonObject(e.Metadata),
		StripeCreated:           v.created,
		StripeEventRank:         v.rank,
		StripeEventID:           v.eventID,
		DeletedAt:               deleted,
	}}, nil
}

// link shows the account's payout destination on its user.
func (r externalAccountRow) link(l *linkSet) {
	if r.p.StripeAccountID != nil {
		l.add(externalAccountLink{account: *r.p.StripeAccountID})
	}
}

func applyExternalAccount(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeExternalAccount(ev)
	if err != nil {
		return "", err
	}
	_, err = tx.Q.StripeExternalAccountUpsert(ctx, tx.DB, r.p)
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	r.link(tx.Links)
	return Applied, nil
}

// identityRank orders a verification session's events of one second by
// its progress. requires_input is where a session starts and where it
// returns when a check fails; only the failed one (it has a last_error)
// comes after processing.
func identityRank(typ, status string, failed bool) int16 {
	switch {
	case strings.HasSuffix(typ, ".redacted"):
		return 5
	case status == "canceled":
		return 4
	case status == "verified":
		return 3
	case status == "requires_input" && failed:
		return 2
	case status == "processing":
		return 1
	default:
		return 0
	}
}

type stripeVerificationSession struct {
	ID                string          `json:"id"`
	Status            string          `json:"status"`
	Type              *string         `json:"type"`
	ClientReferenceID *string         `json:"client_reference_id"`
	Metadata          json.RawMessage `json:"metadata"`
	Created           events.Time     `json:"created"`
	LastError         *struct {
		Code   *string `json:"code"`
		Reason *string `json:"reason"`
	} `json:"last_error"`
}

// identityUserMetaKeys: the app names the expert in the session's
// metadata under either of its spellings, or as user_id.
var identityUserMetaKeys = append(append([]string{}, userMetaKeys...), "user_id", "userId")

type identityRow struct {
	p queries.StripeIdentityVerificationSessionUpsertParams
	v stripeVersion
}

func decodeIdentitySession(ev Event) (identityRow, error) {
	var s stripeVerificationSession
	if err := decodeObject(ev, &s); err != nil {
		return identityRow{}, err
	}
	if err := requireID(ev, "id", s.ID); err != nil {
		return identityRow{}, err
	}
	if s.Status == "" {
		s.Status = strings.TrimPrefix(ev.Envelope.Type, "identity.verification_session.")
	}
	var code, reason *string
	if s.LastError != nil {
		code, reason = s.LastError.Code, s.LastError.Reason
	}
	v := statusVersion(ev, identityRank(ev.Envelope.Type, s.Status, code != nil || reason != nil))
	var ref *string
	if s.ClientReferenceID != nil {
		ref = nonEmpty(*s.ClientReferenceID)
	}
	return identityRow{v: v, p: queries.StripeIdentityVerificationSessionUpsertParams{
		StripeVerificationSessionID: s.ID,
		StripeAccountID:             nonEmpty(ev.Envelope.Account),
		Status:                      s.Status,
		Type:                        s.Type,
		LastErrorCode:               code,
		LastErrorReason:             reason,
		ClientReferenceID:           ref,
		WorkosUserID:                metaString(s.Metadata, identityUserMetaKeys...),
		Metadata:                    jsonObject(s.Metadata),
		ObjectCreated:               s.Created.Ptr(),
		StripeCreated:               v.created,
		StripeEventRank:             v.rank,
		StripeEventID:               v.eventID,
	}}, nil
}

func (r identityRow) link(l *linkSet) {
	l.add(identityLink{session: r.p.StripeVerificationSessionID})
}

func applyIdentitySession(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeIdentitySession(ev)
	if err != nil {
		return "", err
	}
	_, err = tx.Q.StripeIdentityVerificationSessionUpsert(ctx, tx.DB, r.p)
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	r.link(tx.Links)
	return Applied, nil
}

type stripeTransfer struct {
	ID                string          `json:"id"`
	Amount            *int64          `json:"amount"`
	AmountReversed    int64           `json:"amount_reversed"`
	Currency          *string         `json:"currency"`
	Destination       stripeID        `json:"destination"`
	SourceTransaction stripeID        `json:"source_transaction"`
	TransferGroup     *string         `json:"transfer_group"`
	Reversed          bool            `json:"reversed"`
	Metadata          json.RawMessage `json:"metadata"`
	Created           events.Time     `json:"created"`
}

// The app's metadata keys naming a transfer's booking.
var (
	sessionMetaKeys       = []string{"checkout_session_id", "checkoutSessionId", "session_id", "sessionId"}
	paymentIntentMetaKeys = []string{"payment_intent_id", "paymentIntentId"}
)

// bookingOf names the booking a transfer pays for, from its metadata or
// else its transfer_group: the PaymentIntent id, "group_" + it (the group
// Stripe gives a PaymentIntent's charges), or the Session id.
func (t stripeTransfer) bookingOf() (session, paymentIntent *string) {
	session = metaString(t.Metadata, sessionMetaKeys...)
	paymentIntent = metaString(t.Metadata, paymentIntentMetaKeys...)
	if t.TransferGroup != nil {
		g := strings.TrimPrefix(strings.TrimSpace(*t.TransferGroup), "group_")
		switch {
		case paymentIntent == nil && strings.HasPrefix(g, "pi_"):
			paymentIntent = &g
		case session == nil && strings.HasPrefix(g, "cs_"):
			session = &g
		}
	}
	return session, paymentIntent
}

func transferRank(typ string) int16 {
	switch typ {
	case "transfer.created":
		return 0
	case "transfer.reversed":
		return 2
	default:
		return 1
	}
}

type transferRow struct {
	p queries.StripeTransferUpsertParams
	v stripeVersion
}

func decodeTransfer(ev Event) (transferRow, error) {
	var t stripeTransfer
	if err := decodeObject(ev, &t); err != nil {
		return transferRow{}, err
	}
	if err := requireID(ev, "id", t.ID); err != nil {
		return transferRow{}, err
	}
	session, pi := t.bookingOf()
	v := statusVersion(ev, transferRank(ev.Envelope.Type))
	return transferRow{v: v, p: queries.StripeTransferUpsertParams{
		StripeTransferID:      t.ID,
		DestinationAccountID:  t.Destination.ptr(),
		Amount:                t.Amount,
		AmountReversed:        t.AmountReversed,
		Currency:              t.Currency,
		Reversed:              t.Reversed || (ev.Envelope.Type == "transfer.reversed" && t.Amount != nil && t.AmountReversed >= *t.Amount),
		SourceTransaction:     t.SourceTransaction.ptr(),
		TransferGroup:         t.TransferGroup,
		StripeSessionID:       session,
		StripePaymentIntentID: pi,
		Metadata:              jsonObject(t.Metadata),
		ObjectCreated:         t.Created.Ptr(),
		StripeCreated:         v.created,
		StripeEventRank:       v.rank,
		StripeEventID:         v.eventID,
	}}, nil
}

// link settles the payment transfer the transfer belongs to.
func (r transferRow) link(l *linkSet) {
	l.add(paymentTransferLink{transfer: r.p.StripeTransferID})
}

func applyTransfer(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeTransfer(ev)
	if err != nil {
		return "", err
	}
	_, err = tx.Q.StripeTransferUpsert(ctx, tx.DB, r.p)
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	r.link(tx.Links)
	return Applied, nil
}
