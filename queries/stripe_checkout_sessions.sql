-- name: StripeCheckoutSessionNote :exec
INSERT INTO stripe_checkout_sessions (stripe_session_id, stripe_payment_intent_id)
VALUES (@stripe_session_id, @stripe_payment_intent_id)
ON CONFLICT (stripe_session_id) DO NOTHING;

-- name: StripeCheckoutSessionByPaymentIntent :one
SELECT stripe_session_id FROM stripe_checkout_sessions
WHERE stripe_payment_intent_id = @stripe_payment_intent_id
ORDER BY created_at, stripe_session_id
LIMIT 1;
