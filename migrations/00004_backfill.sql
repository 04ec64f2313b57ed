-- +goose Up
-- Where each backfill from a provider's Events API stands, so that an
-- interrupted run resumes from its last stored page instead of starting
-- over. One row per provider and window (window_key names it: the CLI
-- derives it from --since/--until/--types, the reconciler uses a fixed
-- key). cursor only ever comes from the Events API's own pages, never from
-- ids seen in webhooks.
CREATE TABLE backfill_cursors (
    provider      text        NOT NULL CHECK (provider IN ('workos', 'stripe')),
    window_key    text        NOT NULL,
    range_start   timestamptz NOT NULL,
    -- Resolved when the window was started (an open --until is "now" at
    -- the first attempt), so a resumed run lists the same window.
    range_end     timestamptz NOT NULL,
    types         text[]      NOT NULL DEFAULT '{}',
    -- Stripe takes at most 20 types a request: a longer filter is listed in
    -- parts, done one after the other.
    part          integer     NOT NULL DEFAULT 0,
    -- The provider's page cursor after the last page whose every event was
    -- acknowledged by JetStream; NULL means the part's first page.
    cursor        text,
    pages         bigint      NOT NULL DEFAULT 0,
    published     bigint      NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    PRIMARY KEY (provider, window_key),
    CHECK (range_end >= range_start),
    CHECK (part >= 0)
);

-- +goose Down
DROP TABLE backfill_cursors;
