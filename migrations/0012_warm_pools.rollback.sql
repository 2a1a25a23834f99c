ALTER TABLE runs DROP COLUMN gpu_seconds, DROP COLUMN pool_id;
DROP TABLE warm_pools;
