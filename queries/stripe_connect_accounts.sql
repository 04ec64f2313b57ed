-- name: StripeConnectAccountUpsert :one
-- Mirrors a Connect account from account.updated. Its data is written when
-- the event is newer than the stored data (data_stripe_created,
-- data_event_rank, data_event_id), even when older than a deauthorization,
-- which carries no account data. The row's version (stripe_created,
-- stripe_event_rank, stripe_event_id) is the newest event of the account:
-- an account.updated newer than a deauthorization means the account is
-- connected again. No row back means stale.
INSERT INTO stripe_connect_accounts (
    stripe_account_id, workos_user_id, email, details_submitted, charges_enabled,
    payouts_enabled, onboarding_complete, metadata, object_created,
    stripe_created, stripe_event_rank, stripe_event_id,
    data_stripe_created, data_event_rank, data_event_id
) VALUES (
    @stripe_account_id, @workos_user_id, @email, @details_submitted, @charges_enabled,
    @payouts_enabled, @onboarding_complete, @metadata, @object_created,
    @stripe_created, @stripe_event_rank, @stripe_event_id,
    @stripe_created, @stripe_event_rank, @stripe_event_id
)
ON CONFLICT (stripe_account_id) DO UPDATE SET
    workos_user_id      = EXCLUDED.workos_user_id,
    email               = EXCLUDED.email,
    details_submitted   = EXCLUDED.details_submitted,
    charges_enabled     = EXCLUDED.charges_enabled,
    payouts_enabled     = EXCLUDED.payouts_enabled,
    onboarding_complete = EXCLUDED.onboarding_complete,
    metadata            = EXCLUDED.metadata,
    object_created      = COALESCE(EXCLUDED.object_created, stripe_connect_accounts.object_created),
    data_stripe_created = EXCLUDED.data_stripe_created,
    data_event_rank     = EXCLUDED.data_event_rank,
    data_event_id       = EXCLUDED.data_event_id,
    deauthorized_at     = CASE WHEN (stripe_connect_accounts.stripe_created, stripe_connect_accounts.stripe_event_rank, stripe_connect_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                          THEN NULL ELSE stripe_connect_accounts.deauthorized_at END,
    stripe_created      = CASE WHEN (stripe_connect_accounts.stripe_created, stripe_connect_accounts.stripe_event_rank, stripe_connect_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                          THEN EXCLUDED.stripe_created ELSE stripe_connect_accounts.stripe_created END,
    stripe_event_rank   = CASE WHEN (stripe_connect_accounts.stripe_created, stripe_connect_accounts.stripe_event_rank, stripe_connect_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                          THEN EXCLUDED.stripe_event_rank ELSE stripe_connect_accounts.stripe_event_rank END,
    stripe_event_id     = CASE WHEN (stripe_connect_accounts.stripe_created, stripe_connect_accounts.stripe_event_rank, stripe_connect_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                          THEN EXCLUDED.stripe_event_id ELSE stripe_connect_accounts.stripe_event_id END,
    updated_at          = now()
WHERE stripe_connect_accounts.data_stripe_created IS NULL
   OR (stripe_connect_accounts.data_stripe_created, stripe_connect_accounts.data_event_rank, stripe_connect_accounts.data_event_id)
      < (EXCLUDED.data_stripe_created, EXCLUDED.data_event_rank, EXCLUDED.data_event_id)
RETURNING stripe_account_id;

-- name: StripeConnectAccountDeauthorize :one
-- Records account.application.deauthorized: the platform lost the account.
-- The account's data is not in the event and stays as it was, with its own
-- version (NULL when the deauthorization is the first event seen, so any
-- account.updated brings it). Stale, no row back, when an event of the
-- account is newer.
INSERT INTO stripe_connect_accounts (
    stripe_account_id, deauthorized_at, stripe_created, stripe_event_rank, stripe_event_id
) VALUES (
    @stripe_account_id, @deauthorized_at, @stripe_created, @stripe_event_rank, @stripe_event_id
)
ON CONFLICT (stripe_account_id) DO UPDATE SET
    deauthorized_at   = EXCLUDED.deauthorized_at,
    stripe_created    = EXCLUDED.stripe_created,
    stripe_event_rank = EXCLUDED.stripe_event_rank,
    stripe_event_id   = EXCLUDED.stripe_event_id,
    updated_at        = now()
WHERE (stripe_connect_accounts.stripe_created, stripe_connect_accounts.stripe_event_rank, stripe_connect_accounts.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
RETURNING stripe_account_id;

-- name: StripeConnectAccountGet :one
SELECT * FROM stripe_connect_accounts WHERE stripe_account_id = @stripe_account_id;

-- name: StripeConnectAccountLinkUsers :exec
-- Copies each user's Connect account from the mirror, for the users named
-- and those linked to one of the accounts. An account belongs to the user
-- its metadata names and is not deauthorized; failing metadata, to the
-- user whose WorkOS metadata stripe_connect_account_id names it (the link
-- the Clerk import carries over from the legacy database); with several,
-- the metadata match, then the newest account object wins. A user whose
-- account the mirror knows gets exactly what the mirror resolves, none
-- included (deauthorized, metadata naming someone else); an account the
-- mirror knows nothing about is left alone unless the mirror resolves
-- another. A user for whom the mirror resolves none, and whose WorkOS
-- metadata names an account the mirror has never seen, gets that one (no
-- version, nothing enabled): Stripe's own events take over when they
-- arrive, and the metadata never displaces what the mirror resolves. The version is the copied account's,
-- NULL with none: what the mirror holds, not the order it was told,
-- decides it. Every lookup is an index probe, as in MeetingLinkGuests.
WITH target AS (
    SELECT u.id, u.workos_user_id, u.stripe_connect_account_id,
           NULLIF(u.metadata->>'stripe_connect_account_id', '') AS legacy_id
    FROM unnest(ARRAY(
        SELECT x.id FROM users x WHERE x.workos_user_id = ANY(@workos_user_ids::text[])
        UNION
        SELECT x.id FROM users x WHERE x.stripe_connect_account_id = ANY(@stripe_account_ids::text[])
    )) AS k(id)
    JOIN users u ON u.id = k.id
    WHERE u.deleted_at IS NULL
), resolved AS (
    SELECT t.id,
           COALESCE(best.stripe_account_id, CASE WHEN legacy.known IS NULL THEN t.legacy_id END) AS best_id,
           COALESCE(best.details_submitted, false) AS details_submitted,
           COALESCE(best.charges_enabled, false) AS charges_enabled,
           COALESCE(best.payouts_enabled, false) AS payouts_enabled,
           COALESCE(best.onboarding_complete, false) AS onboarding_complete,
           best.stripe_created AS version,
           cur.known IS NOT NULL AS current_known
    FROM target t
    LEFT JOIN LATERAL (
        SELECT a.stripe_account_id, a.details_submitted, a.charges_enabled, a.payouts_enabled,
               a.onboarding_complete, a.stripe_created
        FROM stripe_connect_accounts a
        WHERE a.deauthorized_at IS NULL
          AND (a.workos_user_id = t.workos_user_id
               OR (a.workos_user_id IS NULL AND a.stripe_account_id = t.legacy_id))
        ORDER BY (a.workos_user_id IS NOT NULL) DESC, a.object_created DESC NULLS LAST, a.stripe_account_id DESC
        LIMIT 1
    ) best ON true
    -- Whether the mirror knows the account the metadata names.
    LEFT JOIN LATERAL (
        SELECT true AS known FROM stripe_connect_accounts l WHERE l.stripe_account_id = t.legacy_id LIMIT 1
    ) legacy ON true
    LEFT JOIN LATERAL (
        SELECT true AS known FROM stripe_connect_accounts c WHERE c.stripe_account_id = t.stripe_connect_account_id LIMIT 1
    ) cur ON true
)
UPDATE users u SET
    stripe_connect_account_id   = r.best_id,
    connect_details_submitted   = r.details_submitted,
    connect_charges_enabled     = r.charges_enabled,
    connect_payouts_enabled     = r.payouts_enabled,
    connect_onboarding_complete = r.onboarding_complete,
    stripe_connect_version      = r.version,
    updated_at                  = now()
FROM resolved r
WHERE u.id = r.id
  AND (r.best_id IS NOT NULL OR r.current_known)
  AND (u.stripe_connect_account_id, u.connect_details_submitted, u.connect_charges_enabled,
       u.connect_payouts_enabled, u.connect_onboarding_complete, u.stripe_connect_version)
      IS DISTINCT FROM
      (r.best_id, r.details_submitted, r.charges_enabled, r.payouts_enabled, r.onboarding_complete, r.version);

-- name: StripeConnectAccountLockMany :many
-- As StripeCustomerLockMany, for Connect accounts: the version of their
-- data, which is what decides an account.updated.
SELECT r.*
FROM unnest(@stripe_account_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT stripe_account_id, data_stripe_created, data_event_rank, data_event_id
    FROM stripe_connect_accounts
    WHERE stripe_account_id = k.id
    FOR NO KEY UPDATE
) r;

-- name: StripeConnectAccountUpsertMany :many
-- StripeConnectAccountUpsert for many accounts at once, one row each (a
-- JSON array of stripe_connect_accounts rows), with the same guards.
-- Returns the accounts written.
INSERT INTO stripe_connect_accounts (
    stripe_account_id, workos_user_id, email, details_submitted, charges_enabled,
    payouts_enabled, onboarding_complete, metadata, object_created,
    stripe_created, stripe_event_rank, stripe_event_id,
    data_stripe_created, data_event_rank, data_event_id
)
SELECT r.stripe_account_id, r.workos_user_id, r.email, r.details_submitted, r.charges_enabled,
       r.payouts_enabled, r.onboarding_complete, r.metadata, r.object_created,
       r.stripe_created, r.stripe_event_rank, r.stripe_event_id,
       r.stripe_created, r.stripe_event_rank, r.stripe_event_id
FROM jsonb_populate_recordset(NULL::stripe_connect_accounts, @batch::jsonb) AS r
ORDER BY r.stripe_account_id
ON CONFLICT (stripe_account_id) DO UPDATE SET
    workos_user_id      = EXCLUDED.workos_user_id,
    email               = EXCLUDED.email,
    details_submitted   = EXCLUDED.details_submitted,
    charges_enabled     = EXCLUDED.charges_enabled,
    payouts_enabled     = EXCLUDED.payouts_enabled,
    onboarding_complete = EXCLUDED.onboarding_complete,
    metadata            = EXCLUDED.metadata,
    object_created      = COALESCE(EXCLUDED.object_created, stripe_connect_accounts.object_created),
    data_stripe_created = EXCLUDED.data_stripe_created,
    data_event_rank     = EXCLUDED.data_event_rank,
    data_event_id       = EXCLUDED.data_event_id,
    deauthorized_at     = CASE WHEN (stripe_connect_accounts.stripe_created, stripe_connect_accounts.stripe_event_rank, stripe_connect_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                          THEN NULL ELSE stripe_connect_accounts.deauthorized_at END,
    stripe_created      = CASE WHEN (stripe_connect_accounts.stripe_created, stripe_connect_accounts.stripe_event_rank, stripe_connect_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                          THEN EXCLUDED.stripe_created ELSE stripe_connect_accounts.stripe_created END,
    stripe_event_rank   = CASE WHEN (stripe_connect_accounts.stripe_created, stripe_connect_accounts.stripe_event_rank, stripe_connect_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                          THEN EXCLUDED.stripe_event_rank ELSE stripe_connect_accounts.stripe_event_rank END,
    stripe_event_id     = CASE WHEN (stripe_connect_accounts.stripe_created, stripe_connect_accounts.stripe_event_rank, stripe_connect_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                          THEN EXCLUDED.stripe_event_id ELSE stripe_connect_accounts.stripe_event_id END,
    updated_at          = now()
WHERE stripe_connect_accounts.data_stripe_created IS NULL
   OR (stripe_connect_accounts.data_stripe_created, stripe_connect_accounts.data_event_rank, stripe_connect_accounts.data_event_id)
      < (EXCLUDED.data_stripe_created, EXCLUDED.data_event_rank, EXCLUDED.data_event_id)
RETURNING stripe_account_id;

-- name: StripeConnectAccountListConnected :many
-- The connected accounts syncd knows and the platform still reaches (a
-- deauthorized account's events are no longer listed to the platform):
-- a Connect backfill covers them even when Stripe's account list does not
-- return them.
SELECT stripe_account_id FROM stripe_connect_accounts
WHERE deauthorized_at IS NULL
ORDER BY stripe_account_id;
