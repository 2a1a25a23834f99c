-- The durable queue, secret reruns and ranking, rate limits, run events and site health.
-- Expand only: new columns have defaults or are nullable, old rows are backfilled, nothing is dropped
-- that a running older gateway reads (except the old ranking index, replaced by runs_ranking).
-- depends: 0002_run_attempts

-- users: a hashed token for the CLI and HTTP API (the token itself is never stored)
ALTER TABLE users ADD COLUMN token_sha256 text UNIQUE;

-- leaderboards: the secret seed of hidden reruns, who may see it, who made it
ALTER TABLE leaderboards
    ADD COLUMN secret_seed bigint NOT NULL DEFAULT (floor(random() * 2147483647))::bigint,
    ADD COLUMN visibility text NOT NULL DEFAULT 'public' CHECK (visibility IN ('public', 'hidden')),
    ADD COLUMN creator_id bigint REFERENCES users (id) ON DELETE SET NULL;

-- submissions: the mode they asked for (rate limits count submissions per mode)
ALTER TABLE submissions ADD COLUMN mode text;
UPDATE submissions s SET mode = (SELECT r.mode FROM runs r WHERE r.submission_id = s.id LIMIT 1);
UPDATE submissions SET mode = 'leaderboard' WHERE mode IS NULL;
ALTER TABLE submissions ALTER COLUMN mode SET NOT NULL;
CREATE INDEX submissions_rate ON submissions (user_id, leaderboard_id, mode, created_at);

-- runs: routed when a worker claims them (site, partition and backend stay empty until then)
ALTER TABLE runs ALTER COLUMN site DROP NOT NULL;
ALTER TABLE runs ALTER COLUMN backend DROP NOT NULL;
ALTER TABLE runs DROP CONSTRAINT runs_mode_check;
ALTER TABLE runs ADD CONSTRAINT runs_mode_check CHECK (mode IN ('test', 'benchmark', 'leaderboard', 'profile'));
ALTER TABLE runs
    ADD COLUMN requested_site  text,                 -- the site the submitter named, if any
    ADD COLUMN route_reason    text,                 -- why the router chose the site
    ADD COLUMN leaderboard_id  bigint REFERENCES leaderboards (id) ON DELETE CASCADE,  -- copies of the
    ADD COLUMN user_id         bigint REFERENCES users (id),                          -- submission's, for ranking
    ADD COLUMN worker          text,                 -- the worker holding the claim
    ADD COLUMN heartbeat_at    timestamptz,          -- its last heartbeat; a stale one may be taken over
    ADD COLUMN claims          integer NOT NULL DEFAULT 0,  -- times claimed (more than 1: taken over)
    ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false,
    ADD COLUMN ranked          boolean NOT NULL DEFAULT false;  -- public run passed and its secret rerun too
UPDATE runs r SET leaderboard_id = s.leaderboard_id, user_id = s.user_id, requested_site = r.site
FROM submissions s WHERE s.id = r.submission_id;
-- Runs from before secret reruns existed count as they did before (those of a leaderboard: ad-hoc runs
-- never rank, and have no secret rerun to rank with).
UPDATE runs SET ranked = true
WHERE passed AND score IS NOT NULL AND mode = 'leaderboard' AND NOT secret AND leaderboard_id IS NOT NULL;
ALTER TABLE runs ALTER COLUMN user_id SET NOT NULL;

DROP INDEX runs_ranked;
-- The ranking reads one leaderboard and GPU type: each user's best score, ties by time, from this index alone.
CREATE INDEX runs_ranking ON runs (leaderboard_id, gpu_type, user_id, score, queued_at) INCLUDE (id)
    WHERE ranked;
-- Workers claim the oldest unfinished runs.
CREATE INDEX runs_queue ON runs (queued_at) WHERE finished_at IS NULL;
CREATE INDEX runs_user_history ON runs (user_id, leaderboard_id, queued_at);

-- State changes and streamed progress of each run (capped per run by the store).
CREATE TABLE run_events (
    id      bigserial PRIMARY KEY,
    run_id  uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT now(),
    kind    text NOT NULL CHECK (kind IN ('state', 'progress', 'finished')),
    state   text NOT NULL,
    message text NOT NULL
);
CREATE INDEX run_events_run ON run_events (run_id, id);

-- Followers LISTEN instead of polling: one notification per event, sent when its transaction commits.
CREATE FUNCTION gateway_notify_run_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gateway_run_events',
        json_build_object('id', NEW.id, 'run', NEW.run_id, 'kind', NEW.kind, 'state', NEW.state)::text);
    RETURN NULL;
END $$;
CREATE TRIGGER run_events_notify AFTER INSERT ON run_events
    FOR EACH ROW EXECUTE FUNCTION gateway_notify_run_event();

-- Workers wake when runs are queued (one notification per statement, whatever the number of rows).
CREATE FUNCTION gateway_notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('gateway_queue', '');
    RETURN NULL;
END $$;
CREATE TRIGGER runs_queued_notify AFTER INSERT ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION gateway_notify_queue();

-- How many submissions a user may make per leaderboard and mode in a window.
CREATE TABLE rate_limits (
    leaderboard_id  bigint NOT NULL REFERENCES leaderboards (id) ON DELETE CASCADE,
    mode            text NOT NULL CHECK (mode IN ('test', 'benchmark', 'leaderboard', 'profile')),
    max_submissions integer NOT NULL CHECK (max_submissions > 0),
    per_seconds     integer NOT NULL CHECK (per_seconds > 0),
    PRIMARY KEY (leaderboard_id, mode)
);

-- What the workers saw of each site, and whether an admin drained it.
CREATE TABLE site_health (
    site                 text PRIMARY KEY,
    drained              boolean NOT NULL DEFAULT false,
    drain_reason         text,
    consecutive_failures integer NOT NULL DEFAULT 0,
    last_error           text,
    last_ok_at           timestamptz,
    last_failure_at      timestamptz,
    updated_at           timestamptz NOT NULL DEFAULT now()
);
