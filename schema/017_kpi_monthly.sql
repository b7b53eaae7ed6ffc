-- The daily figures rolled up per vehicle and GMT+8 calendar month (README, "KPIs"): `report
-- kpi` over a period reads the whole months inside it here and only the edge days from
-- vehicle_daily, 30 times fewer rows for a month of a province (ops/bench-kpi, stage b).
--
-- Kept exact by triggers on vehicle_daily, whoever writes it (the daemon's daily store, `report
-- rebuild`, a hand-made fix): after each statement, every (vehicle, month) it touched is computed
-- again from that month's rows of vehicle_daily, never adjusted by differences (float sums taken
-- apart drift). Writers of vehicle_daily take one transaction-scoped advisory lock before their
-- first row (a BEFORE statement trigger), so two transactions never recompute the same month from
-- snapshots that each miss the other's rows, and they cannot deadlock over it: the lock always
-- comes before any row lock of the table. The cost: writers of vehicle_daily take turns (a
-- `report rebuild` holds the daemon's flushes back until it commits).
CREATE TABLE vehicle_monthly (
    terminal_id   text NOT NULL,
    month         date NOT NULL CHECK (extract(day FROM month) = 1),  -- first day of the month
    records       bigint NOT NULL,
    qualified     bigint NOT NULL,
    online_days   integer NOT NULL,              -- days with qualified > 0
    drift_days    integer NOT NULL,              -- days with drift > 0 (so also online)
    km_total      double precision NOT NULL,
    km_complete   double precision NOT NULL,
    first_online  date,                          -- first day with qualified > 0; NULL when none
    last_fix      timestamptz,                   -- max(last_fix) of the month's days
    PRIMARY KEY (terminal_id, month)
);
CREATE INDEX vehicle_monthly_month ON vehicle_monthly (month);

-- hw_vehicle_monthly_redo(terminals, months): those (vehicle, month) pairs computed again from
-- vehicle_daily; a pair with no day left has no row.
CREATE FUNCTION hw_vehicle_monthly_redo(p_tids text[], p_months date[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM vehicle_monthly m USING unnest(p_tids, p_months) k(t, mo)
     WHERE m.terminal_id = k.t AND m.month = k.mo;
    INSERT INTO vehicle_monthly (terminal_id, month, records, qualified, online_days, drift_days,
                                 km_total, km_complete, first_online, last_fix)
    SELECT x.terminal_id, k.mo, sum(x.records), sum(x.qualified),
           count(*) FILTER (WHERE x.qualified > 0), count(*) FILTER (WHERE x.drift > 0),
           sum(x.km_total), sum(x.km_complete), min(x.day) FILTER (WHERE x.qualified > 0),
           max(x.last_fix)
      FROM unnest(p_tids, p_months) k(t, mo)
      JOIN vehicle_daily x ON x.terminal_id = k.t AND x.day >= k.mo
                          AND x.day < (k.mo + interval '1 month')::date
     GROUP BY x.terminal_id, k.mo;
END $$;

CREATE FUNCTION hw_vehicle_daily_lock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7100012);
    RETURN NULL;
END $$;

CREATE FUNCTION hw_vehicle_daily_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Each branch names only the transition tables its trigger has.
    IF TG_OP = 'INSERT' THEN
        PERFORM hw_vehicle_monthly_redo(array_agg(t), array_agg(mo)) FROM (
            SELECT DISTINCT terminal_id, date_trunc('month', day::timestamp)::date
              FROM hw_new_days) k(t, mo);
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM hw_vehicle_monthly_redo(array_agg(t), array_agg(mo)) FROM (
            SELECT terminal_id, date_trunc('month', day::timestamp)::date FROM hw_new_days
            UNION
            SELECT terminal_id, date_trunc('month', day::timestamp)::date FROM hw_old_days) k(t, mo);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM hw_vehicle_monthly_redo(array_agg(t), array_agg(mo)) FROM (
            SELECT DISTINCT terminal_id, date_trunc('month', day::timestamp)::date
              FROM hw_old_days) k(t, mo);
    ELSE
        DELETE FROM vehicle_monthly;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER vehicle_daily_lock BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON vehicle_daily
    FOR EACH STATEMENT EXECUTE FUNCTION hw_vehicle_daily_lock();
CREATE TRIGGER vehicle_daily_rollup_ins AFTER INSERT ON vehicle_daily
    REFERENCING NEW TABLE AS hw_new_days
    FOR EACH STATEMENT EXECUTE FUNCTION hw_vehicle_daily_rollup();
CREATE TRIGGER vehicle_daily_rollup_upd AFTER UPDATE ON vehicle_daily
    REFERENCING OLD TABLE AS hw_old_days NEW TABLE AS hw_new_days
    FOR EACH STATEMENT EXECUTE FUNCTION hw_vehicle_daily_rollup();
CREATE TRIGGER vehicle_daily_rollup_del AFTER DELETE ON vehicle_daily
    REFERENCING OLD TABLE AS hw_old_days
    FOR EACH STATEMENT EXECUTE FUNCTION hw_vehicle_daily_rollup();
CREATE TRIGGER vehicle_daily_rollup_trunc AFTER TRUNCATE ON vehicle_daily
    FOR EACH STATEMENT EXECUTE FUNCTION hw_vehicle_daily_rollup();

-- The months of the days already there.
INSERT INTO vehicle_monthly (terminal_id, month, records, qualified, online_days, drift_days,
                             km_total, km_complete, first_online, last_fix)
SELECT terminal_id, date_trunc('month', day::timestamp)::date, sum(records), sum(qualified),
       count(*) FILTER (WHERE qualified > 0), count(*) FILTER (WHERE drift > 0),
       sum(km_total), sum(km_complete), min(day) FILTER (WHERE qualified > 0), max(last_fix)
  FROM vehicle_daily GROUP BY 1, 2;
