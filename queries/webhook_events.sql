-- name: EventLedgerInsert :one
-- Claims an event for this transaction. No row back means it was applied
-- before: the caller skips it.
INSERT INTO webhook_events (source, event_id, event_type, provider_at, received_at, outcome, stream_seq)
VALUES (@source, @event_id, @event_type, @provider_at, @received_at, 'applied', @stream_seq)
ON CONFLICT (source, event_id) DO NOTHING
RETURNING event_id;

-- name: EventLedgerSetOutcome :exec
UPDATE webhook_events SET outcome = @outcome
WHERE source = @source AND event_id = @event_id;

-- name: EventLedgerSeen :many
-- Which of these events are already applied: the consumer checks a whole
-- batch at once before opening a transaction, so replays skip cheaply.
-- One primary-key probe per id (the LIMIT keeps the lateral a nested
-- loop): a plain `event_id = ANY(...)` was planned, with statistics not yet
-- caught up after a burst, as a scan of every row of the source.
SELECT w.event_id::text
FROM unnest(@event_ids::text[]) AS ids(event_id)
CROSS JOIN LATERAL (
    SELECT event_id FROM webhook_events
    WHERE source = @source AND event_id = ids.event_id
    LIMIT 1
) w;

-- name: EventLedgerGet :one
SELECT * FROM webhook_events WHERE source = @source AND event_id = @event_id;

-- name: EventLedgerLastApplied :many
-- The newest applied event per source, for `syncd status`.
SELECT DISTINCT ON (source) source, event_id, event_type, provider_at, applied_at, outcome
FROM webhook_events
ORDER BY source, applied_at DESC;

-- name: EventLedgerCountByOutcome :many
-- Outcomes of the events applied since @since, for `syncd status`: over a
-- window read through the (source, applied_at) index, not the whole
-- ledger, whose size depends on the retention.
SELECT source, outcome, count(*)::bigint AS n
FROM webhook_events
WHERE source = ANY(@sources::text[]) AND applied_at >= @since
GROUP BY source, outcome ORDER BY source, outcome;

-- name: EventLedgerMarkStale :exec
-- Pipelined batches learn which upserts were stale only after sending them.
-- Joined to the ids, so each is a primary-key probe whatever the statistics.
UPDATE webhook_events w SET outcome = 'stale'
FROM unnest(@event_ids::text[]) AS ids(event_id)
WHERE w.source = @source AND w.event_id = ids.event_id;

-- name: EventLedgerClaim :exec
-- Claims the events of a pipelined batch in one statement. Events already
-- claimed are left alone: the batch checked the ledger before, so that only
-- happens to an event a concurrent replay applied, and applying it again is
-- a no-op by the version guards. Times are RFC 3339 text, '' for none.
INSERT INTO webhook_events (source, event_id, event_type, provider_at, received_at, outcome, stream_seq)
SELECT c.source, c.event_id, c.event_type,
       NULLIF(c.provider_at, '')::timestamptz, NULLIF(c.received_at, '')::timestamptz,
       c.outcome, NULLIF(c.stream_seq, 0)
FROM (
    -- Set-returning functions side by side in a select list zip their arrays.
    SELECT unnest(@sources::text[]) AS source, unnest(@event_ids::text[]) AS event_id,
           unnest(@event_types::text[]) AS event_type, unnest(@provider_ats::text[]) AS provider_at,
           unnest(@received_ats::text[]) AS received_at, unnest(@outcomes::text[]) AS outcome,
           unnest(@stream_seqs::bigint[]) AS stream_seq
) c
ON CONFLICT (source, event_id) DO NOTHING;

-- name: EventLedgerPrune :one
-- Deletes up to @max_rows of a source's rows applied in [@after, @before),
-- oldest first, through the (source, applied_at) index, and returns how
-- many went and the newest applied_at among them: the next batch starts
-- there, so it does not step again over the index entries of the rows just
-- deleted (they stay until vacuum). The ids are gathered first so the
-- delete is a TID scan of exactly those rows.
WITH gone AS (
    DELETE FROM webhook_events
    WHERE ctid = ANY(ARRAY(
        SELECT w.ctid FROM webhook_events w
        WHERE w.source = @source AND w.applied_at >= @after AND w.applied_at < @before
        ORDER BY w.applied_at
        LIMIT @max_rows))
    RETURNING applied_at
)
SELECT count(*)::bigint AS pruned, COALESCE(max(applied_at), @after)::timestamptz AS last_applied_at FROM gone;

-- name: EventLedgerOldestBetween :one
-- Where retention's next batch starts: the oldest row of a source in
-- [@after, @before). A LIMIT 1 in index order is planned as an index scan
-- even without statistics; the batch's own LIMIT is not (see
-- retention.Pruner), hence this probe first.
SELECT applied_at FROM webhook_events
WHERE source = @source AND applied_at >= @after AND applied_at < @before
ORDER BY applied_at
LIMIT 1;

-- name: EventLedgerSize :one
-- The planner's row estimate (-1 before the first vacuum or analyze) and
-- the bytes of the table with its indexes and TOAST: both free to read,
-- whatever the ledger's size.
SELECT c.reltuples::bigint AS estimated_rows, pg_total_relation_size(c.oid)::bigint AS total_bytes
FROM pg_catalog.pg_class c
WHERE c.oid = 'webhook_events'::regclass;

-- name: EventLedgerCount :one
-- Exact, so a scan: `syncd status` runs it only under a short timeout.
SELECT count(*)::bigint AS n FROM webhook_events;

-- name: EventLedgerOldest :many
-- The oldest row of each source, from the (source, applied_at) index.
SELECT s.source::text AS source, o.applied_at
FROM unnest(@sources::text[]) AS s(source)
CROSS JOIN LATERAL (
    SELECT w.applied_at FROM webhook_events w
    WHERE w.source = s.source
    ORDER BY w.applied_at
    LIMIT 1
) o
ORDER BY s.source;
-- name: EventLedgerPerMinute :many
-- One source's events received (when syncd stored them) and applied, per
-- minute since a time: the console's chart. An event is applied after it
-- was received, so the (source, applied_at) index bounds both halves.
SELECT m.minute::timestamptz AS minute, sum(m.received)::bigint AS received, sum(m.applied)::bigint AS applied
FROM (
    SELECT date_trunc('minute', w.received_at) AS minute, 1 AS received, 0 AS applied
    FROM webhook_events w
    WHERE w.source = @source AND w.applied_at >= @since AND w.received_at >= @since
    UNION ALL
    SELECT date_trunc('minute', w.applied_at), 0, 1
    FROM webhook_events w
    WHERE w.source = @source AND w.applied_at >= @since
) m
GROUP BY m.minute ORDER BY m.minute;
