-- Full-text search over title (weight A), description and tags (B) and body (C).
-- array_to_string is only STABLE, so a small IMMUTABLE wrapper makes the generated
-- column possible (text[] output never depends on settings).
CREATE FUNCTION skills_search_vector(title text, description text, tags text[], body text)
RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT setweight(to_tsvector('simple'::regconfig, coalesce(title, '')), 'A')
      || setweight(to_tsvector('simple'::regconfig, coalesce(description, '')), 'B')
      || setweight(to_tsvector('simple'::regconfig, coalesce(array_to_string(tags, ' '), '')), 'B')
      || setweight(to_tsvector('simple'::regconfig, coalesce(body, '')), 'C')
$$;

ALTER TABLE skills
  ADD COLUMN search tsvector GENERATED ALWAYS AS (skills_search_vector(title, description, tags, body)) STORED;
CREATE INDEX skills_search_idx ON skills USING gin (search);
CREATE INDEX skills_slug_idx ON skills (slug);
