-- name: StripeCustomerUpsert :one
-- Mirrors a Stripe customer at version (stripe_created, stripe_event_rank,
-- stripe_event_id). A deletion is a tombstone: deleted_at stays once set,
-- and the first deletion applies even when a newer update came first, but
-- then only as the tombstone: the fields and the version stay the newer
-- event's. No row back means stale.
INSERT INTO stripe_customers (
    stripe_customer_id, email, name, workos_user_id, workos_org_id, metadata,
    object_created, stripe_created, stripe_event_rank, stripe_event_id, deleted_at
) VALUES (
    @stripe_customer_id, @email, @name, @workos_user_id, @workos_org_id, @metadata,
    @object_created, @stripe_created, @stripe_event_rank, @stripe_event_id, @deleted_at
)
ON CONFLICT (stripe_customer_id) DO UPDATE SET
    email             = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.email ELSE stripe_customers.email END,
    name              = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.name ELSE stripe_customers.name END,
    workos_user_id    = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.workos_user_id ELSE stripe_customers.workos_user_id END,
    workos_org_id     = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.workos_org_id ELSE stripe_customers.workos_org_id END,
    metadata          = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.metadata ELSE stripe_customers.metadata END,
    object_created    = COALESCE(EXCLUDED.object_created, stripe_customers.object_created),
    stripe_created    = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.stripe_created ELSE stripe_customers.stripe_created END,
    stripe_event_rank = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.stripe_event_rank ELSE stripe_customers.stripe_event_rank END,
    stripe_event_id   = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.stripe_event_id ELSE stripe_customers.stripe_event_id END,
    deleted_at        = COALESCE(stripe_customers.deleted_at, EXCLUDED.deleted_at),
    updated_at        = now()
