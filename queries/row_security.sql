-- name: RowSecurityFilteredTables :many
-- The tables of the public schema whose rows row-level security would hide
-- from the connected role: syncd must write as their owner or with
-- BYPASSRLS (and they must not be FORCEd), or its upserts would miss rows.
SELECT c.relname::text AS table_name
FROM pg_catalog.pg_class c
WHERE c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('r', 'p')
  AND c.relrowsecurity
  AND row_security_active(c.oid)
ORDER BY c.relname;
