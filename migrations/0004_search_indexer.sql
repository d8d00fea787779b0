-- The full-text vector is no longer a generated column: computing to_tsvector over
-- every body inside the statements that write the rows made a big sync (an import, a
-- reconcile of 100,000 skills) wait ~13 s of CPU for it. skillsd now writes `search`
-- itself: in the same statement for small syncs (a push of a few skills is searchable
-- when `git push` returns), and for big ones right after the rows commit, in batches
-- (cache::search). A row whose vector is still to come has `search IS NULL`; the
-- health view counts them.
ALTER TABLE skills DROP COLUMN search;
ALTER TABLE skills ADD COLUMN search tsvector;
UPDATE skills SET search = skills_search_vector(title, description, tags, body);
CREATE INDEX skills_search_idx ON skills USING gin (search);
CREATE INDEX skills_search_pending_idx ON skills (repo) WHERE search IS NULL;

CREATE OR REPLACE VIEW skill_sync_health AS
SELECT
    count(*) FILTER (WHERE sync_status = 'synced')::bigint  AS synced,
    count(*) FILTER (WHERE sync_status = 'pending')::bigint AS pending,
    count(*) FILTER (WHERE sync_status = 'failed')::bigint  AS failed,
    count(*) FILTER (WHERE sync_status IS NULL OR last_synced_at IS NULL)::bigint AS unknown,
    count(*)::bigint AS total,
    (SELECT count(*) FROM skill_sync_log l
      WHERE l.status = 'failed' AND l.started_at > now() - interval '24 hours')::bigint AS recent_failures,
    (count(*) FILTER (WHERE sync_status IN ('pending', 'failed')) = 0
      AND (SELECT count(*) FROM skill_sync_log l
            WHERE l.status = 'failed' AND l.started_at > now() - interval '24 hours') = 0) AS healthy,
    count(*) FILTER (WHERE search IS NULL)::bigint AS search_pending
FROM skills;
