-- The keys of finished runs are gone for good: they come back as '' (a finished run never needs one).
ALTER TABLE runs DROP CONSTRAINT runs_key_until_finished;
UPDATE runs SET result_key = '' WHERE result_key IS NULL;
ALTER TABLE runs ALTER COLUMN result_key SET NOT NULL;
