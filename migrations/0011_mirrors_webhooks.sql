-- Push mirrors and webhooks. Both are told of a push inside the push's own
-- transaction (a refused push tells nobody), and both are delivered later by whichever
-- node claims the work first: a claim is a lease (`lease_until`) taken with
-- `FOR UPDATE SKIP LOCKED`, so one node delivers each, and a node that dies mid-way
-- leaves a lease that runs out and another node takes over.

-- A mirror follows its repository: every push raises `wanted_generation`; a delivery
-- pushes every ref that differs and records the generation it reached.
CREATE TABLE mirrors (
    id                 bigserial PRIMARY KEY,
    repo               text NOT NULL REFERENCES git_repos (name) ON DELETE CASCADE,
    -- shown as given; never holds a password (refused when added)
    url                text NOT NULL,
    force              boolean NOT NULL DEFAULT false,
    -- the mirror's own SSH key (OpenSSH format); the upstream authorizes `public_key`
    private_key        text NOT NULL,
    public_key         text NOT NULL,
    -- the upstream's host keys (OpenSSH public keys); empty: pinned on first contact
    host_keys          text[] NOT NULL DEFAULT '{}',
    -- what this mirror last wrote on the upstream (or found there equal), per ref name;
    -- the refs behind are the repository's branches and tags that differ from it
    pushed_refs        jsonb NOT NULL DEFAULT '{}',
    wanted_generation  bigint NOT NULL DEFAULT 0,
    synced_generation  bigint NOT NULL DEFAULT 0,
    -- the oldest push not yet on the upstream (the lag is measured from it)
    pending_since      timestamptz,
    -- failed deliveries in a row (the backoff grows with them)
    failures           integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    -- a claim: until when, and by which node (given back when that node stops)
    lease_until        timestamptz,
    lease_owner        text,
    last_attempt_at    timestamptz,
    last_success_at    timestamptz,
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repo, url)
);

CREATE TABLE webhooks (
    id             bigserial PRIMARY KEY,
    repo           text NOT NULL REFERENCES git_repos (name) ON DELETE CASCADE,
    url            text NOT NULL,
    -- the HMAC-SHA256 key of X-Hub-Signature-256 (needed in clear to sign)
    secret         text NOT NULL,
    allow_private  boolean NOT NULL DEFAULT false,
    events         text[] NOT NULL DEFAULT '{push}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repo, url)
);

-- One row per delivery: its body is fixed when the push commits (the bytes signed),
-- and a redelivery is a new row with the same body.
CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    webhook_id       bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event            text NOT NULL,
    push_id          uuid,
    redelivery_of    uuid,
    payload          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_owner      text,
    response_code    integer,
    duration_ms      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, created_at DESC);
