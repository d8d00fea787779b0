-- Review before publishing: changes pushed to refs/for/<branch>, their patch sets,
-- the reviews they got and the skills they propose. The commits of every patch set
-- are in git (refs/changes/N/K and refs/changes/N/head, in git_refs); these rows say
-- what the change is and where it stands.

CREATE TABLE changes (
    id            bigserial PRIMARY KEY,
    repo          text NOT NULL REFERENCES git_repos (name) ON DELETE CASCADE,
    -- N of refs/changes/N/*: counted per repository from 1
    number        integer NOT NULL CHECK (number > 0),
    -- the branch it is for, short name (`main`)
    target        text NOT NULL,
    author        text NOT NULL,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    topic         text,
    state         text NOT NULL CHECK (state IN ('DRAFT', 'IN_REVIEW', 'MERGED', 'ABANDONED')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- who closed it, when, and (merged) the commit the branch got
    closed_by     text,
    closed_at     timestamptz,
    merged_commit text,
    UNIQUE (repo, number)
);
CREATE INDEX changes_state_idx ON changes (repo, state, updated_at DESC);
-- One open change per author and topic: a push with the same topic adds a patch set.
CREATE UNIQUE INDEX changes_open_topic_idx ON changes (repo, author, topic)
    WHERE topic IS NOT NULL AND state IN ('DRAFT', 'IN_REVIEW');

CREATE TABLE change_patch_sets (
    change_id   bigint NOT NULL REFERENCES changes (id) ON DELETE CASCADE,
    number      integer NOT NULL CHECK (number > 0),
    commit_sha  text NOT NULL,
    -- the target branch's tip when it was pushed (what it was checked against)
    base_sha    text,
    pushed_by   text NOT NULL,
    push_id     uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (change_id, number)
);

CREATE TABLE change_reviews (
    id          bigserial PRIMARY KEY,
    change_id   bigint NOT NULL REFERENCES changes (id) ON DELETE CASCADE,
    patch_set   integer NOT NULL,
    reviewer    text NOT NULL,
    -- the reviewer's role on the repository then (owners may be named by role)
    reviewer_role text NOT NULL,
    verdict     text NOT NULL CHECK (verdict IN ('approve', 'reject')),
    message     text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- a new patch set dismissed it (`dismiss_stale`), or the reviewer changed their mind
    dismissed_at timestamptz
);
CREATE INDEX change_reviews_change_idx ON change_reviews (change_id, created_at);

-- The skills the latest patch set proposes: each with its operation against the
-- target's tip it was pushed on, its fields and body old and new, its warnings.
CREATE TABLE change_skills (
    change_id       bigint NOT NULL REFERENCES changes (id) ON DELETE CASCADE,
    path            text NOT NULL,
    slug            text NOT NULL,
    old_path        text,
    operation       text NOT NULL CHECK (operation IN ('create', 'update', 'rename', 'delete')),
    title           text,
    description     text,
    status          text,
    frontmatter     jsonb,
    body            text,
    old_frontmatter jsonb,
    old_body        text,
    warnings        jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (change_id, path)
);
CREATE INDEX change_skills_slug_idx ON change_skills (slug);
