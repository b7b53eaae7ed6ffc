-- JT/T 809 (issue 10): the subordinate platforms that log in to the centre's main link, the up
-- and down times of every link (平台连通率), and their refused logins.

-- One subordinate platform (enterprise or national). The protocol sends the password in clear
-- (8 bytes in 0x1001), so only its libsodium crypto_pwhash_str (argon2id) string is kept and a
-- login is verified against it; a leaked table gives nobody the password. center_id is the
-- access code (M1 in the header's GNSS centre id field, and in 2019's login body): it names the
-- platform on the wire, so it is unique. m1/ia1/ic1: the platform's encryption keys, all three or
-- none (NULL: it never encrypts; a frame with the encryption flag is then refused).
CREATE TABLE platforms (
    id            text PRIMARY KEY CHECK (id ~ '^[0-9A-Za-z_.-]{1,32}$'),
    user_id       bigint NOT NULL CHECK (user_id BETWEEN 0 AND 4294967295),
    password_hash text NOT NULL CHECK (octet_length(password_hash) BETWEEN 1 AND 128),
    center_id     bigint NOT NULL UNIQUE CHECK (center_id BETWEEN 0 AND 4294967295),
    version       smallint NOT NULL DEFAULT 2019 CHECK (version IN (2011, 2019)),
    m1            bigint CHECK (m1 BETWEEN 0 AND 4294967295),
    ia1           bigint CHECK (ia1 BETWEEN 0 AND 4294967295),
    ic1           bigint CHECK (ic1 BETWEEN 0 AND 4294967295),
    allow_addr    inet,               -- NULL: any source address may log in
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled      boolean NOT NULL DEFAULT false,
    CHECK ((m1 IS NULL) = (ia1 IS NULL) AND (ia1 IS NULL) = (ic1 IS NULL))
);

-- Every link's life: a row when it comes up (main: accepted 0x1001; slave: 0x9002 ok), down_at
-- and reason when it goes down (logout, peer closed, replaced by a second login, strikes,
-- daemon stop). A row still open when no daemon holds that link was left by a daemon that died:
-- its down time is unknown (between its last traffic and the next start).
CREATE TABLE platform_links (
    id           bigserial PRIMARY KEY,
    platform     text NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
    link         text NOT NULL CHECK (link IN ('main', 'slave')),
    remote_addr  text CHECK (octet_length(remote_addr) <= 64),   -- "ip:port"
    up_at        timestamptz NOT NULL DEFAULT now(),
    down_at      timestamptz CHECK (down_at >= up_at),
    reason       text CHECK (octet_length(reason) <= 200)
);
CREATE INDEX platform_links_platform ON platform_links (platform, up_at);
CREATE INDEX platform_links_open ON platform_links (platform) WHERE down_at IS NULL;

-- Refused 0x1001 logins are auth_refusals rows of protocol 'jt809' (terminal_id: the claimed
-- access code).
ALTER TABLE auth_refusals DROP CONSTRAINT auth_refusals_protocol_check,
    ADD CONSTRAINT auth_refusals_protocol_check CHECK (protocol IN ('pb', 'jt808', 'jt809'));

-- Terminal ids of the form jt809:ACCESSCODE:PLATE:COLOUR (a plate no registry vehicle has) are
-- only ever stored where a fix or its consequences go: positions, violations, terminal_state and
-- the rule tables carry no CHECK on terminal_id, so they take it as it is. terminals and
-- vehicles keep theirs ('^[0-9A-Za-z_-]{1,32}$'): such an id is never provisioned, and a plate
-- found in the registry is stored under that vehicle's own terminal id.
