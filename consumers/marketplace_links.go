package consumers

import (
	"context"
	"fmt"

	"github.com/syncd/syncd/queries"
)

// The marketplace's links, run after the others of a batch (linkSet.run):
// they read the Connect accounts the users were just given.
//
//   - a user's payout destination and bank account, from the external
//     accounts of their Connect account;
//   - a user's identity check, from their verification sessions;
//   - a payment transfer's Stripe transfer, status and review reason, from
//     the transfers, the PaymentIntent's refunds and disputes.
//
// The users' sides ride on the Connect account link: every user or
// account that one looks at is looked at again here, so a user or an
// account that arrives after the payouts' facts picks them up.

type externalAccountLink struct{ account string }

type identityLink struct{ session string }

// paymentTransferLink names a payment transfer by any of its keys, or a
// Stripe transfer whose payment transfer is to be found.
type paymentTransferLink struct{ transfer, paymentIntent, session string }

type marketLinks struct {
	accounts, sessions                       []string
	transfers, transferPayments, transferCss []string
	// holders are the users who held the Connect accounts the Connect
	// link looks at, before it ran: one of them may have lost theirs.
	holders []string
}

// add gathers p when it is one of the marketplace's links.
func (m *marketLinks) add(p any) bool {
	switch p := p.(type) {
	case externalAccountLink:
		m.accounts = append(m.accounts, p.account)
	case identityLink:
		m.sessions = append(m.sessions, p.session)
	case paymentTransferLink:
		m.transfers = append(m.transfers, ids(nonEmpty(p.transfer))...)
		m.transferPayments = append(m.transferPayments, ids(nonEmpty(p.paymentIntent))...)
		m.transferCss = append(m.transferCss, ids(nonEmpty(p.session))...)
	default:
		return false
	}
	return true
}

// before runs ahead of the Connect account link: it notes who holds the
// accounts that link is about to look at.
func (m *marketLinks) before(ctx context.Context, q *queries.Queries, db queries.DBTX, connect queries.StripeConnectAccountLinkUsersParams) error {
	if len(connect.StripeAccountIds) == 0 {
		return nil
	}
	holders, err := q.UserIDsByConnectAccount(ctx, db, connect.StripeAccountIds)
	if err != nil {
		return fmt.Errorf("users of Connect accounts: %w", err)
	}
	m.holders = holders
	return nil
}

// run executes the marketplace's link queries; connect is what the
// Connect account link looked at.
func (m *marketLinks) run(ctx context.Context, q *queries.Queries, db queries.DBTX, connect queries.StripeConnectAccountLinkUsersParams) error {
	users := append(append([]string{}, connect.WorkosUserIds...), m.holders...)
	accounts := append(append([]string{}, connect.StripeAccountIds...), m.accounts...)
	if len(users)+len(accounts) > 0 {
		if err := q.StripeExternalAccountLinkUsers(ctx, db, queries.StripeExternalAccountLinkUsersParams{
			WorkosUserIds: users, StripeAccountIds: accounts,
		}); err != nil {
			return fmt.Errorf("link payout destinations to users: %w", err)
		}
	}
	if len(users)+len(connect.StripeAccountIds)+len(m.sessions) > 0 {
		if err := q.StripeIdentityVerificationSessionLinkUsers(ctx, db, queries.StripeIdentityVerificationSessionLinkUsersParams{
			SessionIds: append([]string{}, m.sessions...), WorkosUserIds: users, StripeAccountIds: append([]string{}, connect.StripeAccountIds...),
		}); err != nil {
			return fmt.Errorf("link identity checks to users: %w", err)
		}
	}
	if len(m.transfers)+len(m.transferPayments)+len(m.transferCss) > 0 {
		if err := q.PaymentTransferSettle(ctx, db, queries.PaymentTransferSettleParams{
			StripeTransferIds:      append([]string{}, m.transfers...),
			StripePaymentIntentIds: append([]string{}, m.transferPayments...),
			StripeSessionIds:       append([]string{}, m.transferCss...),
		}); err != nil {
			return fmt.Errorf("settle payment transfers: %w", err)
		}
	}
	*m = marketLinks{}
	return nil
}
