-- JT/T 808 terminals (ingest/jt808_session.c): registration (0x0100) gives a terminal an auth
-- code that it presents at every connection (0x0102); refused attempts of both protocols are kept
-- for illegal-operation follow-up.

-- What the terminal said at its last successful registration. Terminals are still provisioned
-- with `haulwatch terminal add` (terminal_id = the 12- or 20-digit phone number); the token is
-- then simply unused. The auth code itself is never stored, only its SHA-256, like tokens: the
-- code is random (64 bits), so a plain hash suffices and a leaked table lets nobody log in.
ALTER TABLE terminals
    ADD COLUMN jt808_auth_hash     bytea CHECK (octet_length(jt808_auth_hash) = 32),
    ADD COLUMN jt808_registered_at timestamptz,
    ADD COLUMN jt808_version       smallint,      -- body layout of the registration: 2011, 2013, 2019
    ADD COLUMN jt808_province      integer,       -- GB/T 2260 codes as sent
    ADD COLUMN jt808_city          integer,
    ADD COLUMN jt808_maker         text,
    ADD COLUMN jt808_model         text,
    ADD COLUMN jt808_device_id     text,          -- terminal id printed on the device
    ADD COLUMN jt808_plate_colour  smallint,      -- JT/T 415; 0 = no plate (jt808_plate is the VIN)
    ADD COLUMN jt808_plate         text;

-- Every refused authentication or registration, and every message refused for lack of one.
-- The daemon bounds how many it records (per connection and in flight), so a flood of bad
-- clients cannot turn this table into the bottleneck.
CREATE TABLE auth_refusals (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    protocol       text NOT NULL CHECK (protocol IN ('pb', 'jt808')),
    terminal_id    text CHECK (octet_length(terminal_id) <= 64),   -- as claimed: may not exist
    claimed_plate  text CHECK (octet_length(claimed_plate) <= 128),
    remote_addr    text CHECK (octet_length(remote_addr) <= 64),   -- "ip:port"
    reason         text NOT NULL CHECK (octet_length(reason) <= 200)
);
CREATE INDEX auth_refusals_at ON auth_refusals (at);
CREATE INDEX auth_refusals_terminal ON auth_refusals (terminal_id, at);
