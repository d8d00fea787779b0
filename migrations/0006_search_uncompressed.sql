-- Full-text vectors do not compress: sorted, distinct lexemes and their positions
-- (2,642 bytes became 2,626 on average over the 100,000-skill benchmark), so trying
-- cost lz4 time on every write for nothing. EXTERNAL still moves a big vector out of
-- line (TOAST) but stores it as it is. Vectors already stored keep their form.
ALTER TABLE skills ALTER COLUMN search SET STORAGE EXTERNAL;
