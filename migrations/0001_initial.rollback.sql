DROP TABLE runs;
DROP TABLE submissions;
DROP TABLE code_blobs;
DROP TABLE leaderboard_gpus;
DROP TABLE leaderboards;
DROP TABLE users;
