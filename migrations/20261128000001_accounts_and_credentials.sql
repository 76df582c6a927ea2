-- Security: operator accounts with roles and organization scopes, API tokens for machines,
-- orchestrator credentials (enrollment and per-orchestrator tokens), and which credential
-- each orchestrator session used.
--
-- Tokens are stored only as the SHA-256 of the token (hex). The tokens are 32 random bytes,
-- so a fast hash is enough (nothing to brute-force) and lets the lookup be an index probe.
-- Passwords are argon2id PHC strings in users.password_hash (computed by the api).

-- Roles are 'superadmin', 'org_admin' or 'viewer'. NOT VALID: rows written before this
-- migration are not re-checked (they only ever held 'superadmin').
ALTER TABLE users
    ADD CONSTRAINT users_role_check CHECK (role IN ('superadmin', 'org_admin', 'viewer')) NOT VALID;
-- Organizations an org_admin or viewer may see: a JSON array of organization ids. An array
-- column rather than a join table: it is read with the user on every request and written
-- only when an operator edits the user.
ALTER TABLE users ADD COLUMN organization_ids JSONB NOT NULL DEFAULT '[]'
    CHECK (jsonb_typeof(organization_ids) = 'array');
ALTER TABLE users ADD COLUMN disabled BOOLEAN NOT NULL DEFAULT FALSE;

-- A user's sessions are deleted when the user changes or is deleted.
CREATE INDEX login_sessions_username_idx ON login_sessions (username);

CREATE TABLE api_tokens (
    token_id         VARCHAR(64) PRIMARY KEY,
    name             VARCHAR(255) NOT NULL,
    token_hash       CHAR(64) NOT NULL UNIQUE,
    role             VARCHAR(50) NOT NULL CHECK (role IN ('superadmin', 'org_admin', 'viewer')),
    organization_ids JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(organization_ids) = 'array'),
    created_by       VARCHAR(255) NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at       TIMESTAMPTZ,
    revoked_at       TIMESTAMPTZ
);

CREATE INDEX api_tokens_created_idx ON api_tokens (created_at DESC);

-- 'enrollment': any orchestrator id of one organization; 'orchestrator': exactly one.
CREATE TABLE orchestrator_credentials (
    credential_id   VARCHAR(64) PRIMARY KEY,
    kind            VARCHAR(20) NOT NULL CHECK (kind IN ('enrollment', 'orchestrator')),
    token_hash      CHAR(64) NOT NULL UNIQUE,
    organization_id VARCHAR(255) NOT NULL REFERENCES organizations (organization_id),
    orchestrator_id VARCHAR(255),
    name            VARCHAR(255),
    created_by      VARCHAR(255) NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ,
    CHECK ((kind = 'orchestrator') = (orchestrator_id IS NOT NULL))
);

CREATE INDEX orchestrator_credentials_organization_idx
    ON orchestrator_credentials (organization_id, created_at DESC);
-- "Does this orchestrator have its own active credential?" on every enrollment hello.
CREATE INDEX orchestrator_credentials_orchestrator_idx
    ON orchestrator_credentials (orchestrator_id) WHERE orchestrator_id IS NOT NULL;

-- The credential of the current session (instances) and of each session (connections).
-- Heartbeat flushes never write it, so the index does not cost the hot path its HOT updates.
ALTER TABLE orchestrator_instances ADD COLUMN credential_id VARCHAR(64);
ALTER TABLE orchestrator_connections ADD COLUMN credential_id VARCHAR(64);
CREATE INDEX orchestrator_instances_credential_idx
    ON orchestrator_instances (credential_id) WHERE credential_id IS NOT NULL;

-- Scoped readers list the audit log of their organizations.
CREATE INDEX audit_log_organization_idx ON audit_log (organization_id, at DESC);
