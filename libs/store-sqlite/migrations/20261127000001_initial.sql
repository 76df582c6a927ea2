-- Initial schema of the Moolai Controller's embedded backend (SQLite).
--
-- The same tables and columns as the PostgreSQL schema (../../../migrations), in SQLite's
-- dialect. How the types map:
--
-- - Timestamps are TEXT in RFC 3339 UTC with a fixed microsecond precision,
--   'YYYY-MM-DDTHH:MM:SS.ffffffZ' (PostgreSQL keeps microseconds too). Every value has the
--   same shape, so comparing two strings compares the two times: `last_seen > ?`, ORDER BY
--   and the indexes on times work on the text. A CHECK on each column keeps that promise.
--   The store always writes its own clock's time; the defaults only serve hand-written rows.
-- - JSONB is TEXT holding valid JSON (checked), read and written with SQLite's json functions.
-- - BOOLEAN is INTEGER 0 or 1 (checked).
-- - VARCHAR(n) is TEXT with the same length limit (checked), so a value PostgreSQL refuses is
--   refused here too.
-- - Tables are STRICT: a value of the wrong type is an error, not silently converted.
-- - PostgreSQL's fillfactor has no SQLite equivalent; last_seen stays unindexed for the same
--   reason (every heartbeat flush rewrites it).

CREATE TABLE organizations (
    organization_id TEXT PRIMARY KEY NOT NULL CHECK (length(organization_id) <= 255),
    name            TEXT NOT NULL CHECK (length(name) <= 255),
    location        TEXT CHECK (length(location) <= 255),
    metadata        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    features        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(features)),
    last_seen       TEXT
                    CHECK (last_seen GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    status          TEXT NOT NULL DEFAULT 'inactive' CHECK (length(status) <= 50),
    created_at      TEXT NOT NULL
                    DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                    CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at      TEXT NOT NULL
                    DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                    CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    is_active       INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    settings        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(settings)),
    is_independent  INTEGER NOT NULL DEFAULT 0 CHECK (is_independent IN (0, 1))
) STRICT;

