-- Git data in PostgreSQL: the database is the store of record for every repository's
-- refs and packs, and each node's data dir holds a copy it serves from. A push
-- publishes its pack, moves its refs (compare-and-swap) and writes the cache in one
-- transaction; `generation` grows with every such change, so a node knows with one
-- query whether its copy is current.

CREATE TABLE git_repos (
    name        text PRIMARY KEY,
    -- HEAD's symbolic target
    head        text NOT NULL DEFAULT 'refs/heads/main',
    generation  bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE git_refs (
    repo    text NOT NULL REFERENCES git_repos (name) ON DELETE CASCADE,
    name    text NOT NULL,
    target  text NOT NULL CHECK (target ~ '^[0-9a-f]{40}$'),
    -- an annotated tag's object at the end of its chain of tags
    peeled  text CHECK (peeled ~ '^[0-9a-f]{40}$'),
    PRIMARY KEY (repo, name)
);

-- Immutable packs, named by their checksum (the pack file's trailing SHA-1). A pack
-- is live until a gc that consolidated it retires it; retired rows (and their chunks)
-- are deleted after a grace period, so no node loses a pack a reader is using.
CREATE TABLE git_packs (
    id           bigserial PRIMARY KEY,
    repo         text NOT NULL REFERENCES git_repos (name) ON DELETE CASCADE,
    checksum     text NOT NULL CHECK (checksum ~ '^[0-9a-f]{40}$'),
    pack_bytes   bigint NOT NULL,
    index_bytes  bigint NOT NULL,
    -- the generation that published it
    generation   bigint NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz,
    UNIQUE (repo, checksum)
);
CREATE INDEX git_packs_live_idx ON git_packs (repo) WHERE retired_at IS NULL;

-- The bytes of a pack (file 0) and of its index (file 1), in chunks of 1 MiB.
CREATE TABLE git_pack_chunks (
    pack_id  bigint NOT NULL REFERENCES git_packs (id) ON DELETE CASCADE,
    file     smallint NOT NULL CHECK (file IN (0, 1)),
    seq      integer NOT NULL,
    data     bytea NOT NULL,
    PRIMARY KEY (pack_id, file, seq)
);
-- Pack data is zlib-compressed already: stored out of line as it is.
ALTER TABLE git_pack_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- What every node shares: the SSH host key (one identity behind a load balancer).
CREATE TABLE server_identity (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
