-- name: StripeIdentityVerificationSessionUpsert :one
-- Mirrors an identity verification session at version (stripe_created,
-- stripe_event_rank, stripe_event_id); the rank is the session's progress
-- (migrations/00009). No row back means stale.
INSERT INTO stripe_identity_verification_sessions (
    stripe_verification_session_id, stripe_account_id, status, type, last_error_code, last_error_reason, client_reference_id, workos_user_id, metadata, object_created, stripe_created, stripe_event_rank, stripe_event_id
) VALUES (
    @stripe_verification_session_id, @stripe_account_id, @status, @type, @last_error_code, @last_error_reason, @client_reference_id, @workos_user_id, @metadata, @object_created, @stripe_created, @stripe_event_rank, @stripe_event_id
)
ON CONFLICT (stripe_verification_session_id) DO UPDATE SET
    stripe_account_id   = EXCLUDED.stripe_account_id,
    status              = EXCLUDED.status,
    type                = EXCLUDED.type,
    last_error_code     = EXCLUDED.last_error_code,
    last_error_reason   = EXCLUDED.last_error_reason,
    client_reference_id = EXCLUDED.client_reference_id,
    workos_user_id      = EXCLUDED.workos_user_id,
    metadata            = EXCLUDED.metadata,
    object_created      = COALESCE(EXCLUDED.object_created, stripe_identity_verification_sessions.object_created),
    stripe_created      = EXCLUDED.stripe_created,
    stripe_event_rank   = EXCLUDED.stripe_event_rank,
    stripe_event_id     = EXCLUDED.stripe_event_id,
    updated_at          = now()
