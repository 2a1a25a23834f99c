-- Foundation schema: users, leaderboards, deduplicated code, submissions and their runs.
-- depends:

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    discord_id  text UNIQUE,
    banned      boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leaderboards (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text NOT NULL DEFAULT '',
    task        jsonb NOT NULL,            -- the resolved task definition (gateway.tasks.TaskDefinition)
    ranking_by  text NOT NULL CHECK (ranking_by IN ('last', 'mean', 'geom')),
    deadline    timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE leaderboard_gpus (
    leaderboard_id bigint NOT NULL REFERENCES leaderboards (id) ON DELETE CASCADE,
    gpu_type       text NOT NULL,
    PRIMARY KEY (leaderboard_id, gpu_type)
);

CREATE TABLE code_blobs (
    sha256      text PRIMARY KEY,
    code        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE submissions (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users (id),
    leaderboard_id  bigint REFERENCES leaderboards (id) ON DELETE CASCADE,  -- NULL: an ad-hoc run
    task_name       text NOT NULL,
    file_name       text NOT NULL,
    code_sha256     text NOT NULL REFERENCES code_blobs (sha256),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX submissions_leaderboard ON submissions (leaderboard_id, user_id);

CREATE TABLE runs (
    id              uuid PRIMARY KEY,
    submission_id   bigint NOT NULL REFERENCES submissions (id) ON DELETE CASCADE,
    mode            text NOT NULL CHECK (mode IN ('test', 'benchmark', 'leaderboard')),
    secret          boolean NOT NULL DEFAULT false,  -- a hidden rerun with the leaderboard's secret seed
    result_key      text NOT NULL,         -- hex HMAC key that authenticates this run's result.json
    gpu_type        text,
    site            text NOT NULL,
    partition       text,
    backend         text NOT NULL,
    job_id          text,
    state           text NOT NULL,
    queued_at       timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    passed          boolean,
    score           double precision,      -- seconds, lower is better
    result          jsonb,                 -- the verified payload of result.json
    system_info     jsonb,
    error           text
);
CREATE INDEX runs_submission ON runs (submission_id);
-- The leaderboard reads only passing, scored leaderboard-mode public runs.
CREATE INDEX runs_ranked ON runs (gpu_type, score)
    WHERE passed AND score IS NOT NULL AND mode = 'leaderboard' AND NOT secret;
