-- +goose Up
-- Stripe mirrors. Each row reflects the Stripe event that last wrote it,
-- versioned by (stripe_created, stripe_event_rank, stripe_event_id):
-- the event's `created` (unix seconds, so ties are common), then the rank of
-- its type (created 0 < updated 1 < deleted/deauthorized 2), then the event
-- id. The id is an arbitrary tie-break, but the same in every delivery
-- order, so replicas and replays converge. The links into users and
-- organizations are derived from these rows, whichever side arrives first.

CREATE TABLE stripe_customers (
    stripe_customer_id  text        PRIMARY KEY,
    email               text,
    name                text,
    -- From metadata workos_user_id / workosUserId and workos_org_id / workosOrgId.
    workos_user_id      text,
    workos_org_id       text,
    metadata            jsonb       NOT NULL DEFAULT '{}',
    -- The customer object's own created: the newest customer of a user wins.
    object_created      timestamptz,
    stripe_created      timestamptz NOT NULL,
    stripe_event_rank   smallint    NOT NULL,
    stripe_event_id     text        NOT NULL,
    deleted_at          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_customers_workos_user_idx ON stripe_customers (workos_user_id);
CREATE INDEX stripe_customers_workos_org_idx ON stripe_customers (workos_org_id);
CREATE INDEX stripe_customers_email_lower_idx ON stripe_customers (lower(email));

CREATE TABLE stripe_subscriptions (
    stripe_subscription_id  text        PRIMARY KEY,
    stripe_customer_id      text,
    -- From metadata workos_org_id / workosOrgId / teamOrgId.
    workos_org_id           text,
    status                  text        NOT NULL,
    tier                    text,
    current_period_end      timestamptz,
    cancel_at_period_end    boolean     NOT NULL DEFAULT false,
    metadata                jsonb       NOT NULL DEFAULT '{}',
    object_created          timestamptz,
    stripe_created          timestamptz NOT NULL,
    stripe_event_rank       smallint    NOT NULL,
    stripe_event_id         text        NOT NULL,
    deleted_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_subscriptions_workos_org_idx ON stripe_subscriptions (workos_org_id);
CREATE INDEX stripe_subscriptions_customer_idx ON stripe_subscriptions (stripe_customer_id);

CREATE TABLE stripe_connect_accounts (
    stripe_account_id    text        PRIMARY KEY,
    -- From metadata workosUserId / workos_user_id.
    workos_user_id       text,
    email                text,
    details_submitted    boolean     NOT NULL DEFAULT false,
    charges_enabled      boolean     NOT NULL DEFAULT false,
    payouts_enabled      boolean     NOT NULL DEFAULT false,
    -- details submitted, charges and payouts enabled, nothing currently due.
    onboarding_complete  boolean     NOT NULL DEFAULT false,
    metadata             jsonb       NOT NULL DEFAULT '{}',
    object_created       timestamptz,
    -- Set by account.application.deauthorized; a newer account.updated
    -- (the account connected again) clears it.
    deauthorized_at      timestamptz,
    stripe_created       timestamptz NOT NULL,
    stripe_event_rank    smallint    NOT NULL,
    stripe_event_id      text        NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_connect_accounts_workos_user_idx ON stripe_connect_accounts (workos_user_id);

-- What payment_intent.*, charge.refunded and charge.dispute.created said
-- about a PaymentIntent, kept whether or not its meeting is known yet, so a
-- refund that arrives before the booking is folded in when it does.
-- payment_status and its rank and version follow the meetings' rules below.
CREATE TABLE stripe_payment_intents (
    stripe_payment_intent_id  text        PRIMARY KEY,
    stripe_charge_id          text,
    stripe_customer_id        text,
    amount                    bigint,
    application_fee_amount    bigint,
    currency                  text,
    amount_refunded           bigint      NOT NULL DEFAULT 0,
    payment_status            text        NOT NULL,
    payment_status_rank       smallint    NOT NULL,
    payment_status_version    timestamptz NOT NULL,
    -- Version of the PaymentIntent fields (amounts, charge, customer): the
    -- last payment_intent.* event, (created, event id).
    stripe_created            timestamptz,
    stripe_event_id           text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX stripe_payment_intents_charge_idx ON stripe_payment_intents (stripe_charge_id);

ALTER TABLE users
    ADD COLUMN stripe_customer_id           text,
    ADD COLUMN stripe_customer_version      timestamptz,
    ADD COLUMN stripe_connect_account_id    text,
    ADD COLUMN connect_details_submitted    boolean NOT NULL DEFAULT false,
    ADD COLUMN connect_charges_enabled      boolean NOT NULL DEFAULT false,
    ADD COLUMN connect_payouts_enabled      boolean NOT NULL DEFAULT false,
    ADD COLUMN connect_onboarding_complete  boolean NOT NULL DEFAULT false,
    ADD COLUMN stripe_connect_version       timestamptz;
CREATE INDEX users_stripe_customer_idx ON users (stripe_customer_id);
CREATE INDEX users_stripe_connect_account_idx ON users (stripe_connect_account_id);

ALTER TABLE organizations
    ADD COLUMN stripe_customer_version             timestamptz,
    ADD COLUMN subscription_tier                   text,
    ADD COLUMN subscription_status                 text,
    ADD COLUMN stripe_subscription_id              text,
    ADD COLUMN subscription_current_period_end     timestamptz,
    ADD COLUMN subscription_cancel_at_period_end   boolean NOT NULL DEFAULT false,
    ADD COLUMN subscription_version                timestamptz;
CREATE INDEX organizations_stripe_customer_idx ON organizations (stripe_customer_id);
CREATE INDEX organizations_stripe_subscription_idx ON organizations (stripe_subscription_id);

-- Meetings booked through Stripe Checkout. Created by whichever of the
-- Checkout Session's and the PaymentIntent's events arrives first, completed
-- by the other.
--
-- payment_status only moves forward. payment_status_rank orders it: the
-- tens digit is the tier, which never goes down; inside tier 0 the newer
-- event wins (a failed payment can be retried), and events of the same
-- second are ordered by the rank itself:
--   0 pending < 1 processing < 2 failed < 3 canceled < 4 expired
--   10 succeeded < 20 partially_refunded < 30 refunded < 40 disputed
-- i.e. a status replaces the stored one when
--   (rank / 10, payment_status_version, rank) is greater.
--
-- The booking details (from the `meeting` metadata) and amounts are
-- versioned by (details_version, details_event_id) of the Session or
-- PaymentIntent event that carried them; an older event only fills gaps.
CREATE TABLE meetings (
    id                        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    stripe_session_id         text        UNIQUE,
    stripe_payment_intent_id  text        UNIQUE,
    stripe_customer_id        text,
    bookable_event_id         uuid,
    expert_workos_user_id     text,
    guest_email               text,
    guest_name                text,
    guest_workos_user_id      text,
    guest_org_id              uuid,
    start_time                timestamptz,
    duration_minutes          integer,
    notes                     text,
    timezone                  text,
    locale                    text,
    amount                    bigint,
    application_fee_amount    bigint,
    amount_refunded           bigint      NOT NULL DEFAULT 0,
    currency                  text,
    payment_status            text        NOT NULL,
    payment_status_rank       smallint    NOT NULL,
    payment_status_version    timestamptz NOT NULL,
    details_version           timestamptz,
    details_event_id          text,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    CHECK (stripe_session_id IS NOT NULL OR stripe_payment_intent_id IS NOT NULL)
);
CREATE INDEX meetings_guest_email_lower_idx ON meetings (lower(guest_email));
CREATE INDEX meetings_guest_workos_user_idx ON meetings (guest_workos_user_id);
CREATE INDEX meetings_expert_idx ON meetings (expert_workos_user_id);

-- +goose Down
DROP TABLE meetings;
DROP INDEX organizations_stripe_customer_idx;
ALTER TABLE organizations
    DROP COLUMN stripe_customer_version,
    DROP COLUMN subscription_tier,
    DROP COLUMN subscription_status,
    DROP COLUMN stripe_subscription_id,
    DROP COLUMN subscription_current_period_end,
    DROP COLUMN subscription_cancel_at_period_end,
    DROP COLUMN subscription_version;
ALTER TABLE users
    DROP COLUMN stripe_customer_id,
    DROP COLUMN stripe_customer_version,
    DROP COLUMN stripe_connect_account_id,
    DROP COLUMN connect_details_submitted,
    DROP COLUMN connect_charges_enabled,
    DROP COLUMN connect_payouts_enabled,
    DROP COLUMN connect_onboarding_complete,
    DROP COLUMN stripe_connect_version;
DROP TABLE stripe_payment_intents;
DROP TABLE stripe_connect_accounts;
DROP TABLE stripe_subscriptions;
DROP TABLE stripe_customers;
