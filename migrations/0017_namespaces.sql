-- Namespaces (skillsd.toml `namespaces = ["plugins/*"]`, issue 30): skills whose
-- names repeat in different plugin folders get distinct keys, `namespace:name`
-- (`plugins/foo/skills/bar/SKILL.md` -> `foo:bar`, Claude Code's `plugin:skill`).
--
-- The full key is stored in `slug`, so the contract web applications read stays as
-- it is: `slug` is unique per repository (UNIQUE (repo, slug) unchanged), a lookup by
-- slug finds one row, and a repository without `namespaces` has exactly the slugs it
-- had. Splitting the key into a `namespace` column with UNIQUE (repo, namespace, slug)
-- instead would have let two rows share a slug, breaking every reader that looks a
-- skill up by slug. A rename or move between namespaces is a path rename like any
-- other: the row keeps its id and takes the new key (`skill_sync_log.slug` and
-- `skill_versions.slug` carry the key too).
--
-- `namespace` is derived from the key for readers that filter or group by it (''
-- for a skill outside every namespace folder); a slug never contains ':' otherwise.
ALTER TABLE skills ADD COLUMN namespace text NOT NULL
    GENERATED ALWAYS AS (CASE WHEN strpos(slug, ':') > 0 THEN split_part(slug, ':', 1) ELSE '' END) STORED;
CREATE INDEX skills_namespace_idx ON skills (repo, namespace);
