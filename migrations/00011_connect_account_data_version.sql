-- +goose Up
-- A Connect account's row has two versions. (stripe_created,
-- stripe_event_rank, stripe_event_id) stays the newest event of the
-- account, account.updated or account.application.deauthorized, and
-- decides deauthorized_at: set when the newest is a deauthorization. The
-- account's data (email, flags, metadata) has a version of its own, that
-- of the account.updated it came from: a deauthorization carries no account
-- data (its object is the platform's application), so an account.updated
-- older than it still brings the data it has. NULL: no account.updated
-- seen yet.
ALTER TABLE stripe_connect_accounts
    ADD COLUMN data_stripe_created timestamptz,
    ADD COLUMN data_event_rank     smallint,
    ADD COLUMN data_event_id       text;

-- Rows from before: the data is the row's version's unless the row was
-- made by a deauthorization alone (nothing of the account known), and a
-- deauthorized row with data keeps what it had (its data version is at
-- most the row's, so this only keeps older updates stale, as they were).
UPDATE stripe_connect_accounts
SET data_stripe_created = stripe_created, data_event_rank = stripe_event_rank, data_event_id = stripe_event_id
WHERE deauthorized_at IS NULL OR email IS NOT NULL OR object_created IS NOT NULL OR workos_user_id IS NOT NULL;

-- +goose Down
ALTER TABLE stripe_connect_accounts
    DROP COLUMN data_stripe_created,
    DROP COLUMN data_event_rank,
    DROP COLUMN data_event_id;
