-- Fair and bounded load (issue 16): workers claim runs in turns across users, each user's unfinished runs
-- are capped, and each user's submissions per minute are limited across every leaderboard.
-- Expand only: the new columns have defaults (a run an older gateway queues gets turn 0, place 1: the
-- front of the queue), and runs_queue stays for an older gateway's claims.
-- depends: 0004_identity_and_authority

-- runs: the claim order. A run's turn is fixed when it is queued: one after its user's last unfinished run,
-- and never before the turn workers are serving (the lowest turn still waiting); user_place is its place
-- among its user's unfinished runs then (1: the user had none). Workers claim by (turn, user_place,
-- queued_at, id): users take turns, whatever their number of queued runs.
ALTER TABLE runs
    ADD COLUMN turn       bigint NOT NULL DEFAULT 0,
    ADD COLUMN user_place integer NOT NULL DEFAULT 1;
-- Unfinished runs get turns as if each user's had been queued into an empty queue: 0, 1, 2, ... per user.
UPDATE runs r SET turn = n.place - 1, user_place = n.place
FROM (SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY queued_at, id) AS place
      FROM runs WHERE finished_at IS NULL) n
WHERE r.id = n.id;
-- Workers claim the first unfinished runs in turn order (the head: the lowest turn still waiting).
CREATE INDEX runs_turns ON runs (turn, user_place, queued_at, id) WHERE finished_at IS NULL;
-- A user's unfinished runs: the cap counts them, a new run's turn follows the last of them.
CREATE INDEX runs_user_unfinished ON runs (user_id, turn) WHERE finished_at IS NULL;

-- A user's submissions by time, whatever the leaderboard: the default per-minute limit counts them.
CREATE INDEX submissions_user_recent ON submissions (user_id, created_at);
