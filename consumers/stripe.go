package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
)

// stripeHandlers applies Stripe events: customers, subscriptions and Connect
// accounts go to their mirror tables and from there into users and
// organizations; Checkout Sessions, PaymentIntents, refunds and disputes go
// to meetings (meetings.go). Payloads are decoded here, field by field, so
// every API version is accepted.
func stripeHandlers() map[string]Handler {
	return map[string]Handler{
		"customer.created":                         applyCustomer,
		"customer.updated":                         applyCustomer,
		"customer.deleted":                         applyCustomer,
		"customer.subscription.created":            applySubscription,
		"customer.subscription.updated":            applySubscription,
		"customer.subscription.deleted":            applySubscription,
		"customer.subscription.paused":             applySubscription,
		"customer.subscription.resumed":            applySubscription,
		"account.updated":                          applyConnectAccount,
		"account.application.deauthorized":         deauthorizeConnectAccount,
		"checkout.session.completed":               applyCheckoutSession,
		"checkout.session.async_payment_succeeded": applyCheckoutSession,
		"checkout.session.async_payment_failed":    applyCheckoutSession,
		"checkout.session.expired":                 applyCheckoutSession,
		"payment_intent.processing":                applyPaymentIntent,
		"payment_intent.succeeded":                 applyPaymentIntent,
		"payment_intent.payment_failed":            applyPaymentIntent,
		"payment_intent.canceled":                  applyPaymentIntent,
		"charge.refunded":                          applyChargeRefunded,
		"charge.dispute.created":                   applyDisputeCreated,
	}
}

// decodeObject decodes a Stripe event's data.object into v.
func decodeObject(ev Event, v any) error { return decodeField(ev, "data.object", v) }

// stripeVersion orders the Stripe events about one object. created has
// second resolution, so ties are decided by the rank of the event type
// (created < updated < deleted) and then by the event id: arbitrary, but the
// same whatever order the events arrive in.
type stripeVersion struct {
	created time.Time
	rank    int16
	eventID string
}

func versionOf(ev Event) stripeVersion {
	return stripeVersion{created: eventTime(ev), rank: eventRank(ev.Envelope.Type), eventID: ev.Envelope.ID}
}

// stripeID is a reference to another Stripe object: its id, or the object
// itself when the webhook endpoint expands it.
type stripeID string

func (id *stripeID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*id = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*id = stripeID(s)
	case b[0] == '{':
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*id = stripeID(o.ID)
	default:
		return fmt.Errorf("want an object id or an object, got %.20s", b)
	}
	return nil
}

func (id stripeID) ptr() *string {
	if id == "" {
		return nil
	}
	s := string(id)
	return &s
}

// metaString returns the first of keys with a non-empty string value in a
// Stripe metadata object. Stripe's values are strings; anything else, and
// metadata that is not an object, counts as absent.
func metaString(metadata json.RawMessage, keys ...string) *string {
	var m map[string]json.RawMessage
	if json.Unmarshal(metadata, &m) != nil {
		return nil
	}
	for _, k := range keys {
		var s string
		if json.Unmarshal(m[k], &s) == nil && strings.TrimSpace(s) != "" {
			s = strings.TrimSpace(s)
			return &s
		}
	}
	return nil
}

// The app writes either spelling of its metadata keys.
var (
	userMetaKeys = []string{"workos_user_id", "workosUserId"}
	orgMetaKeys  = []string{"workos_org_id", "workosOrgId"}
	// Subscriptions of teams also carry teamOrgId.
	subscriptionOrgMetaKeys = []string{"workos_org_id", "workosOrgId", "teamOrgId"}
)

// ids turns optional ids into the array parameter of the link queries.
func ids(vs ...*string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if v != nil && *v != "" {
			out = append(out, *v)
		}
	}
	return out
}

// emails lower-cases optional emails for the link queries, which compare
// lower(email).
func emails(vs ...*string) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if v != nil && strings.TrimSpace(*v) != "" {
			out = append(out, strings.ToLower(strings.TrimSpace(*v)))
		}
	}
	return out
}

