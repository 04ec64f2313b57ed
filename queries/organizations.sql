-- name: OrganizationUpsert :one
-- Applies a WorkOS organization at version workos_updated_at. type and slug
-- are the app's: filled only while NULL. A deleted organization takes newer
-- data but stays deleted (OrganizationTombstone). No row back means stale.
INSERT INTO organizations (
    workos_org_id, name, slug, type, domains, external_id, metadata,
    stripe_customer_id, workos_created_at, workos_updated_at
) VALUES (
    @workos_org_id, @name, @slug, @type, @domains, @external_id, @metadata,
    @stripe_customer_id, @workos_created_at, @workos_updated_at
)
ON CONFLICT (workos_org_id) DO UPDATE SET
    name               = EXCLUDED.name,
    slug               = COALESCE(organizations.slug, EXCLUDED.slug),
    type               = COALESCE(organizations.type, EXCLUDED.type),
    domains            = EXCLUDED.domains,
    external_id        = EXCLUDED.external_id,
    metadata           = EXCLUDED.metadata,
    stripe_customer_id = COALESCE(EXCLUDED.stripe_customer_id, organizations.stripe_customer_id),
    workos_created_at  = EXCLUDED.workos_created_at,
    workos_updated_at  = EXCLUDED.workos_updated_at,
    is_stub            = false,
    updated_at         = now()
WHERE organizations.workos_updated_at IS NULL OR organizations.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING id;

-- name: OrganizationTombstone :exec
-- As UserTombstone: organization.deleted writes the organization it
-- carries with OrganizationUpsert first, then this.
UPDATE organizations SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), is_stub = false, updated_at = now()
WHERE workos_org_id = @workos_org_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: OrganizationEnsureStub :exec
-- A child event (membership) arrived before the organization's own: a stub
-- holds its place until organization.created fills it.
-- The NOT EXISTS reads the committed row without waiting: a bare ON
-- CONFLICT waits for any other worker's open transaction that updated it.
INSERT INTO organizations (workos_org_id, is_stub)
SELECT @workos_org_id, true
WHERE NOT EXISTS (SELECT 1 FROM organizations WHERE workos_org_id = @workos_org_id)
ON CONFLICT (workos_org_id) DO NOTHING;

-- name: OrganizationGetByWorkOSID :one
SELECT * FROM organizations WHERE workos_org_id = @workos_org_id;

-- name: OrganizationLockMany :many
-- As UserLockMany, for organizations.
SELECT r.*
FROM unnest(@workos_org_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT workos_org_id, workos_updated_at
    FROM organizations
    WHERE workos_org_id = k.id
    FOR NO KEY UPDATE
) r;

-- name: OrganizationUpsertMany :many
-- OrganizationUpsert for many organizations at once, one row each (a JSON
-- array of organizations rows), with the same version guard. Returns the
-- organizations written.
INSERT INTO organizations (
    workos_org_id, name, slug, type, domains, external_id, metadata,
    stripe_customer_id, workos_created_at, workos_updated_at
)
SELECT r.workos_org_id, r.name, r.slug, r.type, r.domains, r.external_id, r.metadata,
       r.stripe_customer_id, r.workos_created_at, r.workos_updated_at
FROM jsonb_populate_recordset(NULL::organizations, @batch::jsonb) AS r
ORDER BY r.workos_org_id
ON CONFLICT (workos_org_id) DO UPDATE SET
    name               = EXCLUDED.name,
    slug               = COALESCE(organizations.slug, EXCLUDED.slug),
    type               = COALESCE(organizations.type, EXCLUDED.type),
    domains            = EXCLUDED.domains,
    external_id        = EXCLUDED.external_id,
    metadata           = EXCLUDED.metadata,
    stripe_customer_id = COALESCE(EXCLUDED.stripe_customer_id, organizations.stripe_customer_id),
    workos_created_at  = EXCLUDED.workos_created_at,
    workos_updated_at  = EXCLUDED.workos_updated_at,
    is_stub            = false,
    updated_at         = now()
WHERE organizations.workos_updated_at IS NULL OR organizations.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING workos_org_id;

-- name: OrganizationsLockNew :exec
-- Takes an advisory lock on each of @ids that has no organization row yet
-- (committed, or this transaction's): the ones two apply workers may both
-- be about to insert (consumers: Applier.lockShared). In the order of the
-- keys, the same in every transaction; held until the transaction ends.
SELECT count(pg_advisory_xact_lock(s.k))::bigint FROM (
    SELECT DISTINCT hashtextextended('syncd.organization:' || k.id, 0) AS k
    FROM unnest(@ids::text[]) AS k(id)
    WHERE NOT EXISTS (SELECT 1 FROM organizations o WHERE o.workos_org_id = k.id)
    ORDER BY 1
) AS s;
