-- +goose Up
-- The links (consumers/links.go) look rows up by these keys once per batch:
-- without an index each lookup read the whole table, so a link cost grew
-- with the table rather than with the batch.

-- MeetingLinkGuests: the meetings that point at an organization that
-- arrived, changed or went.
CREATE INDEX meetings_guest_org_idx ON meetings (guest_org_id);

-- MeetingLinkGuests: the members of such an organization (and
-- MembershipDeleteByOrg, an organization's delete).
CREATE INDEX user_org_memberships_workos_org_idx ON user_org_memberships (workos_org_id);

-- StripeExternalAccountLinkUsers: the users still shown a payout
-- destination although they hold no Connect account any more. The link
-- clears the flag of each it finds, so the index stays near empty.
CREATE INDEX users_lost_payout_destination_idx ON users (id)
    WHERE connect_payout_destination AND stripe_connect_account_id IS NULL AND deleted_at IS NULL;

-- +goose Down
DROP INDEX users_lost_payout_destination_idx;
DROP INDEX user_org_memberships_workos_org_idx;
DROP INDEX meetings_guest_org_idx;
