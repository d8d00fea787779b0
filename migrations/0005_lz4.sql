-- Compress the big columns with lz4 instead of pglz (PostgreSQL's default): writing
-- 100,000 skills spent more CPU in pglz_compress than in anything else (~5 s of the
-- reconcile's 23 s); lz4 compresses several times faster at a similar ratio. Values
-- already stored keep their compression until rewritten. A server built without lz4
-- keeps pglz (a notice, not an error): this is an optimisation, not a requirement.
DO $$
BEGIN
  EXECUTE 'ALTER TABLE skills
             ALTER COLUMN body SET COMPRESSION lz4,
             ALTER COLUMN frontmatter SET COMPRESSION lz4,
             ALTER COLUMN search SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
  RAISE NOTICE 'lz4 compression is not available here (%); skills keep pglz', SQLERRM;
END
$$;
