-- name: StripeExternalAccountUpsert :one
-- Mirrors a Connect account's bank account or card at version
-- (stripe_created, stripe_event_rank, stripe_event_id). A deletion is a
-- tombstone, as in StripeCustomerUpsert: deleted_at stays once set, and the
-- first deletion applies even when a newer update came first, but then
-- only as the tombstone. No row back means stale.
INSERT INTO stripe_external_accounts (
    stripe_external_account_id, stripe_account_id, object, last4, bank_name, country, currency, default_for_currency, status, metadata, stripe_created, stripe_event_rank, stripe_event_id, deleted_at
) VALUES (
    @stripe_external_account_id, @stripe_account_id, @object, @last4, @bank_name, @country, @currency, @default_for_currency, @status, @metadata, @stripe_created, @stripe_event_rank, @stripe_event_id, @deleted_at
)
ON CONFLICT (stripe_external_account_id) DO UPDATE SET
    stripe_account_id    = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_account_id ELSE stripe_external_accounts.stripe_account_id END,
    object               = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.object ELSE stripe_external_accounts.object END,
    last4                = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.last4 ELSE stripe_external_accounts.last4 END,
    bank_name            = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.bank_name ELSE stripe_external_accounts.bank_name END,
    country              = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.country ELSE stripe_external_accounts.country END,
    currency             = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.currency ELSE stripe_external_accounts.currency END,
    default_for_currency = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.default_for_currency ELSE stripe_external_accounts.default_for_currency END,
    status               = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.status ELSE stripe_external_accounts.status END,
    metadata             = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.metadata ELSE stripe_external_accounts.metadata END,
    stripe_created       = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_created ELSE stripe_external_accounts.stripe_created END,
    stripe_event_rank    = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_event_rank ELSE stripe_external_accounts.stripe_event_rank END,
    stripe_event_id      = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_event_id ELSE stripe_external_accounts.stripe_event_id END,
    deleted_at           = COALESCE(stripe_external_accounts.deleted_at, EXCLUDED.deleted_at),
    updated_at           = now()
