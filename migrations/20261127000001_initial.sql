-- Initial schema of the Moolai Controller.
--
-- The four tables of the original controller keep their names and columns (with TIMESTAMPTZ
-- and JSONB); the columns and tables added after them serve the Rust services:
-- sessions per socket, derived-status inputs, config versions, deliveries, usage, audit,
-- operator users and login sessions.

CREATE TABLE organizations (
    organization_id VARCHAR(255) PRIMARY KEY,
    name            VARCHAR(255) NOT NULL,
    location        VARCHAR(255),
    metadata        JSONB NOT NULL DEFAULT '{}',
    features        JSONB NOT NULL DEFAULT '{}',
    last_seen       TIMESTAMPTZ,
    status          VARCHAR(50) NOT NULL DEFAULT 'inactive',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    settings        JSONB NOT NULL DEFAULT '{}',
    is_independent  BOOLEAN NOT NULL DEFAULT FALSE
);

-- The hot table: every heartbeat flush rewrites last_seen. A lower fillfactor leaves room on
-- each page so those updates stay HOT (no index maintenance), and last_seen is deliberately
-- not indexed for the same reason.
CREATE TABLE orchestrator_instances (
    orchestrator_id       VARCHAR(255) PRIMARY KEY,
    organization_id       VARCHAR(255) NOT NULL REFERENCES organizations (organization_id),
    organization_name     VARCHAR(255),
    name                  VARCHAR(255),
    location              VARCHAR(255),
    -- Last status written by the liveness sweep / heartbeat flush, used to detect and
    -- publish transitions. Reads derive the status instead of trusting this column.
    status                VARCHAR(50) NOT NULL DEFAULT 'inactive',
    last_seen             TIMESTAMPTZ,
    health_status         VARCHAR(50) NOT NULL DEFAULT 'healthy',
    is_independent        BOOLEAN NOT NULL DEFAULT FALSE,
    metadata              JSONB NOT NULL DEFAULT '{}',
    features              JSONB NOT NULL DEFAULT '{}',
    session_config        JSONB NOT NULL DEFAULT '{}',
    privacy_mode          BOOLEAN NOT NULL DEFAULT FALSE,
    monitoring_enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    internal_url          VARCHAR(500),
    database_url          VARCHAR(500),
    redis_url             VARCHAR(500),
    container_id          VARCHAR(255),
    image_name            VARCHAR(255),
    environment_variables JSONB NOT NULL DEFAULT '{}',
    phoenix_endpoint      VARCHAR(500),
    admin_email           VARCHAR(255),
    support_email         VARCHAR(255),
    website               VARCHAR(255),
    last_activity         TIMESTAMPTZ,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The socket session that registered last; a disconnect of any other session is ignored,
    -- so a replaced socket's cleanup cannot mark the new one inactive.
    session_id            VARCHAR(64),
    edge_id               VARCHAR(255),
    -- Set by an explicit disconnect of the current session, cleared by the next hello.
    disconnected_at       TIMESTAMPTZ,
    config_version        BIGINT NOT NULL DEFAULT 0,
    config_snapshot       JSONB,
    config_snapshot_at    TIMESTAMPTZ
) WITH (fillfactor = 70);

CREATE INDEX orchestrator_instances_organization_idx ON orchestrator_instances (organization_id);

CREATE TABLE orchestrator_messages (
    id               VARCHAR(255) PRIMARY KEY,
    orchestrator_id  VARCHAR(255) NOT NULL,
    message_type     VARCHAR(50) NOT NULL CHECK (message_type IN ('recommendation', 'monitoring')),
    content          TEXT NOT NULL,
    message_metadata JSONB NOT NULL DEFAULT '{}',
    status           VARCHAR(50) NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'accepted', 'dismissed')),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    organization_id  VARCHAR(255),
    -- 'api' (operator or another system) or 'orchestrator' (sent up in a frame).
    source           VARCHAR(50) NOT NULL DEFAULT 'api',
    -- When an accepted message was written to the orchestrator's socket, and on which session.
    delivered_at     TIMESTAMPTZ,
    delivered_session_id VARCHAR(64)
);

CREATE INDEX orchestrator_messages_orchestrator_idx ON orchestrator_messages (orchestrator_id, created_at DESC);
CREATE INDEX orchestrator_messages_status_idx ON orchestrator_messages (status, created_at DESC);
-- Accepted but undelivered: looked up on every hello.
CREATE INDEX orchestrator_messages_undelivered_idx ON orchestrator_messages (orchestrator_id)
    WHERE status = 'accepted' AND delivered_at IS NULL;

-- One row per socket session (connection_id = session id).
CREATE TABLE orchestrator_connections (
    connection_id     VARCHAR(255) PRIMARY KEY,
    orchestrator_id   VARCHAR(255) NOT NULL,
    status            VARCHAR(50) NOT NULL,
    last_seen         TIMESTAMPTZ,
    metadata          JSONB NOT NULL DEFAULT '{}',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    edge_id           VARCHAR(255),
    remote_addr       VARCHAR(255),
    disconnected_at   TIMESTAMPTZ,
    disconnect_reason VARCHAR(64)
);

CREATE INDEX orchestrator_connections_orchestrator_idx ON orchestrator_connections (orchestrator_id, created_at DESC);

-- Usage reported by orchestrators (deltas since their previous report).
CREATE TABLE usage_records (
    id              BIGSERIAL PRIMARY KEY,
    orchestrator_id VARCHAR(255) NOT NULL,
    organization_id VARCHAR(255) NOT NULL,
    model           VARCHAR(255),
    requests        BIGINT NOT NULL DEFAULT 0 CHECK (requests >= 0),
    input_tokens    BIGINT NOT NULL DEFAULT 0 CHECK (input_tokens >= 0),
    output_tokens   BIGINT NOT NULL DEFAULT 0 CHECK (output_tokens >= 0),
    cost            DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (cost >= 0),
    reported_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX usage_records_reported_idx ON usage_records (reported_at);
CREATE INDEX usage_records_org_idx ON usage_records (organization_id, reported_at);

-- Append-only record of who did what.
CREATE TABLE audit_log (
    id              BIGSERIAL PRIMARY KEY,
    at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor           VARCHAR(255) NOT NULL,
    client_addr     VARCHAR(255),
    action          VARCHAR(100) NOT NULL,
    target          VARCHAR(512),
    organization_id VARCHAR(255),
    details         JSONB NOT NULL DEFAULT '{}',
    success         BOOLEAN NOT NULL DEFAULT TRUE
);

CREATE INDEX audit_log_at_idx ON audit_log (at DESC);

-- Operator accounts. Credentials are added by the accounts feature; until then the
-- configured administrator is recorded here so the fleet overview can count users.
CREATE TABLE users (
    username      VARCHAR(255) PRIMARY KEY,
    role          VARCHAR(50) NOT NULL,
    password_hash TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Login sessions: only the SHA-256 of the token is stored.
CREATE TABLE login_sessions (
    token_hash  CHAR(64) PRIMARY KEY,
    username    VARCHAR(255) NOT NULL,
    role        VARCHAR(50) NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    client_addr VARCHAR(255)
);
