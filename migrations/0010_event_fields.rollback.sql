ALTER TABLE run_events DROP COLUMN data;
