DROP INDEX IF EXISTS runs_unfinished;
ALTER TABLE runs DROP COLUMN attempt;