WHERE (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
   OR (stripe_customers.deleted_at IS NULL AND EXCLUDED.deleted_at IS NOT NULL)
RETURNING stripe_customer_id;

-- name: StripeCustomerGet :one
SELECT * FROM stripe_customers WHERE stripe_customer_id = @stripe_customer_id;

-- name: StripeCustomerLinkUsers :exec
-- Points users at their Stripe customer as the mirror resolves it, for the
-- users named, the users with one of the (lower-cased) emails and the users
-- linked to one of the customers. A customer belongs to the user its
-- metadata names; failing user and organization metadata, to the user
-- whose WorkOS metadata stripe_customer_id names it (the link the Clerk
-- import carries over from the legacy database), or to the one live user
-- with its email. A user with several takes the metadata match, then the
-- newest customer object. A user whose customer the mirror knows gets
-- exactly what the mirror resolves, none included (customer deleted, email
-- changed or shared, metadata naming someone else); a customer the mirror
-- knows nothing about is left alone unless the mirror resolves another.
-- The version is the copied customer's, NULL with none: what the mirror
-- holds, not the order it was told, decides it.
-- A user for whom the mirror resolves none, and whose WorkOS metadata
-- names a customer the mirror has never seen, gets that one (no version):
-- Stripe's own events for it, or for another customer the mirror
-- resolves, take over when they arrive, and the metadata never displaces
-- what the mirror resolves. Like every link, a function of the rows it
-- reads: one run over a batch's users leaves what a run per event would.
-- Every lookup is an index probe, as in MeetingLinkGuests; the single-row
-- lookups are kept so by their LIMIT as well.
WITH target AS (
    SELECT u.id, u.workos_user_id, u.email, u.stripe_customer_id,
           NULLIF(u.metadata->>'stripe_customer_id', '') AS legacy_id
    FROM unnest(ARRAY(
        SELECT x.id FROM users x WHERE x.workos_user_id = ANY(@workos_user_ids::text[])
        UNION
        SELECT x.id FROM users x WHERE lower(x.email) = ANY(@emails::text[])
        UNION
        SELECT x.id FROM users x WHERE x.stripe_customer_id = ANY(@stripe_customer_ids::text[])
    )) AS k(id)
    JOIN users u ON u.id = k.id
    WHERE u.deleted_at IS NULL
), resolved AS (
    SELECT t.id,
           COALESCE(best.stripe_customer_id, CASE WHEN legacy.known IS NULL THEN t.legacy_id END) AS best_id,
           best.stripe_created AS version,
           cur.known IS NOT NULL AS current_known
    FROM target t
    -- The three ways a customer is the user's, each its own index probe:
    -- as one OR they were planned as a scan of every customer without
    -- metadata for each user. "Without metadata" is one expression, which no
    -- index serves: the planner, without statistics, took the index of
    -- workos_org_id IS NULL for the key's. A customer found two ways is
    -- one row twice.
    LEFT JOIN LATERAL (
        SELECT c.stripe_customer_id, c.stripe_created
        FROM (
            SELECT c.stripe_customer_id, c.stripe_created, c.workos_user_id, c.object_created
            FROM stripe_customers c
            WHERE c.workos_user_id = t.workos_user_id AND c.deleted_at IS NULL
            UNION ALL
            SELECT c.stripe_customer_id, c.stripe_created, c.workos_user_id, c.object_created
            FROM stripe_customers c
            WHERE c.stripe_customer_id = t.legacy_id AND c.deleted_at IS NULL
              AND COALESCE(c.workos_user_id, c.workos_org_id) IS NULL
            UNION ALL
            SELECT c.stripe_customer_id, c.stripe_created, c.workos_user_id, c.object_created
            FROM stripe_customers c
            WHERE lower(c.email) = lower(t.email) AND c.deleted_at IS NULL
              AND COALESCE(c.workos_user_id, c.workos_org_id) IS NULL
              AND NOT EXISTS (
                  SELECT 1 FROM users o
                  WHERE o.deleted_at IS NULL AND lower(o.email) = lower(t.email) AND o.id <> t.id)
        ) c
        ORDER BY (c.workos_user_id IS NOT NULL) DESC, c.object_created DESC NULLS LAST, c.stripe_customer_id DESC
        LIMIT 1
    ) best ON true
    -- Whether the mirror knows the customer the metadata names.
    LEFT JOIN LATERAL (
        SELECT true AS known FROM stripe_customers l WHERE l.stripe_customer_id = t.legacy_id LIMIT 1
    ) legacy ON true
    LEFT JOIN LATERAL (
        SELECT true AS known FROM stripe_customers c WHERE c.stripe_customer_id = t.stripe_customer_id LIMIT 1
    ) cur ON true
)
UPDATE users u SET
    stripe_customer_id      = r.best_id,
    stripe_customer_version = r.version,
    updated_at              = now()
FROM resolved r
WHERE u.id = r.id
  AND (r.best_id IS NOT NULL OR r.current_known)
  AND (u.stripe_customer_id, u.stripe_customer_version) IS DISTINCT FROM (r.best_id, r.version);

-- name: StripeCustomerLinkOrganizations :exec
-- Points organizations at the Stripe customer whose metadata names them,
-- for the organizations named and those linked to one of the customers.
-- With several, the newest customer object wins. A link the mirror proves
-- wrong (customer deleted, or its metadata names another organization) is
-- cleared; others (WorkOS's own stripe_customer_id) are left alone. Every
-- lookup is an index probe, as in MeetingLinkGuests.
WITH target AS (
    SELECT o.id, o.workos_org_id, o.stripe_customer_id
    FROM unnest(ARRAY(
        SELECT x.id FROM organizations x WHERE x.workos_org_id = ANY(@workos_org_ids::text[])
        UNION
        SELECT x.id FROM organizations x WHERE x.stripe_customer_id = ANY(@stripe_customer_ids::text[])
    )) AS k(id)
    JOIN organizations o ON o.id = k.id
    WHERE o.deleted_at IS NULL
), resolved AS (
    SELECT t.id,
           best.stripe_customer_id AS best_id,
           best.stripe_created AS version,
           (cur.deleted_at IS NOT NULL OR cur.workos_org_id <> t.workos_org_id) AS current_wrong
    FROM target t
    LEFT JOIN LATERAL (
        SELECT c.stripe_customer_id, c.stripe_created
        FROM stripe_customers c
        WHERE c.deleted_at IS NULL AND c.workos_org_id = t.workos_org_id
        ORDER BY c.object_created DESC NULLS LAST, c.stripe_customer_id DESC
        LIMIT 1
    ) best ON true
    LEFT JOIN LATERAL (
        SELECT c.workos_org_id, c.deleted_at FROM stripe_customers c WHERE c.stripe_customer_id = t.stripe_customer_id LIMIT 1
    ) cur ON true
)
UPDATE organizations o SET
    stripe_customer_id      = r.best_id,
    stripe_customer_version = r.version,
    updated_at              = now()
FROM resolved r
WHERE o.id = r.id
  AND (r.best_id IS NOT NULL OR r.current_wrong)
  AND (o.stripe_customer_id, o.stripe_customer_version) IS DISTINCT FROM (r.best_id, r.version);

-- name: StripeCustomerLockMany :many
-- The set-based apply (consumers/batch.go) reads the version of each of a
-- batch's customers, locked, in key order so that concurrent batches lock
-- in one order and cannot deadlock; it folds the batch's events per
-- customer from there and writes each customer once. One primary-key
-- probe per key, in the order given (the caller sorts them), as
-- EventLedgerSeen does: a plain `= ANY(...)` was planned as a scan of the
-- table while its statistics lagged behind a burst.
SELECT r.*
FROM unnest(@stripe_customer_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT stripe_customer_id, stripe_created, stripe_event_rank, stripe_event_id,
           (deleted_at IS NOT NULL)::boolean AS deleted
    FROM stripe_customers
    WHERE stripe_customer_id = k.id
    FOR NO KEY UPDATE
) r;

-- name: StripeCustomerUpsertMany :many
-- StripeCustomerUpsert for many customers at once, one row each (a JSON
-- array of stripe_customers rows), with the same version guard. Returns
-- the customers written.
INSERT INTO stripe_customers (
    stripe_customer_id, email, name, workos_user_id, workos_org_id, metadata,
    object_created, stripe_created, stripe_event_rank, stripe_event_id, deleted_at
)
SELECT r.stripe_customer_id, r.email, r.name, r.workos_user_id, r.workos_org_id, r.metadata,
       r.object_created, r.stripe_created, r.stripe_event_rank, r.stripe_event_id, r.deleted_at
FROM jsonb_populate_recordset(NULL::stripe_customers, @batch::jsonb) AS r
ORDER BY r.stripe_customer_id
ON CONFLICT (stripe_customer_id) DO UPDATE SET
    email             = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.email ELSE stripe_customers.email END,
    name              = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.name ELSE stripe_customers.name END,
    workos_user_id    = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.workos_user_id ELSE stripe_customers.workos_user_id END,
    workos_org_id     = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.workos_org_id ELSE stripe_customers.workos_org_id END,
    metadata          = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.metadata ELSE stripe_customers.metadata END,
    object_created    = COALESCE(EXCLUDED.object_created, stripe_customers.object_created),
    stripe_created    = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.stripe_created ELSE stripe_customers.stripe_created END,
    stripe_event_rank = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.stripe_event_rank ELSE stripe_customers.stripe_event_rank END,
    stripe_event_id   = CASE WHEN (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                        THEN EXCLUDED.stripe_event_id ELSE stripe_customers.stripe_event_id END,
    deleted_at        = COALESCE(stripe_customers.deleted_at, EXCLUDED.deleted_at),
    updated_at        = now()
WHERE (stripe_customers.stripe_created, stripe_customers.stripe_event_rank, stripe_customers.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
   OR (stripe_customers.deleted_at IS NULL AND EXCLUDED.deleted_at IS NOT NULL)
RETURNING stripe_customer_id;

-- name: StripeCustomerPruneDeleted :execrows
-- Deletes up to @max_rows tombstones deleted before @before that no user or
-- organization points at (the links resolve from the mirror). Live rows
-- are never touched: deleted_at, once set, stays.
DELETE FROM stripe_customers
WHERE ctid = ANY(ARRAY(
    SELECT c.ctid FROM stripe_customers c
    WHERE c.deleted_at < @before
      AND NOT EXISTS (SELECT 1 FROM users u WHERE u.stripe_customer_id = c.stripe_customer_id)
      AND NOT EXISTS (SELECT 1 FROM organizations o WHERE o.stripe_customer_id = c.stripe_customer_id)
    ORDER BY c.deleted_at
    LIMIT @max_rows));
