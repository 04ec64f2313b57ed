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
