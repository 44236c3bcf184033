-- The log. One row per event; `position` is dense from 1 in commit order and
-- assigned by the group committer under an advisory lock (see src/postgres.rs).
-- Rows are never updated or deleted: `verify` detects it if they are.
CREATE TABLE events (
    position       BIGINT      NOT NULL,
    stream_id      TEXT        NOT NULL,
    stream_version BIGINT      NOT NULL,
    event_id       UUID        NOT NULL,
    event_type     TEXT        NOT NULL,
    schema_version INT         NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    metadata       BYTEA       NOT NULL,
    payload        BYTEA       NOT NULL,
    prev_hash      BYTEA       NOT NULL,
    hash           BYTEA       NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (position),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_position_check CHECK (position > 0),
    CONSTRAINT events_stream_version_check CHECK (stream_version > 0),
    CONSTRAINT events_schema_version_check CHECK (schema_version >= 0),
    CONSTRAINT events_prev_hash_check CHECK (octet_length(prev_hash) = 32),
    CONSTRAINT events_hash_check CHECK (octet_length(hash) = 32)
);
