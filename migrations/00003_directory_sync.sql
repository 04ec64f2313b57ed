-- +goose Up
-- WorkOS Directory Sync, keyed by WorkOS ids.
--
-- Each object row records the WorkOS version it reflects
-- (workos_updated_at). Its data columns follow the newest version seen, even
-- under a tombstone, so that the final state does not depend on the order
-- events arrived in; deleted_at, once set, is never cleared (only moved
-- earlier when an earlier delete turns up), so nothing deleted comes back.
-- is_stub marks a row created for a child that arrived before the object's
-- own event (a group membership before the user or group, a user before its
-- directory); the object's own event fills it in whatever its version.

CREATE TABLE directories (
    id                     uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workos_directory_id    text        NOT NULL UNIQUE,
    workos_org_id          text,
    name                   text,
    type                   text,
    state                  text,
    domains                text[]      NOT NULL DEFAULT '{}',
    external_key           text,
    workos_created_at      timestamptz,
    workos_updated_at      timestamptz,
    is_stub                boolean     NOT NULL DEFAULT false,
    deleted_at             timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX directories_org_idx ON directories (workos_org_id);

CREATE TABLE directory_users (
    id                         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workos_directory_user_id   text        NOT NULL UNIQUE,
    workos_directory_id        text        NOT NULL REFERENCES directories (workos_directory_id),
    workos_org_id              text,
    idp_id                     text,
    email                      text,
    emails                     jsonb       NOT NULL DEFAULT '[]',
    username                   text,
    first_name                 text,
    last_name                  text,
    job_title                  text,
    state                      text,
    role                       text,
    roles                      text[]      NOT NULL DEFAULT '{}',
    custom_attributes          jsonb       NOT NULL DEFAULT '{}',
    -- WorkOS may omit raw attributes; NULL when it did.
    raw_attributes             jsonb,
    workos_created_at          timestamptz,
    workos_updated_at          timestamptz,
    is_stub                    boolean     NOT NULL DEFAULT false,
    deleted_at                 timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX directory_users_directory_idx ON directory_users (workos_directory_id);
CREATE INDEX directory_users_email_lower_idx ON directory_users (lower(email));

CREATE TABLE directory_groups (
    id                         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    workos_directory_group_id  text        NOT NULL UNIQUE,
    workos_directory_id        text        NOT NULL REFERENCES directories (workos_directory_id),
    workos_org_id              text,
    idp_id                     text,
    name                       text,
    raw_attributes             jsonb,
    workos_created_at          timestamptz,
    workos_updated_at          timestamptz,
    is_stub                    boolean     NOT NULL DEFAULT false,
    deleted_at                 timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX directory_groups_directory_idx ON directory_groups (workos_directory_id);

-- Memberships have no WorkOS object or version of their own: a row reflects
-- the latest dsync.group.user_added or user_removed by event time
-- (workos_event_at); at equal times a removal wins. removed_at is set while
-- that latest event is a removal; parent_deleted_at is the earliest
-- deletion of the user, the group or the directory, after which no add
-- brings the membership back.
CREATE TABLE directory_group_members (
    workos_directory_group_id  text        NOT NULL REFERENCES directory_groups (workos_directory_group_id),
    workos_directory_user_id   text        NOT NULL REFERENCES directory_users (workos_directory_user_id),
    workos_directory_id        text        NOT NULL REFERENCES directories (workos_directory_id),
    workos_event_at            timestamptz NOT NULL,
    removed_at                 timestamptz,
    parent_deleted_at          timestamptz,
    deleted_at                 timestamptz GENERATED ALWAYS AS (LEAST(removed_at, parent_deleted_at)) STORED,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workos_directory_group_id, workos_directory_user_id)
);
CREATE INDEX directory_group_members_user_idx ON directory_group_members (workos_directory_user_id);
CREATE INDEX directory_group_members_directory_idx ON directory_group_members (workos_directory_id);

-- +goose Down
DROP TABLE directory_group_members;
DROP TABLE directory_groups;
DROP TABLE directory_users;
DROP TABLE directories;
