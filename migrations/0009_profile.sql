-- Profile mode's Nsight Compute reports (issue 18): the `.ncu-rep` file a profile run returns when its
-- site runs ncu (a site's `profile: {ncu: true}`), one per run, at most 20 MiB (harness/ncu.py's cap). The
-- profiler's tables need no table: they are in the run's result. A run's report goes with the run.
-- depends: 0008_site_isolation

CREATE TABLE run_profiles (
    run_id uuid PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    ncu_report bytea NOT NULL CHECK (octet_length(ncu_report) <= 20 * 1024 * 1024),
    created_at timestamptz NOT NULL DEFAULT now()
);
