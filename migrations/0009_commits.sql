-- The commits the cache was synced through, as git has them, so that pages and the
-- API can show a skill's history (who, when, why) without running git: written in the
-- same transaction as the sync-log rows that name them (skill_sync_log.git_commit_sha).
CREATE TABLE commits (
    repo             text NOT NULL,
    sha              text NOT NULL CHECK (sha ~ '^[0-9a-f]{40}$'),
    author_name      text NOT NULL,
    author_email     text NOT NULL,
    authored_at      timestamptz NOT NULL,
    committer_name   text NOT NULL,
    committer_email  text NOT NULL,
    committed_at     timestamptz NOT NULL,
    -- the whole message, at most 64 KiB of it
    message          text NOT NULL,
    PRIMARY KEY (repo, sha)
);
CREATE INDEX skill_sync_log_commit_idx ON skill_sync_log (repo, git_commit_sha);
