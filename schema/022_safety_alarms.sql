-- Active-safety alarms (苏标 T/JSATL12-2017 and 粤标 items 0x64 ADAS, 0x65 DSM, 0x66 TPMS, 0x67 BSD
-- of a JT/T 808 0x0200; docs/active-safety.md). Written by the position writer in the same
-- transaction as the fix that carried them, so the 0x8001 that acknowledges that 0x0200 never
-- covers an alarm not stored. Read by `haulwatch alarms list`, GET /api/v1/alarms and the
-- safety-device coverage report.
CREATE TABLE safety_alarms (
    id            bigserial PRIMARY KEY,
    terminal_id   text NOT NULL,
    -- The plate bound to the terminal when the alarm was stored (NULL: none registered): the
    -- record stands if the vehicle changes later, as for violations.
    vehicle       text,
    kind          text NOT NULL CHECK (kind IN ('adas', 'dsm', 'tpms', 'bsd')),
    type          smallint NOT NULL CHECK (type BETWEEN 0 AND 255),   -- as sent, known or not
    level         smallint CHECK (level BETWEEN 0 AND 255),           -- NULL: the item has none
    alarm_id      bigint NOT NULL CHECK (alarm_id BETWEEN 0 AND 4294967295),
    flag          smallint NOT NULL CHECK (flag BETWEEN 0 AND 255),   -- 0 n/a, 1 start, 2 end
    -- The item's own time; the 0x0200's when the item's BCD time is not valid.
    alarm_at      timestamptz NOT NULL,
    fix_at        timestamptz NOT NULL,                               -- the 0x0200's time
    lat           double precision,
    lon           double precision,
    speed_kmh     smallint CHECK (speed_kmh BETWEEN 0 AND 255),       -- the vehicle speed the item reports
    -- The alarm identification number as text "<terminal id>-<YYMMDDhhmmss>-<seq>"
    -- (jt808/jt808_safety.h: hw_safety_alarm_no_format): what attachments are matched by.
    alarm_no      text NOT NULL CHECK (alarm_no ~ '^[0-9A-Za-z:]{0,64}-[0-9a-f]{12}-[0-9]{1,3}$'),
    attachments   smallint NOT NULL CHECK (attachments BETWEEN 0 AND 255), -- count announced
    layout        text NOT NULL CHECK (layout IN ('su', 'yue')),
    fields        jsonb NOT NULL DEFAULT '{}',                        -- the item's other fields
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- A 0x0200 sent again (lost ack), or a batch replayed after an unknown COMMIT outcome, stores
    -- nothing new: the writer inserts ON CONFLICT DO NOTHING on this key.
    UNIQUE (terminal_id, kind, alarm_id, flag, alarm_at, alarm_no)
);
CREATE INDEX safety_alarms_at ON safety_alarms (alarm_at);
CREATE INDEX safety_alarms_terminal ON safety_alarms (terminal_id, alarm_at);
CREATE INDEX safety_alarms_kind ON safety_alarms (kind, type, alarm_at);
CREATE INDEX safety_alarms_no ON safety_alarms (alarm_no);

-- Live feed: each stored alarm is announced once, after its commit (NOTIFY is transactional),
-- and the daemon's relay publishes it unchanged on Redis channel hw:alarms
-- (sinks/violation_relay.h). A resent 0x0200 inserts nothing, so it announces nothing.
CREATE FUNCTION hw_safety_alarm_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hw_alarms', json_build_object(
        'id', NEW.id, 'terminal_id', NEW.terminal_id, 'vehicle', left(NEW.vehicle, 200),
        'kind', NEW.kind, 'type', NEW.type, 'level', NEW.level,
        'alarm_at', floor(extract(epoch FROM NEW.alarm_at) * 1000)::bigint,
        'lat', NEW.lat, 'lon', NEW.lon, 'speed_kmh', NEW.speed_kmh, 'alarm_no', NEW.alarm_no,
        'attachments', NEW.attachments, 'fields', NEW.fields)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER safety_alarms_notify AFTER INSERT ON safety_alarms
    FOR EACH ROW EXECUTE FUNCTION hw_safety_alarm_notify();

-- Evidence: a DSM fatigue alarm inside a fatigue_continuous episode of the same terminal (from
-- its start to its end, or still open) is that episode's evidence. A view, not stored links: the
-- episode is often decided after the alarm arrived (fixes held for back-fill, a restart's
-- replay), and stored links would then miss it; the view is right whatever the order, and the
-- index safety_alarms_terminal makes it an index scan per episode. The dsm_fatigue violation of
-- the alarm names the episode in its evidence too ("fatigue_episode") when it was open already.
CREATE VIEW fatigue_alarm_evidence AS
SELECT v.id AS violation_id, v.episode_key, a.id AS alarm_id, a.alarm_no, a.alarm_at, a.level,
       a.attachments
FROM violations v
JOIN safety_alarms a
  ON a.terminal_id = v.terminal_id AND a.kind = 'dsm' AND a.type = 1
 AND a.alarm_at >= v.started_at AND (v.ended_at IS NULL OR a.alarm_at <= v.ended_at)
WHERE v.kind = 'fatigue_continuous';
