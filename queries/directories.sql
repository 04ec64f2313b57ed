-- name: DirectoryUpsert :one
-- Applies a WorkOS directory at version workos_updated_at. A stub is filled
-- whatever its version; a tombstone takes newer data but stays deleted. No
-- row back means the stored version is newer: the event is stale.
INSERT INTO directories (
    workos_directory_id, workos_org_id, name, type, state, domains,
    external_key, workos_created_at, workos_updated_at
) VALUES (
    @workos_directory_id, @workos_org_id, @name, @type, @state, @domains,
    @external_key, @workos_created_at, @workos_updated_at
)
ON CONFLICT (workos_directory_id) DO UPDATE SET
    workos_org_id     = EXCLUDED.workos_org_id,
    name              = EXCLUDED.name,
    type              = EXCLUDED.type,
    state             = EXCLUDED.state,
    domains           = EXCLUDED.domains,
    external_key      = EXCLUDED.external_key,
    workos_created_at = EXCLUDED.workos_created_at,
    workos_updated_at = EXCLUDED.workos_updated_at,
    is_stub           = false,
    updated_at        = now()
WHERE directories.is_stub
   OR directories.workos_updated_at IS NULL
   OR directories.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING deleted_at;

-- name: DirectoryEnsureStub :exec
-- A user, group or membership arrived before its directory's own event.
-- The stub learns the organization from whichever child knows it.
INSERT INTO directories (workos_directory_id, workos_org_id, is_stub)
VALUES (@workos_directory_id, @workos_org_id, true)
ON CONFLICT (workos_directory_id) DO UPDATE SET
    workos_org_id = EXCLUDED.workos_org_id,
    updated_at    = now()
WHERE directories.is_stub AND directories.workos_org_id IS NULL AND EXCLUDED.workos_org_id IS NOT NULL;

-- name: DirectoryTombstone :exec
-- Marks a directory deleted at deleted_at, or earlier if an earlier delete
-- was already seen: the result does not depend on arrival order.
UPDATE directories SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_directory_id = @workos_directory_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: DirectoryGetByWorkOSID :one
SELECT * FROM directories WHERE workos_directory_id = @workos_directory_id;

-- name: DirectoryEnsureStubMany :exec
-- DirectoryEnsureStub for the directories of a batch's set-based users and
-- groups (a JSON array of directories rows: id and the first organization
-- a child named), one row each, in key order. The NOT EXISTS reads the
-- committed row without waiting and leaves out the directories the stub
-- would not change (a row that is not a stub, or has its organization,
-- never becomes one again): a bare ON CONFLICT waits for any other
-- worker's open transaction that updated the row, and locks it.
INSERT INTO directories (workos_directory_id, workos_org_id, is_stub)
SELECT r.workos_directory_id, r.workos_org_id, true
FROM jsonb_populate_recordset(NULL::directories, @batch::jsonb) AS r
WHERE NOT EXISTS (
    SELECT 1 FROM directories d
    WHERE d.workos_directory_id = r.workos_directory_id
      AND NOT (d.is_stub AND d.workos_org_id IS NULL AND r.workos_org_id IS NOT NULL))
ORDER BY r.workos_directory_id
ON CONFLICT (workos_directory_id) DO UPDATE SET
    workos_org_id = EXCLUDED.workos_org_id,
    updated_at    = now()
WHERE directories.is_stub AND directories.workos_org_id IS NULL AND EXCLUDED.workos_org_id IS NOT NULL;

-- name: DirectoryDeletedAtMany :many
-- The tombstones of a batch's directories, which the set-based users and
-- groups take as DirectoryUserUpsert does.
SELECT workos_directory_id, deleted_at FROM directories
WHERE workos_directory_id = ANY(@workos_directory_ids::text[]);
