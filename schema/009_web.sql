-- haulwatch web: its users, the regions each may see, login sessions, API tokens and failed
-- logins. The web process keeps nothing in memory between requests (several run behind a
-- proxy), so everything a request needs to know who is asking lives here.

-- A user sees the vehicles and violations of its regions (GB/T 2260 prefixes: 320000 a
-- province, 320100 a city, 320102 a county; 000000 the whole country) and may do what its role
-- allows: viewer reads, operator also moves violations along their lifecycle, admin everything.
CREATE TABLE web_users (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9_.@-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    -- libsodium crypto_pwhash_str (argon2id, salt and costs inside); NULL: token-only user.
    password_hash  text CHECK (octet_length(password_hash) <= 256),
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE web_user_regions (
    user_id  bigint NOT NULL REFERENCES web_users (id) ON DELETE CASCADE,
    region   char(6) NOT NULL CHECK (region ~ '^[0-9]{6}$'),
    PRIMARY KEY (user_id, region)
);

-- Only the SHA-256 of a session or API token is stored: a copy of this table logs nobody in.
CREATE TABLE web_sessions (
    token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id     bigint NOT NULL REFERENCES web_users (id) ON DELETE CASCADE,
    peer        text NOT NULL DEFAULT '' CHECK (octet_length(peer) <= 64),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expires ON web_sessions (expires_at);

CREATE TABLE web_tokens (
    token_hash  bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id     bigint NOT NULL REFERENCES web_users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX web_tokens_user ON web_tokens (user_id);

-- Login attempts, for the rate limits per user name and per address (README, "The API").
CREATE TABLE web_login_attempts (
    id         bigserial PRIMARY KEY,
    user_name  text NOT NULL CHECK (octet_length(user_name) <= 256),
    peer       text NOT NULL CHECK (octet_length(peer) <= 64),
    ok         boolean NOT NULL,
    at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX web_login_attempts_user ON web_login_attempts (user_name, at);
CREATE INDEX web_login_attempts_peer ON web_login_attempts (peer, at);

-- Who moved a violation through the API (actor keeps the name, as written by the CLI too).
ALTER TABLE violation_audit ADD COLUMN user_id bigint REFERENCES web_users (id);

-- The SQL LIKE patterns of a user's regions: 320000 -> '32%', 320100 -> '3201%',
-- 320102 -> '320102', 000000 -> '%'. Every query of the web process filters with
-- coalesce(region, '') LIKE ANY(hw_web_scope(user)), computed once per request.
CREATE FUNCTION hw_region_pattern(code text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN code = '000000' THEN '%'
                WHEN right(code, 4) = '0000' THEN left(code, 2) || '%'
                WHEN right(code, 2) = '00' THEN left(code, 4) || '%'
                ELSE code END
$$;

-- hw_violation_transition for a web user: the violation must be in p_scope (else P0002, the
-- same as a violation that does not exist: nobody learns what lies outside their regions), a
-- refused step carries the allowed next state in DETAIL ('none' once closed), and the audit row
-- records the user. Returns the state left.
CREATE FUNCTION hw_web_violation_transition(p_id bigint, p_to text, p_user bigint, p_note text,
                                            p_scope text[])
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    cur text;
    nxt text;
    actor text;
    prev text;
BEGIN
    SELECT state INTO cur FROM violations
     WHERE id = p_id AND coalesce(region, '') LIKE ANY (p_scope);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'violation % does not exist', p_id USING ERRCODE = 'no_data_found';
    END IF;
    SELECT name INTO actor FROM web_users WHERE id = p_user AND NOT disabled;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user % cannot act', p_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    nxt := CASE cur WHEN 'open' THEN 'notified' WHEN 'notified' THEN 'rectifying'
                    WHEN 'rectifying' THEN 'closed' ELSE 'none' END;
    BEGIN
        prev := hw_violation_transition(p_id, p_to, actor, p_note);
    EXCEPTION WHEN SQLSTATE 'HW001' THEN
        RAISE EXCEPTION '%', SQLERRM USING ERRCODE = 'HW001', DETAIL = nxt;
    END;
    UPDATE violation_audit SET user_id = p_user
     WHERE id = (SELECT max(id) FROM violation_audit WHERE violation_id = p_id);
    RETURN prev;
END $$;
