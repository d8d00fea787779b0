-- Sessions and sign-in links belong to a user by id, not by name: a user removed
-- takes their sessions along (ON DELETE CASCADE), and a new user who is given the
-- same name later inherits nothing. A session also keeps the role its user had when
-- it was opened: a session whose user's role changed since is no longer valid
-- (signing in again gives the new role), whoever changed it — skillsd or a web
-- application writing `users` directly.
ALTER TABLE web_logins ADD COLUMN user_id bigint REFERENCES users (id) ON DELETE CASCADE;
UPDATE web_logins l SET user_id = u.id FROM users u WHERE u.name = l.user_name;
DELETE FROM web_logins WHERE user_id IS NULL;
ALTER TABLE web_logins ALTER COLUMN user_id SET NOT NULL;

ALTER TABLE web_sessions ADD COLUMN user_id bigint REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE web_sessions ADD COLUMN role text;
-- browser: a cookie from a sign-in link; api: a bearer token from `ssh ... api-token`
ALTER TABLE web_sessions ADD COLUMN kind text NOT NULL DEFAULT 'browser'
    CHECK (kind IN ('browser', 'api'));
ALTER TABLE web_sessions ADD COLUMN label text;
ALTER TABLE web_sessions ADD COLUMN last_used_at timestamptz;
UPDATE web_sessions s SET user_id = u.id, role = u.role FROM users u WHERE u.name = s.user_name;
DELETE FROM web_sessions WHERE user_id IS NULL;
ALTER TABLE web_sessions ALTER COLUMN user_id SET NOT NULL;
ALTER TABLE web_sessions ALTER COLUMN role SET NOT NULL;
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id);
