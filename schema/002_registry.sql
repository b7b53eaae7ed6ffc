-- Vehicle registry: classes with their legal limits, vehicles bound to terminals, and zones
-- (speed limits, expressways, no-entry areas). The daemon keeps all of it in memory
-- (ingest/registry_cache.c) and reloads it when NOTIFY hw_registry says something changed.

CREATE EXTENSION IF NOT EXISTS postgis;

-- Speeds are km/h with one decimal (the daemon works in 0.1 km/h); durations are seconds.
CREATE TABLE vehicle_classes (
    code                      text PRIMARY KEY CHECK (code ~ '^[a-z0-9_]{1,32}$'),
    name_zh                   text NOT NULL,
    name_en                   text NOT NULL,
    -- Highest legal speed of the class off expressways (a zone may set a lower one).
    speed_limit_kmh           numeric(4,1) NOT NULL CHECK (speed_limit_kmh > 0),
    -- On expressways; NULL = speed_limit_kmh.
    expressway_limit_kmh      numeric(4,1) CHECK (expressway_limit_kmh > 0),
    -- Road Traffic Safety Law Art. 67: tractors and design speed < 70 km/h stay off expressways.
    expressway_allowed        boolean NOT NULL DEFAULT true,
    -- Shorter excursions over the limit are not an episode (GPS noise, overtaking).
    speeding_min_s            integer NOT NULL DEFAULT 30 CHECK (speeding_min_s >= 0),
    -- Implementing Regulations Art. 62(7): 4 h continuous, a rest of at least 20 min ends it.
    continuous_limit_s        integer NOT NULL DEFAULT 14400 CHECK (continuous_limit_s > 0),
    min_rest_s                integer NOT NULL DEFAULT 1200 CHECK (min_rest_s > 0),
    -- Driving per calendar day (GMT+8); NULL = no daily rule (none is codified for freight).
    daily_limit_s             integer CHECK (daily_limit_s > 0),
    -- Night 22:00-06:00 GMT+8 rules (passenger vehicles, Dynamic Supervision Measures 2014).
    night_rules               boolean NOT NULL DEFAULT false,
    night_continuous_limit_s  integer CHECK (night_continuous_limit_s > 0),  -- NULL = none
    night_speed_pct           smallint NOT NULL DEFAULT 100 CHECK (night_speed_pct BETWEEN 1 AND 100),
    -- The class may not move after the end of this day (GMT+8); NULL = never retired.
    retired_after             date,
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- Seed values follow the provincial plan (README, "Safety rules"); local authorities tune them
-- with UPDATE (the daemon reloads). Off-expressway limits are the class's legal or design
-- maximum, not a posted limit.
INSERT INTO vehicle_classes (code, name_zh, name_en, speed_limit_kmh, expressway_limit_kmh,
                             expressway_allowed, daily_limit_s, night_rules,
                             night_continuous_limit_s, night_speed_pct, retired_after) VALUES
    ('heavy_truck',          '重型货车',       'heavy truck',              80, 100, true,  NULL, false, NULL, 100, NULL),
    ('semi_trailer_tractor', '半挂牵引车',     'semi-trailer tractor',     80, 100, true,  NULL, false, NULL, 100, NULL),
    -- Dangerous goods: 80 km/h on expressways, 60 elsewhere.
    ('dangerous_goods',      '危险货物运输车', 'dangerous-goods vehicle',  60,  80, true,  NULL, false, NULL, 100, NULL),
    -- Design speed at most 40 km/h; phased out by the end of 2025.
    ('converted_tractor',    '变型拖拉机',     'converted tractor',        40, NULL, false, NULL, false, NULL, 100, DATE '2025-12-31'),
    -- Design speed below 70 km/h: no expressways.
    ('low_speed_truck',      '低速货车',       'low-speed truck',          60, NULL, false, NULL, false, NULL, 100, NULL),
    ('three_wheel',          '三轮汽车',       'three-wheel vehicle',      50, NULL, false, NULL, false, NULL, 100, NULL),
    ('tractor',              '拖拉机',         'tractor',                  30, NULL, false, NULL, false, NULL, 100, NULL),
    -- 8 h driving a day, 2 h continuous at night, 80 % of the limit at night.
    ('passenger_coach',      '客车',           'passenger coach',          80, 100, true, 28800, true,  7200,  80, NULL);

CREATE TABLE vehicles (
    plate           text NOT NULL CHECK (octet_length(plate) BETWEEN 1 AND 32),
    -- JT/T 697.7 colour code: 1 blue, 2 yellow, 3 black, 4 white, 5 green, 9 other.
    plate_colour    smallint NOT NULL CHECK (plate_colour BETWEEN 0 AND 255),
    vin             text CHECK (vin ~ '^[A-HJ-NPR-Z0-9]{17}$'),
    class_code      text NOT NULL REFERENCES vehicle_classes (code) ON UPDATE CASCADE,
    -- A terminal reports for at most one vehicle. No foreign key to terminals: vehicles are
    -- registered before their terminals are provisioned.
    terminal_id     text UNIQUE CHECK (terminal_id ~ '^[0-9A-Za-z_-]{1,32}$'),
    region          char(6) NOT NULL CHECK (region ~ '^[0-9]{6}$'),
    enterprise      text CHECK (octet_length(enterprise) <= 128),
    permit_no       text CHECK (octet_length(permit_no) <= 64),
    permit_expires  date,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'scrapped', 'deregistered')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plate, plate_colour)
);
CREATE INDEX vehicles_region ON vehicles (region);
CREATE INDEX vehicles_enterprise ON vehicles (enterprise);

