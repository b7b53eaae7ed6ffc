-- JT/T 809 positions (issue 10): vehicles a platform reports go under their registry terminal id
-- when the registry knows the plate and colour, else under jt809:ACCESSCODE:PLATE:COLOUR (up to
-- 84 bytes). No table on the position path checks terminal_id (positions, violations,
-- terminal_state, rule_state, daily_figures: checked when this was written), so no constraint
-- is widened here; terminals and vehicles keep '^[0-9A-Za-z_-]{1,32}$', since such an id is
-- never provisioned.

-- A 0x1201 registration that does not agree with the registry: a plate and colour the registry
-- has no vehicle (with a terminal) for ('unknown plate'), or a vehicle whose registered terminal
-- id is neither the SIM nor the terminal id the platform reports ('sim differs'; leading zeros
-- ignored). Written by the daemon off its loop; a matching registration leaves no row.
CREATE TABLE jt809_vehicle_mismatches (
    id                    bigserial PRIMARY KEY,
    at                    timestamptz NOT NULL DEFAULT now(),
    platform              text NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
    access_code           bigint NOT NULL CHECK (access_code BETWEEN 0 AND 4294967295),
    plate                 text NOT NULL CHECK (octet_length(plate) BETWEEN 1 AND 63),
    plate_colour          smallint NOT NULL CHECK (plate_colour BETWEEN 0 AND 255),
    reason                text NOT NULL CHECK (reason IN ('unknown plate', 'sim differs')),
    registry_terminal_id  text CHECK (octet_length(registry_terminal_id) <= 32),
    reported_terminal_id  text NOT NULL CHECK (octet_length(reported_terminal_id) <= 30),
    reported_sim          text NOT NULL CHECK (octet_length(reported_sim) <= 13),
    producer_id           text NOT NULL CHECK (octet_length(producer_id) <= 11),
    model                 text NOT NULL CHECK (octet_length(model) <= 30),
    layout                smallint NOT NULL CHECK (layout IN (49, 61, 110))
);
CREATE INDEX jt809_vehicle_mismatches_plate ON jt809_vehicle_mismatches (plate, plate_colour, at);
