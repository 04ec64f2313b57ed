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
func linkUser(ctx context.Context, tx Tx, workosUserID string, email *string) error {
	if err := tx.Q.StripeCustomerLinkUsers(ctx, tx.DB, queries.StripeCustomerLinkUsersParams{
		WorkosUserIds:     []string{workosUserID},
		Emails:            emails(email),
		StripeCustomerIds: []string{},
	}); err != nil {
		return fmt.Errorf("link Stripe customers to user %s: %w", workosUserID, err)
	}
	if err := tx.Q.StripeConnectAccountLinkUsers(ctx, tx.DB, queries.StripeConnectAccountLinkUsersParams{
		WorkosUserIds:    []string{workosUserID},
		StripeAccountIds: []string{},
	}); err != nil {
		return fmt.Errorf("link Connect accounts to user %s: %w", workosUserID, err)
	}
	if err := tx.Q.MeetingLinkGuests(ctx, tx.DB, queries.MeetingLinkGuestsParams{
		MeetingIds:    []uuid.UUID{},
		Emails:        emails(email),
		WorkosUserIds: []string{workosUserID},
	}); err != nil {
		return fmt.Errorf("link meetings to guest %s: %w", workosUserID, err)
	}
	return nil
}

// linkOrganization links the Stripe customer and subscription that arrived
// before this WorkOS organization, or that reach it through the customer
// id WorkOS keeps on the organization.
func linkOrganization(ctx context.Context, tx Tx, workosOrgID string) error {
	if err := tx.Q.StripeCustomerLinkOrganizations(ctx, tx.DB, queries.StripeCustomerLinkOrganizationsParams{
		WorkosOrgIds:      []string{workosOrgID},
		StripeCustomerIds: []string{},
	}); err != nil {
		return fmt.Errorf("link Stripe customer to organization %s: %w", workosOrgID, err)
	}
	if err := tx.Q.StripeSubscriptionLinkOrganizations(ctx, tx.DB, queries.StripeSubscriptionLinkOrganizationsParams{
		WorkosOrgIds:          []string{workosOrgID},
		StripeCustomerIds:     []string{},
		StripeSubscriptionIds: []string{},
	}); err != nil {
		return fmt.Errorf("link Stripe subscription to organization %s: %w", workosOrgID, err)
	}
	return nil
}

// linkMembership gives the user's meetings as a guest the organization
// that this membership may have just provided.
func linkMembership(ctx context.Context, tx Tx, workosUserID string) error {
	if err := tx.Q.MeetingLinkGuests(ctx, tx.DB, queries.MeetingLinkGuestsParams{
		MeetingIds:    []uuid.UUID{},
		Emails:        []string{},
		WorkosUserIds: []string{workosUserID},
	}); err != nil {
		return fmt.Errorf("link meetings of guest %s to their organization: %w", workosUserID, err)
	}
	return nil
}
