-- The last check of each site's sandbox (issue 17): `gateway sites check` and the worker's own probe record
-- whether submitted code on that site failed to reach a sibling bundle, the login home, the network and
-- the runner's process. Leaderboard runs go only to a site whose check passed for its current isolation
-- settings (digest: a changed `isolation:` in the YAML needs a new check).
-- depends: 0007_drop_verified_keys

CREATE TABLE site_isolation (
    site text PRIMARY KEY,
    digest text NOT NULL,
    kind text NOT NULL,
    passed boolean NOT NULL,
    detail text NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now()
);
