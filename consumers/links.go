package consumers

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/syncd/syncd/queries"
)

// The links between WorkOS and Stripe rows are derived from the Stripe
// mirrors (stripe_customers, stripe_subscriptions, stripe_connect_accounts)
// and meetings, so they resolve from whichever side arrives last: the
// Stripe handlers link from their side (stripe.go, meetings.go), the WorkOS
// handlers call these from theirs.

// linkUser links rows that Stripe events stored before this WorkOS user
// arrived or changed: customers whose metadata or email points at the user,
// Connect accounts whose metadata does, meetings booked under the user's
// email (case-insensitive).
func linkUser(l *linkSet, workosUserID string, email *string) {
	l.add(queries.StripeCustomerLinkUsersParams{
		WorkosUserIds:     []string{workosUserID},
		Emails:            emails(email),
		StripeCustomerIds: []string{},
	})
	l.add(queries.StripeConnectAccountLinkUsersParams{
		WorkosUserIds:    []string{workosUserID},
		StripeAccountIds: []string{},
	})
	l.add(queries.MeetingLinkGuestsParams{
		MeetingIds:    []uuid.UUID{},
		Emails:        emails(email),
		WorkosUserIds: []string{workosUserID},
	})
}

// linkOrganization links the Stripe customer and subscription that arrived
// before this WorkOS organization, or that reach it through the customer
// id WorkOS keeps on the organization, and lets its members' meetings
// choose their guest organization again (its type may have just arrived,
// or it may be gone). Called after an organization's upsert or delete.
func linkOrganization(l *linkSet, workosOrgID string) {
	l.add(queries.MeetingLinkGuestsParams{WorkosOrgIds: []string{workosOrgID}})
	l.add(queries.StripeCustomerLinkOrganizationsParams{
		WorkosOrgIds:      []string{workosOrgID},
		StripeCustomerIds: []string{},
	})
	l.add(queries.StripeSubscriptionLinkOrganizationsParams{
		WorkosOrgIds:          []string{workosOrgID},
		StripeCustomerIds:     []string{},
		StripeSubscriptionIds: []string{},
	})
}

// linkMembership gives the user's meetings as a guest the organization
// that this membership may have just provided.
func linkMembership(l *linkSet, workosUserID string) {
	l.add(queries.MeetingLinkGuestsParams{
		MeetingIds:    []uuid.UUID{},
		Emails:        []string{},
		WorkosUserIds: []string{workosUserID},
	})
}

// linkSet gathers the link work of a batch so that each link query runs
// once, over the union of the rows its events touched, after every entity
// write of the batch. A link is a function of the rows it reads, so one
// late run over the union leaves what a run after each event would.
type linkSet struct {
	customerUsers queries.StripeCustomerLinkUsersParams
	customerOrgs  queries.StripeCustomerLinkOrganizationsParams
	subOrgs       queries.StripeSubscriptionLinkOrganizationsParams
	connectUsers  queries.StripeConnectAccountLinkUsersParams
	meetingGuests queries.MeetingLinkGuestsParams
	market        marketLinks
	any           bool
}

func (l *linkSet) add(p any) {
	l.any = true
	switch p := p.(type) {
	case queries.StripeCustomerLinkUsersParams:
		l.customerUsers.WorkosUserIds = append(l.customerUsers.WorkosUserIds, p.WorkosUserIds...)
		l.customerUsers.Emails = append(l.customerUsers.Emails, p.Emails...)
		l.customerUsers.StripeCustomerIds = append(l.customerUsers.StripeCustomerIds, p.StripeCustomerIds...)
	case queries.StripeCustomerLinkOrganizationsParams:
		l.customerOrgs.WorkosOrgIds = append(l.customerOrgs.WorkosOrgIds, p.WorkosOrgIds...)
		l.customerOrgs.StripeCustomerIds = append(l.customerOrgs.StripeCustomerIds, p.StripeCustomerIds...)
	case queries.StripeSubscriptionLinkOrganizationsParams:
		l.subOrgs.WorkosOrgIds = append(l.subOrgs.WorkosOrgIds, p.WorkosOrgIds...)
		l.subOrgs.StripeCustomerIds = append(l.subOrgs.StripeCustomerIds, p.StripeCustomerIds...)
		l.subOrgs.StripeSubscriptionIds = append(l.subOrgs.StripeSubscriptionIds, p.StripeSubscriptionIds...)
	case queries.StripeConnectAccountLinkUsersParams:
		l.connectUsers.WorkosUserIds = append(l.connectUsers.WorkosUserIds, p.WorkosUserIds...)
		l.connectUsers.StripeAccountIds = append(l.connectUsers.StripeAccountIds, p.StripeAccountIds...)
	case queries.MeetingLinkGuestsParams:
		l.meetingGuests.MeetingIds = append(l.meetingGuests.MeetingIds, p.MeetingIds...)
		l.meetingGuests.Emails = append(l.meetingGuests.Emails, p.Emails...)
		l.meetingGuests.WorkosUserIds = append(l.meetingGuests.WorkosUserIds, p.WorkosUserIds...)
		l.meetingGuests.WorkosOrgIds = append(l.meetingGuests.WorkosOrgIds, p.WorkosOrgIds...)
	default:
		if !l.market.add(p) {
			panic(fmt.Sprintf("consumers: no link query for %T", p))
		}
	}
}

