ALTER TABLE leaderboards DROP COLUMN max_unfinished_per_user;
ALTER TABLE submissions DROP COLUMN public_id;
ALTER TABLE users DROP CONSTRAINT users_discord_name;
ALTER TABLE users DROP COLUMN admin, DROP COLUMN display_name;
