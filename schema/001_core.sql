-- Core ingest: terminals and their positions.

CREATE TABLE terminals (
    terminal_id  text PRIMARY KEY CHECK (terminal_id ~ '^[0-9A-Za-z_-]{1,32}$'),
    -- SHA-256 of the token issued by `haulwatch terminal add`; the token itself is never stored.
    token_hash   bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Every accepted fix. The key (terminal_id, ts) is the fix's identity: a fix sent again has the
-- same device time, so it cannot be stored twice; it also serves track queries by time range.
CREATE TABLE positions (
    terminal_id  text NOT NULL,
    ts           timestamptz NOT NULL,          -- device time
    seq          bigint NOT NULL,               -- protobuf seq; 0 for JT/T 808
    recv_ts      timestamptz NOT NULL,          -- when the daemon received it
    lat          double precision NOT NULL,     -- degrees, south negative
    lon          double precision NOT NULL,     -- degrees, west negative
    speed_kmh    real NOT NULL,
    heading      smallint NOT NULL,
    alt_m        integer NOT NULL,
    alarm        bigint NOT NULL,               -- JT/T 808 alarm bits (uint32)
    status       bigint NOT NULL,               -- JT/T 808 status bits (uint32)
    odometer_km  double precision NOT NULL,
    driver_id    text,
    source       smallint NOT NULL DEFAULT 0,   -- 0 protobuf, 1 JT/T 808
    PRIMARY KEY (terminal_id, ts)
) PARTITION BY RANGE (ts);

-- Catches fixes for days that have no partition yet (a clock far off, back-filled history), so
-- nothing is lost; hw_ensure_partitions moves them out when their day's partition is created.
CREATE TABLE positions_default PARTITION OF positions DEFAULT;

-- Creates the daily partitions (UTC days) positions_YYYYMMDD for [first_day, first_day + days).
-- Rows already in the default partition for such a day are moved into the new partition.
CREATE FUNCTION hw_ensure_partitions(first_day date, days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    name text;
    lo timestamptz;
    hi timestamptz;
    created integer := 0;
BEGIN
    -- Two daemons starting together must not race on the same CREATE.
    PERFORM pg_advisory_xact_lock(7100808);
    FOR i IN 0 .. days - 1 LOOP
        d := first_day + i;
        name := 'positions_' || to_char(d, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(name) IS NOT NULL;
        lo := (d::timestamp AT TIME ZONE 'UTC');
        hi := ((d + 1)::timestamp AT TIME ZONE 'UTC');
        EXECUTE format('CREATE TABLE %I (LIKE positions INCLUDING DEFAULTS)', name);
        EXECUTE format('WITH moved AS (DELETE FROM positions_default WHERE ts >= %L AND ts < %L RETURNING *) '
                       'INSERT INTO %I SELECT * FROM moved', lo, hi, name);
        EXECUTE format('ALTER TABLE positions ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       name, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END $$;
