-- The HTTP API's limits, shared by every API process (issue 16): token buckets for its rate limits and a
-- lease per open event stream. UNLOGGED: written on every request, never WAL-logged or replicated; a crash
-- empties them, which only refills the buckets and forgets leases that expire within seconds anyway.
-- depends: 0005_fair_queue

-- One token bucket per key ('address:10.1.2.3', 'user:42'): tokens left at `at` (the database's clock);
-- full_at is when it will be full again, so an old key is pruned without knowing its rate. No index but
-- the key's, so each take is a HOT update in place (fillfactor leaves room on the page for it).
CREATE UNLOGGED TABLE api_buckets (
    key text PRIMARY KEY,
    tokens double precision NOT NULL,
    at timestamptz NOT NULL,
    full_at timestamptz NOT NULL,
    taken boolean NOT NULL
) WITH (fillfactor = 50);

-- One row per open event stream, held by its API process, which renews expires_at while the stream
-- lives: a crashed process's streams expire by themselves. client: 'user:42' or 'address:10.1.2.3'.
CREATE UNLOGGED TABLE api_stream_leases (
    id uuid PRIMARY KEY,
    process text NOT NULL,
    client text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX api_stream_leases_client ON api_stream_leases (client);
CREATE INDEX api_stream_leases_process ON api_stream_leases (process);
