-- What the pusher read: every `remote:` message of the push (problems, notes, the
-- summary) exactly as sent on side-band 2, in order, so the push page shows the same
-- text. NULL: recorded before this was kept (the page then lists `errors`).
ALTER TABLE pushes ADD COLUMN said text;
