-- The app's payment transfers (migrations/00009_marketplace.sql). Rows are
-- created and completed from the booking metadata on a Checkout Session or
-- PaymentIntent event (consumers/payment_transfers.go, under the
-- PaymentIntent's lock); their Stripe transfer, status and review reason
-- are derived by PaymentTransferSettle.

-- name: PaymentTransferGetForUpdate :many
SELECT * FROM payment_transfers
WHERE stripe_session_id = sqlc.narg('stripe_session_id')::text
   OR stripe_payment_intent_id = sqlc.narg('stripe_payment_intent_id')::text
ORDER BY created_at, id
FOR UPDATE;

-- name: PaymentTransferInsert :one
-- No row back means another transaction inserted one of its keys first:
-- lock and fill.
INSERT INTO payment_transfers (
    stripe_session_id, stripe_payment_intent_id, event_id, expert_connect_account_id,
    expert_workos_user_id, amount, platform_fee, total_amount, currency, country,
    session_start_time, scheduled_transfer_time, requires_approval
) VALUES (
    @stripe_session_id, @stripe_payment_intent_id, @event_id, @expert_connect_account_id,
    @expert_workos_user_id, @amount, @platform_fee, @total_amount, @currency, @country,
    @session_start_time, @scheduled_transfer_time, @requires_approval
)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: PaymentTransferFill :execrows
-- Completes a payment transfer from the other event of its booking (or a
-- merged twin): what is stored stays, what is missing is filled. The app
-- may have edited the row (an approval, a new schedule): sync never
-- overwrites it.
UPDATE payment_transfers SET
    stripe_session_id         = COALESCE(stripe_session_id, sqlc.narg('stripe_session_id')::text),
    stripe_payment_intent_id  = COALESCE(stripe_payment_intent_id, sqlc.narg('stripe_payment_intent_id')::text),
    event_id                  = COALESCE(event_id, sqlc.narg('event_id')::uuid),
    expert_connect_account_id = COALESCE(expert_connect_account_id, sqlc.narg('expert_connect_account_id')::text),
    expert_workos_user_id     = COALESCE(expert_workos_user_id, sqlc.narg('expert_workos_user_id')::text),
    total_amount              = COALESCE(total_amount, sqlc.narg('total_amount')::bigint),
    currency                  = COALESCE(currency, sqlc.narg('currency')::text),
    country                   = COALESCE(country, sqlc.narg('country')::text),
    session_start_time        = COALESCE(session_start_time, sqlc.narg('session_start_time')::timestamptz),
    scheduled_transfer_time   = COALESCE(scheduled_transfer_time, sqlc.narg('scheduled_transfer_time')::timestamptz),
    requires_approval         = requires_approval OR @requires_approval::boolean,
    stripe_transfer_id        = COALESCE(stripe_transfer_id, sqlc.narg('stripe_transfer_id')::text),
    updated_at                = now()
WHERE id = @id
  AND ((stripe_session_id IS NULL AND sqlc.narg('stripe_session_id')::text IS NOT NULL)
    OR (stripe_payment_intent_id IS NULL AND sqlc.narg('stripe_payment_intent_id')::text IS NOT NULL)
    OR (event_id IS NULL AND sqlc.narg('event_id')::uuid IS NOT NULL)
    OR (expert_connect_account_id IS NULL AND sqlc.narg('expert_connect_account_id')::text IS NOT NULL)
    OR (expert_workos_user_id IS NULL AND sqlc.narg('expert_workos_user_id')::text IS NOT NULL)
    OR (total_amount IS NULL AND sqlc.narg('total_amount')::bigint IS NOT NULL)
    OR (currency IS NULL AND sqlc.narg('currency')::text IS NOT NULL)
    OR (country IS NULL AND sqlc.narg('country')::text IS NOT NULL)
    OR (session_start_time IS NULL AND sqlc.narg('session_start_time')::timestamptz IS NOT NULL)
    OR (scheduled_transfer_time IS NULL AND sqlc.narg('scheduled_transfer_time')::timestamptz IS NOT NULL)
    OR (NOT requires_approval AND @requires_approval::boolean)
    OR (stripe_transfer_id IS NULL AND sqlc.narg('stripe_transfer_id')::text IS NOT NULL));

-- name: PaymentTransferDelete :exec
DELETE FROM payment_transfers WHERE id = @id;

-- name: PaymentTransferGetByPaymentIntent :one
SELECT * FROM payment_transfers WHERE stripe_payment_intent_id = @stripe_payment_intent_id;

-- name: PaymentTransferGetBySession :one
SELECT * FROM payment_transfers WHERE stripe_session_id = @stripe_session_id;

-- name: PaymentTransferSettle :exec
-- Derives each payment transfer's Stripe transfer, status and review
-- reason from the mirrors, for the payment transfers of the PaymentIntents
-- and Sessions named and those the transfers named belong to.
--
-- A Stripe transfer belongs to a payment transfer when (first match wins):
--   1. it is the transfer the row already names (the app records it);
--   2. its metadata or transfer_group names the row's PaymentIntent
--      (transfer_group = the PaymentIntent id or "group_" + it, Stripe's
--      own group for a PaymentIntent's charges) or Session;
--   3. its source_transaction is the charge of the row's PaymentIntent.
-- The status then only moves forward (the ranks of 00009): COMPLETED with
-- a transfer, REVERSED when it was reversed in full, else REFUNDED or
-- DISPUTED when the booking's payment was refunded in full or disputed;
-- review_reason follows the payment's refund or dispute.
--
-- Every lookup is an index probe, as in MeetingLinkGuests (meetings.sql).
WITH t_in AS (
    SELECT t.stripe_transfer_id, t.stripe_session_id, t.stripe_payment_intent_id, t.source_transaction
    FROM unnest(@stripe_transfer_ids::text[]) AS k(id)
    CROSS JOIN LATERAL (
        SELECT t.stripe_transfer_id, t.stripe_session_id, t.stripe_payment_intent_id, t.source_transaction
        FROM stripe_transfers t WHERE t.stripe_transfer_id = k.id LIMIT 1
    ) t
), target AS (
    SELECT k.id FROM unnest(ARRAY(
        SELECT pt.id FROM payment_transfers pt WHERE pt.stripe_payment_intent_id = ANY(@stripe_payment_intent_ids::text[])
        UNION
        SELECT pt.id FROM payment_transfers pt WHERE pt.stripe_session_id = ANY(@stripe_session_ids::text[])
        UNION
        SELECT pt.id FROM t_in t JOIN payment_transfers pt ON pt.stripe_transfer_id = t.stripe_transfer_id
        UNION
        SELECT pt.id FROM t_in t JOIN payment_transfers pt ON pt.stripe_payment_intent_id = t.stripe_payment_intent_id
        UNION
        SELECT pt.id FROM t_in t JOIN payment_transfers pt ON pt.stripe_session_id = t.stripe_session_id
        UNION
        SELECT pt.id FROM t_in t
        JOIN stripe_payment_intents p ON p.stripe_charge_id = t.source_transaction
        JOIN payment_transfers pt ON pt.stripe_payment_intent_id = p.stripe_payment_intent_id
    )) AS k(id)
), ranks (status, rank) AS (
    VALUES ('PENDING', 0), ('APPROVED', 1), ('READY', 2), ('FAILED', 3), ('REFUNDED', 5),
           ('DISPUTED', 6), ('COMPLETED', 10), ('PAID_OUT', 20), ('REVERSED', 30)
), resolved AS (
    SELECT pt.id,
           best.stripe_transfer_id,
           CASE WHEN best.reversed THEN 'REVERSED'
                WHEN best.stripe_transfer_id IS NOT NULL THEN 'COMPLETED'
                WHEN p.payment_status = 'disputed' THEN 'DISPUTED'
                WHEN p.payment_status = 'refunded' THEN 'REFUNDED'
           END AS derived,
           CASE WHEN p.payment_status IN ('refunded', 'partially_refunded', 'disputed') THEN p.payment_status END AS review
    FROM target x
    JOIN payment_transfers pt ON pt.id = x.id
    LEFT JOIN stripe_payment_intents p ON p.stripe_payment_intent_id = pt.stripe_payment_intent_id
    LEFT JOIN LATERAL (
        SELECT t.stripe_transfer_id, t.reversed
        FROM stripe_transfers t
        WHERE t.stripe_transfer_id = pt.stripe_transfer_id
           OR t.stripe_payment_intent_id = pt.stripe_payment_intent_id
           OR t.stripe_session_id = pt.stripe_session_id
           OR t.source_transaction = p.stripe_charge_id
        ORDER BY (t.stripe_transfer_id = pt.stripe_transfer_id) DESC NULLS LAST,
                 (t.stripe_payment_intent_id = pt.stripe_payment_intent_id OR t.stripe_session_id = pt.stripe_session_id) DESC NULLS LAST,
                 t.object_created NULLS LAST, t.stripe_transfer_id
        LIMIT 1
    ) best ON true
), decided AS (
    SELECT r.id, r.stripe_transfer_id, r.review,
           CASE WHEN COALESCE(dr.rank, -1) > COALESCE(sr.rank, 0) THEN r.derived ELSE pt.status END AS status
    FROM resolved r
    JOIN payment_transfers pt ON pt.id = r.id
    LEFT JOIN ranks dr ON dr.status = r.derived
    LEFT JOIN ranks sr ON sr.status = pt.status
)
UPDATE payment_transfers pt SET
    stripe_transfer_id = COALESCE(pt.stripe_transfer_id, d.stripe_transfer_id),
    status             = d.status,
    review_reason      = COALESCE(d.review, pt.review_reason),
    updated_at         = now()
FROM decided d
WHERE pt.id = d.id
  AND (pt.stripe_transfer_id, pt.status, pt.review_reason)
      IS DISTINCT FROM (COALESCE(pt.stripe_transfer_id, d.stripe_transfer_id), d.status, COALESCE(d.review, pt.review_reason));

-- name: PaymentTransferLockMany :many
-- The payment transfers of these Checkout Sessions and PaymentIntents,
-- locked in id order (as MeetingLockMany).
WITH found AS (
    SELECT p.id FROM unnest(@stripe_session_ids::text[]) AS k(id)
    CROSS JOIN LATERAL (SELECT id FROM payment_transfers WHERE stripe_session_id = k.id LIMIT 1) p
    UNION
    SELECT p.id FROM unnest(@stripe_payment_intent_ids::text[]) AS k(id)
    CROSS JOIN LATERAL (SELECT id FROM payment_transfers WHERE stripe_payment_intent_id = k.id LIMIT 1) p
)
SELECT r.*
FROM (SELECT id FROM found ORDER BY id) f
CROSS JOIN LATERAL (SELECT * FROM payment_transfers WHERE payment_transfers.id = f.id FOR UPDATE) r;

-- name: PaymentTransferUpsertMany :many
-- Writes a batch's payment transfers, one row each (a JSON array of
-- payment_transfers rows): new ones (ids chosen by the caller) inserted,
-- the others filled as PaymentTransferFill does when they are still as the
-- caller read them (updated_at). Returns those written.
INSERT INTO payment_transfers (
    id, stripe_session_id, stripe_payment_intent_id, event_id, expert_connect_account_id,
    expert_workos_user_id, amount, platform_fee, total_amount, currency, country,
    session_start_time, scheduled_transfer_time, status, requires_approval, review_reason,
    stripe_transfer_id, created_at, updated_at
)
SELECT r.id, r.stripe_session_id, r.stripe_payment_intent_id, r.event_id, r.expert_connect_account_id,
       r.expert_workos_user_id, r.amount, r.platform_fee, r.total_amount, r.currency, r.country,
       r.session_start_time, r.scheduled_transfer_time, r.status, r.requires_approval, r.review_reason,
       r.stripe_transfer_id, r.created_at, r.updated_at
FROM jsonb_populate_recordset(NULL::payment_transfers, @batch::jsonb) AS r
ORDER BY r.id
ON CONFLICT (id) DO UPDATE SET
    stripe_session_id         = COALESCE(payment_transfers.stripe_session_id, EXCLUDED.stripe_session_id),
    stripe_payment_intent_id  = COALESCE(payment_transfers.stripe_payment_intent_id, EXCLUDED.stripe_payment_intent_id),
    event_id                  = COALESCE(payment_transfers.event_id, EXCLUDED.event_id),
    expert_connect_account_id = COALESCE(payment_transfers.expert_connect_account_id, EXCLUDED.expert_connect_account_id),
    expert_workos_user_id     = COALESCE(payment_transfers.expert_workos_user_id, EXCLUDED.expert_workos_user_id),
    total_amount              = COALESCE(payment_transfers.total_amount, EXCLUDED.total_amount),
    currency                  = COALESCE(payment_transfers.currency, EXCLUDED.currency),
    country                   = COALESCE(payment_transfers.country, EXCLUDED.country),
    session_start_time        = COALESCE(payment_transfers.session_start_time, EXCLUDED.session_start_time),
    scheduled_transfer_time   = COALESCE(payment_transfers.scheduled_transfer_time, EXCLUDED.scheduled_transfer_time),
    requires_approval         = payment_transfers.requires_approval OR EXCLUDED.requires_approval,
    stripe_transfer_id        = COALESCE(payment_transfers.stripe_transfer_id, EXCLUDED.stripe_transfer_id),
    updated_at                = now()
WHERE payment_transfers.updated_at = EXCLUDED.updated_at
RETURNING id;

-- name: PaymentTransferDeleteMany :many
-- Drops the rows merged into others. Returns those dropped.
DELETE FROM payment_transfers WHERE id = ANY(@ids::uuid[]) RETURNING id;
