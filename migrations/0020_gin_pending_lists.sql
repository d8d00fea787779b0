-- A row's entries go into a GIN index's pending list first; once the list passes
-- gin_pending_list_limit (4 MB by default), the inserting statement itself moves the
-- whole list into the index. A push whose rows crossed the limit paid for the earlier
-- pushes' entries too: ~100 ms inside the transaction of a push of 1,000 skills, and
-- now and then inside a push of one. With a limit no single push reaches, skillsd
-- moves the list after each commit that wrote rows, off the pushes' path
-- (cache::pending_lists); autovacuum does too. The entries in the list are found by
-- every search meanwhile.
DO $$
DECLARE
    idx regclass;
BEGIN
    FOR idx IN
        SELECT i.indexrelid::regclass FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
        WHERE i.indrelid = 'skills'::regclass AND am.amname = 'gin'
    LOOP
        EXECUTE format('ALTER INDEX %s SET (gin_pending_list_limit = 65536)', idx);
    END LOOP;
END $$;

-- An index a bulk load left to build is built with the same setting.
UPDATE skill_index_builds
SET definition = definition || ' WITH (gin_pending_list_limit=''65536'')'
WHERE definition LIKE '% USING gin %' AND definition NOT LIKE '% WITH (%'
  AND definition NOT LIKE '% WHERE %';
