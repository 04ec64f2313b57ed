package queries_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/syncd/syncd/queries"
	"github.com/syncd/syncd/syncdtest"
)

// The link queries look their rows up key list by key list, each through
// its own index, and take the union after. These tests hold each list to
// the rows it reaches: a row made stale is repaired by a run with only the
// key that reaches it, and left stale by a run with keys that do not.

// linkFixture: two organizations and three users (user_a a member of
// org_a), a meeting booked under user_a's email, and the Stripe rows the
// links derive from. Each table's rows are consistent; a case breaks one.
const linkFixture = `
INSERT INTO organizations (workos_org_id, type, stripe_customer_id) VALUES
    ('org_a', 'member_personal', NULL), ('org_b', 'team', 'cus_b');
INSERT INTO users (workos_user_id, email, stripe_connect_account_id) VALUES
    ('user_a', 'a@example.com', 'acct_a'), ('user_b', 'b@example.com', 'acct_b'), ('user_c', 'c@example.com', NULL);
INSERT INTO user_org_memberships (workos_org_membership_id, workos_user_id, workos_org_id, org_id)
    SELECT 'om_a', 'user_a', 'org_a', id FROM organizations WHERE workos_org_id = 'org_a';
INSERT INTO meetings (stripe_session_id, stripe_payment_intent_id, guest_email, payment_status, payment_status_rank, payment_status_version)
    VALUES ('cs_a', 'pi_a', 'A@Example.com', 'succeeded', 10, now());
INSERT INTO stripe_customers (stripe_customer_id, email, workos_user_id, workos_org_id, stripe_created, stripe_event_rank, stripe_event_id) VALUES
    ('cus_u', 'a@example.com', 'user_a', NULL, '2026-01-01', 0, 'evt_cu'),
    ('cus_o', NULL, NULL, 'org_a', '2026-01-02', 0, 'evt_co');
-- org_b has customer cus_b: sub_c is its own; sub_x, newer and of the
-- same customer, is org_a's by its metadata.
INSERT INTO stripe_subscriptions (stripe_subscription_id, stripe_customer_id, workos_org_id, status, object_created, stripe_created, stripe_event_rank, stripe_event_id) VALUES
    ('sub_c', 'cus_b', NULL, 'active', '2026-01-01', '2026-01-03', 0, 'evt_sc'),
    ('sub_x', 'cus_b', 'org_a', 'active', '2026-02-01', '2026-02-03', 0, 'evt_sx');
-- acct_m names user_b in its metadata but user_b holds acct_b.
INSERT INTO stripe_connect_accounts (stripe_account_id, workos_user_id, details_submitted, object_created, stripe_created, stripe_event_rank, stripe_event_id) VALUES
    ('acct_a', 'user_a', true, '2026-01-01', '2026-01-04', 0, 'evt_aa'),
    ('acct_b', 'user_b', true, '2026-01-01', '2026-01-04', 0, 'evt_ab'),
    ('acct_m', 'user_b', false, '2025-01-01', '2026-01-04', 0, 'evt_am');
INSERT INTO stripe_external_accounts (stripe_external_account_id, stripe_account_id, object, last4, bank_name, stripe_created, stripe_event_rank, stripe_event_id) VALUES
    ('ba_a', 'acct_a', 'bank_account', '1111', 'Bank A', '2026-01-05', 0, 'evt_ea'),
    ('ba_b', 'acct_b', 'bank_account', '2222', 'Bank B', '2026-01-05', 0, 'evt_eb');
-- One session for each way a session names its user.
INSERT INTO stripe_identity_verification_sessions (stripe_verification_session_id, stripe_account_id, client_reference_id, workos_user_id, status, object_created, stripe_created, stripe_event_rank, stripe_event_id) VALUES
    ('vs_user', NULL, NULL, 'user_a', 'verified', '2026-01-01', '2026-01-06', 3, 'evt_v1'),
    ('vs_ref_user', NULL, 'user_a', NULL, 'processing', '2026-01-02', '2026-01-06', 1, 'evt_v2'),
    ('vs_ref_acct', NULL, 'acct_a', NULL, 'processing', '2026-01-03', '2026-01-06', 1, 'evt_v3'),
    ('vs_acct', 'acct_a', NULL, NULL, 'processing', '2026-01-04', '2026-01-06', 1, 'evt_v4');
INSERT INTO stripe_payment_intents (stripe_payment_intent_id, stripe_charge_id, payment_status, payment_status_rank, payment_status_version)
    VALUES ('pi_a', 'ch_a', 'succeeded', 10, now());
INSERT INTO payment_transfers (stripe_session_id, stripe_payment_intent_id, amount, platform_fee)
    VALUES ('cs_a', 'pi_a', 900, 100), ('cs_other', 'pi_other', 900, 100);
-- One transfer for each way a transfer names its booking, and one that
-- names another booking.
INSERT INTO stripe_transfers (stripe_transfer_id, stripe_payment_intent_id, stripe_session_id, source_transaction, stripe_created, stripe_event_rank, stripe_event_id) VALUES
    ('tr_pi', 'pi_a', NULL, NULL, '2026-01-07', 0, 'evt_t1'),
    ('tr_cs', NULL, 'cs_a', NULL, '2026-01-07', 0, 'evt_t2'),
    ('tr_ch', NULL, NULL, 'ch_a', '2026-01-07', 0, 'evt_t3'),
    ('tr_named', NULL, NULL, NULL, '2026-01-07', 0, 'evt_t4'),
    ('tr_other', 'pi_other', NULL, NULL, '2026-01-07', 0, 'evt_t5');
`

