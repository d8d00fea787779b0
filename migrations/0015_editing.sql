-- Editing without git (the contents API, the editor pages): commits made on the
-- server for a user carry the name and email they set (`ssh ... profile`); without
-- them, the user's name and `NAME@users.skillsd` (never a real mailbox).
ALTER TABLE users ADD COLUMN full_name text
    CHECK (full_name IS NULL OR (length(full_name) BETWEEN 1 AND 200 AND full_name !~ '[<>\n\r]'));
ALTER TABLE users ADD COLUMN email text
    CHECK (email IS NULL OR email ~ '^[^<>\s@]+@[^<>\s@]+$');
-- An API token made with `token create --write` may also open changes (the contents
-- API); others only read. Browser sessions write through forms with their CSRF token.
ALTER TABLE web_sessions ADD COLUMN can_write boolean NOT NULL DEFAULT false;
