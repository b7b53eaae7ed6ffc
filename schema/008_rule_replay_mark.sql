-- Replay after a crash for terminals that had no saved rule state (ingest/sinks/rule_store.h).
-- Each complete save cycle of rule_state records when it started: every fix received before then
-- is in a saved state, so a restart replays, for every terminal without one, the fixes received
-- since (recv_ts >= saved_before).
CREATE TABLE rule_state_mark (
    id            smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    saved_before  timestamptz NOT NULL
);
-- Daemons before this migration kept no mark: what they received is not owed a replay.
INSERT INTO rule_state_mark (saved_before) VALUES (now());

-- Finds the fixes received since the mark without reading whole partitions: rows are appended
-- in receipt order, so a block-range index on recv_ts is a few pages per partition and costs
-- the writers next to nothing. Partitions created later get it from the parent.
CREATE INDEX positions_recv_ts_brin ON positions USING brin (recv_ts) WITH (autosummarize = on);