// The link queries are index probes, one per row they resolve, over a
// batch's keys. A database never analyzed (a new one; autovacuum off, or
// behind a burst) has the planner take `deleted_at IS NULL` to keep 0.5 %
// of a table, and it planned them as scans of whole tables per row
// instead: 50-70 ms a batch for the meeting and customer links in the
// bench's mix, 12 and 5 ms with this (and the customer link's arms each
// their own probe). The setting prices sequential scans out rather than
// forbidding them, and lasts for the link phase (SET LOCAL: a failed
// phase's rollback ends it too).
const (
	probesOnly = "SET LOCAL enable_seqscan = off"
	probesDone = "SET LOCAL enable_seqscan TO DEFAULT"
)

// run executes the gathered link queries in db, each once.
func (l *linkSet) run(ctx context.Context, q *queries.Queries, db queries.DBTX) error {
	if !l.any {
		return nil
	}
	nonEmpty := func(lists ...[]string) bool {
		for _, l := range lists {
			if len(l) > 0 {
				return true
			}
		}
		return false
	}
	steps := []struct {
		name string
		on   bool
		run  func() error
	}{
		{"customers to users", nonEmpty(l.customerUsers.WorkosUserIds, l.customerUsers.Emails, l.customerUsers.StripeCustomerIds),
			func() error { return q.StripeCustomerLinkUsers(ctx, db, l.customerUsers) }},
		{"customers to organizations", nonEmpty(l.customerOrgs.WorkosOrgIds, l.customerOrgs.StripeCustomerIds),
			func() error { return q.StripeCustomerLinkOrganizations(ctx, db, l.customerOrgs) }},
		{"subscriptions to organizations", nonEmpty(l.subOrgs.WorkosOrgIds, l.subOrgs.StripeCustomerIds, l.subOrgs.StripeSubscriptionIds),
			func() error { return q.StripeSubscriptionLinkOrganizations(ctx, db, l.subOrgs) }},
		{"Connect accounts to users", nonEmpty(l.connectUsers.WorkosUserIds, l.connectUsers.StripeAccountIds),
			func() error { return q.StripeConnectAccountLinkUsers(ctx, db, l.connectUsers) }},
		{"meetings to guests", len(l.meetingGuests.MeetingIds) > 0 || nonEmpty(l.meetingGuests.Emails, l.meetingGuests.WorkosUserIds, l.meetingGuests.WorkosOrgIds),
			func() error { return q.MeetingLinkGuests(ctx, db, l.meetingGuests) }},
	}
	if _, err := db.Exec(ctx, probesOnly); err != nil {
		return fmt.Errorf("links: %w", err)
	}
	if err := l.market.before(ctx, q, db, l.connectUsers); err != nil {
		return err
	}
	for _, s := range steps {
		if s.on {
			if err := s.run(); err != nil {
				return fmt.Errorf("link %s: %w", s.name, err)
			}
		}
	}
	if err := l.market.run(ctx, q, db, l.connectUsers); err != nil {
		return err
	}
	if _, err := db.Exec(ctx, probesDone); err != nil {
		return fmt.Errorf("links: %w", err)
	}
	*l = *newLinkSet()
	return nil
}

// newLinkSet starts every list empty rather than nil: the queries take
// arrays, and NULL is not an empty array.
func newLinkSet() *linkSet {
	e := func() []string { return []string{} }
	return &linkSet{
		customerUsers: queries.StripeCustomerLinkUsersParams{WorkosUserIds: e(), Emails: e(), StripeCustomerIds: e()},
		customerOrgs:  queries.StripeCustomerLinkOrganizationsParams{WorkosOrgIds: e(), StripeCustomerIds: e()},
		subOrgs:       queries.StripeSubscriptionLinkOrganizationsParams{WorkosOrgIds: e(), StripeCustomerIds: e(), StripeSubscriptionIds: e()},
		connectUsers:  queries.StripeConnectAccountLinkUsersParams{WorkosUserIds: e(), StripeAccountIds: e()},
		meetingGuests: queries.MeetingLinkGuestsParams{MeetingIds: []uuid.UUID{}, Emails: e(), WorkosUserIds: e(), WorkosOrgIds: e()},
	}
}
