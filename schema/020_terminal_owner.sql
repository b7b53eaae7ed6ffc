-- One owner per terminal when several daemons share a database (docs/ownership.md). The daemon a
-- terminal authenticates on claims it: epoch + 1, owner = its node name. Every rule-state save
-- and violation write of a daemon running with ownership carries the epoch it claimed and is
-- refused (row skipped, reported back) when the row has moved on, so an old owner can neither
-- overwrite the new owner's state nor write episodes from a stale one. The writers lock the row
-- FOR SHARE while they check it and a claim updates it, so a claim either waits for a write in
-- progress or that write sees the new epoch.
CREATE TABLE terminal_owner (
    terminal_id  text PRIMARY KEY,
    epoch        bigint NOT NULL CHECK (epoch > 0),
    owner        text NOT NULL,           -- node name (serve's node_name setting), for people
    since        timestamptz NOT NULL DEFAULT now(),  -- the current claim
    -- The first claim ever: a terminal with no saved rule state is replayed from its fixes
    -- received since then (every owner it had is in them).
    first_since  timestamptz NOT NULL DEFAULT now()
);
