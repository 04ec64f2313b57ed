-- name: StripeSubscriptionUpsert :one
-- Mirrors a Stripe subscription at version (stripe_created,
-- stripe_event_rank, stripe_event_id); deleted_at is a tombstone as for
-- customers (an older deletion sets only deleted_at). No row back means
-- stale.
INSERT INTO stripe_subscriptions (
    stripe_subscription_id, stripe_customer_id, workos_org_id, status, tier,
    current_period_end, cancel_at_period_end, metadata, object_created,
    stripe_created, stripe_event_rank, stripe_event_id, deleted_at
) VALUES (
    @stripe_subscription_id, @stripe_customer_id, @workos_org_id, @status, @tier,
    @current_period_end, @cancel_at_period_end, @metadata, @object_created,
    @stripe_created, @stripe_event_rank, @stripe_event_id, @deleted_at
)
ON CONFLICT (stripe_subscription_id) DO UPDATE SET
    stripe_customer_id   = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_customer_id ELSE stripe_subscriptions.stripe_customer_id END,
    workos_org_id        = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.workos_org_id ELSE stripe_subscriptions.workos_org_id END,
    status               = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.status ELSE stripe_subscriptions.status END,
    tier                 = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.tier ELSE stripe_subscriptions.tier END,
    current_period_end   = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.current_period_end ELSE stripe_subscriptions.current_period_end END,
    cancel_at_period_end = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.cancel_at_period_end ELSE stripe_subscriptions.cancel_at_period_end END,
    metadata             = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.metadata ELSE stripe_subscriptions.metadata END,
    object_created       = COALESCE(EXCLUDED.object_created, stripe_subscriptions.object_created),
    stripe_created       = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_created ELSE stripe_subscriptions.stripe_created END,
    stripe_event_rank    = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_event_rank ELSE stripe_subscriptions.stripe_event_rank END,
    stripe_event_id      = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_event_id ELSE stripe_subscriptions.stripe_event_id END,
    deleted_at           = COALESCE(stripe_subscriptions.deleted_at, EXCLUDED.deleted_at),
    updated_at           = now()
