-- +goose Up
-- The audit trail of every change syncd applies, and the app's row-level
-- security on the tables syncd creates.

-- One row per change syncd applied to one of the app's rows, written by
-- the triggers below in the transaction of the change: no change without its
-- row, no row without its change. old_values and new_values hold only the
-- columns that changed (all non-NULL columns on a create, all on a delete).
CREATE TABLE audit_logs (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    actor          text        NOT NULL DEFAULT 'system:syncd',
    -- The event that made the change; NULL only for a link that no event
    -- of its batch accounts for (see README, Audit trail).
    source         text,
    event_id       text,
    event_type     text,
    action         text        NOT NULL CHECK (action IN ('created', 'updated', 'deleted', 'linked', 'unlinked')),
    resource_type  text        NOT NULL,
    -- The provider's id where the row has one (WorkOS user, organization,
    -- membership id), else the row's id.
    resource_id    text        NOT NULL,
    -- The organization the row belongs to, when it belongs to one.
    workos_org_id  text,
    org_id         uuid,
    old_values     jsonb,
    new_values     jsonb,
    -- delivery (JetStream delivery attempt), mode (live or replay).
    metadata       jsonb       NOT NULL DEFAULT '{}'
);
-- Rows arrive in time order: a BRIN index serves time windows at a
-- fraction of a B-tree's upkeep on the apply path; retention walks the
-- primary key, oldest first.
CREATE INDEX audit_logs_occurred_at_idx ON audit_logs USING brin (occurred_at);
CREATE INDEX audit_logs_resource_idx ON audit_logs (resource_type, resource_id, occurred_at);
CREATE INDEX audit_logs_org_idx ON audit_logs (workos_org_id, occurred_at);
CREATE INDEX audit_logs_event_idx ON audit_logs (event_id, source, occurred_at);

-- The changes of one statement, written with one INSERT (the trigger is
-- statement-level over its transition tables). Only while syncd applies:
-- it sets syncd.audit_events for the batch transaction (SYNCD_AUDIT=on);
-- the app's own writes, and syncd with the audit off, write nothing.
--
-- Which event made a row's change: syncd.audit_event while one event's
-- statements run (per-event and isolated paths); otherwise (the set-based
-- upserts, the links run once per batch) the batch's events by entity key
-- in syncd.audit_events: the WorkOS row's key and version first (the event
-- whose state the set-based upsert wrote), then the Stripe object that
-- links to it, then the row's entity.
-- +goose StatementBegin
CREATE FUNCTION syncd_audit() RETURNS trigger LANGUAGE plpgsql
-- The statements below have the same shape on every call: plan them once
-- per session instead of once per statement audited.
SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
    olds jsonb[];
    news jsonb[];
    cur jsonb;
    evs jsonb;
    -- syncd's bookkeeping is not the app's data.
    skip constant text[] := ARRAY['created_at', 'updated_at', 'stripe_customer_version',
        'stripe_connect_version', 'subscription_version', 'payment_status_rank',
        'payment_status_version', 'details_version', 'details_event_id'];
    -- Columns whose change from or to NULL is a link made or undone.
    links text[];
