-- name: UserUpsert :one
-- Applies a WorkOS user at version workos_updated_at. A deleted user takes
-- newer data but stays deleted (UserTombstone), so any arrival order of the
-- same events gives the same row. No row back means the stored row is
-- newer: the event is stale.
INSERT INTO users (
    workos_user_id, email, first_name, last_name, email_verified,
    profile_picture_url, external_id, metadata, locale, last_sign_in_at,
    workos_created_at, workos_updated_at
) VALUES (
    @workos_user_id, @email, @first_name, @last_name, @email_verified,
    @profile_picture_url, @external_id, @metadata, @locale, @last_sign_in_at,
    @workos_created_at, @workos_updated_at
)
ON CONFLICT (workos_user_id) DO UPDATE SET
    email               = EXCLUDED.email,
    first_name          = EXCLUDED.first_name,
    last_name           = EXCLUDED.last_name,
    email_verified      = EXCLUDED.email_verified,
    profile_picture_url = EXCLUDED.profile_picture_url,
    external_id         = EXCLUDED.external_id,
    metadata            = EXCLUDED.metadata,
    locale              = EXCLUDED.locale,
    last_sign_in_at     = EXCLUDED.last_sign_in_at,
    workos_created_at   = EXCLUDED.workos_created_at,
    workos_updated_at   = EXCLUDED.workos_updated_at,
    is_stub             = false,
    updated_at          = now()
WHERE users.workos_updated_at IS NULL OR users.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING id;

-- name: UserTombstone :exec
-- Marks a user deleted. user.deleted carries the user as it was, which its
-- handler writes first with UserUpsert (so a delete newer than the stored
-- row brings its data, an older one only this tombstone). The tombstone
-- never clears; of two, the earlier stays.
UPDATE users SET deleted_at = LEAST(deleted_at, @deleted_at::timestamptz), is_stub = false, updated_at = now()
WHERE workos_user_id = @workos_user_id
  AND (deleted_at IS NULL OR deleted_at > @deleted_at::timestamptz);

-- name: UserEnsureStub :exec
-- A child event (membership, booking) arrived before the user's own event.
-- The NOT EXISTS reads the committed row without waiting: a bare ON
-- CONFLICT waits for any other worker's open transaction that updated it.
INSERT INTO users (workos_user_id, is_stub)
SELECT @workos_user_id, true
WHERE NOT EXISTS (SELECT 1 FROM users WHERE workos_user_id = @workos_user_id)
ON CONFLICT (workos_user_id) DO NOTHING;

-- name: UserGetByWorkOSID :one
SELECT * FROM users WHERE workos_user_id = @workos_user_id;

-- name: UserLockMany :many
-- The set-based apply (consumers/batch.go) reads the version of each of a
-- batch's users, locked, in key order so that concurrent batches lock in
-- one order and cannot deadlock. FOR NO KEY UPDATE (the key never changes)
-- lets other workers' foreign-key checks (KEY SHARE) through.
SELECT r.*
FROM unnest(@workos_user_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT workos_user_id, workos_updated_at
    FROM users
    WHERE workos_user_id = k.id
    FOR NO KEY UPDATE
) r;

-- name: UserUpsertMany :many
-- UserUpsert for many users at once, one row each (a JSON array of users
-- rows), with the same version guard. Returns the users written.
INSERT INTO users (
    workos_user_id, email, first_name, last_name, email_verified,
    profile_picture_url, external_id, metadata, locale, last_sign_in_at,
    workos_created_at, workos_updated_at
)
SELECT r.workos_user_id, r.email, r.first_name, r.last_name, r.email_verified,
       r.profile_picture_url, r.external_id, r.metadata, r.locale, r.last_sign_in_at,
       r.workos_created_at, r.workos_updated_at
FROM jsonb_populate_recordset(NULL::users, @batch::jsonb) AS r
ORDER BY r.workos_user_id
ON CONFLICT (workos_user_id) DO UPDATE SET
    email               = EXCLUDED.email,
    first_name          = EXCLUDED.first_name,
    last_name           = EXCLUDED.last_name,
    email_verified      = EXCLUDED.email_verified,
    profile_picture_url = EXCLUDED.profile_picture_url,
    external_id         = EXCLUDED.external_id,
    metadata            = EXCLUDED.metadata,
    locale              = EXCLUDED.locale,
    last_sign_in_at     = EXCLUDED.last_sign_in_at,
    workos_created_at   = EXCLUDED.workos_created_at,
    workos_updated_at   = EXCLUDED.workos_updated_at,
    is_stub             = false,
    updated_at          = now()
WHERE users.workos_updated_at IS NULL OR users.workos_updated_at <= EXCLUDED.workos_updated_at
RETURNING workos_user_id;

-- name: UserIDsByConnectAccount :many
-- The users holding one of the Connect accounts: read before the Connect
-- link moves an account, so the links derived from it (consumers/
-- marketplace_links.go) also look at the user who loses it.
SELECT workos_user_id FROM users
WHERE stripe_connect_account_id = ANY(@stripe_account_ids::text[]);
