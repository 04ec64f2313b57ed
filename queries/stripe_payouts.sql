-- name: StripePayoutUpsert :one
-- Mirrors a payout at version (stripe_created, stripe_event_rank,
-- stripe_event_id); the rank is the payout's status (migrations/00009).
-- No row back means stale.
INSERT INTO stripe_payouts (
    stripe_payout_id, stripe_account_id, amount, currency, arrival_date, status,
    failure_code, failure_message, method, destination, object_created,
    stripe_created, stripe_event_rank, stripe_event_id
) VALUES (
    @stripe_payout_id, @stripe_account_id, @amount, @currency, @arrival_date, @status,
    @failure_code, @failure_message, @method, @destination, @object_created,
    @stripe_created, @stripe_event_rank, @stripe_event_id
)
ON CONFLICT (stripe_payout_id) DO UPDATE SET
    stripe_account_id = COALESCE(EXCLUDED.stripe_account_id, stripe_payouts.stripe_account_id),
    amount            = EXCLUDED.amount,
    currency          = EXCLUDED.currency,
    arrival_date      = EXCLUDED.arrival_date,
    status            = EXCLUDED.status,
    failure_code      = EXCLUDED.failure_code,
    failure_message   = EXCLUDED.failure_message,
    method            = EXCLUDED.method,
    destination       = EXCLUDED.destination,
    object_created    = COALESCE(EXCLUDED.object_created, stripe_payouts.object_created),
    stripe_created    = EXCLUDED.stripe_created,
    stripe_event_rank = EXCLUDED.stripe_event_rank,
    stripe_event_id   = EXCLUDED.stripe_event_id,
    updated_at        = now()
WHERE (stripe_payouts.stripe_created, stripe_payouts.stripe_event_rank, stripe_payouts.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
RETURNING stripe_payout_id;

-- name: StripePayoutGet :one
SELECT * FROM stripe_payouts WHERE stripe_payout_id = @stripe_payout_id;

-- name: StripePayoutLockMany :many
-- As StripeCustomerLockMany, for payouts.
SELECT r.*
FROM unnest(@stripe_payout_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT stripe_payout_id, stripe_created, stripe_event_rank, stripe_event_id
    FROM stripe_payouts
    WHERE stripe_payout_id = k.id
    FOR UPDATE
) r;

-- name: StripePayoutUpsertMany :many
-- StripePayoutUpsert for many payouts at once, one row each (a JSON array
-- of stripe_payouts rows), with the same version guard. Returns the
-- payouts written.
INSERT INTO stripe_payouts (
    stripe_payout_id, stripe_account_id, amount, currency, arrival_date, status,
    failure_code, failure_message, method, destination, object_created,
    stripe_created, stripe_event_rank, stripe_event_id
)
SELECT r.stripe_payout_id, r.stripe_account_id, r.amount, r.currency, r.arrival_date, r.status,
       r.failure_code, r.failure_message, r.method, r.destination, r.object_created,
       r.stripe_created, r.stripe_event_rank, r.stripe_event_id
FROM jsonb_populate_recordset(NULL::stripe_payouts, @batch::jsonb) AS r
ORDER BY r.stripe_payout_id
ON CONFLICT (stripe_payout_id) DO UPDATE SET
    stripe_account_id = COALESCE(EXCLUDED.stripe_account_id, stripe_payouts.stripe_account_id),
    amount            = EXCLUDED.amount,
    currency          = EXCLUDED.currency,
    arrival_date      = EXCLUDED.arrival_date,
    status            = EXCLUDED.status,
    failure_code      = EXCLUDED.failure_code,
    failure_message   = EXCLUDED.failure_message,
    method            = EXCLUDED.method,
    destination       = EXCLUDED.destination,
    object_created    = COALESCE(EXCLUDED.object_created, stripe_payouts.object_created),
    stripe_created    = EXCLUDED.stripe_created,
    stripe_event_rank = EXCLUDED.stripe_event_rank,
    stripe_event_id   = EXCLUDED.stripe_event_id,
    updated_at        = now()
WHERE (stripe_payouts.stripe_created, stripe_payouts.stripe_event_rank, stripe_payouts.stripe_event_id)
      < (EXCLUDED.stripe_created, EXCLUDED.stripe_event_rank, EXCLUDED.stripe_event_id)
RETURNING stripe_payout_id;