BEGIN
    -- Cheap until there is something to write: the batch's map is parsed
    -- only for rows no current event accounts for.
    IF COALESCE(current_setting('syncd.audit_events', true), '') = '' THEN
        RETURN NULL;
    END IF;
    -- The old and new image of each changed row, side by side.
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(to_jsonb(n) - skip) INTO news FROM new_rows n;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(to_jsonb(o) - skip), array_agg(to_jsonb(n) - skip) INTO olds, news
        FROM old_rows o JOIN new_rows n ON n.id = o.id;
    ELSE
        SELECT array_agg(to_jsonb(o) - skip) INTO olds FROM old_rows o;
    END IF;
    IF olds IS NULL AND news IS NULL THEN
        RETURN NULL;
    END IF;
    cur := NULLIF(current_setting('syncd.audit_event', true), '')::jsonb;
    IF cur IS NULL THEN
        evs := current_setting('syncd.audit_events', true)::jsonb;
    END IF;
    links := CASE TG_TABLE_NAME
        WHEN 'users' THEN ARRAY['stripe_customer_id', 'stripe_connect_account_id']
        WHEN 'organizations' THEN ARRAY['stripe_customer_id', 'stripe_subscription_id']
        WHEN 'meetings' THEN ARRAY['guest_workos_user_id']
        WHEN 'payment_transfers' THEN ARRAY['stripe_transfer_id']
        ELSE ARRAY[]::text[] END;
    -- One event may change a row in several statements (a delete that
    -- first stores the object's last data, then its tombstone): that is one
    -- change, so a row the event already has an audit row for in this
    -- transaction is folded into it (the first old values, the last new
    -- ones) instead of getting a second.
    WITH changes AS (
    SELECT ev->>'source' AS source, ev->>'id' AS event_id, ev->>'type' AS event_type,
           CASE
               WHEN p.o IS NULL THEN 'created'
               WHEN p.n IS NULL THEN 'deleted'
               WHEN p.o->>'deleted_at' IS NULL AND p.n->>'deleted_at' IS NOT NULL THEN 'deleted'
               WHEN EXISTS (SELECT 1 FROM unnest(links) l WHERE d.new_values ? l AND d.old_values->l = 'null') THEN 'linked'
               WHEN EXISTS (SELECT 1 FROM unnest(links) l WHERE d.new_values ? l AND d.new_values->l = 'null') THEN 'unlinked'
               ELSE 'updated'
           END AS action,
           s.resource_id, s.workos_org_id, s.org_id, d.old_values, d.new_values,
           jsonb_strip_nulls(jsonb_build_object('delivery', ev->'delivery', 'mode', ev->'mode',
               'via', CASE WHEN ev IS NULL THEN 'link' END)) AS metadata
    FROM unnest(COALESCE(olds, array_fill(NULL::jsonb, ARRAY[cardinality(news)])),
                COALESCE(news, array_fill(NULL::jsonb, ARRAY[cardinality(olds)]))) AS p(o, n)
    -- Only the columns that changed: a create's and a delete's non-NULL
    -- ones; an update's that differ.
    CROSS JOIN LATERAL (SELECT CASE WHEN p.o IS NULL OR p.n IS NULL THEN NULL::text[] ELSE ARRAY(
        SELECT e.key FROM jsonb_each(p.n) e WHERE p.o->e.key = e.value) END AS same
        OFFSET 0) u -- computed once per row, not once per use
    CROSS JOIN LATERAL (SELECT
        CASE WHEN p.o IS NULL THEN NULL WHEN p.n IS NULL THEN jsonb_strip_nulls(p.o) - 'id' ELSE p.o - u.same END AS old_values,
        CASE WHEN p.n IS NULL THEN NULL WHEN p.o IS NULL THEN jsonb_strip_nulls(p.n) - 'id' ELSE p.n - u.same END AS new_values
        OFFSET 0) d
    CROSS JOIN LATERAL (SELECT COALESCE(p.n, p.o) AS row) c
    CROSS JOIN LATERAL (SELECT
        CASE TG_TABLE_NAME
            WHEN 'users' THEN c.row->>'workos_user_id'
            WHEN 'organizations' THEN c.row->>'workos_org_id'
            WHEN 'user_org_memberships' THEN c.row->>'workos_org_membership_id'
            ELSE c.row->>'id'
        END AS resource_id,
        CASE TG_TABLE_NAME
            WHEN 'organizations' THEN c.row->>'workos_org_id'
            WHEN 'user_org_memberships' THEN c.row->>'workos_org_id'
            WHEN 'meetings' THEN (SELECT g.workos_org_id FROM organizations g WHERE g.id = (c.row->>'guest_org_id')::uuid)
        END AS workos_org_id,
        CASE TG_TABLE_NAME
            WHEN 'organizations' THEN (c.row->>'id')::uuid
            WHEN 'user_org_memberships' THEN (c.row->>'org_id')::uuid
            WHEN 'meetings' THEN (c.row->>'guest_org_id')::uuid
        END AS org_id
    ) s
    CROSS JOIN LATERAL (SELECT COALESCE(cur, CASE TG_TABLE_NAME
        WHEN 'users' THEN COALESCE(
            evs->('users:' || s.resource_id || '@' || (extract(epoch FROM (c.row->>'workos_updated_at')::timestamptz) * 1000000)::bigint),
            evs->('customer:' || (c.row->>'stripe_customer_id')),
            evs->('account:' || (c.row->>'stripe_connect_account_id')),
            evs->('user:' || s.resource_id))
        WHEN 'organizations' THEN COALESCE(
            evs->('organizations:' || s.resource_id || '@' || (extract(epoch FROM (c.row->>'workos_updated_at')::timestamptz) * 1000000)::bigint),
            evs->('subscription:' || (c.row->>'stripe_subscription_id')),
            evs->('customer:' || (c.row->>'stripe_customer_id')),
            evs->('org:' || s.resource_id))
        WHEN 'user_org_memberships' THEN evs->('user:' || (c.row->>'workos_user_id'))
        WHEN 'meetings' THEN COALESCE(
            evs->('payment:' || (c.row->>'stripe_payment_intent_id')),
            evs->('user:' || (c.row->>'guest_workos_user_id')),
            evs->('org:' || (SELECT g.workos_org_id FROM organizations g WHERE g.id = (c.row->>'guest_org_id')::uuid)))
        WHEN 'payment_transfers' THEN evs->('payment:' || (c.row->>'stripe_payment_intent_id'))
    END) AS ev) e
    WHERE d.old_values <> '{}' OR d.new_values <> '{}'
    ), folded AS (
        UPDATE audit_logs a SET
            action = CASE WHEN a.action IN ('created', 'deleted') THEN a.action
                          WHEN c.action IN ('created', 'deleted') THEN c.action
                          WHEN c.action = 'updated' THEN a.action ELSE c.action END,
            old_values = CASE WHEN a.old_values IS NULL OR c.old_values IS NULL THEN a.old_values
                              ELSE c.old_values || a.old_values END,
            new_values = COALESCE(a.new_values || c.new_values, c.new_values),
            workos_org_id = COALESCE(c.workos_org_id, a.workos_org_id),
            org_id = COALESCE(c.org_id, a.org_id)
        FROM changes c
        -- Only a current event's statements follow one another on a row.
        WHERE cur IS NOT NULL
          AND a.event_id = c.event_id AND a.source = c.source
          AND a.resource_type = TG_TABLE_NAME AND a.resource_id = c.resource_id
          -- This transaction's (an event whose ledger row was pruned can
          -- be applied again, much later), checked on the rows the event
          -- index finds: written so that the planner does not look for
          -- them through the BRIN index instead.
          AND (a.occurred_at = now()) IS TRUE
        RETURNING c.resource_id
    )
    INSERT INTO audit_logs (source, event_id, event_type, action, resource_type, resource_id,
                            workos_org_id, org_id, old_values, new_values, metadata)
    SELECT c.source, c.event_id, c.event_type, c.action, TG_TABLE_NAME, c.resource_id,
           c.workos_org_id, c.org_id, c.old_values, c.new_values, c.metadata
    FROM changes c
    WHERE c.event_id IS NULL OR c.resource_id NOT IN (SELECT resource_id FROM folded);
    RETURN NULL;