WHERE (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
   OR (stripe_external_accounts.deleted_at IS NULL AND EXCLUDED.deleted_at IS NOT NULL)
RETURNING stripe_external_account_id;

-- name: StripeExternalAccountGet :one
SELECT * FROM stripe_external_accounts WHERE stripe_external_account_id = @stripe_external_account_id;

-- name: StripeExternalAccountLockMany :many
-- As StripeCustomerLockMany, for external accounts.
SELECT r.*
FROM unnest(@stripe_external_account_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT stripe_external_account_id, stripe_created, stripe_event_rank, stripe_event_id,
           (deleted_at IS NOT NULL)::boolean AS deleted
    FROM stripe_external_accounts
    WHERE stripe_external_account_id = k.id
    FOR UPDATE
) r;

-- name: StripeExternalAccountUpsertMany :many
-- StripeExternalAccountUpsert for many at once, one row each (a JSON array
-- of stripe_external_accounts rows), with the same guard. Returns the
-- external accounts written.
INSERT INTO stripe_external_accounts (
    stripe_external_account_id, stripe_account_id, object, last4, bank_name, country, currency, default_for_currency, status, metadata, stripe_created, stripe_event_rank, stripe_event_id, deleted_at
)
SELECT r.stripe_external_account_id, r.stripe_account_id, r.object, r.last4, r.bank_name, r.country, r.currency, r.default_for_currency, r.status, r.metadata, r.stripe_created, r.stripe_event_rank, r.stripe_event_id, r.deleted_at
FROM jsonb_populate_recordset(NULL::stripe_external_accounts, @batch::jsonb) AS r
ORDER BY r.stripe_external_account_id
ON CONFLICT (stripe_external_account_id) DO UPDATE SET
    stripe_account_id    = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_account_id ELSE stripe_external_accounts.stripe_account_id END,
    object               = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.object ELSE stripe_external_accounts.object END,
    last4                = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.last4 ELSE stripe_external_accounts.last4 END,
    bank_name            = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.bank_name ELSE stripe_external_accounts.bank_name END,
    country              = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.country ELSE stripe_external_accounts.country END,
    currency             = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.currency ELSE stripe_external_accounts.currency END,
    default_for_currency = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.default_for_currency ELSE stripe_external_accounts.default_for_currency END,
    status               = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.status ELSE stripe_external_accounts.status END,
    metadata             = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.metadata ELSE stripe_external_accounts.metadata END,
    stripe_created       = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_created ELSE stripe_external_accounts.stripe_created END,
    stripe_event_rank    = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_event_rank ELSE stripe_external_accounts.stripe_event_rank END,
    stripe_event_id      = CASE WHEN (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id) < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
                           THEN EXCLUDED.stripe_event_id ELSE stripe_external_accounts.stripe_event_id END,
    deleted_at           = COALESCE(stripe_external_accounts.deleted_at, EXCLUDED.deleted_at),
    updated_at           = now()
WHERE (stripe_external_accounts.stripe_created, stripe_external_accounts.stripe_event_rank, stripe_external_accounts.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
   OR (stripe_external_accounts.deleted_at IS NULL AND EXCLUDED.deleted_at IS NOT NULL)
RETURNING stripe_external_account_id;

-- name: StripeExternalAccountLinkUsers :exec
-- Shows on each user whether their Connect account has a payout
-- destination (a live bank account or card), and the bank account's last4
-- and bank name (its default for a currency first), for the users named,
-- those holding one of the accounts, the users the accounts' metadata
-- names, and users still marked although they hold no account any more.
-- A user whose account's external accounts the mirror has never seen is
-- left alone. Every lookup is an index probe, as in MeetingLinkGuests; the
-- users marked without an account come from a partial index that holds
-- only them (00012).
WITH target AS (
    SELECT u.id, u.stripe_connect_account_id, u.connect_payout_destination
    FROM unnest(ARRAY(
        SELECT x.id FROM users x WHERE x.workos_user_id = ANY(@workos_user_ids::text[])
        UNION
        SELECT x.id FROM users x WHERE x.stripe_connect_account_id = ANY(@stripe_account_ids::text[])
        UNION
        SELECT x.id FROM unnest(@stripe_account_ids::text[]) AS acct(id)
        CROSS JOIN LATERAL (SELECT a.workos_user_id FROM stripe_connect_accounts a WHERE a.stripe_account_id = acct.id LIMIT 1) a
        JOIN users x ON x.workos_user_id = a.workos_user_id
        UNION
        SELECT x.id FROM users x
        WHERE x.connect_payout_destination AND x.stripe_connect_account_id IS NULL AND x.deleted_at IS NULL
    )) AS k(id)
    JOIN users u ON u.id = k.id
    WHERE u.deleted_at IS NULL
), resolved AS (
    SELECT t.id,
           EXISTS (SELECT 1 FROM stripe_external_accounts e
                   WHERE e.deleted_at IS NULL AND e.stripe_account_id = t.stripe_connect_account_id) AS has_destination,
           bank.last4, bank.bank_name,
           (t.connect_payout_destination
            OR EXISTS (SELECT 1 FROM stripe_external_accounts e WHERE e.stripe_account_id = t.stripe_connect_account_id)) AS known
    FROM target t
    LEFT JOIN LATERAL (
        SELECT e.last4, e.bank_name
        FROM stripe_external_accounts e
        WHERE e.deleted_at IS NULL AND e.object = 'bank_account' AND e.stripe_account_id = t.stripe_connect_account_id
        ORDER BY e.default_for_currency DESC, e.stripe_created DESC, e.stripe_external_account_id DESC
        LIMIT 1
    ) bank ON true
)
UPDATE users u SET
    connect_payout_destination = r.has_destination,
    stripe_bank_account_last4  = r.last4,
    stripe_bank_name           = r.bank_name,
    updated_at                 = now()
FROM resolved r
WHERE u.id = r.id
  AND r.known
  AND (u.connect_payout_destination, u.stripe_bank_account_last4, u.stripe_bank_name)
      IS DISTINCT FROM (r.has_destination, r.last4, r.bank_name);
