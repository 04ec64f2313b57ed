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