WHERE (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
   OR (stripe_subscriptions.deleted_at IS NULL AND EXCLUDED.deleted_at IS NOT NULL)
RETURNING stripe_subscription_id;

-- name: StripeSubscriptionGet :one
SELECT * FROM stripe_subscriptions WHERE stripe_subscription_id = @stripe_subscription_id;

-- name: StripeSubscriptionLinkOrganizations :exec
-- Copies tier, status, id, period end and cancel-at-period-end of each
-- organization's subscription from the mirror, for the organizations named,
-- those with one of the customers and those holding one of the
-- subscriptions. A subscription belongs to the organization its metadata
-- names, else to the organization with its customer. With several, a live
-- one (not canceled, not incomplete_expired) wins over an ended one, then
-- the newest subscription object. An organization whose subscription the
-- mirror knows gets exactly what the mirror resolves, none included; one
-- the mirror knows nothing about is left alone unless it resolves another.
-- The version is the copied subscription's, NULL with none. Every lookup
-- is an index probe, as in MeetingLinkGuests.
WITH target AS (
    SELECT o.id, o.workos_org_id, o.stripe_customer_id, o.stripe_subscription_id
    FROM unnest(ARRAY(
        SELECT x.id FROM organizations x WHERE x.workos_org_id = ANY(@workos_org_ids::text[])
        UNION
        SELECT x.id FROM organizations x WHERE x.stripe_customer_id = ANY(@stripe_customer_ids::text[])
        UNION
        SELECT x.id FROM organizations x WHERE x.stripe_subscription_id = ANY(@stripe_subscription_ids::text[])
    )) AS k(id)
    JOIN organizations o ON o.id = k.id
    WHERE o.deleted_at IS NULL
), resolved AS (
    SELECT t.id,
           best.stripe_subscription_id AS best_id,
           best.status,
           best.tier,
           best.current_period_end,
           COALESCE(best.cancel_at_period_end, false) AS cancel_at_period_end,
           best.stripe_created AS version,
           cur.known IS NOT NULL AS current_known
    FROM target t
    LEFT JOIN LATERAL (
        SELECT s.stripe_subscription_id, s.status, s.tier, s.current_period_end, s.cancel_at_period_end, s.stripe_created
        FROM stripe_subscriptions s
        -- The organization its metadata names, else the one with its
        -- customer: an OR of two indexed keys (t.workos_org_id is never
        -- NULL), where a COALESCE of the two was a scan of the table.
        WHERE (s.workos_org_id = t.workos_org_id
               OR (s.workos_org_id IS NULL AND s.stripe_customer_id = t.stripe_customer_id))
        ORDER BY (s.deleted_at IS NULL AND s.status NOT IN ('canceled', 'incomplete_expired')) DESC,
                 s.object_created DESC NULLS LAST, s.stripe_subscription_id DESC
        LIMIT 1
    ) best ON true
    LEFT JOIN LATERAL (
        SELECT true AS known FROM stripe_subscriptions c WHERE c.stripe_subscription_id = t.stripe_subscription_id LIMIT 1
    ) cur ON true
)
UPDATE organizations o SET
    stripe_subscription_id            = r.best_id,
    subscription_status               = r.status,
    subscription_tier                 = r.tier,
    subscription_current_period_end   = r.current_period_end,
    subscription_cancel_at_period_end = r.cancel_at_period_end,
    subscription_version              = r.version,
    updated_at                        = now()
FROM resolved r
WHERE o.id = r.id
  AND (r.best_id IS NOT NULL OR r.current_known)
  AND (o.stripe_subscription_id, o.subscription_status, o.subscription_tier, o.subscription_current_period_end,
       o.subscription_cancel_at_period_end, o.subscription_version)
      IS DISTINCT FROM
      (r.best_id, r.status, r.tier, r.current_period_end, r.cancel_at_period_end, r.version);

-- name: StripeSubscriptionLockMany :many
-- As StripeCustomerLockMany, for subscriptions.
SELECT r.*
FROM unnest(@stripe_subscription_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT stripe_subscription_id, stripe_created, stripe_event_rank, stripe_event_id,
           (deleted_at IS NOT NULL)::boolean AS deleted
    FROM stripe_subscriptions
    WHERE stripe_subscription_id = k.id
    FOR NO KEY UPDATE
) r;

-- name: StripeSubscriptionUpsertMany :many
-- StripeSubscriptionUpsert for many subscriptions at once, one row each (a
-- JSON array of stripe_subscriptions rows), with the same version guard.
-- Returns the subscriptions written.
INSERT INTO stripe_subscriptions (
    stripe_subscription_id, stripe_customer_id, workos_org_id, status, tier,
    current_period_end, cancel_at_period_end, metadata, object_created,
    stripe_created, stripe_event_rank, stripe_event_id, deleted_at
)
SELECT r.stripe_subscription_id, r.stripe_customer_id, r.workos_org_id, r.status, r.tier,
       r.current_period_end, r.cancel_at_period_end, r.metadata, r.object_created,
       r.stripe_created, r.stripe_event_rank, r.stripe_event_id, r.deleted_at
FROM jsonb_populate_recordset(NULL::stripe_subscriptions, @batch::jsonb) AS r
ORDER BY r.stripe_subscription_id
ON CONFLICT (stripe_subscription_id) DO UPDATE SET
    stripe_customer_id   = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_customer_id ELSE stripe_subscriptions.stripe_customer_id END,
    workos_org_id        = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.workos_org_id ELSE stripe_subscriptions.workos_org_id END,
    status               = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.status ELSE stripe_subscriptions.status END,
    tier                 = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.tier ELSE stripe_subscriptions.tier END,
    current_period_end   = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.current_period_end ELSE stripe_subscriptions.current_period_end END,
    cancel_at_period_end = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.cancel_at_period_end ELSE stripe_subscriptions.cancel_at_period_end END,
    metadata             = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.metadata ELSE stripe_subscriptions.metadata END,
    object_created       = COALESCE(EXCLUDED.object_created, stripe_subscriptions.object_created),
    stripe_created       = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_created ELSE stripe_subscriptions.stripe_created END,
    stripe_event_rank    = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_event_rank ELSE stripe_subscriptions.stripe_event_rank END,
    stripe_event_id      = CASE WHEN (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_event_id ELSE stripe_subscriptions.stripe_event_id END,
    deleted_at           = COALESCE(stripe_subscriptions.deleted_at, EXCLUDED.deleted_at),
    updated_at           = now()
WHERE (stripe_subscriptions.stripe_created, stripe_subscriptions.stripe_event_rank, stripe_subscriptions.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
   OR (stripe_subscriptions.deleted_at IS NULL AND EXCLUDED.deleted_at IS NOT NULL)
RETURNING stripe_subscription_id;

-- name: StripeSubscriptionPruneDeleted :execrows
-- Deletes up to @max_rows tombstones deleted before @before that no
-- organization points at: an organization's subscription fields are
-- resolved from the mirror, a tombstone included.
DELETE FROM stripe_subscriptions
WHERE ctid = ANY(ARRAY(
    SELECT s.ctid FROM stripe_subscriptions s
    WHERE s.deleted_at < @before
      AND NOT EXISTS (SELECT 1 FROM organizations o WHERE o.stripe_subscription_id = s.stripe_subscription_id)
    ORDER BY s.deleted_at
    LIMIT @max_rows));
