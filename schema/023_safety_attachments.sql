-- Evidence of active-safety alarms (苏标 attachments): one row per file a terminal announced
-- for an alarm and started to upload to the attachment listener (docs/attachments.md).
-- alarm_no is the alarm identification number in its text form TERMINAL-YYMMDDhhmmss-SEQ; the
-- alarm itself is a row of safety_alarms, joined on alarm_no (no foreign key: a file may arrive
-- before or without its alarm row, and the alarm's table is not this migration's).
-- path is where the daemon keeps the file (attachment_dir/ALARM/NAME; ".part" until complete);
-- received counts the distinct bytes on disk; sha256 is set when the file is complete.
CREATE TABLE safety_attachments (
    id bigserial PRIMARY KEY,
    alarm_no text NOT NULL CHECK (octet_length(alarm_no) <= 64),
    unique_no text CHECK (octet_length(unique_no) <= 64),
    terminal_id text NOT NULL CHECK (octet_length(terminal_id) <= 32),
    name text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 255),
    type smallint NOT NULL CHECK (type BETWEEN 0 AND 255),
    size bigint NOT NULL CHECK (size >= 0),
    path text NOT NULL,
    received bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= size),
    sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    complete boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    UNIQUE (alarm_no, name),
    CHECK (NOT complete OR (sha256 IS NOT NULL AND received = size))
);
CREATE INDEX safety_attachments_terminal ON safety_attachments (terminal_id, created_at);
