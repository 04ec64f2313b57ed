-- name: BackfillCursorGet :one
SELECT * FROM backfill_cursors WHERE provider = @provider AND window_key = @window_key;

-- name: BackfillCursorStart :one
-- Starts (or restarts, once completed) a window from its first page.
INSERT INTO backfill_cursors (provider, window_key, range_start, range_end, types)
VALUES (@provider, @window_key, @range_start, @range_end, @types)
ON CONFLICT (provider, window_key) DO UPDATE SET
    range_start  = EXCLUDED.range_start,
    range_end    = EXCLUDED.range_end,
    types        = EXCLUDED.types,
    part         = 0,
    cursor       = NULL,
    pages        = 0,
    published    = 0,
    started_at   = now(),
    updated_at   = now(),
    completed_at = NULL
RETURNING *;

-- name: BackfillCursorAdvance :exec
-- Records a page whose events JetStream acknowledged.
UPDATE backfill_cursors SET
    part      = @part,
    cursor    = @cursor,
    pages     = pages + 1,
    published = published + @published,
    updated_at = now()
WHERE provider = @provider AND window_key = @window_key;

-- name: BackfillCursorComplete :exec
UPDATE backfill_cursors SET completed_at = now(), updated_at = now(), cursor = NULL
WHERE provider = @provider AND window_key = @window_key;

-- name: BackfillCursorList :many
SELECT * FROM backfill_cursors ORDER BY provider, updated_at DESC;

-- name: BackfillLockTry :one
-- One backfill per provider and window at a time (two replicas reconciling,
-- or an operator's run beside them). A session lock: hold the connection.
SELECT pg_try_advisory_lock(hashtextextended('syncd-backfill:' || @lock_key::text, 0)) AS locked;

-- name: BackfillUnlock :one
SELECT pg_advisory_unlock(hashtextextended('syncd-backfill:' || @lock_key::text, 0)) AS unlocked;

-- name: BackfillCursorPruneCompleted :execrows
-- Forgets windows finished before @before. Rerunning such a window lists
-- it again from its first page, which is harmless: what it publishes is
-- skipped by the ledger or the version guards. An unfinished window is
-- kept whatever its age: it is what resumes an interrupted backfill.
DELETE FROM backfill_cursors
WHERE completed_at < @before;
