-- JT/T 808 identity (ingest/registry/auth.c): what a registration must match, operator resets,
-- and refusals aggregated per source so that a flood cannot grow auth_refusals without bound.

-- What `haulwatch terminal add ID --device-id X --plate P` provisioned. A registration (0x0100)
-- that matches them may replace the terminal's auth code; NULL = nothing provisioned.
ALTER TABLE terminals
    ADD COLUMN provisioned_device_id text CHECK (octet_length(provisioned_device_id) BETWEEN 1 AND 30),
    ADD COLUMN provisioned_plate     text CHECK (octet_length(provisioned_plate) BETWEEN 1 AND 32);
CREATE INDEX terminals_provisioned_plate ON terminals (provisioned_plate)
    WHERE provisioned_plate IS NOT NULL;
-- Registrations look up who a claimed plate is bound to.
CREATE INDEX vehicles_plate ON vehicles (plate);
CREATE INDEX vehicles_vin ON vehicles (vin) WHERE vin IS NOT NULL;

-- `haulwatch terminal reset ID`: the operator allows the next registration of ID to replace its
-- auth code. used_at is set by the registration that consumed it; one not yet used is pending.
CREATE TABLE terminal_resets (
    id           bigserial PRIMARY KEY,
    terminal_id  text NOT NULL REFERENCES terminals (terminal_id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL CHECK (octet_length(actor) BETWEEN 1 AND 64),
    reason       text NOT NULL CHECK (octet_length(reason) BETWEEN 1 AND 500),
    used_at      timestamptz,
    used_by      text CHECK (octet_length(used_by) <= 64)      -- "ip:port" of that registration
);
CREATE INDEX terminal_resets_pending ON terminal_resets (terminal_id) WHERE used_at IS NULL;

-- auth_refusals: one row per (protocol, source address, reason), where source is the remote
-- address without its port. `count` attempts from first_at to `at` (the last one);
-- terminal_id, claimed_plate and remote_addr are those of the last attempt. Reasons are a small
-- fixed set, so one address claiming random terminal ids still makes a handful of rows.
ALTER TABLE auth_refusals
    ADD COLUMN source   text NOT NULL DEFAULT '' CHECK (octet_length(source) <= 64),
    ADD COLUMN count    bigint NOT NULL DEFAULT 1 CHECK (count >= 1),
    ADD COLUMN first_at timestamptz;

-- Fold the rows written one per attempt before this migration into the new shape.
UPDATE auth_refusals
   SET source = coalesce(regexp_replace(remote_addr, ':[0-9]+$', ''), ''), first_at = at;
WITH g AS (
    SELECT max(id) AS keep, count(*) AS n, min(at) AS first, max(at) AS last
      FROM auth_refusals GROUP BY protocol, source, reason
), upd AS (
    UPDATE auth_refusals r SET count = g.n, first_at = g.first, at = g.last
      FROM g WHERE r.id = g.keep
)
DELETE FROM auth_refusals r WHERE NOT EXISTS (SELECT 1 FROM g WHERE g.keep = r.id);

ALTER TABLE auth_refusals ALTER COLUMN first_at SET NOT NULL,
                          ALTER COLUMN first_at SET DEFAULT now();
CREATE UNIQUE INDEX auth_refusals_key ON auth_refusals (protocol, source, reason);
