-- name: DirectoryGroupMemberApply :one
-- Applies a dsync.group.user_added (removed false) or user_removed (removed
-- true) that happened at workos_event_at. Only a later event replaces the
-- stored one, and at equal times a removal beats an add, so any arrival
-- order ends in the same row. A membership first seen after its user,
-- group or directory was deleted is stored deleted. No row back means the
-- stored event is as new or newer: stale.
INSERT INTO directory_group_members AS m (
    workos_directory_group_id, workos_directory_user_id, workos_directory_id,
    workos_event_at, removed_at, parent_deleted_at
) VALUES (
    @workos_directory_group_id, @workos_directory_user_id, @workos_directory_id,
    @workos_event_at::timestamptz,
    CASE WHEN @removed::boolean THEN @workos_event_at::timestamptz END,
    (SELECT LEAST(u.deleted_at, g.deleted_at, d.deleted_at)
       FROM directory_users u, directory_groups g, directories d
      WHERE u.workos_directory_user_id = @workos_directory_user_id
        AND g.workos_directory_group_id = @workos_directory_group_id
        AND d.workos_directory_id = @workos_directory_id)
)
ON CONFLICT (workos_directory_group_id, workos_directory_user_id) DO UPDATE SET
    workos_directory_id = EXCLUDED.workos_directory_id,
    workos_event_at     = EXCLUDED.workos_event_at,
    removed_at          = EXCLUDED.removed_at,
    parent_deleted_at   = LEAST(m.parent_deleted_at, EXCLUDED.parent_deleted_at),
    updated_at          = now()
WHERE m.workos_event_at < EXCLUDED.workos_event_at
   OR (m.workos_event_at = EXCLUDED.workos_event_at AND m.removed_at IS NULL AND EXCLUDED.removed_at IS NOT NULL)
RETURNING deleted_at;

-- name: DirectoryGroupMemberTombstoneByUser :exec
-- A deleted user leaves all its groups for good.
UPDATE directory_group_members SET parent_deleted_at = LEAST(parent_deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_directory_user_id = @workos_directory_user_id
  AND (parent_deleted_at IS NULL OR parent_deleted_at > @deleted_at::timestamptz);

-- name: DirectoryGroupMemberTombstoneByGroup :exec
UPDATE directory_group_members SET parent_deleted_at = LEAST(parent_deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_directory_group_id = @workos_directory_group_id
  AND (parent_deleted_at IS NULL OR parent_deleted_at > @deleted_at::timestamptz);

-- name: DirectoryGroupMemberTombstoneByDirectory :exec
UPDATE directory_group_members SET parent_deleted_at = LEAST(parent_deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_directory_id = @workos_directory_id
  AND (parent_deleted_at IS NULL OR parent_deleted_at > @deleted_at::timestamptz);

-- name: DirectoryGroupMemberGet :one
SELECT * FROM directory_group_members
WHERE workos_directory_group_id = @workos_directory_group_id AND workos_directory_user_id = @workos_directory_user_id;

-- name: DirectoryGroupMemberListByDirectory :many
SELECT * FROM directory_group_members WHERE workos_directory_id = @workos_directory_id
ORDER BY workos_directory_group_id, workos_directory_user_id;

-- name: DirectoryGroupMemberPruneDeleted :execrows
-- Deletes up to @max_rows memberships removed (or whose user, group or
-- directory was deleted) before @before. The parents' tombstones stay, so
-- a late add of a deleted parent's membership is still stored deleted.
DELETE FROM directory_group_members
WHERE ctid = ANY(ARRAY(
    SELECT m.ctid FROM directory_group_members m
    WHERE m.deleted_at < @before
    ORDER BY m.deleted_at
    LIMIT @max_rows));
