-- name: AuditContextSet :exec
-- Turns the audit trail on for the batch transaction: the events of the
-- batch by entity key (syncd.audit_events, read by the triggers of
-- migration 00010), and the event whose statements run next (empty: none,
-- the triggers resolve each row by its key). Transaction-local.
SELECT set_config('syncd.audit_events', @events::text, true),
       set_config('syncd.audit_event', @event::text, true);

-- name: AuditEventSet :exec
-- The event whose statements run next. Turns the audit trail on for the
-- transaction if nothing did yet.
SELECT set_config('syncd.audit_event', @event::text, true),
       set_config('syncd.audit_events', COALESCE(NULLIF(current_setting('syncd.audit_events', true), ''), '{}'), true);

-- name: AuditLogList :many
-- Audit rows, newest first, filtered by whichever arguments are set.
SELECT * FROM audit_logs
WHERE (sqlc.narg(resource_type)::text IS NULL OR resource_type = sqlc.narg(resource_type))
  AND (sqlc.narg(resource_id)::text IS NULL OR resource_id = sqlc.narg(resource_id))
  AND (sqlc.narg(workos_org_id)::text IS NULL OR workos_org_id = sqlc.narg(workos_org_id))
  AND (sqlc.narg(event_id)::text IS NULL OR event_id = sqlc.narg(event_id))
  AND (sqlc.narg(since)::timestamptz IS NULL OR occurred_at >= sqlc.narg(since))
  AND (sqlc.narg(until)::timestamptz IS NULL OR occurred_at < sqlc.narg(until))
ORDER BY occurred_at DESC, id DESC
LIMIT @max_rows;

-- name: AuditLogPrune :execrows
-- Retention: deletes, of the max_rows oldest rows (the first along the
-- primary key: ids are given at insert, occurred_at is the inserting
-- transaction's start, so both grow together), those that occurred before
-- before. It reads at most max_rows rows whatever the table holds: walking
-- the key until max_rows old rows were found read every row of a table with
-- none (the whole audit trail, every pass, for the first year). A row that
-- is old but behind a younger one (its transaction began first but wrote
-- later) goes once that one is old too, seconds later.
DELETE FROM audit_logs a
WHERE a.id IN (
    SELECT s.id FROM (
        SELECT f.id, f.occurred_at FROM audit_logs f
        ORDER BY f.id
        LIMIT @max_rows::int
    ) s
    WHERE s.occurred_at < @before::timestamptz
);
