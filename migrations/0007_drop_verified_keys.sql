-- A run's key authenticates its result.json only until the result is recorded: a finished run never runs
-- again (issue 17). runs.result_key becomes NULL once a run is recorded (its result verified, or its end
-- recorded without one: failed, cancelled); an unfinished run always has its key.
-- depends: 0006_api_limits

ALTER TABLE runs ALTER COLUMN result_key DROP NOT NULL;
UPDATE runs SET result_key = NULL WHERE finished_at IS NOT NULL AND result_key IS NOT NULL;
ALTER TABLE runs ADD CONSTRAINT runs_key_until_finished
    CHECK (result_key IS NOT NULL OR finished_at IS NOT NULL);
