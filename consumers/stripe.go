package consumers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/syncd/syncd/events"
	"github.com/syncd/syncd/queries"
)

// The Stripe handlers: customers, subscriptions and Connect accounts go to
// their mirror tables and from there into users and organizations;
// Checkout Sessions, PaymentIntents, refunds and disputes go to meetings
// (meetings.go). Payloads are decoded here, field by field, so every API
// version is accepted. Their routes are in routes.go.

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
// metadata that is not an object, counts as absent. A key given twice
// means its last value, as a map decoded by encoding/json holds.
func metaString(metadata json.RawMessage, keys ...string) *string {
	m := gjson.ParseBytes(metadata)
	if !m.IsObject() {
		return nil
	}
	// One walk of the object (Stripe allows 50 keys of 500 characters)
	// for all the keys.
	last := make([]gjson.Result, len(keys))
	m.ForEach(func(key, v gjson.Result) bool {
		name := key.String()
		for i, k := range keys {
			if name == k {
				last[i] = v
			}
		}
		return true
	})
	for _, v := range last {
		if v.Type != gjson.String {
			continue
		}
		s := v.Str
		if strings.IndexByte(v.Raw, '\\') >= 0 && json.Unmarshal([]byte(v.Raw), &s) != nil {
			continue
		}
		if s = strings.TrimSpace(s); s != "" {
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

// customerRow is a customer event decoded: its upsert and its links.
type customerRow struct {
	p queries.StripeCustomerUpsertParams
	v stripeVersion
}

func decodeCustomer(ev Event) (customerRow, error) {
	var c stripeCustomer
	if err := decodeObject(ev, &c); err != nil {
		return customerRow{}, err
	}
	if err := requireID(ev, "id", c.ID); err != nil {
		return customerRow{}, err
	}
	v := versionOf(ev)
	var deleted *time.Time
	if ev.Envelope.Type == "customer.deleted" || c.Deleted {
		deleted = &v.created
	}
	return customerRow{v: v, p: queries.StripeCustomerUpsertParams{
		StripeCustomerID: c.ID,
		Email:            c.Email,
		Name:             c.Name,
		WorkosUserID:     metaString(c.Metadata, userMetaKeys...),
		WorkosOrgID:      metaString(c.Metadata, orgMetaKeys...),
		Metadata:         jsonObject(c.Metadata),
		ObjectCreated:    c.Created.Ptr(),
		StripeCreated:    v.created,
		StripeEventRank:  v.rank,
		StripeEventID:    v.eventID,
		DeletedAt:        deleted,
	}}, nil
}

// link links from this side; a user or organization arriving later links
// from its own (links.go).
func (r customerRow) link(l *linkSet) {
	l.add(queries.StripeCustomerLinkUsersParams{
		WorkosUserIds:     ids(r.p.WorkosUserID),
		Emails:            emails(r.p.Email),
		StripeCustomerIds: ids(&r.p.StripeCustomerID),
	})
	l.add(queries.StripeCustomerLinkOrganizationsParams{
		WorkosOrgIds:      ids(r.p.WorkosOrgID),
		StripeCustomerIds: ids(&r.p.StripeCustomerID),
	})
	// Subscriptions without organization metadata reach their organization
	// through this customer.
	l.add(queries.StripeSubscriptionLinkOrganizationsParams{
		WorkosOrgIds:          ids(r.p.WorkosOrgID),
		StripeCustomerIds:     ids(&r.p.StripeCustomerID),
		StripeSubscriptionIds: []string{},
	})
}

func applyCustomer(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeCustomer(ev)
	if err != nil {
		return "", err
	}
	_, err = tx.Q.StripeCustomerUpsert(ctx, tx.DB, r.p)
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	r.link(tx.Links)
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

// subscriptionRow is a subscription event decoded.
type subscriptionRow struct {
	p queries.StripeSubscriptionUpsertParams
	v stripeVersion
}

func decodeSubscription(ev Event) (subscriptionRow, error) {
	var s stripeSubscription
	if err := decodeObject(ev, &s); err != nil {
		return subscriptionRow{}, err
	}
	if err := requireID(ev, "id", s.ID); err != nil {
		return subscriptionRow{}, err
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
		return subscriptionRow{}, err
	}
	return subscriptionRow{v: v, p: queries.StripeSubscriptionUpsertParams{
		StripeSubscriptionID: s.ID,
		StripeCustomerID:     s.Customer.ptr(),
		WorkosOrgID:          metaString(s.Metadata, subscriptionOrgMetaKeys...),
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
	}}, nil
}

func (r subscriptionRow) link(l *linkSet) {
	l.add(queries.StripeSubscriptionLinkOrganizationsParams{
		WorkosOrgIds:          ids(r.p.WorkosOrgID),
		StripeCustomerIds:     ids(r.p.StripeCustomerID),
		StripeSubscriptionIds: ids(&r.p.StripeSubscriptionID),
	})
}

func applySubscription(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeSubscription(ev)
	if err != nil {
		return "", err
	}
	_, err = tx.Q.StripeSubscriptionUpsert(ctx, tx.DB, r.p)
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	r.link(tx.Links)
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

// accountRow is an account.updated event decoded.
type accountRow struct {
	p queries.StripeConnectAccountUpsertParams
	v stripeVersion
}

func decodeConnectAccount(ev Event) (accountRow, error) {
	var a stripeAccount
	if err := decodeObject(ev, &a); err != nil {
		return accountRow{}, err
	}
	if a.ID == "" {
		a.ID = ev.Envelope.Account
	}
	if err := requireID(ev, "id", a.ID); err != nil {
		return accountRow{}, err
	}
	v := versionOf(ev)
	return accountRow{v: v, p: queries.StripeConnectAccountUpsertParams{
		StripeAccountID:    a.ID,
		WorkosUserID:       metaString(a.Metadata, userMetaKeys...),
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
	}}, nil
}

func (r accountRow) link(l *linkSet) { linkConnectAccount(l, r.p.StripeAccountID, r.p.WorkosUserID) }

func applyConnectAccount(ctx context.Context, tx Tx, ev Event) (Outcome, error) {
	r, err := decodeConnectAccount(ev)
	if err != nil {
		return "", err
	}
	_, err = tx.Q.StripeConnectAccountUpsert(ctx, tx.DB, r.p)
	out, err := upserted(err)
	if err != nil || out != Applied {
		return out, err
	}
	r.link(tx.Links)
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
	linkConnectAccount(tx.Links, account, nil)
	return Applied, nil
}

func linkConnectAccount(l *linkSet, account string, userID *string) {
	l.add(queries.StripeConnectAccountLinkUsersParams{
		WorkosUserIds:    ids(userID),
		StripeAccountIds: ids(&account),
	})
}
