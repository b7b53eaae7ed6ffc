-- Violations found by the rules engine and their handling as a managed list: each one is
-- tracked until rectified and formally closed (销号), every step audited.

CREATE TABLE violations (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind ~ '^[a-z0-9_]{1,32}$'),  -- speeding, fatigue, ...
    -- Deterministic identity from the rules engine (kind, terminal, episode start): an episode
    -- emitted again after a restart is an upsert on this key, never a second row.
    episode_key  text NOT NULL UNIQUE,
    terminal_id  text NOT NULL,
    -- Copied from the registry when found, so the record stands even if the vehicle changes.
    plate        text,
    region       char(6) CHECK (region ~ '^[0-9]{6}$'),
    enterprise   text,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz CHECK (ended_at >= started_at),  -- NULL while the episode goes on
    start_lat    double precision,
    start_lon    double precision,
    measured     double precision,   -- e.g. peak speed km/h, driving seconds
    limit_value  double precision,   -- the limit it was measured against, same unit
    grade        smallint,           -- speeding band: 1 under 20 %, 2 20-50 %, 3 50 % and more
    evidence     jsonb NOT NULL DEFAULT '{}',
    state        text NOT NULL DEFAULT 'open'
                 CHECK (state IN ('open', 'notified', 'rectifying', 'closed')),
    closed_at    timestamptz,
    closed_by    text,
    close_note   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'closed') = (closed_at IS NOT NULL)),
    CHECK (state <> 'closed' OR (closed_by IS NOT NULL AND close_note IS NOT NULL))
);
-- The filters of `haulwatch violations list` and of the monthly statistics, newest first.
CREATE INDEX violations_started ON violations (started_at);
CREATE INDEX violations_kind ON violations (kind, started_at);
CREATE INDEX violations_state ON violations (state, started_at);
CREATE INDEX violations_region ON violations (region, started_at);
CREATE INDEX violations_enterprise ON violations (enterprise, started_at);
CREATE INDEX violations_terminal ON violations (terminal_id, started_at);

CREATE TABLE violation_audit (
    id            bigserial PRIMARY KEY,
    violation_id  bigint NOT NULL REFERENCES violations (id) ON DELETE CASCADE,
    from_state    text NOT NULL,
    to_state      text NOT NULL,
    actor         text NOT NULL,
    note          text,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX violation_audit_violation ON violation_audit (violation_id, at);

-- The state (and the closing fields) change only through hw_violation_transition, so no step
-- escapes the audit: a direct UPDATE, or an engine upsert that touches them, is refused.
CREATE FUNCTION hw_violation_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state <> 'open' OR NEW.closed_at IS NOT NULL OR NEW.closed_by IS NOT NULL
           OR NEW.close_note IS NOT NULL THEN
            RAISE EXCEPTION 'a new violation starts open'
                USING ERRCODE = 'check_violation';
        END IF;
    ELSIF (NEW.state, NEW.closed_at, NEW.closed_by, NEW.close_note)
          IS DISTINCT FROM (OLD.state, OLD.closed_at, OLD.closed_by, OLD.close_note)
          AND coalesce(current_setting('hw.violation_transition', true), '') <> 'on' THEN
        RAISE EXCEPTION 'violation %: state changes go through hw_violation_transition()', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

CREATE TRIGGER violations_guard BEFORE INSERT OR UPDATE ON violations
    FOR EACH ROW EXECUTE FUNCTION hw_violation_guard();

-- Moves violation p_id one step along open -> notified -> rectifying -> closed and audits it.
-- Strict: no skipping, no going back, closed is final (a wrongly closed item is a new item).
-- Every step needs an actor; closing also needs a note saying how it was rectified.
-- Returns the state it left. Errors: 22023 bad argument, P0002 no such violation,
-- HW001 transition not allowed.
CREATE FUNCTION hw_violation_transition(p_id bigint, p_to text, p_actor text, p_note text)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    cur text;
    nxt text;
BEGIN
    IF p_to IS NULL OR p_to NOT IN ('open', 'notified', 'rectifying', 'closed') THEN
        RAISE EXCEPTION 'unknown state "%"', p_to
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'states are open, notified, rectifying, closed';
    END IF;
    IF p_actor IS NULL OR btrim(p_actor) = '' THEN
        RAISE EXCEPTION 'every transition needs an actor'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Row lock: two operators moving the same item cannot both pass the check.
    SELECT state INTO cur FROM violations WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'violation % does not exist', p_id USING ERRCODE = 'no_data_found';
    END IF;
    nxt := CASE cur WHEN 'open' THEN 'notified' WHEN 'notified' THEN 'rectifying'
                    WHEN 'rectifying' THEN 'closed' END;
    IF cur = 'closed' THEN
        RAISE EXCEPTION 'violation % is closed; a closed violation cannot change state', p_id
            USING ERRCODE = 'HW001';
    ELSIF p_to = cur THEN
        RAISE EXCEPTION 'violation % is already %', p_id, cur USING ERRCODE = 'HW001';
    ELSIF p_to <> nxt THEN
        RAISE EXCEPTION 'violation %: % -> % is not allowed; the next state is %', p_id, cur, p_to, nxt
            USING ERRCODE = 'HW001',
                  HINT = 'violations move open -> notified -> rectifying -> closed, one step at a time';
    END IF;
    IF p_to = 'closed' AND (p_note IS NULL OR btrim(p_note) = '') THEN
        RAISE EXCEPTION 'closing violation % needs a note saying how it was rectified', p_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM set_config('hw.violation_transition', 'on', true);
    UPDATE violations
       SET state = p_to,
           closed_at = CASE WHEN p_to = 'closed' THEN now() END,
           closed_by = CASE WHEN p_to = 'closed' THEN p_actor END,
           close_note = CASE WHEN p_to = 'closed' THEN p_note END
     WHERE id = p_id;
    PERFORM set_config('hw.violation_transition', '', true);
    INSERT INTO violation_audit (violation_id, from_state, to_state, actor, note)
        VALUES (p_id, cur, p_to, p_actor, nullif(btrim(p_note), ''));
    RETURN cur;
END $$;

-- The rules engine's per-vehicle state (fatigue counters, open episodes), so a restart resumes
-- an episode instead of starting it again. Opaque to SQL; the engine versions its encoding.
CREATE TABLE rule_state (
    terminal_id  text PRIMARY KEY,
    state        bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