CREATE TABLE zones (
    id              bigserial PRIMARY KEY,
    -- Unique so that importing the same file again replaces zones instead of doubling them.
    name            text NOT NULL UNIQUE CHECK (octet_length(name) BETWEEN 1 AND 63),
    kind            text NOT NULL CHECK (kind IN ('speed_limit', 'no_entry')),
    limit_kmh       numeric(4,1) CHECK (limit_kmh > 0),
    -- Counts as expressway for the class rules (expressway limit, expressway_allowed).
    is_expressway   boolean NOT NULL DEFAULT false,
    classes         text[],          -- class codes the zone applies to; NULL = all classes
    from_time       time,            -- local GMT+8 window; NULL = all day; may wrap midnight
    to_time         time,
    geom            geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(geom)),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- A speed-limit zone needs a limit, unless it is an expressway (the class limits then apply).
    CHECK (kind <> 'speed_limit' OR limit_kmh IS NOT NULL OR is_expressway),
    CHECK ((from_time IS NULL) = (to_time IS NULL)),
    CHECK (classes IS NULL OR cardinality(classes) > 0)
);
CREATE INDEX zones_geom ON zones USING gist (geom);

CREATE FUNCTION hw_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER vehicle_classes_touch BEFORE UPDATE ON vehicle_classes
    FOR EACH ROW EXECUTE FUNCTION hw_touch_updated_at();
CREATE TRIGGER vehicles_touch BEFORE UPDATE ON vehicles
    FOR EACH ROW EXECUTE FUNCTION hw_touch_updated_at();
CREATE TRIGGER zones_touch BEFORE UPDATE ON zones
    FOR EACH ROW EXECUTE FUNCTION hw_touch_updated_at();

-- Every daemon LISTENs on hw_registry and reloads its snapshot. Per statement, not per row: an
-- import of 100,000 vehicles is one reload, and PostgreSQL folds identical payloads sent in one
-- transaction into a single notification delivered at commit.
CREATE FUNCTION hw_registry_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hw_registry', TG_TABLE_NAME);
    RETURN NULL;
END $$;

CREATE TRIGGER vehicle_classes_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vehicle_classes
    FOR EACH STATEMENT EXECUTE FUNCTION hw_registry_notify();
CREATE TRIGGER vehicles_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON vehicles
    FOR EACH STATEMENT EXECUTE FUNCTION hw_registry_notify();
CREATE TRIGGER zones_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON zones
    FOR EACH STATEMENT EXECUTE FUNCTION hw_registry_notify();
