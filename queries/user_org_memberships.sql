-- name: MembershipSupersede :execrows
-- WorkOS keeps one membership per user and organization: a newer membership
-- for the pair means an older live one is gone, even if its delete is late.
UPDATE user_org_memberships SET deleted_at = @deleted_at, updated_at = now()
WHERE workos_user_id = @workos_user_id AND workos_org_id = @workos_org_id
  AND workos_org_membership_id <> @workos_org_membership_id
  AND deleted_at IS NULL
  AND (workos_updated_at IS NULL OR workos_updated_at <= @workos_updated_at);

-- name: MembershipUpsert :one
-- Applies a membership at version workos_updated_at. When a newer live
-- membership holds the pair, this one is stored already superseded. A
-- deleted membership takes newer data but stays deleted. No row back means
-- stale. org_id is looked up here rather than passed in, so the
-- statement does not wait on another's result and can be pipelined.
INSERT INTO user_org_memberships (
    workos_org_membership_id, workos_user_id, workos_org_id, org_id, role, roles,
    status, directory_managed, workos_created_at, workos_updated_at, deleted_at
) VALUES (
    @workos_org_membership_id, @workos_user_id, @workos_org_id,
    (SELECT id FROM organizations WHERE workos_org_id = @workos_org_id), @role, @roles,
    @status, @directory_managed, @workos_created_at, @workos_updated_at,
    -- Born deleted when a newer membership holds the pair, or when its user
    -- or organization is already deleted (their deletes tombstone only the
    -- memberships that exist by then).
    COALESCE(
        CASE WHEN EXISTS (
            SELECT 1 FROM user_org_memberships o
            WHERE o.workos_user_id = @workos_user_id AND o.workos_org_id = @workos_org_id
              AND o.workos_org_membership_id <> @workos_org_membership_id AND o.deleted_at IS NULL
        ) THEN @superseded_at::timestamptz END,
        (SELECT u.deleted_at FROM users u WHERE u.workos_user_id = @workos_user_id),
        (SELECT g.deleted_at FROM organizations g WHERE g.workos_org_id = @workos_org_id))
)
ON CONFLICT (workos_org_membership_id) DO UPDATE SET
    role              = EXCLUDED.role,
    roles             = EXCLUDED.roles,
    status            = EXCLUDED.status,
    directory_managed = EXCLUDED.directory_managed,
    workos_created_at = EXCLUDED.workos_created_at,
    workos_updated_at = EXCLUDED.workos_updated_at,
    updated_at        = now()
WHERE user_org_memberships.workos_updated_at IS NULL OR user_org_memberships.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING id;

-- name: MembershipTombstone :exec
-- Marks a membership deleted. organization_membership.deleted carries the
-- membership as it was, which its handler writes first with
-- MembershipUpsert. A membership can be deleted by its own delete, its
-- user's or its organization's: the earliest of them stays, whichever
-- arrives first.
UPDATE user_org_memberships SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_org_membership_id = @workos_org_membership_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: MembershipDeleteByUser :exec
-- A deleted user takes its memberships with it.
UPDATE user_org_memberships SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_user_id = @workos_user_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: MembershipDeleteByOrg :exec
UPDATE user_org_memberships SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_org_id = @workos_org_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: MembershipGetByWorkOSID :one
SELECT * FROM user_org_memberships WHERE workos_org_membership_id = @workos_org_membership_id;

-- name: MembershipParentsMany :many
-- The parents of a batch's memberships, in one round trip: a stub for each
-- user and organization missing (UserEnsureStub, OrganizationEnsureStub, in
-- key order), and when each was deleted. The stubs this statement inserts
-- are not in what it reads (one snapshot): a missing parent is a new, live
-- stub.
WITH user_stubs AS (
    INSERT INTO users (workos_user_id, is_stub)
    SELECT k.id, true FROM unnest(@workos_user_ids::text[]) AS k(id)
    WHERE NOT EXISTS (SELECT 1 FROM users WHERE workos_user_id = k.id)
    ORDER BY k.id
    ON CONFLICT (workos_user_id) DO NOTHING
), org_stubs AS (
    INSERT INTO organizations (workos_org_id, is_stub)
    SELECT k.id, true FROM unnest(@workos_org_ids::text[]) AS k(id)
    WHERE NOT EXISTS (SELECT 1 FROM organizations WHERE workos_org_id = k.id)
    ORDER BY k.id
    ON CONFLICT (workos_org_id) DO NOTHING
)
SELECT 'user'::text AS parent, workos_user_id AS id, deleted_at FROM users WHERE workos_user_id = ANY(@workos_user_ids::text[])
UNION ALL
SELECT 'organization'::text, workos_org_id, deleted_at FROM organizations WHERE workos_org_id = ANY(@workos_org_ids::text[]);

-- name: MembershipLockMany :many
-- The set-based apply of memberships (consumers/memberships_sets.go) reads,
-- locked in key order, the batch's memberships and every live membership
-- of the batch's users: those of the batch's (user, organization) pairs
-- are the rows a membership event can supersede or be born superseded by.
SELECT workos_org_membership_id, workos_user_id, workos_org_id, workos_updated_at, deleted_at
FROM user_org_memberships
WHERE workos_org_membership_id = ANY(@workos_org_membership_ids::text[])
   OR (deleted_at IS NULL AND workos_user_id = ANY(@workos_user_ids::text[]))
ORDER BY workos_org_membership_id
FOR NO KEY UPDATE;

-- name: MembershipSupersedeMany :many
-- Tombstones stored live memberships that the batch's events superseded (a
-- JSON array of {workos_org_membership_id, deleted_at}). Returns those
-- written.
UPDATE user_org_memberships m SET deleted_at = r.deleted_at, updated_at = now()
FROM jsonb_to_recordset(@batch::jsonb) AS r(workos_org_membership_id text, deleted_at timestamptz)
WHERE m.workos_org_membership_id = r.workos_org_membership_id AND m.deleted_at IS NULL
RETURNING m.workos_org_membership_id;

-- name: MembershipUpsertMany :many
-- MembershipUpsert for many memberships at once, one row each (a JSON
-- array of user_org_memberships rows) in the state the batch leaves them:
-- a new row with the deleted_at the fold found, a stored one with the data
-- of its newest event under the same version guard (its deleted_at is the
-- stored one, or MembershipSupersedeMany's). Returns the memberships
-- written.
INSERT INTO user_org_memberships (
    workos_org_membership_id, workos_user_id, workos_org_id, org_id, role, roles,
    status, directory_managed, workos_created_at, workos_updated_at, deleted_at
)
SELECT r.workos_org_membership_id, r.workos_user_id, r.workos_org_id, g.id, r.role, r.roles,
       r.status, r.directory_managed, r.workos_created_at, r.workos_updated_at, r.deleted_at
FROM jsonb_populate_recordset(NULL::user_org_memberships, @batch::jsonb) AS r
JOIN organizations g ON g.workos_org_id = r.workos_org_id
ORDER BY r.workos_org_membership_id
ON CONFLICT (workos_org_membership_id) DO UPDATE SET
    role              = EXCLUDED.role,
    roles             = EXCLUDED.roles,
    status            = EXCLUDED.status,
    directory_managed = EXCLUDED.directory_managed,
    workos_created_at = EXCLUDED.workos_created_at,
    workos_updated_at = EXCLUDED.workos_updated_at,
    updated_at        = now()
WHERE user_org_memberships.workos_updated_at IS NULL OR user_org_memberships.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING workos_org_membership_id;
