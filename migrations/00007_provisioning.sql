-- +goose Up
-- Progress of the provisioning consumer, one row per person to provision:
-- a guest of a paid booking (task_key 'guest:<lower-cased email>') or a
-- user WorkOS announced (task_key 'user:<WorkOS user id>'). Each step's
-- result is stored as soon as WorkOS answered it, so a restarted or
-- redelivered task resumes at the step it stopped at and never repeats a
-- finished one. Only WorkOS ids live here: the users, organizations and
-- memberships themselves arrive through the webhooks like any others.
CREATE TABLE provisioning_tasks (
    task_key              text        PRIMARY KEY,
    kind                  text        NOT NULL CHECK (kind IN ('guest', 'user')),
    email                 text        NOT NULL,
    first_name            text,
    last_name             text,
    -- The booking (meeting id, else the Stripe object id) that asked for a
    -- guest account; NULL for user tasks.
    booking               text,
    -- The event that started the task.
    event_source          text        NOT NULL,
    event_id              text        NOT NULL,
    -- The next step to run; 'done' once finished.
    step                  text        NOT NULL DEFAULT 'user'
                          CHECK (step IN ('user', 'organization', 'membership', 'magic_auth', 'done')),
    workos_user_id        text,
    workos_org_id         text,
    workos_membership_id  text,
    magic_auth_id         text,
    -- What this task created, as opposed to found and adopted.
    user_created          boolean     NOT NULL DEFAULT false,
    org_created           boolean     NOT NULL DEFAULT false,
    membership_created    boolean     NOT NULL DEFAULT false,
    -- Whether the guest gets a magic-auth code: a user this task created,
    -- or an unverified guest account found in its place.
    send_magic_auth       boolean     NOT NULL DEFAULT false,
    -- created: something was created; unchanged: everything existed;
    -- failed: WorkOS refused a step (dead-lettered, last_error says why).
    outcome               text        CHECK (outcome IN ('created', 'unchanged', 'failed')),
    last_error            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz
);
CREATE INDEX provisioning_tasks_workos_user_idx ON provisioning_tasks (workos_user_id);

-- +goose Down
DROP TABLE provisioning_tasks;
