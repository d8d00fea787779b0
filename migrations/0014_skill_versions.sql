-- Versions of each published skill of a repository's default branch: every publish
-- (an accepted push, a review merge, a reconcile that finds new content) that changes
-- a PUBLISHED skill's files records the next number with the digest agents are
-- served for that content (`sha256:` of a lone SKILL.md's bytes, or of the folder's
-- deterministic archive: the discovery index's `digest`). The content itself stays
-- in git: `commit_sha` holds it at `path`.
--
-- Skills published before this table existed get version 1 at their content of the
-- time from the reconcile every start runs (a digest is made from git, which SQL
-- cannot read): see cache::versions.

CREATE TABLE skill_versions (
    -- the skill's id (skills.id, kept through renames); no foreign key: a deleted
    -- skill's versions stay, like its sync log
    skill_id     uuid NOT NULL,
    repo         text NOT NULL,
    version      integer NOT NULL CHECK (version > 0),
    digest       text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    -- what the digest is of: 'skill-md' (the SKILL.md) or 'archive' (the folder)
    kind         text NOT NULL CHECK (kind IN ('skill-md', 'archive')),
    -- the skill file's path and slug in that commit
    path         text NOT NULL,
    slug         text NOT NULL,
    -- the default branch's commit the publish brought it to
    commit_sha   text NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    -- who pushed (or merged) it; NULL when no push did (a reconcile, the backfill)
    pushed_by    text,
    push_id      uuid REFERENCES pushes (id) ON DELETE SET NULL,
    PRIMARY KEY (skill_id, version)
);
CREATE INDEX skill_versions_repo_idx ON skill_versions (repo, published_at DESC);
