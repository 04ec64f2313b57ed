-- +goose Up
-- The ledger: one row per applied event. Written in the same transaction as
-- the event's effects, so a redelivered or replayed event is a no-op.
CREATE TABLE webhook_events (
    source          text        NOT NULL,
    event_id        text        NOT NULL,
    event_type      text        NOT NULL,
    provider_at     timestamptz,
    received_at     timestamptz,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    outcome         text        NOT NULL CHECK (outcome IN ('applied', 'ignored', 'stale')),
    stream_seq      bigint,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX webhook_events_applied_at_idx ON webhook_events (source, applied_at DESC);

-- Organizations. type and slug belong to the app: sync fills them only while
-- they are NULL. workos_updated_at is the WorkOS version the row reflects;
-- NULL on a stub created by a child that arrived first.
CREATE TABLE organizations (
    id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workos_org_id          text        NOT NULL UNIQUE,
    name                   text,
    slug                   text,
    type                   text,
    domains                text[]      NOT NULL DEFAULT '{}',
    external_id            text,
    metadata               jsonb       NOT NULL DEFAULT '{}',
    stripe_customer_id     text,
    workos_created_at      timestamptz,
    workos_updated_at      timestamptz,
    is_stub                boolean     NOT NULL DEFAULT false,
    deleted_at             timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workos_user_id         text        NOT NULL UNIQUE,
    email                  text,
    first_name             text,
    last_name              text,
    email_verified         boolean     NOT NULL DEFAULT false,
    profile_picture_url    text,
    external_id            text,
    metadata               jsonb       NOT NULL DEFAULT '{}',
    locale                 text,
    last_sign_in_at        timestamptz,
    workos_created_at      timestamptz,
    workos_updated_at      timestamptz,
    is_stub                boolean     NOT NULL DEFAULT false,
    deleted_at             timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_email_lower_idx ON users (lower(email));

-- A user holds at most one live membership per organization; superseded and
-- deleted memberships stay as tombstones.
CREATE TABLE user_org_memberships (
    id                        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workos_org_membership_id  text        NOT NULL UNIQUE,
    workos_user_id            text        NOT NULL REFERENCES users (workos_user_id),
    workos_org_id             text        NOT NULL REFERENCES organizations (workos_org_id),
    org_id                    uuid        NOT NULL REFERENCES organizations (id),
    role                      text,
    roles                     text[]      NOT NULL DEFAULT '{}',
    status                    text,
    directory_managed         boolean     NOT NULL DEFAULT false,
    workos_created_at         timestamptz,
    workos_updated_at         timestamptz,
    deleted_at                timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX user_org_memberships_live_key
    ON user_org_memberships (workos_user_id, org_id) WHERE deleted_at IS NULL;
CREATE INDEX user_org_memberships_org_idx ON user_org_memberships (org_id);

-- +goose Down
DROP TABLE user_org_memberships;
DROP TABLE users;
DROP TABLE organizations;
DROP TABLE webhook_events;
