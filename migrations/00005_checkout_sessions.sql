-- +goose Up
-- Checkout Sessions seen without a booking (no `meeting` metadata) before
-- their PaymentIntent created the meeting: the meeting takes the Session's
-- id when it is created, whichever arrived first.
CREATE TABLE stripe_checkout_sessions (
    stripe_session_id         text        PRIMARY KEY,
    stripe_payment_intent_id  text        NOT NULL,
    created_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_checkout_sessions_payment_intent_idx ON stripe_checkout_sessions (stripe_payment_intent_id);

-- +goose Down
DROP TABLE stripe_checkout_sessions;
