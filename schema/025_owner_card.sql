-- A JT/T 808 driver card beside the terminal's owner (docs/ownership.md). The card (0x0702) stays
-- in the vehicle across reconnects, but a terminal that reconnects to another daemon would carry
-- no driver_id on its fixes until it reported the card again: the owner now records each change
-- here (fenced by the epoch, like every owner write), and a daemon that claims the terminal from
-- another takes the card with the claim. driver_since_ms NULL: no card recorded yet; driver_id
-- NULL with a time: no driver since then (the card removed or unreadable).
ALTER TABLE terminal_owner
    ADD COLUMN driver_id text,
    ADD COLUMN driver_since_ms bigint;
