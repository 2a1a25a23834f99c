-- Identity, authority and hidden boards (issue 16). Expand, then migrate rows; nothing an older gateway
-- reads is dropped.
-- depends: 0003_queue_and_ranking

-- users: an account of a Discord user is keyed by its Discord user id and named 'discord:<id>' (stable
-- across renames); display_name is only shown (refreshed from Discord at each interaction). admin: the
-- account holds an admin's rights (naming a site, hidden boards, the admin endpoints with its own token).
-- Rows from before this migration keep their names: the old bot stored no Discord id, so which Discord
-- user a row belongs to is unknowable here; an admin links one with `gateway users link NAME DISCORD_ID`.
ALTER TABLE users
    ADD COLUMN display_name text,
    ADD COLUMN admin boolean NOT NULL DEFAULT false;
UPDATE users SET name = 'discord:' || discord_id WHERE discord_id IS NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_discord_name
    CHECK (discord_id IS NULL OR name = 'discord:' || discord_id);

-- submissions: a public id that cannot be guessed from another one (122 random bits); the sequential
-- id stays the key, and admins may still use it
ALTER TABLE submissions
    ADD COLUMN public_id text NOT NULL UNIQUE DEFAULT replace(gen_random_uuid()::text, '-', '');

-- leaderboards: a cap on each user's unfinished runs (NULL: the gateway's default setting)
ALTER TABLE leaderboards
    ADD COLUMN max_unfinished_per_user integer CHECK (max_unfinished_per_user > 0);

-- 'local' (the gateway's own machine) is never a leaderboard GPU type: boards made without explicit GPU
-- types got it. Not restored by the rollback.
DELETE FROM leaderboard_gpus WHERE gpu_type = 'local';
