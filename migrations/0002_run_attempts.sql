-- A run may be started again on its site (its requeue policy); each attempt is its own Slurm job,
-- named gw-<run id>-<attempt> after the first, so a restarted gateway finds the right one.
-- depends: 0001_initial

ALTER TABLE runs ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1);
-- Runs a gateway must finish after a restart: not yet final.
CREATE INDEX runs_unfinished ON runs (site) WHERE finished_at IS NULL;
