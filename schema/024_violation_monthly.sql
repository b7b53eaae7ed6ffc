-- The KPIs' violation figures rolled up per vehicle and GMT+8 calendar month (README, "KPIs"):
-- speeding episodes started in the month and the seconds of closed fatigue_continuous episodes
-- inside it. `report kpi` over a province month then reads one row per vehicle here instead of
-- every episode of the month (ops/bench-kpi, stage b: 400,000 episodes for 100,000 vehicles were
-- most of the statement's second). Open fatigue episodes are not here: their end is the
-- vehicle's last fix, which moves without the row changing, so the statement adds them itself.
--
-- Kept exact by statement triggers on violations, whoever writes it, by differences: each
-- statement adds what its new rows contribute and takes away what its old rows did. Unlike
-- vehicle_monthly (017), which recomputes its months because float sums taken apart drift, these
-- are an integer count and numeric seconds (extract(epoch ...) is numeric: microseconds,
-- exactly), so a difference is exact, and the trigger never rereads a terminal's history (a
-- fatigue episode may span months). Concurrent writers add to the same rows in key order (ORDER
-- BY before ON CONFLICT), so they queue on row locks and cannot deadlock on this table.
CREATE TABLE violation_monthly (
    terminal_id text NOT NULL,
    month       date NOT NULL CHECK (extract(day FROM month) = 1),  -- first day of the month
    speeding    bigint NOT NULL,          -- speeding episodes started in the month
    fatigue_s   numeric NOT NULL,         -- seconds of closed fatigue_continuous inside it
    PRIMARY KEY (terminal_id, month)
);
CREATE INDEX violation_monthly_month ON violation_monthly (month);

-- The open fatigue episodes, which the KPI statement reads directly (a handful among millions).
CREATE INDEX violations_open_fatigue ON violations (terminal_id)
    WHERE kind = 'fatigue_continuous' AND ended_at IS NULL;

-- GMT+8 month of an instant, and the instant a GMT+8 day begins (China keeps no summer time).
CREATE FUNCTION hw_cst_month(ts timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_trunc('month', (ts AT TIME ZONE 'UTC') + interval '8 hours')::date
$$;
CREATE FUNCTION hw_cst_start(d date) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (d::timestamp - interval '8 hours') AT TIME ZONE 'UTC'
$$;

-- What the violations v contribute, sign times, per (terminal, month). Used by the trigger for
-- the transition tables, and by the backfill below.
CREATE FUNCTION hw_violation_monthly_parts(kinds text[], tids text[], starts timestamptz[],
                                           ends timestamptz[], sign integer)
RETURNS TABLE (terminal_id text, month date, speeding bigint, fatigue_s numeric)
LANGUAGE sql IMMUTABLE AS $$
    SELECT v.t, hw_cst_month(v.s), sign::bigint, 0::numeric
      FROM unnest(kinds, tids, starts, ends) v(k, t, s, e)
     WHERE v.k = 'speeding'
    UNION ALL
    SELECT v.t, mo::date, 0::bigint,
           sign * extract(epoch FROM least(v.e, hw_cst_start((mo + interval '1 month')::date))
                                   - greatest(v.s, hw_cst_start(mo::date)))
      FROM unnest(kinds, tids, starts, ends) v(k, t, s, e),
           generate_series(hw_cst_month(v.s), hw_cst_month(v.e), interval '1 month') mo
     WHERE v.k = 'fatigue_continuous' AND v.e IS NOT NULL
       AND least(v.e, hw_cst_start((mo + interval '1 month')::date)) > greatest(v.s, hw_cst_start(mo::date))
$$;

-- Adds the differences; rows that come to nothing go (a vehicle with no violation in a month
-- has no row, as after the backfill).
CREATE FUNCTION hw_violation_monthly_add(d_tids text[], d_months date[], d_speeding bigint[],
                                         d_fatigue numeric[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO violation_monthly AS m (terminal_id, month, speeding, fatigue_s)
    SELECT t, mo, s, f FROM unnest(d_tids, d_months, d_speeding, d_fatigue) d(t, mo, s, f)
     ORDER BY t, mo
    ON CONFLICT (terminal_id, month) DO UPDATE
       SET speeding = m.speeding + excluded.speeding, fatigue_s = m.fatigue_s + excluded.fatigue_s;
    DELETE FROM violation_monthly m USING unnest(d_tids, d_months) d(t, mo)
     WHERE m.terminal_id = d.t AND m.month = d.mo AND m.speeding = 0 AND m.fatigue_s = 0;
END $$;

CREATE FUNCTION hw_violation_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    nk text[]; nt text[]; ns timestamptz[]; ne timestamptz[];
    ok text[]; ot text[]; os timestamptz[]; oe timestamptz[];
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM violation_monthly;
        RETURN NULL;
    END IF;
    -- Each branch names only the transition tables its trigger has.
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT array_agg(kind), array_agg(terminal_id), array_agg(started_at), array_agg(ended_at)
          INTO nk, nt, ns, ne
          FROM hw_new_rows WHERE kind IN ('speeding', 'fatigue_continuous');
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT array_agg(kind), array_agg(terminal_id), array_agg(started_at), array_agg(ended_at)
          INTO ok, ot, os, oe
          FROM hw_old_rows WHERE kind IN ('speeding', 'fatigue_continuous');
    END IF;
    IF nk IS NULL AND ok IS NULL THEN
        RETURN NULL;
    END IF;
    -- An update that changes neither kind, terminal, start nor end (a state change, a note)
    -- cancels out here and writes nothing.
    PERFORM hw_violation_monthly_add(array_agg(t), array_agg(mo), array_agg(s), array_agg(f))
      FROM (SELECT p.terminal_id, p.month, sum(p.speeding)::bigint, sum(p.fatigue_s)
              FROM (SELECT * FROM hw_violation_monthly_parts(nk, nt, ns, ne, 1)
                    UNION ALL
                    SELECT * FROM hw_violation_monthly_parts(ok, ot, os, oe, -1)) p
             GROUP BY 1, 2
            HAVING sum(p.speeding) <> 0 OR sum(p.fatigue_s) <> 0) d(t, mo, s, f)
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE TRIGGER violations_rollup_ins AFTER INSERT ON violations
    REFERENCING NEW TABLE AS hw_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hw_violation_rollup();
CREATE TRIGGER violations_rollup_upd AFTER UPDATE ON violations
    REFERENCING OLD TABLE AS hw_old_rows NEW TABLE AS hw_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hw_violation_rollup();
CREATE TRIGGER violations_rollup_del AFTER DELETE ON violations
    REFERENCING OLD TABLE AS hw_old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION hw_violation_rollup();
CREATE TRIGGER violations_rollup_trunc AFTER TRUNCATE ON violations
    FOR EACH STATEMENT EXECUTE FUNCTION hw_violation_rollup();

-- The violations already there (a DO block: the migration runner wants commands, not rows).
DO $$
BEGIN
    PERFORM hw_violation_monthly_add(array_agg(t), array_agg(mo), array_agg(s), array_agg(f))
      FROM (SELECT p.terminal_id, p.month, sum(p.speeding)::bigint, sum(p.fatigue_s)
              FROM (SELECT array_agg(kind) k, array_agg(terminal_id) t, array_agg(started_at) s,
                           array_agg(ended_at) e
                      FROM violations WHERE kind IN ('speeding', 'fatigue_continuous')) a,
                   hw_violation_monthly_parts(a.k, a.t, a.s, a.e, 1) p
             GROUP BY 1, 2) d(t, mo, s, f)
    HAVING count(*) > 0;
END $$;
