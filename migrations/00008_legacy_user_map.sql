-- +goose Up
-- The Clerk import's record, one row per Clerk user: the WorkOS ids the
-- user was given (or found holding it), how far the import got and how it
-- ended. It is what makes `syncd import clerk` resumable (a row whose
-- outcome is complete is not touched again, an in_progress one continues
-- at the first id it lacks), and it is the map the app's data migration
-- re-keys its legacy rows by (`syncd import map`). org_id is the app's
-- organizations.id, known once the organization's webhook arrived: it is
-- filled by the import and by `syncd import verify` when they find it.
CREATE TABLE legacy_user_map (
    clerk_user_id              text        PRIMARY KEY,
    email                      text        NOT NULL,
    workos_user_id             text,
    workos_org_id              text,
    workos_membership_id       text,
    org_id                     uuid,
    -- The personal organization's type as the import chose it
    -- (expert_individual with a legacy Stripe Connect account).
    org_type                   text,
    -- The legacy database's Stripe links of the user, when it was read.
    stripe_customer_id         text,
    stripe_connect_account_id  text,
    -- What this import created, as opposed to found and adopted.
    user_created               boolean     NOT NULL DEFAULT false,
    org_created                boolean     NOT NULL DEFAULT false,
    membership_created         boolean     NOT NULL DEFAULT false,
    password_imported          boolean     NOT NULL DEFAULT false,
    -- in_progress: started, not finished (resumed by the next run);
    -- created / adopted: done, something written / everything existed;
    -- mapped: --map-only found user, organization and membership;
    -- missing: --map-only found not all of them (detail says which);
    -- failed: WorkOS refused a step (detail says why; retried next run).
    outcome                    text        NOT NULL
                               CHECK (outcome IN ('in_progress', 'created', 'adopted', 'mapped', 'missing', 'failed')),
    detail                     text,
    -- When the row reached a complete outcome.
    imported_at                timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX legacy_user_map_workos_user_idx ON legacy_user_map (workos_user_id);

-- +goose Down
DROP TABLE legacy_user_map;