type stripeCustomer struct {
	ID       string          `json:"id"`
	Email    *string         `json:"email"`
	Name     *string         `json:"name"`
	Metadata json.RawMessage `json:"metadata"`
	Created  events.Time     `json:"created"`
	Deleted  bool            `json:"deleted"`
}

func applyCustomer(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	var c stripeCustomer
	if err := decodeObject(ev, &c); err != nil {
		return "", err
	}
	if err := requireID(ev, "id", c.ID); err != nil {
		return "", err
	}
	v := versionOf(ev)
	var deleted *time.Time
	if ev.Envelope.Type == "customer.deleted" || c.Deleted {
		deleted = &v.created
	}
	userID := metaString(c.Metadata, userMetaKeys...)
	orgID := metaString(c.Metadata, orgMetaKeys...)
	_, err := tx.Q.StripeCustomerUpsert(ctx, tx.DB, queries.StripeCustomerUpsertParams{
		StripeCustomerID: c.ID,
		Email:            c.Email,
		Name:             c.Name,
		WorkosUserID:     userID,
		WorkosOrgID:      orgID,
		Metadata:         jsonObject(c.Metadata),
		ObjectCreated:    c.Created.Ptr(),
		StripeCreated:    v.created,
		StripeEventRank:  v.rank,
		StripeEventID:    v.eventID,
		DeletedAt:        deleted,
	})
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	// Link from this side; a user or organization arriving later links
	// from its own (links.go).
	tx.Links.add(queries.StripeCustomerLinkUsersParams{
		WorkosUserIds:     ids(userID),
		Emails:            emails(c.Email),
		StripeCustomerIds: ids(&c.ID),
	})
	tx.Links.add(queries.StripeCustomerLinkOrganizationsParams{
		WorkosOrgIds:      ids(orgID),
		StripeCustomerIds: ids(&c.ID),
	})
	// Subscriptions without organization metadata reach their organization
	// through this customer.
	tx.Links.add(queries.StripeSubscriptionLinkOrganizationsParams{
		WorkosOrgIds:          ids(orgID),
		StripeCustomerIds:     ids(&c.ID),
		StripeSubscriptionIds: []string{},
	})
	return Applied, nil
}

type stripeSubscription struct {
	ID                string          `json:"id"`
	Customer          stripeID        `json:"customer"`
	Status            string          `json:"status"`
	CancelAtPeriodEnd bool            `json:"cancel_at_period_end"`
	CurrentPeriodEnd  events.Time     `json:"current_period_end"`
	Metadata          json.RawMessage `json:"metadata"`
	Created           events.Time     `json:"created"`
	Items             struct {
		Data []struct {
			// API versions from 2025-03-31 keep the period on the items.
			CurrentPeriodEnd events.Time `json:"current_period_end"`
			Price            struct {
				LookupKey *string `json:"lookup_key"`
			} `json:"price"`
		} `json:"data"`
	} `json:"items"`
}

// tier is the subscription's metadata "tier", else its first price's
// lookup key.
func (s stripeSubscription) tier() *string {
	if t := metaString(s.Metadata, "tier"); t != nil {
		return t
	}
	for _, it := range s.Items.Data {
		if it.Price.LookupKey != nil && *it.Price.LookupKey != "" {
			return it.Price.LookupKey
		}
	}
	return nil
}

// periodEnd is current_period_end, which newer API versions moved from the
// subscription to its items (the latest of them then).
func (s stripeSubscription) periodEnd() *time.Time {
	if !s.CurrentPeriodEnd.IsZero() {
		return s.CurrentPeriodEnd.Ptr()
	}
	var end events.Time
	for _, it := range s.Items.Data {
		if it.CurrentPeriodEnd.After(end.Time) {
			end = it.CurrentPeriodEnd
		}
	}
	return end.Ptr()
}

