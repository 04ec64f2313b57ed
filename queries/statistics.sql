-- name: StatisticsStale :many
-- The tables named whose planner statistics lag behind their rows: changed
-- (inserted, updated, deleted) since their last ANALYZE by at least
-- min_changes plus scale times the rows that ANALYZE counted. Only tables
-- the current role may analyze (it owns them, or is a member of the
-- owner), so one it may not is not picked again and again.
SELECT c.relname::text AS table_name
FROM pg_catalog.pg_class c
CROSS JOIN (SELECT @min_changes::float8 AS min_changes, @scale::float8 AS scale) AS p
WHERE c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = pg_catalog.current_schema())
  AND c.relkind = 'r'
  AND c.relname = ANY(@tables::text[])
  AND pg_catalog.pg_stat_get_mod_since_analyze(c.oid)::float8 >= p.min_changes + p.scale * GREATEST(c.reltuples, 0)
  AND pg_catalog.pg_has_role(c.relowner, 'USAGE')
ORDER BY c.relname;
