-- name: DirectoryUserUpsert :one
-- Applies a directory user at version workos_updated_at. A stub is filled
-- whatever its version; a tombstone takes newer data but stays deleted. A
-- user first seen after its directory was deleted is stored deleted. No
-- row back means the stored version is newer: the event is stale.
INSERT INTO directory_users (
    workos_directory_user_id, workos_directory_id, workos_org_id, idp_id,
    email, emails, username, first_name, last_name, job_title, state,
    role, roles, custom_attributes, raw_attributes,
    workos_created_at, workos_updated_at, deleted_at
) VALUES (
    @workos_directory_user_id, @workos_directory_id, @workos_org_id, @idp_id,
    @email, @emails, @username, @first_name, @last_name, @job_title, @state,
    @role, @roles, @custom_attributes, @raw_attributes,
    @workos_created_at, @workos_updated_at,
    (SELECT d.deleted_at FROM directories d WHERE d.workos_directory_id = @workos_directory_id)
)
ON CONFLICT (workos_directory_user_id) DO UPDATE SET
    workos_directory_id = EXCLUDED.workos_directory_id,
    workos_org_id       = EXCLUDED.workos_org_id,
    idp_id              = EXCLUDED.idp_id,
    email               = EXCLUDED.email,
    emails              = EXCLUDED.emails,
    username            = EXCLUDED.username,
    first_name          = EXCLUDED.first_name,
    last_name           = EXCLUDED.last_name,
    job_title           = EXCLUDED.job_title,
    state               = EXCLUDED.state,
    role                = EXCLUDED.role,
    roles               = EXCLUDED.roles,
    custom_attributes   = EXCLUDED.custom_attributes,
    raw_attributes      = EXCLUDED.raw_attributes,
    workos_created_at   = EXCLUDED.workos_created_at,
    workos_updated_at   = EXCLUDED.workos_updated_at,
    deleted_at          = LEAST(directory_users.deleted_at, EXCLUDED.deleted_at),
    is_stub             = false,
    updated_at          = now()
WHERE directory_users.is_stub
   OR directory_users.workos_updated_at IS NULL
   OR directory_users.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING deleted_at;

-- name: DirectoryUserFillStub :exec
-- A group membership names a user whose own event has not arrived: keep
-- the snapshot it carries, as a stub, until then. Only a stub is touched,
-- and only by a snapshot at least as new as the one it holds.
INSERT INTO directory_users (
    workos_directory_user_id, workos_directory_id, workos_org_id, idp_id,
    email, emails, username, first_name, last_name, job_title, state,
    role, roles, custom_attributes, raw_attributes,
    workos_created_at, workos_updated_at, is_stub, deleted_at
) VALUES (
    @workos_directory_user_id, @workos_directory_id, @workos_org_id, @idp_id,
    @email, @emails, @username, @first_name, @last_name, @job_title, @state,
    @role, @roles, @custom_attributes, @raw_attributes,
    @workos_created_at, @workos_updated_at, true,
    (SELECT d.deleted_at FROM directories d WHERE d.workos_directory_id = @workos_directory_id)
)
ON CONFLICT (workos_directory_user_id) DO UPDATE SET
    workos_org_id     = EXCLUDED.workos_org_id,
    idp_id            = EXCLUDED.idp_id,
    email             = EXCLUDED.email,
    emails            = EXCLUDED.emails,
    username          = EXCLUDED.username,
    first_name        = EXCLUDED.first_name,
    last_name         = EXCLUDED.last_name,
    job_title         = EXCLUDED.job_title,
    state             = EXCLUDED.state,
    role              = EXCLUDED.role,
    roles             = EXCLUDED.roles,
    custom_attributes = EXCLUDED.custom_attributes,
    raw_attributes    = EXCLUDED.raw_attributes,
    workos_created_at = EXCLUDED.workos_created_at,
    workos_updated_at = EXCLUDED.workos_updated_at,
    updated_at        = now()
WHERE directory_users.is_stub
  AND (directory_users.workos_updated_at IS NULL OR directory_users.workos_updated_at <= EXCLUDED.workos_updated_at);

-- name: DirectoryUserTombstone :exec
UPDATE directory_users SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_directory_user_id = @workos_directory_user_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: DirectoryUserTombstoneByDirectory :exec
-- A deleted directory takes its users with it.
UPDATE directory_users SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), updated_at = now()
WHERE workos_directory_id = @workos_directory_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: DirectoryUserGetByWorkOSID :one
SELECT * FROM directory_users WHERE workos_directory_user_id = @workos_directory_user_id;

-- name: DirectoryUserListByDirectory :many
SELECT * FROM directory_users WHERE workos_directory_id = @workos_directory_id
ORDER BY workos_directory_user_id;

-- name: DirectoryUserLockMany :many
-- The set-based apply (consumers/dsync_sets.go) reads the version of each
-- of a batch's directory users, locked, in key order (see UserLockMany). A
-- stub takes any version, so is_stub comes with it; deleted_at is not
-- needed: the upsert keeps the earlier of the stored one and the batch's.
SELECT r.*
FROM unnest(@workos_directory_user_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT workos_directory_user_id, workos_updated_at, is_stub
    FROM directory_users
    WHERE workos_directory_user_id = k.id
    FOR NO KEY UPDATE
) r;

-- name: DirectoryUserUpsertMany :many
-- DirectoryUserUpsert for many directory users at once, one row each (a
-- JSON array of directory_users rows), with the same guard. deleted_at is
-- what the rows' directories held (the earliest, when a user's events name
-- several), which DirectoryUserUpsert reads itself. Returns the users
-- written.
INSERT INTO directory_users (
    workos_directory_user_id, workos_directory_id, workos_org_id, idp_id,
    email, emails, username, first_name, last_name, job_title, state,
    role, roles, custom_attributes, raw_attributes,
    workos_created_at, workos_updated_at, deleted_at
)
SELECT r.workos_directory_user_id, r.workos_directory_id, r.workos_org_id, r.idp_id,
       r.email, r.emails, r.username, r.first_name, r.last_name, r.job_title, r.state,
       r.role, r.roles, r.custom_attributes, r.raw_attributes,
       r.workos_created_at, r.workos_updated_at, r.deleted_at
FROM jsonb_populate_recordset(NULL::directory_users, @batch::jsonb) AS r
ORDER BY r.workos_directory_user_id
ON CONFLICT (workos_directory_user_id) DO UPDATE SET
    workos_directory_id = EXCLUDED.workos_directory_id,
    workos_org_id       = EXCLUDED.workos_org_id,
    idp_id              = EXCLUDED.idp_id,
    email               = EXCLUDED.email,
    emails              = EXCLUDED.emails,
    username            = EXCLUDED.username,
    first_name          = EXCLUDED.first_name,
    last_name           = EXCLUDED.last_name,
    job_title           = EXCLUDED.job_title,
    state               = EXCLUDED.state,
    role                = EXCLUDED.role,
    roles               = EXCLUDED.roles,
    custom_attributes   = EXCLUDED.custom_attributes,
    raw_attributes      = EXCLUDED.raw_attributes,
    workos_created_at   = EXCLUDED.workos_created_at,
    workos_updated_at   = EXCLUDED.workos_updated_at,
    deleted_at          = LEAST(directory_users.deleted_at, EXCLUDED.deleted_at),
    is_stub             = false,
    updated_at          = now()
WHERE directory_users.is_stub
   OR directory_users.workos_updated_at IS NULL
   OR directory_users.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING workos_directory_user_id;
