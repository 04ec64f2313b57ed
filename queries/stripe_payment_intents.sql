-- The merge of what events say about a PaymentIntent is done in Go
-- (consumers/meetings.go) on a row locked FOR UPDATE.

-- name: StripePaymentIntentGetForUpdate :one
SELECT * FROM stripe_payment_intents WHERE stripe_payment_intent_id = @stripe_payment_intent_id FOR UPDATE;

-- name: StripePaymentIntentGet :one
SELECT * FROM stripe_payment_intents WHERE stripe_payment_intent_id = @stripe_payment_intent_id;

-- name: StripePaymentIntentIDByCharge :one
SELECT stripe_payment_intent_id FROM stripe_payment_intents WHERE stripe_charge_id = @stripe_charge_id LIMIT 1;

-- name: StripePaymentIntentInsert :one
-- No row back means another transaction inserted it first: lock and merge.
INSERT INTO stripe_payment_intents (
    stripe_payment_intent_id, stripe_charge_id, stripe_customer_id, amount,
    application_fee_amount, currency, amount_refunded, payment_status,
    payment_status_rank, payment_status_version, stripe_created, stripe_event_id
) VALUES (
    @stripe_payment_intent_id, @stripe_charge_id, @stripe_customer_id, @amount,
    @application_fee_amount, @currency, @amount_refunded, @payment_status,
    @payment_status_rank, @payment_status_version, @stripe_created, @stripe_event_id
)
ON CONFLICT (stripe_payment_intent_id) DO NOTHING
RETURNING stripe_payment_intent_id;

-- name: StripePaymentIntentUpdate :exec
UPDATE stripe_payment_intents SET
    stripe_charge_id       = @stripe_charge_id,
    stripe_customer_id     = @stripe_customer_id,
    amount                 = @amount,
    application_fee_amount = @application_fee_amount,
    currency               = @currency,
    amount_refunded        = @amount_refunded,
    payment_status         = @payment_status,
    payment_status_rank    = @payment_status_rank,
    payment_status_version = @payment_status_version,
    stripe_created         = @stripe_created,
    stripe_event_id        = @stripe_event_id,
    updated_at             = now()
WHERE stripe_payment_intent_id = @stripe_payment_intent_id;

-- name: StripePaymentIntentLockMany :many
-- A batch's PaymentIntents, locked, in the order given (the caller sorts
-- them). One primary-key probe per id.
SELECT r.*
FROM unnest(@stripe_payment_intent_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT * FROM stripe_payment_intents WHERE stripe_payment_intent_id = k.id FOR UPDATE
) r;

-- name: StripePaymentIntentIDsByCharges :many
-- StripePaymentIntentIDByCharge for many charges: every PaymentIntent that
-- names one of them.
SELECT r.stripe_charge_id::text AS stripe_charge_id, r.stripe_payment_intent_id
FROM unnest(@stripe_charge_ids::text[]) AS k(id)
CROSS JOIN LATERAL (
    SELECT stripe_charge_id, stripe_payment_intent_id FROM stripe_payment_intents
    WHERE stripe_charge_id = k.id
    OFFSET 0
) r;

-- name: StripePaymentIntentUpsertMany :many
-- Writes a batch's PaymentIntents, one row each (a JSON array of
-- stripe_payment_intents rows): new ones inserted, the others updated when
-- they are still as the caller read them (updated_at). Returns those
-- written.
INSERT INTO stripe_payment_intents (
    stripe_payment_intent_id, stripe_charge_id, stripe_customer_id, amount,
    application_fee_amount, currency, amount_refunded, payment_status,
    payment_status_rank, payment_status_version, stripe_created, stripe_event_id,
    created_at, updated_at
)
SELECT r.stripe_payment_intent_id, r.stripe_charge_id, r.stripe_customer_id, r.amount,
       r.application_fee_amount, r.currency, r.amount_refunded, r.payment_status,
       r.payment_status_rank, r.payment_status_version, r.stripe_created, r.stripe_event_id,
       r.created_at, r.updated_at
FROM jsonb_populate_recordset(NULL::stripe_payment_intents, @batch::jsonb) AS r
ORDER BY r.stripe_payment_intent_id
ON CONFLICT (stripe_payment_intent_id) DO UPDATE SET
    stripe_charge_id       = EXCLUDED.stripe_charge_id,
    stripe_customer_id     = EXCLUDED.stripe_customer_id,
    amount                 = EXCLUDED.amount,
    application_fee_amount = EXCLUDED.application_fee_amount,
    currency               = EXCLUDED.currency,
    amount_refunded        = EXCLUDED.amount_refunded,
    payment_status         = EXCLUDED.payment_status,
    payment_status_rank    = EXCLUDED.payment_status_rank,
    payment_status_version = EXCLUDED.payment_status_version,
    stripe_created         = EXCLUDED.stripe_created,
    stripe_event_id        = EXCLUDED.stripe_event_id,
    updated_at             = now()
WHERE stripe_payment_intents.updated_at = EXCLUDED.updated_at
RETURNING stripe_payment_intent_id;
