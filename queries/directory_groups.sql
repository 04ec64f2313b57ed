-- name: DirectoryGroupUpsert :one
-- Applies a directory group at version workos_updated_at, with the same
-- rules as DirectoryUserUpsert. No row back means stale.
INSERT INTO directory_groups (
    workos_directory_group_id, workos_directory_id, workos_org_id, idp_id,
    name, raw_attributes, workos_created_at, workos_updated_at, deleted_at
) VALUES (
    @workos_directory_group_id, @workos_directory_id, @workos_org_id, @idp_id,
    @name, @raw_attributes, @workos_created_at, @workos_updated_at,
    (SELECT d.deleted_at FROM directories d WHERE d.workos_directory_id = @workos_directory_id)
)
ON CONFLICT (workos_directory_group_id) DO UPDATE SET
    workos_directory_id = EXCLUDED.workos_directory_id,
    workos_org_id       = EXCLUDED.workos_org_id,
    idp_id              = EXCLUDED.idp_id,
    name                = EXCLUDED.name,
    raw_attributes      = EXCLUDED.raw_attributes,
    workos_created_at   = EXCLUDED.workos_created_at,
    workos_updated_at   = EXCLUDED.workos_updated_at,
    deleted_at          = LEAST(directory_groups.deleted_at, EXCLUDED.deleted_at),
    is_stub             = false,
    updated_at          = now()
WHERE directory_groups.is_stub
   OR directory_groups.workos_updated_at IS NULL
   OR directory_groups.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING deleted_at;

-- name: DirectoryGroupFillStub :exec
-- A group membership names a group whose own event has not arrived; see
-- DirectoryUserFillStub.
INSERT INTO directory_groups (
    workos_directory_group_id, workos_directory_id, workos_org_id, idp_id,
    name, raw_attributes, workos_created_at, workos_updated_at, is_stub, deleted_at
) VALUES (
    @workos_directory_group_id, @workos_directory_id, @workos_org_id, @idp_id,
    @name, @raw_attributes, @workos_created_at, @workos_updated_at, true,
    (SELECT d.deleted_at FROM directories d WHERE d.workos_directory_id = @workos_directory_id)
)
ON CONFLICT (workos_directory_group_id) DO UPDATE SET
    workos_org_id     = EXCLUDED.workos_org_id,
    idp_id            = EXCLUDED.idp_id,
    name              = EXCLUDED.name,
    raw_attributes    = EXCLUDED.raw_attributes,
    workos_created_at = EXCLUDED.workos_created_at,
    workos_updated_at = EXCLUDED.workos_updated_at,
    updated_at        = now()
WHERE directory_groups.is_stub
  AND (directory_groups.workos_updated_at IS NULL OR directory_groups.workos_updated_at <= EXCLUDED.workos_updated_at);

-- name: DirectoryGroupTombstone :exec
UPDATE directory_groups SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_directory_group_id = @workos_directory_group_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: DirectoryGroupTombstoneByDirectory :exec
-- A deleted directory takes its groups with it.
UPDATE directory_groups SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_directory_id = @workos_directory_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: DirectoryGroupGetByWorkOSID :one
SELECT * FROM directory_groups WHERE workos_directory_group_id = @workos_directory_group_id;

-- name: DirectoryGroupListByDirectory :many
SELECT * FROM directory_groups WHERE workos_directory_id = @workos_directory_id
ORDER BY workos_directory_group_id;

-- name: DirectoryGroupLockMany :many
-- As DirectoryUserLockMany, for directory groups.
SELECT r.*
FROM unnest(@workos_directory_group_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT workos_directory_group_id, workos_updated_at, is_stub
    FROM directory_groups
    WHERE workos_directory_group_id = k.id
    FOR NO KEY UPDATE
) r;

-- name: DirectoryGroupUpsertMany :many
-- DirectoryGroupUpsert for many directory groups at once, as
-- DirectoryUserUpsertMany. Returns the groups written.
INSERT INTO directory_groups (
    workos_directory_group_id, workos_directory_id, workos_org_id, idp_id,
    name, raw_attributes, workos_created_at, workos_updated_at, deleted_at
)
SELECT r.workos_directory_group_id, r.workos_directory_id, r.workos_org_id, r.idp_id,
       r.name, r.raw_attributes, r.workos_created_at, r.workos_updated_at, r.deleted_at
FROM jsonb_populate_recordset(NULL::directory_groups, @batch::jsonb) AS r
ORDER BY r.workos_directory_group_id
ON CONFLICT (workos_directory_group_id) DO UPDATE SET
    workos_directory_id = EXCLUDED.workos_directory_id,
    workos_org_id       = EXCLUDED.workos_org_id,
    idp_id              = EXCLUDED.idp_id,
    name                = EXCLUDED.name,
    raw_attributes      = EXCLUDED.raw_attributes,
    workos_created_at   = EXCLUDED.workos_created_at,
    workos_updated_at   = EXCLUDED.workos_updated_at,
    deleted_at          = LEAST(directory_groups.deleted_at, EXCLUDED.deleted_at),
    is_stub             = false,
    updated_at          = now()
WHERE directory_groups.is_stub
   OR directory_groups.workos_updated_at IS NULL
   OR directory_groups.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING workos_directory_group_id;
