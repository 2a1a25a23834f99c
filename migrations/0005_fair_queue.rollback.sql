DROP INDEX submissions_user_recent;
DROP INDEX runs_user_unfinished;
DROP INDEX runs_turns;
ALTER TABLE runs DROP COLUMN user_place, DROP COLUMN turn;
