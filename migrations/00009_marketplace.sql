-- +goose Up
-- The marketplace side of Stripe: the payouts, bank accounts and identity
-- checks of the experts' Connect accounts, the transfers to them, and the
-- app's payment_transfers (one per paid booking).
--
-- The four Stripe mirrors are versioned like those of 00002_stripe.sql, by
-- (stripe_created, stripe_event_rank, stripe_event_id), but the rank of
-- events of one second is the object's progress rather than the event
-- type's suffix where Stripe's objects move through statuses:
--   payouts:  0 pending < 1 in_transit < 2 paid < 3 canceled < 4 failed
--             (a paid payout can fail later, when the bank returns it:
--             failed is never older than paid)
--   identity: 0 requires_input < 1 processing < 2 requires_input with a
--             last_error (the check failed) < 3 verified < 4 canceled
--             < 5 redacted
--   transfers: 0 created < 1 updated < 2 reversed
--   external accounts: 0 created < 1 updated < 2 deleted (a tombstone)

CREATE TABLE stripe_payouts (
    stripe_payout_id    text        PRIMARY KEY,
    -- The connected account paid out (the event's `account`); NULL for the
    -- platform's own payouts.
    stripe_account_id   text,
    amount              bigint,
    currency            text,
    arrival_date        timestamptz,
    status              text        NOT NULL,
    failure_code        text,
    failure_message     text,
    method              text,
    -- The bank account or card (ba_… / card_…) the payout goes to.
    destination         text,
    object_created      timestamptz,
    stripe_created      timestamptz NOT NULL,
    stripe_event_rank   smallint    NOT NULL,
    stripe_event_id     text        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_payouts_account_idx ON stripe_payouts (stripe_account_id);

CREATE TABLE stripe_external_accounts (
    stripe_external_account_id  text        PRIMARY KEY,
    stripe_account_id           text,
    -- bank_account or card
    object                      text        NOT NULL,
    last4                       text,
    -- bank_name of a bank account, brand of a card
    bank_name                   text,
    country                     text,
    currency                    text,
    default_for_currency        boolean     NOT NULL DEFAULT false,
    status                      text,
    metadata                    jsonb       NOT NULL DEFAULT '{}',
    stripe_created              timestamptz NOT NULL,
    stripe_event_rank           smallint    NOT NULL,
    stripe_event_id             text        NOT NULL,
    deleted_at                  timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_external_accounts_account_idx ON stripe_external_accounts (stripe_account_id);

CREATE TABLE stripe_identity_verification_sessions (
    stripe_verification_session_id  text        PRIMARY KEY,
    -- The event's `account` when the session lives on a connected account.
    stripe_account_id               text,
    status                          text        NOT NULL,
    type                            text,
    last_error_code                 text,
    last_error_reason               text,
    -- The app sets it to the expert's Connect account id or user id.
    client_reference_id             text,
    -- From metadata workos_user_id / workosUserId / user_id / userId.
    workos_user_id                  text,
    metadata                        jsonb       NOT NULL DEFAULT '{}',
    object_created                  timestamptz,
    stripe_created                  timestamptz NOT NULL,
    stripe_event_rank               smallint    NOT NULL,
    stripe_event_id                 text        NOT NULL,
    created_at                      timestamptz NOT NULL DEFAULT now(),
    updated_at                      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_identity_sessions_client_ref_idx ON stripe_identity_verification_sessions (client_reference_id);
CREATE INDEX stripe_identity_sessions_user_idx ON stripe_identity_verification_sessions (workos_user_id);
CREATE INDEX stripe_identity_sessions_account_idx ON stripe_identity_verification_sessions (stripe_account_id);

CREATE TABLE stripe_transfers (
    stripe_transfer_id        text        PRIMARY KEY,
    -- The connected account paid (acct_…).
    destination_account_id    text,
    amount                    bigint,
    amount_reversed           bigint      NOT NULL DEFAULT 0,
    currency                  text,
    reversed                  boolean     NOT NULL DEFAULT false,
    -- The charge the transfer is funded by (ch_…).
    source_transaction        text,
    transfer_group            text,
    -- The booking the transfer pays for, from its metadata
    -- (checkout_session_id / payment_intent_id, either spelling) or its
    -- transfer_group (the PaymentIntent id, "group_" + it, or the Session id).
    stripe_session_id         text,
    stripe_payment_intent_id  text,
    metadata                  jsonb       NOT NULL DEFAULT '{}',
    object_created            timestamptz,
    stripe_created            timestamptz NOT NULL,
    stripe_event_rank         smallint    NOT NULL,
    stripe_event_id           text        NOT NULL,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_transfers_source_idx ON stripe_transfers (source_transaction);
CREATE INDEX stripe_transfers_payment_intent_idx ON stripe_transfers (stripe_payment_intent_id);
CREATE INDEX stripe_transfers_session_idx ON stripe_transfers (stripe_session_id);

-- The app's payment_transfers: the expert's share of one paid booking, to
-- be transferred to their Connect account after the session. Created from
-- the booking metadata `payment`, `transfer` and `approval` by whichever of
-- the Checkout Session's and the PaymentIntent's events arrives first,
-- completed by the other.
--
-- status only moves forward, in this order (the app's values; syncd writes
-- the ones marked *, and never replaces a status with one ranked lower):
--   0 PENDING* < 1 APPROVED < 2 READY < 3 FAILED < 5 REFUNDED* < 6 DISPUTED*
--   < 10 COMPLETED* < 20 PAID_OUT < 30 REVERSED*
-- COMPLETED: a Stripe transfer for the booking exists; REVERSED: it was
-- reversed in full. REFUNDED / DISPUTED: the booking was refunded in full /
-- disputed before any transfer. review_reason (refunded,
-- partially_refunded, disputed) is set whenever the booking's payment was
-- refunded or disputed, whatever the status: a transfer made, or about to
-- be made, needs a person to look at it.
CREATE TABLE payment_transfers (
    id                         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    stripe_session_id          text        UNIQUE,
    stripe_payment_intent_id   text        UNIQUE,
    -- The bookable event (metadata meeting.id).
    event_id                   uuid,
    expert_connect_account_id  text,
    expert_workos_user_id      text,
    -- The expert's share, the platform's fee and the total, minor units.
    amount                     bigint      NOT NULL,
    platform_fee               bigint      NOT NULL,
    total_amount               bigint,
    currency                   text,
    country                    text,
    session_start_time         timestamptz,
    scheduled_transfer_time    timestamptz,
    status                     text        NOT NULL DEFAULT 'PENDING',
    requires_approval          boolean     NOT NULL DEFAULT false,
    review_reason              text,
    stripe_transfer_id         text,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    CHECK (stripe_session_id IS NOT NULL OR stripe_payment_intent_id IS NOT NULL)
);
CREATE INDEX payment_transfers_transfer_idx ON payment_transfers (stripe_transfer_id);
CREATE INDEX payment_transfers_expert_idx ON payment_transfers (expert_workos_user_id);

-- What the mirrors say about each expert, derived (consumers/links.go):
-- the payout destination from stripe_external_accounts of the user's
-- Connect account, the identity check from the newest of their
-- verification sessions (stripe_identity_verified: any of them verified).
ALTER TABLE users
    ADD COLUMN connect_payout_destination                  boolean NOT NULL DEFAULT false,
    ADD COLUMN stripe_bank_account_last4                   text,
    ADD COLUMN stripe_bank_name                            text,
    ADD COLUMN stripe_identity_verification_id             text,
    ADD COLUMN stripe_identity_verification_status         text,
    ADD COLUMN stripe_identity_verified                    boolean NOT NULL DEFAULT false,
    ADD COLUMN stripe_identity_verification_last_checked   timestamptz;

-- +goose Down
ALTER TABLE users
    DROP COLUMN connect_payout_destination,
    DROP COLUMN stripe_bank_account_last4,
    DROP COLUMN stripe_bank_name,
    DROP COLUMN stripe_identity_verification_id,
    DROP COLUMN stripe_identity_verification_status,
    DROP COLUMN stripe_identity_verified,
    DROP COLUMN stripe_identity_verification_last_checked;
DROP TABLE payment_transfers;
DROP TABLE stripe_transfers;
DROP TABLE stripe_identity_verification_sessions;
DROP TABLE stripe_external_accounts;
DROP TABLE stripe_payouts;
