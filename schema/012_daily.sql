-- The assessment's daily figures per vehicle (README, "KPIs"; ingest/rules/daystats.h): one row
-- per terminal and GMT+8 day of device time, written by the daemon as fixes flow (and at a clean
-- stop) and by `haulwatch report rebuild`, which recomputes them from positions. `report kpi`
-- sums them; it never scans positions.
CREATE TABLE vehicle_daily (
    terminal_id   text NOT NULL,
    day           date NOT NULL,                 -- GMT+8 calendar day of device time
    records       integer NOT NULL CHECK (records >= 0),
    qualified     integer NOT NULL CHECK (qualified BETWEEN 0 AND records),
    drift         integer NOT NULL CHECK (drift BETWEEN 0 AND qualified),
    km_total      double precision NOT NULL,     -- qualified non-drift segments ending this day
    km_complete   double precision NOT NULL,     -- ... of them, those not longer than track_gap_s
    first_fix     timestamptz,                   -- first and last qualified fix; NULL when none
    last_fix      timestamptz,
    -- 上线: at least one qualified record this day.
    online        boolean GENERATED ALWAYS AS (qualified > 0) STORED,
    -- The track reference after the day (the last qualified non-drift fix, this day or before):
    -- the next day is recomputed from it without reading this one again.
    carry_ts      timestamptz,
    carry_lat_e6  integer,
    carry_lon_e6  integer,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (terminal_id, day)
);
-- report kpi reads a period for every vehicle.
CREATE INDEX vehicle_daily_day ON vehicle_daily (day);
