-- Run events carry structured fields beside their text (issue 19): the routing event's site, partition, GPU
-- type, backend and reason, so that a front end reads where a run went without parsing the message. NULL
-- for events without fields and for every event from before this migration. The notify trigger is left
-- as it is: its payload stays small (id, run, kind, state) and followers read the row.
-- depends: 0009_profile

ALTER TABLE run_events ADD COLUMN data jsonb;
