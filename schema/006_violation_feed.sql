-- The engine's episodes as they grow, and the live feed of violations.

-- ended_at keeps its meaning from 003: NULL while the episode goes on (what `violations list`
-- shows as "ongoing"), set when the engine closes it. last_at is how far the episode is known to
-- reach so far (ended_ms of its newest event, hw_violation_store): it grows while the episode is
-- open and equals ended_at once it is closed. Nullable so that rows written by other means need
-- not know it; readers use coalesce(last_at, ended_at, started_at).
ALTER TABLE violations ADD COLUMN last_at timestamptz,
    ADD CONSTRAINT violations_last_at CHECK (last_at >= started_at);
UPDATE violations SET last_at = coalesce(ended_at, started_at) WHERE last_at IS NULL;

-- Every new violation and every change a screen shows is sent on channel hw_violations (the
-- daemon's violation relay publishes each payload on Redis channel hw:violations). Through the
-- database rather than from the daemon, so that transitions made by the CLI, which only talks to
-- PostgreSQL, are published too. NOTIFY is transactional: nothing is sent for a rolled-back
-- write, and identical payloads within one transaction are sent once.
--   event: 'new' (INSERT), 'state' (state changed, hw_violation_transition), 'update' (extent,
--   measured value, grade, start or vehicle data changed). An upsert that changes only the
--   evidence or nothing at all sends nothing.
-- Times are ISO 8601 UTC strings, so the payload does not depend on the writer's TimeZone;
-- id + updated_at identify a message, for consumers that must drop a repeat (the relay may
-- publish a message again after losing Redis mid-reply). NOTIFY payloads must stay under 8000
-- bytes: the evidence is dropped ("evidence": null, "evidence_dropped": true) when it does not
-- fit, and text fields are cut to 200 characters if even that is not enough.
CREATE FUNCTION hw_violation_utc(t timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

CREATE FUNCTION hw_violation_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ev text;
    msg text;
    base jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        ev := 'new';
    ELSIF NEW.state IS DISTINCT FROM OLD.state THEN
        ev := 'state';
    ELSIF (NEW.started_at, NEW.ended_at, NEW.last_at, NEW.measured, NEW.limit_value, NEW.grade,
           NEW.start_lat, NEW.start_lon, NEW.plate, NEW.region, NEW.enterprise, NEW.kind,
           NEW.terminal_id)
          IS DISTINCT FROM
          (OLD.started_at, OLD.ended_at, OLD.last_at, OLD.measured, OLD.limit_value, OLD.grade,
           OLD.start_lat, OLD.start_lon, OLD.plate, OLD.region, OLD.enterprise, OLD.kind,
           OLD.terminal_id) THEN
        ev := 'update';
    ELSE
        RETURN NULL;
    END IF;
    base := jsonb_build_object(
        'event', ev, 'id', NEW.id, 'kind', NEW.kind, 'episode_key', NEW.episode_key,
        'terminal_id', NEW.terminal_id, 'plate', NEW.plate, 'region', NEW.region,
        'enterprise', NEW.enterprise,
        'started_at', hw_violation_utc(NEW.started_at),
        'ended_at', hw_violation_utc(NEW.ended_at),
        'last_at', hw_violation_utc(coalesce(NEW.last_at, NEW.ended_at, NEW.started_at)),
        'start_lat', NEW.start_lat, 'start_lon', NEW.start_lon,
        'measured', NEW.measured, 'limit_value', NEW.limit_value, 'grade', NEW.grade,
        'state', NEW.state, 'updated_at', hw_violation_utc(NEW.updated_at));
    msg := (base || jsonb_build_object('evidence', NEW.evidence))::text;
    IF octet_length(msg) >= 8000 THEN
        base := base || jsonb_build_object('evidence', NULL, 'evidence_dropped', true);
        msg := base::text;
    END IF;
    IF octet_length(msg) >= 8000 THEN
        base := base || jsonb_build_object(
            'episode_key', left(NEW.episode_key, 200), 'terminal_id', left(NEW.terminal_id, 200),
            'plate', left(NEW.plate, 200), 'enterprise', left(NEW.enterprise, 200));
        msg := base::text;
    END IF;
    PERFORM pg_notify('hw_violations', msg);
    RETURN NULL;
END $$;

CREATE TRIGGER violations_notify AFTER INSERT OR UPDATE ON violations
    FOR EACH ROW EXECUTE FUNCTION hw_violation_notify();