END
$fn$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION syncd_audit_attach(tbl regclass) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    EXECUTE format('CREATE TRIGGER syncd_audit_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION syncd_audit()', tbl);
    EXECUTE format('CREATE TRIGGER syncd_audit_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION syncd_audit()', tbl);
    EXECUTE format('CREATE TRIGGER syncd_audit_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION syncd_audit()', tbl);
END
$fn$;
-- +goose StatementEnd

SELECT syncd_audit_attach('organizations');
SELECT syncd_audit_attach('users');
SELECT syncd_audit_attach('user_org_memberships');
SELECT syncd_audit_attach('meetings');
-- payment_transfers comes with migration 00009 (the marketplace); audited
-- and protected where it exists.
-- +goose StatementBegin
DO $do$
BEGIN
    IF to_regclass('public.payment_transfers') IS NOT NULL THEN
        PERFORM syncd_audit_attach('payment_transfers');
    END IF;
END
$do$;
-- +goose StatementEnd

-- auth.user_id(): the WorkOS user id of the Data API's request. Neon's
-- comes with pg_session_jwt; it is used when installed or installable.
-- Elsewhere (plain Postgres, tests) a stand-in reads the JWT's sub from
-- request.jwt.claims, as PostgREST and pg_session_jwt without a JWK set it.
-- Neon's is never replaced.
-- +goose StatementBegin
DO $do$
BEGIN
    IF to_regprocedure('auth.user_id()') IS NULL
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_session_jwt') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_session_jwt;
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'pg_session_jwt not installed (%): using the auth.user_id() stand-in', SQLERRM;
        END;
    END IF;
    IF to_regprocedure('auth.user_id()') IS NULL THEN
        CREATE SCHEMA IF NOT EXISTS auth;
        CREATE FUNCTION auth.user_id() RETURNS text LANGUAGE sql STABLE AS $f$
            SELECT NULLIF(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
        $f$;
        COMMENT ON FUNCTION auth.user_id() IS 'syncd stand-in for pg_session_jwt''s auth.user_id(): the sub of request.jwt.claims';
    END IF;
END
$do$;
-- +goose StatementEnd

-- The role the Data API runs a signed-in user's queries as. Roles belong to
-- the cluster, not the database: created once, and two databases migrating
-- at once may race to create it.
-- +goose StatementBegin
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'role authenticated does not exist and % may not create it', current_user
            USING HINT = 'have an administrator run CREATE ROLE authenticated NOLOGIN, then migrate again';
END
$do$;
-- +goose StatementEnd

GRANT USAGE ON SCHEMA public TO authenticated;
-- pg_session_jwt's schema and function may belong to another role (the
-- Data API's setup); they are usable by everyone then already.
-- +goose StatementBegin
DO $do$
BEGIN
    GRANT USAGE ON SCHEMA auth TO authenticated;
    GRANT EXECUTE ON FUNCTION auth.user_id() TO authenticated;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'auth.user_id() belongs to another role: grants left to it (%)', SQLERRM;
END
$do$;
-- +goose StatementEnd
GRANT SELECT ON organizations, users, user_org_memberships, audit_logs TO authenticated;
GRANT UPDATE ON organizations TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON meetings TO authenticated;

-- Not FORCE: syncd writes as the tables' owner (or a BYPASSRLS role),
-- which row security does not filter.
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_org_memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE meetings ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_logs ENABLE ROW LEVEL SECURITY;

-- (SELECT auth.user_id()) is evaluated once per query, not once per row.
CREATE POLICY organizations_member_read ON organizations FOR SELECT TO authenticated
    USING (EXISTS (
        SELECT 1 FROM user_org_memberships m
        WHERE m.org_id = organizations.id AND m.workos_user_id = (SELECT auth.user_id())
          AND m.status = 'active' AND m.deleted_at IS NULL));
CREATE POLICY organizations_admin_write ON organizations FOR UPDATE TO authenticated
    USING (EXISTS (
        SELECT 1 FROM user_org_memberships m
        WHERE m.org_id = organizations.id AND m.workos_user_id = (SELECT auth.user_id())
          AND m.status = 'active' AND m.deleted_at IS NULL
          AND (m.role IN ('owner', 'admin') OR m.roles && ARRAY['owner', 'admin'])))
    WITH CHECK (EXISTS (
        SELECT 1 FROM user_org_memberships m
        WHERE m.org_id = organizations.id AND m.workos_user_id = (SELECT auth.user_id())
          AND m.status = 'active' AND m.deleted_at IS NULL
          AND (m.role IN ('owner', 'admin') OR m.roles && ARRAY['owner', 'admin'])));
CREATE POLICY user_org_memberships_own_read ON user_org_memberships FOR SELECT TO authenticated
    USING (workos_user_id = (SELECT auth.user_id()));
CREATE POLICY users_self_read ON users FOR SELECT TO authenticated
    USING (workos_user_id = (SELECT auth.user_id()));
CREATE POLICY meetings_expert_all ON meetings FOR ALL TO authenticated
    USING (expert_workos_user_id = (SELECT auth.user_id()))
    WITH CHECK (expert_workos_user_id = (SELECT auth.user_id()));
CREATE POLICY meetings_guest_read ON meetings FOR SELECT TO authenticated
    USING (guest_workos_user_id = (SELECT auth.user_id()));
CREATE POLICY audit_logs_admin_read ON audit_logs FOR SELECT TO authenticated
    USING (EXISTS (
        SELECT 1 FROM user_org_memberships m
        WHERE m.org_id = audit_logs.org_id AND m.workos_user_id = (SELECT auth.user_id())
          AND m.status = 'active' AND m.deleted_at IS NULL
          AND (m.role IN ('owner', 'admin') OR m.roles && ARRAY['owner', 'admin'])));

-- +goose StatementBegin
DO $do$
BEGIN
    IF to_regclass('public.payment_transfers') IS NOT NULL THEN
        GRANT SELECT ON payment_transfers TO authenticated;
        ALTER TABLE payment_transfers ENABLE ROW LEVEL SECURITY;
        CREATE POLICY payment_transfers_expert_read ON payment_transfers FOR SELECT TO authenticated
            USING (expert_workos_user_id = (SELECT auth.user_id()));
    END IF;
END
$do$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $do$
BEGIN
    IF to_regclass('public.payment_transfers') IS NOT NULL THEN
        DROP POLICY IF EXISTS payment_transfers_expert_read ON payment_transfers;
        ALTER TABLE payment_transfers DISABLE ROW LEVEL SECURITY;
        REVOKE ALL ON payment_transfers FROM authenticated;
        DROP TRIGGER IF EXISTS syncd_audit_insert ON payment_transfers;
        DROP TRIGGER IF EXISTS syncd_audit_update ON payment_transfers;
        DROP TRIGGER IF EXISTS syncd_audit_delete ON payment_transfers;
    END IF;
END
$do$;
-- +goose StatementEnd
DROP POLICY organizations_member_read ON organizations;
DROP POLICY organizations_admin_write ON organizations;
DROP POLICY user_org_memberships_own_read ON user_org_memberships;
DROP POLICY users_self_read ON users;
DROP POLICY meetings_expert_all ON meetings;
DROP POLICY meetings_guest_read ON meetings;
DROP POLICY audit_logs_admin_read ON audit_logs;
ALTER TABLE organizations DISABLE ROW LEVEL SECURITY;
ALTER TABLE users DISABLE ROW LEVEL SECURITY;
ALTER TABLE user_org_memberships DISABLE ROW LEVEL SECURITY;
ALTER TABLE meetings DISABLE ROW LEVEL SECURITY;
REVOKE ALL ON organizations, users, user_org_memberships, meetings FROM authenticated;
REVOKE ALL ON SCHEMA public FROM authenticated;
-- The stand-in goes only if it is ours (not pg_session_jwt's); the role
-- stays: it belongs to the cluster, other databases may use it.
-- +goose StatementBegin
DO $do$
BEGIN
    IF to_regprocedure('auth.user_id()') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_depend
        WHERE objid = 'auth.user_id()'::regprocedure AND deptype = 'e') THEN
        DROP FUNCTION auth.user_id();
    END IF;
END
$do$;
-- +goose StatementEnd
DROP TRIGGER syncd_audit_insert ON organizations;
DROP TRIGGER syncd_audit_update ON organizations;
DROP TRIGGER syncd_audit_delete ON organizations;
DROP TRIGGER syncd_audit_insert ON users;
DROP TRIGGER syncd_audit_update ON users;
DROP TRIGGER syncd_audit_delete ON users;
DROP TRIGGER syncd_audit_insert ON user_org_memberships;
DROP TRIGGER syncd_audit_update ON user_org_memberships;
DROP TRIGGER syncd_audit_delete ON user_org_memberships;
DROP TRIGGER syncd_audit_insert ON meetings;
DROP TRIGGER syncd_audit_update ON meetings;
DROP TRIGGER syncd_audit_delete ON meetings;
DROP FUNCTION syncd_audit_attach(regclass);
DROP FUNCTION syncd_audit();
DROP TABLE audit_logs;
