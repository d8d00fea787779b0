-- Findings of checks a repository set to "warning" in skillsd.toml's [levels]: the
-- skill is cached, and what was found is kept with it (each item: path, line, column,
-- field, message, hint, check, level), for the health view, the API and the web app.
ALTER TABLE skills ADD COLUMN warnings jsonb NOT NULL DEFAULT '[]';

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
    count(*) FILTER (WHERE search IS NULL)::bigint AS search_pending,
    count(*) FILTER (WHERE warnings <> '[]'::jsonb)::bigint AS with_warnings
FROM skills;