func applySubscription(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	var s stripeSubscription
	if err := decodeObject(ev, &s); err != nil {
		return "", err
	}
	if err := requireID(ev, "id", s.ID); err != nil {
		return "", err
	}
	v := versionOf(ev)
	var deleted *time.Time
	if ev.Envelope.Type == "customer.subscription.deleted" {
		deleted = &v.created
		if s.Status == "" {
			s.Status = "canceled"
		}
	}
	if err := requireID(ev, "status", s.Status); err != nil {
		return "", err
	}
	orgID := metaString(s.Metadata, subscriptionOrgMetaKeys...)
	_, err := tx.Q.StripeSubscriptionUpsert(ctx, tx.DB, queries.StripeSubscriptionUpsertParams{
		StripeSubscriptionID: s.ID,
		StripeCustomerID:     s.Customer.ptr(),
		WorkosOrgID:          orgID,
		Status:               s.Status,
		Tier:                 s.tier(),
		CurrentPeriodEnd:     s.periodEnd(),
		CancelAtPeriodEnd:    s.CancelAtPeriodEnd,
		Metadata:             jsonObject(s.Metadata),
		ObjectCreated:        s.Created.Ptr(),
		StripeCreated:        v.created,
		StripeEventRank:      v.rank,
		StripeEventID:        v.eventID,
		DeletedAt:            deleted,
	})
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	tx.Links.add(queries.StripeSubscriptionLinkOrganizationsParams{
		WorkosOrgIds:          ids(orgID),
		StripeCustomerIds:     ids(s.Customer.ptr()),
		StripeSubscriptionIds: ids(&s.ID),
	})
	return Applied, nil
}

type stripeAccount struct {
	ID               string          `json:"id"`
	Email            *string         `json:"email"`
	DetailsSubmitted bool            `json:"details_submitted"`
	ChargesEnabled   bool            `json:"charges_enabled"`
	PayoutsEnabled   bool            `json:"payouts_enabled"`
	Metadata         json.RawMessage `json:"metadata"`
	Created          events.Time     `json:"created"`
	Requirements     *struct {
		CurrentlyDue []string `json:"currently_due"`
	} `json:"requirements"`
}

// onboardingComplete: the expert can take paid bookings and be paid out,
// and Stripe wants nothing more from them now.
func (a stripeAccount) onboardingComplete() bool {
	due := a.Requirements != nil && len(a.Requirements.CurrentlyDue) > 0
	return a.DetailsSubmitted && a.ChargesEnabled && a.PayoutsEnabled && !due
}

func applyConnectAccount(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	var a stripeAccount
	if err := decodeObject(ev, &a); err != nil {
		return "", err
	}
	if a.ID == "" {
		a.ID = ev.Envelope.Account
	}
	if err := requireID(ev, "id", a.ID); err != nil {
		return "", err
	}
	v := versionOf(ev)
	userID := metaString(a.Metadata, userMetaKeys...)
	_, err := tx.Q.StripeConnectAccountUpsert(ctx, tx.DB, queries.StripeConnectAccountUpsertParams{
		StripeAccountID:    a.ID,
		WorkosUserID:       userID,
		Email:              a.Email,
		DetailsSubmitted:   a.DetailsSubmitted,
		ChargesEnabled:     a.ChargesEnabled,
		PayoutsEnabled:     a.PayoutsEnabled,
		OnboardingComplete: a.onboardingComplete(),
		Metadata:           jsonObject(a.Metadata),
		ObjectCreated:      a.Created.Ptr(),
		StripeCreated:      v.created,
		StripeEventRank:    v.rank,
		StripeEventID:      v.eventID,
	})
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	linkConnectAccount(tx, a.ID, userID)
	return Applied, nil
}

// deauthorizeConnectAccount applies account.application.deauthorized. Its
// object is the platform's application; the account is the event's.
func deauthorizeConnectAccount(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	account := ev.Envelope.Account
	if err := requireID(ev, "account", account); err != nil {
		return "", err
	}
	v := versionOf(ev)
	_, err := tx.Q.StripeConnectAccountDeauthorize(ctx, tx.DB, queries.StripeConnectAccountDeauthorizeParams{
		StripeAccountID: account,
		DeauthorizedAt:  &v.created,
		StripeCreated:   v.created,
		StripeEventRank: v.rank,
		StripeEventID:   v.eventID,
	})
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	linkConnectAccount(tx, account, nil)
	return Applied, nil
}

func linkConnectAccount(tx Tx, account string, userID *string) {
	tx.Links.add(queries.StripeConnectAccountLinkUsersParams{
		WorkosUserIds:    ids(userID),
		StripeAccountIds: ids(&account),
	})
}
