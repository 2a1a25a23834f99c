-- Warm pools (issue 21): long-lived Slurm jobs in a partition, each running the harness's pool runner,
-- which takes runs one at a time. A row per pool job, so every worker sees the same pools: the cap of
-- pool jobs per partition holds across workers (a pool is reserved here before its sbatch), and a pool
-- is handed one run at a time (busy_run, taken with FOR UPDATE SKIP LOCKED). Each run a pool ran has its
-- GPU time (its own wall time times its GPUs); a pool's whole time, idle included, is on its row, so a
-- donor's figures add up to what the pool jobs held.
-- depends: 0011_competition_end

CREATE TABLE warm_pools (
    id              text PRIMARY KEY,          -- p-<hex>: the pool's folder in the site's workdir
    site            text NOT NULL,
    partition       text NOT NULL,
    gpus            integer NOT NULL DEFAULT 1 CHECK (gpus >= 1),
    state           text NOT NULL CHECK (state IN ('starting', 'ready', 'ended')),
    job_id          text,                      -- the pool job's Slurm id, once submitted
    created_at      timestamptz NOT NULL DEFAULT now(),
    ready_at        timestamptz,
    ended_at        timestamptz,
    end_reason      text,
    busy_run        uuid REFERENCES runs (id) ON DELETE SET NULL,
    last_used_at    timestamptz NOT NULL DEFAULT now(),
    runs_done       integer NOT NULL DEFAULT 0,
    busy_s          double precision NOT NULL DEFAULT 0   -- seconds its runs took, all together
);
CREATE INDEX warm_pools_live ON warm_pools (site, partition) WHERE state <> 'ended';

ALTER TABLE runs
    ADD COLUMN pool_id     text REFERENCES warm_pools (id),  -- the pool that ran it (NULL: a job of its own)
    ADD COLUMN gpu_seconds double precision;                 -- the GPU time the run took, when known
