-- name: StripeCheckoutSessionNote :exec
INSERT INTO stripe_checkout_sessions (stripe_session_id, stripe_payment_intent_id)
VALUES (@stripe_session_id, @stripe_payment_intent_id)
ON CONFLICT (stripe_session_id) DO NOTHING;

-- name: StripeCheckoutSessionByPaymentIntent :one
SELECT stripe_session_id FROM stripe_checkout_sessions
WHERE stripe_payment_intent_id = @stripe_payment_intent_id
ORDER BY created_at, stripe_session_id
LIMIT 1;

-- name: StripeCheckoutSessionGetMany :many
-- The Checkout Sessions noted under these ids or these PaymentIntents.
SELECT r.*
FROM unnest(@stripe_session_ids::text[]) AS k(id)
CROSS JOIN LATERAL (SELECT * FROM stripe_checkout_sessions WHERE stripe_session_id = k.id LIMIT 1) r
UNION
SELECT r.*
FROM unnest(@stripe_payment_intent_ids::text[]) AS k(id)
CROSS JOIN LATERAL (SELECT * FROM stripe_checkout_sessions WHERE stripe_payment_intent_id = k.id OFFSET 0) r;

-- name: StripeCheckoutSessionNoteMany :many
-- StripeCheckoutSessionNote for many Sessions (a JSON array of
-- stripe_checkout_sessions rows). Returns those noted.
INSERT INTO stripe_checkout_sessions (stripe_session_id, stripe_payment_intent_id, created_at)
SELECT r.stripe_session_id, r.stripe_payment_intent_id, r.created_at
FROM jsonb_populate_recordset(NULL::stripe_checkout_sessions, @batch::jsonb) AS r
ORDER BY r.stripe_session_id
ON CONFLICT (stripe_session_id) DO NOTHING
RETURNING stripe_session_id;
