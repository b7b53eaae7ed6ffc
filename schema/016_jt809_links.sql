-- JT/T 809 links and interactions (issue 10): the slave link's address policy, inspections
-- (查岗) and messages sent down, supervision requests (督办) and their answers, and the alarms
-- platforms report up. platform_links (013) already has the link kind ('main', 'slave').

-- The slave link is a connection the daemon opens to the address the platform gave in its
-- 0x1001: any logged-in platform can name any address. Loopback, link-local, unspecified,
-- multicast and broadcast addresses are refused unless this is set (a platform on the same
-- host, tests).
ALTER TABLE platforms ADD COLUMN slave_local_ok boolean NOT NULL DEFAULT false;

-- Requests to a platform, queued by the CLI (it cannot talk to the daemon): a row with sent_at
-- NULL is pending; the daemon, woken by NOTIFY hw_platform_outbox (the trigger below) and
-- whenever a platform logs in, sends it over the platform's slave link (its main link while the
-- slave link is down), and sets sent_at, sent_link and sent_sn (the header serial number, which a
-- 2019 answer names). The daemon's clock, in ms, gives sent_at and answered_at, so delay_ms is
-- the delay the centre saw. error: never sent (expired while the platform was offline).
--   kind 'inspect' = 0x9301 (answered by 0x1301), 'message' = 0x9302 (no answer expected).
--   info_id: the 2011 answer names the question by it (id modulo 2^32).
CREATE TABLE platform_inspections (
    id            bigserial PRIMARY KEY,
    platform      text NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
    kind          text NOT NULL DEFAULT 'inspect' CHECK (kind IN ('inspect', 'message')),
    object_type   smallint NOT NULL DEFAULT 0 CHECK (object_type BETWEEN 0 AND 255),
    object_id     text NOT NULL DEFAULT '' CHECK (octet_length(object_id) <= 40),
    question      text NOT NULL CHECK (octet_length(question) BETWEEN 1 AND 2000),
    answers       text CHECK (octet_length(answers) <= 1000),  -- the choices offered, if any
    answer_min    smallint NOT NULL DEFAULT 10 CHECK (answer_min BETWEEN 1 AND 255),
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    sent_link     text CHECK (sent_link IN ('main', 'slave')),
    sent_sn       bigint,
    answered_at   timestamptz,
    delay_ms      bigint CHECK (delay_ms >= 0),
    answer        text CHECK (octet_length(answer) <= 4000),
    responder     text CHECK (octet_length(responder) <= 64),
    responder_tel text CHECK (octet_length(responder_tel) <= 64),
    error         text CHECK (octet_length(error) <= 200)
);
CREATE INDEX platform_inspections_pending ON platform_inspections (id)
    WHERE sent_at IS NULL AND error IS NULL;
CREATE INDEX platform_inspections_platform ON platform_inspections (platform, created_at);

-- 0x9401 supervision requests (报警督办), queued and sent like inspections; supervision_id on
-- the wire is id modulo 2^32, and the 0x1401 answer (result: 0 being handled, 1 done, 2 not
-- handled, 3 to be handled later) names it.
CREATE TABLE platform_supervisions (
    id            bigserial PRIMARY KEY,
    platform      text NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
    plate         text CHECK (octet_length(plate) <= 63),
    plate_colour  smallint NOT NULL DEFAULT 0 CHECK (plate_colour BETWEEN 0 AND 255),
    warn_src      smallint NOT NULL DEFAULT 1 CHECK (warn_src BETWEEN 0 AND 255),
    warn_type     integer NOT NULL CHECK (warn_type BETWEEN 0 AND 65535),
    warn_time     timestamptz NOT NULL,
    deadline      timestamptz NOT NULL,
    level         smallint NOT NULL DEFAULT 1 CHECK (level IN (0, 1)),
    supervisor    text NOT NULL DEFAULT '' CHECK (octet_length(supervisor) <= 24),
    tel           text NOT NULL DEFAULT '' CHECK (octet_length(tel) <= 20),
    email         text NOT NULL DEFAULT '' CHECK (octet_length(email) <= 32),
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    sent_link     text CHECK (sent_link IN ('main', 'slave')),
    sent_sn       bigint,
    answered_at   timestamptz,
    delay_ms      bigint CHECK (delay_ms >= 0),
    result        smallint,
    error         text CHECK (octet_length(error) <= 200)
);
CREATE INDEX platform_supervisions_pending ON platform_supervisions (id)
    WHERE sent_at IS NULL AND error IS NULL;

CREATE FUNCTION hw_platform_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hw_platform_outbox', TG_TABLE_NAME);
    RETURN NULL;
END $$;
CREATE TRIGGER platform_inspections_outbox AFTER INSERT ON platform_inspections
    FOR EACH STATEMENT EXECUTE FUNCTION hw_platform_outbox_notify();
CREATE TRIGGER platform_supervisions_outbox AFTER INSERT ON platform_supervisions
    FOR EACH STATEMENT EXECUTE FUNCTION hw_platform_outbox_notify();

-- 0x1402 alarms a platform reports up, one row each, as received. Published like violations:
-- the trigger sends them on hw_violations (schema 006), which the daemon's violation relay
-- publishes unchanged on Redis hw:violations, with "event": "platform_alarm".
CREATE TABLE platform_alarms (
    id            bigserial PRIMARY KEY,
    platform      text NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
    received_at   timestamptz NOT NULL DEFAULT now(),
    warn_src      smallint,                   -- 2011
    warn_type     integer NOT NULL,
    warn_time     timestamptz,
    start_time    timestamptz,                -- 2019
    end_time      timestamptz,                -- 2019
    info_id       bigint,                     -- 2011
    plate         text CHECK (octet_length(plate) <= 63),
    plate_colour  smallint,
    src_platform  text CHECK (octet_length(src_platform) <= 16),
    info          text CHECK (octet_length(info) <= 4000)
);
CREATE INDEX platform_alarms_platform ON platform_alarms (platform, received_at);

CREATE FUNCTION hw_platform_alarm_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hw_violations', jsonb_build_object(
        'event', 'platform_alarm', 'id', NEW.id, 'platform', NEW.platform,
        'warn_type', NEW.warn_type, 'warn_src', NEW.warn_src,
        'warn_time', hw_violation_utc(NEW.warn_time),
        'plate', left(NEW.plate, 63), 'plate_colour', NEW.plate_colour,
        'info', left(NEW.info, 2000),
        'received_at', hw_violation_utc(NEW.received_at))::text);
    RETURN NULL;
END $$;
CREATE TRIGGER platform_alarms_notify AFTER INSERT ON platform_alarms
    FOR EACH ROW EXECUTE FUNCTION hw_platform_alarm_notify();
