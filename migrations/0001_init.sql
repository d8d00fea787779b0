-- skillsd schema: the cache of skills on each repository's default branch,
-- the sync log, push audit records, the watermark and access control.

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    role        text NOT NULL CHECK (role IN ('reader', 'writer', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ssh_keys (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- OpenSSH-style fingerprint, e.g. SHA256:jsg0x...
    fingerprint   text NOT NULL UNIQUE,
    algorithm     text NOT NULL,
    -- the key in authorized_keys form: "ssh-ed25519 AAAA... comment"
    public_key    text NOT NULL,
    comment       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);
CREATE INDEX ssh_keys_user_idx ON ssh_keys (user_id);

CREATE TABLE skills (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    repo            text NOT NULL,
    slug            text NOT NULL,
    path            text NOT NULL,
    title           text NOT NULL,
    description     text,
    category        text,
    owner           text,
    tags            text[] NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'PUBLISHED'
                    CHECK (status IN ('DRAFT', 'IN_REVIEW', 'PUBLISHED', 'ARCHIVED')),
    frontmatter     jsonb NOT NULL DEFAULT '{}',
    body            text NOT NULL DEFAULT '',
    blob_sha        text NOT NULL,
    git_commit_sha  text NOT NULL,
    sync_status     text NOT NULL DEFAULT 'synced' CHECK (sync_status IN ('synced', 'pending', 'failed')),
    last_synced_at  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repo, slug),
    UNIQUE (repo, path)
);
CREATE INDEX skills_category_idx ON skills (repo, category);
CREATE INDEX skills_status_idx ON skills (repo, status);
CREATE INDEX skills_owner_idx ON skills (repo, owner);
CREATE INDEX skills_updated_idx ON skills (updated_at DESC);
CREATE INDEX skills_tags_idx ON skills USING gin (tags);

CREATE TABLE pushes (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    repo          text NOT NULL,
    user_name     text NOT NULL,
    key_fingerprint text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    accepted      boolean NOT NULL,
    -- [{"ref": "...", "old": "...", "new": "...", "result": "ok|rejected", "reason": "..."}]
    refs          jsonb NOT NULL DEFAULT '[]',
    -- the problems shown to the pusher: [{"path","line","column","field","message","hint"}]
    errors        jsonb NOT NULL DEFAULT '[]',
    push_options  text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX pushes_repo_time_idx ON pushes (repo, started_at DESC);

CREATE TABLE skill_sync_log (
    id              bigserial PRIMARY KEY,
    skill_id        uuid,
    repo            text NOT NULL,
    slug            text,
    path            text,
    operation       text NOT NULL CHECK (operation IN ('create', 'update', 'delete', 'rename', 'refresh')),
    direction       text NOT NULL DEFAULT 'git-to-db' CHECK (direction IN ('git-to-db')),
    status          text NOT NULL CHECK (status IN ('pending', 'success', 'failed')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    error           text,
    git_commit_sha  text,
    synced_by       text NOT NULL,
    push_id         uuid REFERENCES pushes (id) ON DELETE SET NULL
);
CREATE INDEX skill_sync_log_skill_idx ON skill_sync_log (skill_id, started_at DESC);
CREATE INDEX skill_sync_log_repo_idx ON skill_sync_log (repo, started_at DESC);
CREATE INDEX skill_sync_log_failed_idx ON skill_sync_log (started_at DESC) WHERE status = 'failed';

CREATE TABLE sync_state (
    repo        text NOT NULL,
    branch      text NOT NULL,
    commit_sha  text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo, branch)
);

-- The prototype's GET /api/skills/sync/status, as SQL.
CREATE VIEW skill_sync_health AS
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
            WHERE l.status = 'failed' AND l.started_at > now() - interval '24 hours') = 0) AS healthy
FROM skills;
