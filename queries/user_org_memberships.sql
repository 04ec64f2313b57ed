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
