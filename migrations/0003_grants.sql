-- Per-repository roles: a grant replaces the user's global role for that repository.
CREATE TABLE repo_grants (
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    repo        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('reader', 'writer', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, repo)
);
