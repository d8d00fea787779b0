-- Indexes of `skills` a bulk load (an import push, a reconcile into an empty cache)
-- left to build after its commit: the rows and their keys are in, the indexes that
-- only make reads faster follow, one transaction each (cache::index_builds). A row
-- stays until its index exists, so a crash in between leaves the build to the next
-- server that looks.
CREATE TABLE skill_index_builds (
    name text PRIMARY KEY,
    definition text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

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
    count(*) FILTER (WHERE warnings <> '[]'::jsonb)::bigint AS with_warnings,
    (SELECT count(*) FROM skill_index_builds)::bigint AS indexes_pending
FROM skills;
