-- Competitions end well (issue 20). A submission may be deleted by its owner (or an admin): softly, so the
-- audit trail stays honest (the row, its code and its runs are kept, with when and by whom it was
-- deleted); its runs leave the ranking (their ``ranked`` flag is cleared, so the partial index
-- runs_ranking never holds them and the ranking query is unchanged), and it leaves every list. A board
-- may reveal its ranked submissions' code to everyone who may see it once its deadline has passed.
-- depends: 0010_event_fields

ALTER TABLE submissions
    ADD COLUMN deleted_at timestamptz,                        -- NULL: not deleted
    ADD COLUMN deleted_by bigint REFERENCES users (id);       -- who (NULL: the operator, the admin token)
ALTER TABLE leaderboards ADD COLUMN reveal_code boolean NOT NULL DEFAULT false;
