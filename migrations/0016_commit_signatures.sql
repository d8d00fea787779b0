-- Whether each commit of a skill's history was signed, and by whom (signed commits,
-- `[commits] require_signed`): `signature` is what the signature is on its own (an SSH
-- signature that verifies with the key it carries: valid), `signing_key` that key's
-- fingerprint, `signed_by` the skillsd user the key was registered to when the commit
-- was synced (NULL: nobody's). NULL `signature`: synced before this was recorded.
ALTER TABLE commits ADD COLUMN signature text CHECK (signature IN ('valid', 'invalid', 'unsigned'));
ALTER TABLE commits ADD COLUMN signing_key text;
ALTER TABLE commits ADD COLUMN signed_by text;
