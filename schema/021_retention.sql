-- Data lifecycle (README, "Data lifecycle"; docs/retention.md). Positions must be kept at least
-- six months, violation records at least three years. Old positions leave by whole daily
-- partitions (DROP: no DELETE, no bloat, no vacuum), optionally after a stay in another
-- tablespace; nothing here touches violations.
--
-- Two functions rather than one that does everything: each partition is dropped or moved in a
-- transaction of its own (the client runs hw_retention_apply once per row of hw_retention_plan),
-- so the ACCESS EXCLUSIVE lock a DROP takes on `positions` is held for milliseconds, never for
-- the minutes a move of another partition may copy, and one partition that cannot be locked
-- (lock_timeout) does not undo the others.

-- What is due today (UTC days, as hw_ensure_partitions names them): 'drop' for the partitions
-- whose whole day is more than retain_days ago (0: none), else 'move' for those more than
-- archive_after_days ago not yet in archive_tablespace ('' or 0: none). Reads only.
CREATE FUNCTION hw_retention_plan(retain_days integer, archive_tablespace text,
                                  archive_after_days integer)
RETURNS TABLE (partition text, day date, action text)
LANGUAGE sql STABLE AS $$
    WITH parts AS (
        SELECT c.relname::text AS partition,
               to_date(substr(c.relname, 11), 'YYYYMMDD') AS day,
               coalesce(t.spcname::text, '') AS tablespace
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        LEFT JOIN pg_tablespace t ON t.oid = c.reltablespace
        WHERE i.inhparent = 'positions'::regclass AND c.relname ~ '^positions_[0-9]{8}$'
    ), today AS (
        SELECT (now() AT TIME ZONE 'UTC')::date AS d
    )
    SELECT p.partition, p.day,
           CASE WHEN retain_days > 0 AND p.day < today.d - retain_days THEN 'drop' ELSE 'move' END
    FROM parts p, today
    WHERE (retain_days > 0 AND p.day < today.d - retain_days)
       OR (coalesce(archive_tablespace, '') <> '' AND archive_after_days > 0
           AND p.day < today.d - archive_after_days AND p.tablespace <> archive_tablespace)
    ORDER BY p.day
$$;

-- Drops or moves one daily partition of positions; returns what it did in words for the log.
-- Refuses anything that is not a daily partition of positions (the name comes from a client).
-- A move takes the table and each of its indexes (SET TABLESPACE on a table leaves its indexes
-- where they were). Waits at most lock_timeout_ms for its locks: writers are never queued
-- behind it for longer.
CREATE FUNCTION hw_retention_apply(part text, action text, archive_tablespace text,
                                   lock_timeout_ms integer) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    rel regclass;
    idx record;
    nrows real;
    size text;
    nidx integer := 0;
BEGIN
    IF part !~ '^positions_[0-9]{8}$' THEN
        RAISE EXCEPTION 'not a daily partition of positions: %', part USING ERRCODE = '22023';
    END IF;
    rel := to_regclass(quote_ident(part));
    IF rel IS NULL OR NOT EXISTS (SELECT 1 FROM pg_inherits
                                  WHERE inhrelid = rel AND inhparent = 'positions'::regclass) THEN
        RAISE EXCEPTION 'not a daily partition of positions: %', part USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('lock_timeout', lock_timeout_ms::text, true);
    IF action = 'drop' THEN
        -- For the log: the size, and the row estimate ANALYZE keeps (-1 before the first one;
        -- counting would read the whole day).
        SELECT reltuples, pg_size_pretty(pg_total_relation_size(rel)) INTO nrows, size
        FROM pg_class WHERE oid = rel;
        EXECUTE format('DROP TABLE %I', part);
        RETURN format('dropped (%s%s)', size,
                      CASE WHEN nrows >= 0 THEN format(', about %s rows', nrows::bigint) ELSE '' END);
    ELSIF action = 'move' THEN
        IF coalesce(archive_tablespace, '') = '' THEN
            RAISE EXCEPTION 'no archive tablespace given' USING ERRCODE = '22023';
        END IF;
        EXECUTE format('ALTER TABLE %I SET TABLESPACE %I', part, archive_tablespace);
        FOR idx IN SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = rel LOOP
            EXECUTE format('ALTER INDEX %s SET TABLESPACE %I', idx.name, archive_tablespace);
            nidx := nidx + 1;
        END LOOP;
        RETURN format('moved to tablespace %s with %s indexes (%s)', archive_tablespace, nidx,
                      pg_size_pretty(pg_total_relation_size(rel)));
    END IF;
    RAISE EXCEPTION 'unknown retention action: %', action USING ERRCODE = '22023';
END $$;