type linkCase struct {
	name string
	// stale breaks the link of the row under test; right is true when it
	// holds what the mirrors say.
	stale, right string
	run          func(ctx context.Context, q *queries.Queries, db pgx.Tx) error
	// want: right holds after the run (it looked at the row).
	want bool
}

func TestLinkQueriesReachEachKey(t *testing.T) {
	ctx := context.Background()
	pool := syncdtest.DB(t)
	if _, err := pool.Exec(ctx, linkFixture); err != nil {
		t.Fatal(err)
	}
	var meeting uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT id FROM meetings WHERE stripe_session_id = 'cs_a'").Scan(&meeting); err != nil {
		t.Fatal(err)
	}
	q, none := queries.New(), []string{}
	list := func(s ...string) []string { return s }

	guests := func(ids []uuid.UUID, emails, users, orgs []string) func(context.Context, *queries.Queries, pgx.Tx) error {
		return func(ctx context.Context, q *queries.Queries, tx pgx.Tx) error {
			return q.MeetingLinkGuests(ctx, tx, queries.MeetingLinkGuestsParams{MeetingIds: ids, Emails: emails, WorkosUserIds: users, WorkosOrgIds: orgs})
		}
	}
	noMeetings := []uuid.UUID{}
	const guestRight = `SELECT guest_workos_user_id IS NOT DISTINCT FROM 'user_a'
	    AND guest_org_id IS NOT DISTINCT FROM (SELECT id FROM organizations WHERE workos_org_id = 'org_a')
	    FROM meetings WHERE stripe_session_id = 'cs_a'`
	const guestNone = "UPDATE meetings SET guest_workos_user_id = NULL, guest_org_id = NULL"
	const guestUserOnly = "UPDATE meetings SET guest_workos_user_id = 'user_a', guest_org_id = NULL"
	const guestOrgOnly = "UPDATE meetings SET guest_workos_user_id = NULL, guest_org_id = (SELECT id FROM organizations WHERE workos_org_id = 'org_a')"

	customerUsers := func(users, emails, customers []string) func(context.Context, *queries.Queries, pgx.Tx) error {
		return func(ctx context.Context, q *queries.Queries, tx pgx.Tx) error {
			return q.StripeCustomerLinkUsers(ctx, tx, queries.StripeCustomerLinkUsersParams{WorkosUserIds: users, Emails: emails, StripeCustomerIds: customers})
		}
	}
	const customerUserRight = `SELECT stripe_customer_id IS NOT DISTINCT FROM 'cus_u' AND stripe_customer_version IS NOT DISTINCT FROM '2026-01-01'
	    FROM users WHERE workos_user_id = 'user_a'`

	customerOrgs := func(orgs, customers []string) func(context.Context, *queries.Queries, pgx.Tx) error {
		return func(ctx context.Context, q *queries.Queries, tx pgx.Tx) error {
			return q.StripeCustomerLinkOrganizations(ctx, tx, queries.StripeCustomerLinkOrganizationsParams{WorkosOrgIds: orgs, StripeCustomerIds: customers})
		}
	}
	const customerOrgRight = `SELECT stripe_customer_id IS NOT DISTINCT FROM 'cus_o' AND stripe_customer_version IS NOT DISTINCT FROM '2026-01-02'
	    FROM organizations WHERE workos_org_id = 'org_a'`

	subOrgs := func(orgs, customers, subs []string) func(context.Context, *queries.Queries, pgx.Tx) error {
		return func(ctx context.Context, q *queries.Queries, tx pgx.Tx) error {
			return q.StripeSubscriptionLinkOrganizations(ctx, tx, queries.StripeSubscriptionLinkOrganizationsParams{WorkosOrgIds: orgs, StripeCustomerIds: customers, StripeSubscriptionIds: subs})
		}
	}
	// sub_x has org_b's customer and is newer, but its metadata names org_a.
	const subOrgRight = `SELECT stripe_subscription_id IS NOT DISTINCT FROM 'sub_c' AND subscription_version IS NOT DISTINCT FROM '2026-01-03'
	    FROM organizations WHERE workos_org_id = 'org_b'`

	connectUsers := func(users, accounts []string) func(context.Context, *queries.Queries, pgx.Tx) error {
		return func(ctx context.Context, q *queries.Queries, tx pgx.Tx) error {
			return q.StripeConnectAccountLinkUsers(ctx, tx, queries.StripeConnectAccountLinkUsersParams{WorkosUserIds: users, StripeAccountIds: accounts})
		}
	}
	const connectRight = `SELECT stripe_connect_account_id IS NOT DISTINCT FROM 'acct_a' AND connect_details_submitted
	    AND stripe_connect_version IS NOT DISTINCT FROM '2026-01-04' FROM users WHERE workos_user_id = 'user_a'`

	payouts := func(users, accounts []string) func(context.Context, *queries.Queries, pgx.Tx) error {
		return func(ctx context.Context, q *queries.Queries, tx pgx.Tx) error {
			return q.StripeExternalAccountLinkUsers(ctx, tx, queries.StripeExternalAccountLinkUsersParams{WorkosUserIds: users, StripeAccountIds: accounts})
		}
	}
	const payoutRightB = `SELECT connect_payout_destination AND stripe_bank_account_last4 IS NOT DISTINCT FROM '2222'
	    FROM users WHERE workos_user_id = 'user_b'`
	const payoutStaleB = "UPDATE users SET connect_payout_destination = false, stripe_bank_account_last4 = NULL, stripe_bank_name = NULL WHERE workos_user_id = 'user_b'"

	identity := func(sessions, users, accounts []string) func(context.Context, *queries.Queries, pgx.Tx) error {
		return func(ctx context.Context, q *queries.Queries, tx pgx.Tx) error {
			return q.StripeIdentityVerificationSessionLinkUsers(ctx, tx, queries.StripeIdentityVerificationSessionLinkUsersParams{SessionIds: sessions, WorkosUserIds: users, StripeAccountIds: accounts})
		}
	}
	// The newest of user_a's sessions is vs_acct; one of them is verified.
	const identityRight = `SELECT stripe_identity_verification_id IS NOT DISTINCT FROM 'vs_acct' AND stripe_identity_verified
	    FROM users WHERE workos_user_id = 'user_a'`

	settle := func(transfers, intents, sessions []string) func(context.Context, *queries.Queries, pgx.Tx) error {
		return func(ctx context.Context, q *queries.Queries, tx pgx.Tx) error {
			return q.PaymentTransferSettle(ctx, tx, queries.PaymentTransferSettleParams{StripeTransferIds: transfers, StripePaymentIntentIds: intents, StripeSessionIds: sessions})
		}
	}
	const settleRight = "SELECT status = 'COMPLETED' AND stripe_transfer_id IS NOT NULL FROM payment_transfers WHERE stripe_session_id = 'cs_a'"

	for _, c := range []linkCase{
		{"guest by meeting", guestNone, guestRight, guests([]uuid.UUID{meeting}, none, none, none), true},
		{"guest by email, any case", guestNone, guestRight, guests(noMeetings, list("a@example.com"), none, none), true},
		{"guest by another email", guestNone, guestRight, guests(noMeetings, list("b@example.com"), none, none), false},
		{"guest by its user", guestUserOnly, guestRight, guests(noMeetings, none, list("user_a"), none), true},
		{"guest by a user it is not yet", guestNone, guestRight, guests(noMeetings, none, list("user_a"), none), false},
		{"guest by the organization it points at", guestOrgOnly, guestRight, guests(noMeetings, none, none, list("org_a")), true},
		{"guest by its user's organization", guestUserOnly, guestRight, guests(noMeetings, none, none, list("org_a")), true},
		{"guest by another organization", guestUserOnly, guestRight, guests(noMeetings, none, none, list("org_b")), false},

		{"customer by user", "UPDATE users SET stripe_customer_id = NULL WHERE workos_user_id = 'user_a'", customerUserRight, customerUsers(list("user_a"), none, none), true},
		{"customer by email", "UPDATE users SET stripe_customer_id = NULL WHERE workos_user_id = 'user_a'", customerUserRight, customerUsers(none, list("a@example.com"), none), true},
		{"customer by the customer held", "UPDATE users SET stripe_customer_id = 'cus_u', stripe_customer_version = NULL WHERE workos_user_id = 'user_a'", customerUserRight, customerUsers(none, none, list("cus_u")), true},
		{"customer by a customer not held", "UPDATE users SET stripe_customer_id = NULL WHERE workos_user_id = 'user_a'", customerUserRight, customerUsers(none, none, list("cus_u")), false},
		{"customer by another user", "UPDATE users SET stripe_customer_id = NULL WHERE workos_user_id = 'user_a'", customerUserRight, customerUsers(list("user_b"), list("b@example.com"), none), false},
		{"customer of a deleted user", "UPDATE users SET stripe_customer_id = NULL, deleted_at = now() WHERE workos_user_id = 'user_a'", customerUserRight, customerUsers(list("user_a"), list("a@example.com"), none), false},

		// A customer the WorkOS metadata names is taken while the mirror
		// does not know it, never when the mirror resolves it to another.
		{"customer the metadata names, unknown to the mirror", `UPDATE users SET metadata = '{"stripe_customer_id": "cus_legacy"}' WHERE workos_user_id = 'user_c'`,
			"SELECT stripe_customer_id IS NOT DISTINCT FROM 'cus_legacy' FROM users WHERE workos_user_id = 'user_c'", customerUsers(list("user_c"), none, none), true},
		{"customer the metadata names, another's", `UPDATE users SET metadata = '{"stripe_customer_id": "cus_u"}' WHERE workos_user_id = 'user_c'`,
			"SELECT stripe_customer_id IS NOT DISTINCT FROM 'cus_u' FROM users WHERE workos_user_id = 'user_c'", customerUsers(list("user_c"), none, none), false},

		{"org customer by organization", "SELECT", customerOrgRight, customerOrgs(list("org_a"), none), true},
		{"org customer by the customer held", "UPDATE organizations SET stripe_customer_id = 'cus_o' WHERE workos_org_id = 'org_a'", customerOrgRight, customerOrgs(none, list("cus_o")), true},
		{"org customer by a customer not held", "SELECT", customerOrgRight, customerOrgs(none, list("cus_o")), false},
		{"org customer of a deleted organization", "UPDATE organizations SET deleted_at = now() WHERE workos_org_id = 'org_a'", customerOrgRight, customerOrgs(list("org_a"), none), false},

		{"subscription by organization", "SELECT", subOrgRight, subOrgs(list("org_b"), none, none), true},
		{"subscription by the organization's customer", "SELECT", subOrgRight, subOrgs(none, list("cus_b"), none), true},
		{"subscription by the subscription held", "UPDATE organizations SET stripe_subscription_id = 'sub_c' WHERE workos_org_id = 'org_b'", subOrgRight, subOrgs(none, none, list("sub_c")), true},
		{"subscription by a subscription not held", "SELECT", subOrgRight, subOrgs(list("org_a"), none, list("sub_c")), false},

		{"Connect account by user", "SELECT", connectRight, connectUsers(list("user_a"), none), true},
		{"Connect account by the account held", "UPDATE users SET stripe_connect_version = NULL WHERE workos_user_id = 'user_a'", connectRight, connectUsers(none, list("acct_a")), true},
		{"Connect account by another user", "SELECT", connectRight, connectUsers(list("user_b"), list("acct_b")), false},

		{"Connect account the metadata names, unknown to the mirror", `UPDATE users SET metadata = '{"stripe_connect_account_id": "acct_legacy"}' WHERE workos_user_id = 'user_c'`,
			"SELECT stripe_connect_account_id IS NOT DISTINCT FROM 'acct_legacy' FROM users WHERE workos_user_id = 'user_c'", connectUsers(list("user_c"), none), true},
		{"Connect account the metadata names, another's", `UPDATE users SET metadata = '{"stripe_connect_account_id": "acct_m"}' WHERE workos_user_id = 'user_c'`,
			"SELECT stripe_connect_account_id IS NOT DISTINCT FROM 'acct_m' FROM users WHERE workos_user_id = 'user_c'", connectUsers(list("user_c"), none), false},

		{"payout destination by user", payoutStaleB, payoutRightB, payouts(list("user_b"), none), true},
		{"payout destination by the account held", payoutStaleB, payoutRightB, payouts(none, list("acct_b")), true},
		{"payout destination by an account naming the user", payoutStaleB, payoutRightB, payouts(none, list("acct_m")), true},
		{"payout destination by another user", payoutStaleB, payoutRightB, payouts(list("user_a"), list("acct_a")), false},
		{"payout destination lost with the account", "UPDATE users SET connect_payout_destination = true WHERE workos_user_id = 'user_c'",
			"SELECT NOT connect_payout_destination FROM users WHERE workos_user_id = 'user_c'", payouts(list("user_a"), none), true},

		{"identity by user", "SELECT", identityRight, identity(none, list("user_a"), none), true},
		{"identity by the account held", "SELECT", identityRight, identity(none, none, list("acct_a")), true},
		{"identity by a session naming the user", "SELECT", identityRight, identity(list("vs_user"), none, none), true},
		{"identity by a session referring to the user", "SELECT", identityRight, identity(list("vs_ref_user"), none, none), true},
		{"identity by a session referring to the account", "SELECT", identityRight, identity(list("vs_ref_acct"), none, none), true},
		{"identity by a session on the account", "SELECT", identityRight, identity(list("vs_acct"), none, none), true},
		{"identity by another user", "SELECT", identityRight, identity(list("vs_none"), list("user_b"), list("acct_b")), false},

		{"settle by PaymentIntent", "SELECT", settleRight, settle(none, list("pi_a"), none), true},
		{"settle by Session", "SELECT", settleRight, settle(none, none, list("cs_a")), true},
		{"settle by a transfer naming the PaymentIntent", "SELECT", settleRight, settle(list("tr_pi"), none, none), true},
		{"settle by a transfer naming the Session", "SELECT", settleRight, settle(list("tr_cs"), none, none), true},
		{"settle by a transfer of the PaymentIntent's charge", "SELECT", settleRight, settle(list("tr_ch"), none, none), true},
		{"settle by the transfer the row names", "UPDATE payment_transfers SET stripe_transfer_id = 'tr_named' WHERE stripe_session_id = 'cs_a'", settleRight, settle(list("tr_named"), none, none), true},
		{"settle by another booking's transfer", "SELECT", settleRight, settle(list("tr_other"), list("pi_other"), list("cs_other")), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			right := func() bool {
				var ok *bool
				if err := tx.QueryRow(ctx, c.right).Scan(&ok); err != nil {
					t.Fatalf("%s: %v", c.right, err)
				}
				return ok != nil && *ok
			}
			if _, err := tx.Exec(ctx, c.stale); err != nil {
				t.Fatalf("%s: %v", c.stale, err)
			}
			if right() {
				t.Fatal("the row is not stale before the run")
			}
			if err := c.run(ctx, q, tx); err != nil {
				t.Fatal(err)
			}
			if got := right(); got != c.want {
				t.Errorf("after the run %v, want %v", got, c.want)
			}
		})
	}
}
