ALTER TABLE leaderboards DROP COLUMN reveal_code;
ALTER TABLE submissions DROP COLUMN deleted_by, DROP COLUMN deleted_at;
