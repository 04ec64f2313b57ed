-- +goose Up
-- Retention deletes old tombstones a batch at a time, oldest first. These
-- partial indexes hold only the tombstones (few next to the live rows), so
-- finding a batch reads no live row and costs the apply path nothing on the
-- rows that stay live. The ledger's own (source, applied_at) index already
-- serves its pruning.
CREATE INDEX stripe_customers_deleted_idx ON stripe_customers (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX stripe_subscriptions_deleted_idx ON stripe_subscriptions (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX directory_group_members_deleted_idx ON directory_group_members (deleted_at) WHERE deleted_at IS NOT NULL;

-- +goose Down
DROP INDEX directory_group_members_deleted_idx;
DROP INDEX stripe_subscriptions_deleted_idx;
DROP INDEX stripe_customers_deleted_idx;