WHERE (stripe_identity_verification_sessions.stripe_created, stripe_identity_verification_sessions.stripe_event_rank, stripe_identity_verification_sessions.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
RETURNING stripe_verification_session_id;

-- name: StripeIdentityVerificationSessionGet :one
SELECT * FROM stripe_identity_verification_sessions WHERE stripe_verification_session_id = @stripe_verification_session_id;

-- name: StripeIdentityVerificationSessionLockMany :many
-- As StripeCustomerLockMany, for identity verification sessions.
SELECT r.*
FROM unnest(@stripe_verification_session_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT stripe_verification_session_id, stripe_created, stripe_event_rank, stripe_event_id
    FROM stripe_identity_verification_sessions
    WHERE stripe_verification_session_id = k.id
    FOR UPDATE
) r;

-- name: StripeIdentityVerificationSessionUpsertMany :many
-- StripeIdentityVerificationSessionUpsert for many at once, one row each
-- (a JSON array of stripe_identity_verification_sessions rows), with the same version guard. Returns the
-- sessions written.
INSERT INTO stripe_identity_verification_sessions (
    stripe_verification_session_id, stripe_account_id, status, type, last_error_code, last_error_reason, client_reference_id, workos_user_id, metadata, object_created, stripe_created, stripe_event_rank, stripe_event_id
)
SELECT r.stripe_verification_session_id, r.stripe_account_id, r.status, r.type, r.last_error_code, r.last_error_reason, r.client_reference_id, r.workos_user_id, r.metadata, r.object_created, r.stripe_created, r.stripe_event_rank, r.stripe_event_id
FROM jsonb_populate_recordset(NULL::stripe_identity_verification_sessions, @batch::jsonb) AS r
ORDER BY r.stripe_verification_session_id
ON CONFLICT (stripe_verification_session_id) DO UPDATE SET
    stripe_account_id   = EXCLUDED.stripe_account_id,
    status              = EXCLUDED.status,
    type                = EXCLUDED.type,
    last_error_code     = EXCLUDED.last_error_code,
    last_error_reason   = EXCLUDED.last_error_reason,
    client_reference_id = EXCLUDED.client_reference_id,
    workos_user_id      = EXCLUDED.workos_user_id,
    metadata            = EXCLUDED.metadata,
    object_created      = COALESCE(EXCLUDED.object_created, stripe_identity_verification_sessions.object_created),
    stripe_created      = EXCLUDED.stripe_created,
    stripe_event_rank   = EXCLUDED.stripe_event_rank,
    stripe_event_id     = EXCLUDED.stripe_event_id,
    updated_at          = now()
WHERE (stripe_identity_verification_sessions.stripe_created, stripe_identity_verification_sessions.stripe_event_rank, stripe_identity_verification_sessions.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
RETURNING stripe_verification_session_id;

-- name: StripeIdentityVerificationSessionLinkUsers :exec
-- Copies the identity check onto users: the newest session that is
-- theirs gives the id, status and time, and a user is verified when any
-- of their sessions is. A session is a user's when its metadata names
-- them, or its client_reference_id is their user id or their Connect
-- account id, or — naming nobody — it lives on their Connect account.
-- Run for the users named, those holding one of the accounts, and those
-- the sessions point at. A user without a session is left alone, unless
-- the session they show is one the mirror knows (it is no longer theirs:
-- they lost the Connect account it names): then they show none.
-- Every lookup is an index probe, as in MeetingLinkGuests.
WITH s_in AS (
    SELECT s.workos_user_id, s.client_reference_id, s.stripe_account_id
    FROM unnest(@session_ids::text[]) AS k(id)
    CROSS JOIN LATERAL (
        SELECT s.workos_user_id, s.client_reference_id, s.stripe_account_id
        FROM stripe_identity_verification_sessions s
        WHERE s.stripe_verification_session_id = k.id
        LIMIT 1
    ) s
), target AS (
    SELECT u.id, u.workos_user_id, u.stripe_connect_account_id, u.stripe_identity_verification_id
    FROM unnest(ARRAY(
        SELECT x.id FROM users x WHERE x.workos_user_id = ANY(@workos_user_ids::text[])
        UNION
        SELECT x.id FROM users x WHERE x.stripe_connect_account_id = ANY(@stripe_account_ids::text[])
        UNION
        SELECT x.id FROM s_in JOIN users x ON x.workos_user_id IN (s_in.workos_user_id, s_in.client_reference_id)
        UNION
        SELECT x.id FROM s_in JOIN users x ON x.stripe_connect_account_id IN (s_in.client_reference_id, s_in.stripe_account_id)
    )) AS k(id)
    JOIN users u ON u.id = k.id
    WHERE u.deleted_at IS NULL
), resolved AS (
    SELECT t.id,
           best.stripe_verification_session_id AS session_id,
           best.status,
           best.stripe_created AS checked,
           (best.stripe_verification_session_id IS NOT NULL
            AND EXISTS (SELECT 1 FROM stripe_identity_verification_sessions v
                        WHERE v.status = 'verified' AND (v.workos_user_id = t.workos_user_id
               OR v.client_reference_id = t.workos_user_id
               OR v.client_reference_id = t.stripe_connect_account_id
               OR (v.client_reference_id IS NULL AND v.workos_user_id IS NULL
                   AND v.stripe_account_id = t.stripe_connect_account_id)))) AS verified,
           cur.stripe_verification_session_id IS NOT NULL AS current_known
    FROM target t
    LEFT JOIN LATERAL (
        SELECT s.stripe_verification_session_id, s.status, s.stripe_created
        FROM stripe_identity_verification_sessions s
        WHERE (s.workos_user_id = t.workos_user_id
               OR s.client_reference_id = t.workos_user_id
               OR s.client_reference_id = t.stripe_connect_account_id
               OR (s.client_reference_id IS NULL AND s.workos_user_id IS NULL
                   AND s.stripe_account_id = t.stripe_connect_account_id))
        ORDER BY s.object_created DESC NULLS LAST, s.stripe_created DESC, s.stripe_event_rank DESC,
                 s.stripe_verification_session_id DESC
        LIMIT 1
    ) best ON true
    LEFT JOIN stripe_identity_verification_sessions cur ON cur.stripe_verification_session_id = t.stripe_identity_verification_id
)
UPDATE users u SET
    stripe_identity_verification_id           = r.session_id,
    stripe_identity_verification_status       = r.status,
    stripe_identity_verified                  = r.verified,
    stripe_identity_verification_last_checked = r.checked,
    updated_at                                = now()
FROM resolved r
WHERE u.id = r.id
  AND (r.session_id IS NOT NULL OR r.current_known)
  AND (u.stripe_identity_verification_id, u.stripe_identity_verification_status,
       u.stripe_identity_verified, u.stripe_identity_verification_last_checked)
      IS DISTINCT FROM (r.session_id, r.status, r.verified, r.checked);
