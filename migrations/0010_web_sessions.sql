-- Signing in to the status pages without a password: `ssh ... web-login` makes a
-- one-time link (web_logins: short-lived, single use), which opens a browser session
-- (web_sessions). Only SHA-256 hashes of the secrets are stored: a reader of the
-- database cannot sign in with them. In the database, so every node knows them.
CREATE TABLE web_logins (
    token_hash  text PRIMARY KEY,
    user_name   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
-- The user's role is read from `users` on every request: removing or demoting a
-- user takes effect at once.
CREATE TABLE web_sessions (
    id_hash     text PRIMARY KEY,
    user_name   text NOT NULL,
    -- the form token of this session (CSRF): sent back by every form it posts
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX web_sessions_expiry_idx ON web_sessions (expires_at);
