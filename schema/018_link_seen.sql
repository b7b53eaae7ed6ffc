-- A platform_links row left open by a daemon that died (SIGKILL, crash, power) used to count as
-- up until now. Each daemon names itself (daemon: a random id per start) on the rows it opens
-- and refreshes last_seen_at on its open rows every --jt809-link-seen-s seconds. Any daemon
-- closes the open rows of others not refreshed for 3 of its intervals, with down_at =
-- last_seen_at (the link went down at most one interval after that) and reason 'daemon died'.
-- Rows from before this migration have neither: they are closed at up_at (down time unknown).
ALTER TABLE platform_links ADD COLUMN daemon text CHECK (octet_length(daemon) <= 64),
    ADD COLUMN last_seen_at timestamptz;
CREATE INDEX platform_links_daemon_open ON platform_links (daemon) WHERE down_at IS NULL;