-- The hot table: every heartbeat flush rewrites last_seen.
CREATE TABLE orchestrator_instances (
    orchestrator_id       TEXT PRIMARY KEY NOT NULL CHECK (length(orchestrator_id) <= 255),
    organization_id       TEXT NOT NULL REFERENCES organizations (organization_id)
                          CHECK (length(organization_id) <= 255),
    organization_name     TEXT CHECK (length(organization_name) <= 255),
    name                  TEXT CHECK (length(name) <= 255),
    location              TEXT CHECK (length(location) <= 255),
    -- Last status written by the liveness sweep / heartbeat flush, used to detect and
    -- publish transitions. Reads derive the status instead of trusting this column.
    status                TEXT NOT NULL DEFAULT 'inactive' CHECK (length(status) <= 50),
    last_seen             TEXT
                          CHECK (last_seen GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    health_status         TEXT NOT NULL DEFAULT 'healthy' CHECK (length(health_status) <= 50),
    is_independent        INTEGER NOT NULL DEFAULT 0 CHECK (is_independent IN (0, 1)),
    metadata              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    features              TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(features)),
    session_config        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(session_config)),
    privacy_mode          INTEGER NOT NULL DEFAULT 0 CHECK (privacy_mode IN (0, 1)),
    monitoring_enabled    INTEGER NOT NULL DEFAULT 1 CHECK (monitoring_enabled IN (0, 1)),
    internal_url          TEXT CHECK (length(internal_url) <= 500),
    database_url          TEXT CHECK (length(database_url) <= 500),
    redis_url             TEXT CHECK (length(redis_url) <= 500),
    container_id          TEXT CHECK (length(container_id) <= 255),
    image_name            TEXT CHECK (length(image_name) <= 255),
    environment_variables TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(environment_variables)),
    phoenix_endpoint      TEXT CHECK (length(phoenix_endpoint) <= 500),
    admin_email           TEXT CHECK (length(admin_email) <= 255),
    support_email         TEXT CHECK (length(support_email) <= 255),
    website               TEXT CHECK (length(website) <= 255),
    last_activity         TEXT
                          CHECK (last_activity GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    created_at            TEXT NOT NULL
                          DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                          CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at            TEXT NOT NULL
                          DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                          CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    -- The socket session that registered last; a disconnect of any other session is ignored,
    -- so a replaced socket's cleanup cannot mark the new one inactive.
    session_id            TEXT CHECK (length(session_id) <= 64),
    edge_id               TEXT CHECK (length(edge_id) <= 255),
    -- Set by an explicit disconnect of the current session, cleared by the next hello.
    disconnected_at       TEXT
                          CHECK (disconnected_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    config_version        INTEGER NOT NULL DEFAULT 0,
    config_snapshot       TEXT CHECK (json_valid(config_snapshot)),
    config_snapshot_at    TEXT
                          CHECK (config_snapshot_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX orchestrator_instances_organization_idx ON orchestrator_instances (organization_id);

CREATE TABLE orchestrator_messages (
    id               TEXT PRIMARY KEY NOT NULL CHECK (length(id) <= 255),
    orchestrator_id  TEXT NOT NULL CHECK (length(orchestrator_id) <= 255),
    message_type     TEXT NOT NULL CHECK (message_type IN ('recommendation', 'monitoring')),
    content          TEXT NOT NULL,
    message_metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(message_metadata)),
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'accepted', 'dismissed')),
    created_at       TEXT NOT NULL
                     DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                     CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at       TEXT NOT NULL
                     DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                     CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    organization_id  TEXT CHECK (length(organization_id) <= 255),
    -- 'api' (operator or another system) or 'orchestrator' (sent up in a frame).
    source           TEXT NOT NULL DEFAULT 'api' CHECK (length(source) <= 50),
    -- When an accepted message was written to the orchestrator's socket, and on which session.
    delivered_at     TEXT
                     CHECK (delivered_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    delivered_session_id TEXT CHECK (length(delivered_session_id) <= 64)
) STRICT;

CREATE INDEX orchestrator_messages_orchestrator_idx ON orchestrator_messages (orchestrator_id, created_at DESC);
CREATE INDEX orchestrator_messages_status_idx ON orchestrator_messages (status, created_at DESC);
-- Accepted but undelivered: looked up on every hello.
CREATE INDEX orchestrator_messages_undelivered_idx ON orchestrator_messages (orchestrator_id)
    WHERE status = 'accepted' AND delivered_at IS NULL;

-- One row per socket session (connection_id = session id).
CREATE TABLE orchestrator_connections (
    connection_id     TEXT PRIMARY KEY NOT NULL CHECK (length(connection_id) <= 255),
    orchestrator_id   TEXT NOT NULL CHECK (length(orchestrator_id) <= 255),
    status            TEXT NOT NULL CHECK (length(status) <= 50),
    last_seen         TEXT
                      CHECK (last_seen GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    metadata          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    created_at        TEXT NOT NULL
                      DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                      CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at        TEXT NOT NULL
                      DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                      CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    edge_id           TEXT CHECK (length(edge_id) <= 255),
    remote_addr       TEXT CHECK (length(remote_addr) <= 255),
    disconnected_at   TEXT
                      CHECK (disconnected_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    disconnect_reason TEXT CHECK (length(disconnect_reason) <= 64)
) STRICT;

CREATE INDEX orchestrator_connections_orchestrator_idx ON orchestrator_connections (orchestrator_id, created_at DESC);

-- Usage reported by orchestrators (deltas since their previous report).
CREATE TABLE usage_records (
    id              INTEGER PRIMARY KEY,
    orchestrator_id TEXT NOT NULL CHECK (length(orchestrator_id) <= 255),
    organization_id TEXT NOT NULL CHECK (length(organization_id) <= 255),
    model           TEXT CHECK (length(model) <= 255),
    requests        INTEGER NOT NULL DEFAULT 0 CHECK (requests >= 0),
    input_tokens    INTEGER NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   INTEGER NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cost            REAL NOT NULL DEFAULT 0 CHECK (cost >= 0),
    reported_at     TEXT NOT NULL
                    CHECK (reported_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX usage_records_reported_idx ON usage_records (reported_at);
CREATE INDEX usage_records_org_idx ON usage_records (organization_id, reported_at);

-- Append-only record of who did what. AUTOINCREMENT: like PostgreSQL's sequence, an id is
-- never handed out twice, even after the newest rows are deleted.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT NOT NULL
                    DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                    CHECK (at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    actor           TEXT NOT NULL CHECK (length(actor) <= 255),
    client_addr     TEXT CHECK (length(client_addr) <= 255),
    action          TEXT NOT NULL CHECK (length(action) <= 100),
    target          TEXT CHECK (length(target) <= 512),
    organization_id TEXT CHECK (length(organization_id) <= 255),
    details         TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    success         INTEGER NOT NULL DEFAULT 1 CHECK (success IN (0, 1))
) STRICT;

CREATE INDEX audit_log_at_idx ON audit_log (at DESC);

-- Operator accounts. Credentials are added by the accounts feature; until then the
-- configured administrator is recorded here so the fleet overview can count users.
CREATE TABLE users (
    username      TEXT PRIMARY KEY NOT NULL CHECK (length(username) <= 255),
    role          TEXT NOT NULL CHECK (length(role) <= 50),
    password_hash TEXT,
    created_at    TEXT NOT NULL
                  DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                  CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    updated_at    TEXT NOT NULL
                  DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                  CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

-- Login sessions: only the SHA-256 of the token is stored.
CREATE TABLE login_sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL CHECK (length(token_hash) <= 64),
    username    TEXT NOT NULL CHECK (length(username) <= 255),
    role        TEXT NOT NULL CHECK (length(role) <= 50),
    created_at  TEXT NOT NULL
                DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    expires_at  TEXT NOT NULL
                CHECK (expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    client_addr TEXT CHECK (length(client_addr) <= 255)
) STRICT;
