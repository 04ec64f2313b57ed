-- name: LegacyUserMapListByClerkIDs :many
-- The rows of the users an import run is about, to skip the complete and
-- resume the rest.
SELECT * FROM legacy_user_map WHERE clerk_user_id = ANY(@clerk_user_ids::text[]);

-- name: LegacyUserMapSave :exec
-- Stores a user's state after each step. imported_at is set the first
-- time the row becomes complete and kept after.
INSERT INTO legacy_user_map (
    clerk_user_id, email, workos_user_id, workos_org_id, workos_membership_id, org_type,
    stripe_customer_id, stripe_connect_account_id, user_created, org_created, membership_created,
    password_imported, outcome, detail, imported_at
) VALUES (
    @clerk_user_id, @email, @workos_user_id, @workos_org_id, @workos_membership_id, @org_type,
    @stripe_customer_id, @stripe_connect_account_id, @user_created, @org_created, @membership_created,
    @password_imported, @outcome, @detail,
    CASE WHEN @outcome::text IN ('created', 'adopted', 'mapped') THEN now() END
)
ON CONFLICT (clerk_user_id) DO UPDATE SET
    email                     = EXCLUDED.email,
    workos_user_id            = EXCLUDED.workos_user_id,
    workos_org_id             = EXCLUDED.workos_org_id,
    workos_membership_id      = EXCLUDED.workos_membership_id,
    org_type                  = EXCLUDED.org_type,
    stripe_customer_id        = EXCLUDED.stripe_customer_id,
    stripe_connect_account_id = EXCLUDED.stripe_connect_account_id,
    user_created              = EXCLUDED.user_created,
    org_created               = EXCLUDED.org_created,
    membership_created        = EXCLUDED.membership_created,
    password_imported         = EXCLUDED.password_imported,
    outcome                   = EXCLUDED.outcome,
    detail                    = EXCLUDED.detail,
    -- A different organization means the row's org_id is someone else's.
    org_id                    = CASE WHEN legacy_user_map.workos_org_id IS NOT DISTINCT FROM EXCLUDED.workos_org_id
                                     THEN legacy_user_map.org_id END,
    imported_at               = CASE WHEN EXCLUDED.imported_at IS NULL THEN NULL
                                     ELSE COALESCE(legacy_user_map.imported_at, EXCLUDED.imported_at) END,
    updated_at                = now();

-- name: LegacyUserMapOrgIDsResolve :execrows
-- Fills org_id from organizations for the rows whose organization's
-- webhook has arrived.
UPDATE legacy_user_map m SET org_id = o.id, updated_at = now()
FROM organizations o
WHERE o.workos_org_id = m.workos_org_id
  AND o.deleted_at IS NULL
  AND m.org_id IS DISTINCT FROM o.id;

-- name: LegacyUserMapPage :many
-- The map in Clerk id order, a page after a Clerk id (empty for the first).
SELECT * FROM legacy_user_map
WHERE clerk_user_id > @after
ORDER BY clerk_user_id
LIMIT @page_size;

-- name: LegacyUserMapCountByOutcome :many
SELECT outcome, count(*) AS rows FROM legacy_user_map GROUP BY outcome ORDER BY outcome;

-- name: LegacyUserMapVerify :many
-- The rows that do not resolve: not complete, or missing in Postgres the
-- user, the organization or the user's active owner membership in it (the
-- webhooks of what the import wrote have not all been applied). Stubs do
-- not count: their own event has not arrived.
SELECT m.clerk_user_id, m.outcome, m.detail, m.workos_user_id, m.workos_org_id,
       (u.id IS NOT NULL)::boolean   AS user_found,
       (o.id IS NOT NULL)::boolean   AS org_found,
       (mem.id IS NOT NULL)::boolean AS owner_found
FROM legacy_user_map m
LEFT JOIN users u
       ON u.workos_user_id = m.workos_user_id AND u.deleted_at IS NULL AND NOT u.is_stub
LEFT JOIN organizations o
       ON o.workos_org_id = m.workos_org_id AND o.deleted_at IS NULL AND NOT o.is_stub
LEFT JOIN LATERAL (
    SELECT mm.id FROM user_org_memberships mm
    WHERE mm.workos_user_id = m.workos_user_id
      AND mm.workos_org_id = m.workos_org_id
      AND mm.deleted_at IS NULL
      AND mm.status = 'active'
      AND (mm.role = @owner_role::text OR @owner_role::text = ANY(mm.roles))
    LIMIT 1
) mem ON true
WHERE m.outcome NOT IN ('created', 'adopted', 'mapped')
   OR u.id IS NULL OR o.id IS NULL OR mem.id IS NULL
ORDER BY m.clerk_user_id;

-- name: LegacyUserMapLockTry :one
-- One import at a time: two would race each other to the same users. A
-- session lock on a connection the run holds, so a crash releases it.
SELECT pg_try_advisory_lock(hashtextextended('syncd.import.clerk', 0)) AS locked;

-- name: LegacyUserMapUnlock :one
SELECT pg_advisory_unlock(hashtextextended('syncd.import.clerk', 0)) AS unlocked;
