DROP TABLE site_health;
DROP TABLE rate_limits;
DROP TRIGGER runs_queued_notify ON runs;
DROP FUNCTION gateway_notify_queue();
DROP TABLE run_events;
DROP FUNCTION gateway_notify_run_event();
DROP INDEX runs_user_history;
DROP INDEX runs_queue;
DROP INDEX runs_ranking;
CREATE INDEX runs_ranked ON runs (gpu_type, score)
    WHERE passed AND score IS NOT NULL AND mode = 'leaderboard' AND NOT secret;
-- runs routed by the queue but never claimed get a placeholder so the old NOT NULL holds
UPDATE runs SET site = COALESCE(site, requested_site, 'unrouted'), backend = COALESCE(backend, 'none');
DELETE FROM runs WHERE mode = 'profile';
ALTER TABLE runs
    DROP COLUMN ranked, DROP COLUMN cancel_requested, DROP COLUMN claims, DROP COLUMN heartbeat_at,
    DROP COLUMN worker, DROP COLUMN user_id, DROP COLUMN leaderboard_id, DROP COLUMN route_reason,
    DROP COLUMN requested_site;
ALTER TABLE runs DROP CONSTRAINT runs_mode_check;
ALTER TABLE runs ADD CONSTRAINT runs_mode_check CHECK (mode IN ('test', 'benchmark', 'leaderboard'));
ALTER TABLE runs ALTER COLUMN backend SET NOT NULL;
ALTER TABLE runs ALTER COLUMN site SET NOT NULL;
DROP INDEX submissions_rate;
ALTER TABLE submissions DROP COLUMN mode;
ALTER TABLE leaderboards DROP COLUMN creator_id, DROP COLUMN visibility, DROP COLUMN secret_seed;
ALTER TABLE users DROP COLUMN token_sha256;
