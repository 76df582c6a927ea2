-- Security: operator accounts with roles and organization scopes, API tokens for machines,
-- orchestrator credentials (enrollment and per-orchestrator tokens), and which credential
-- each orchestrator session used. The same tables and columns as the PostgreSQL migration
-- of the same name, in SQLite's dialect (see 20261127000001_initial.sql for the type mapping).
--
-- Tokens are stored only as the SHA-256 of the token (hex): they are 32 random bytes, so a
-- fast hash is enough and the lookup is an index probe. Passwords are argon2id PHC strings.
--
-- SQLite cannot add a CHECK to an existing column: users.role is checked by the store, which
-- only writes the three roles.

-- Organizations an org_admin or viewer may see: a JSON array of organization ids.
ALTER TABLE users ADD COLUMN organization_ids TEXT NOT NULL DEFAULT '[]'
    CHECK (json_valid(organization_ids) AND json_type(organization_ids) = 'array');
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1));

CREATE INDEX login_sessions_username_idx ON login_sessions (username);

CREATE TABLE api_tokens (
    token_id         TEXT PRIMARY KEY NOT NULL CHECK (length(token_id) <= 64),
    name             TEXT NOT NULL CHECK (length(name) <= 255),
    token_hash       TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    role             TEXT NOT NULL CHECK (role IN ('superadmin', 'org_admin', 'viewer')),
    organization_ids TEXT NOT NULL DEFAULT '[]'
                     CHECK (json_valid(organization_ids) AND json_type(organization_ids) = 'array'),
    created_by       TEXT NOT NULL CHECK (length(created_by) <= 255),
    created_at       TEXT NOT NULL
                     DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                     CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    expires_at       TEXT CHECK (expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    revoked_at       TEXT CHECK (revoked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z')
) STRICT;

CREATE INDEX api_tokens_created_idx ON api_tokens (created_at DESC);

-- 'enrollment': any orchestrator id of one organization; 'orchestrator': exactly one.
CREATE TABLE orchestrator_credentials (
    credential_id   TEXT PRIMARY KEY NOT NULL CHECK (length(credential_id) <= 64),
    kind            TEXT NOT NULL CHECK (kind IN ('enrollment', 'orchestrator')),
    token_hash      TEXT NOT NULL UNIQUE CHECK (length(token_hash) = 64),
    organization_id TEXT NOT NULL REFERENCES organizations (organization_id)
                    CHECK (length(organization_id) <= 255),
    orchestrator_id TEXT CHECK (length(orchestrator_id) <= 255),
    name            TEXT CHECK (length(name) <= 255),
    created_by      TEXT NOT NULL CHECK (length(created_by) <= 255),
    created_at      TEXT NOT NULL
                    DEFAULT (strftime('%Y-%m-%dT%H:%M:%S', 'now') || substr(strftime('%f', 'now'), 3) || '000Z')
                    CHECK (created_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    expires_at      TEXT CHECK (expires_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    revoked_at      TEXT CHECK (revoked_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'),
    CHECK ((kind = 'orchestrator') = (orchestrator_id IS NOT NULL))
) STRICT;

CREATE INDEX orchestrator_credentials_organization_idx
    ON orchestrator_credentials (organization_id, created_at DESC);
CREATE INDEX orchestrator_credentials_orchestrator_idx
    ON orchestrator_credentials (orchestrator_id) WHERE orchestrator_id IS NOT NULL;

-- The credential of the current session (instances) and of each session (connections).
ALTER TABLE orchestrator_instances ADD COLUMN credential_id TEXT CHECK (length(credential_id) <= 64);
ALTER TABLE orchestrator_connections ADD COLUMN credential_id TEXT CHECK (length(credential_id) <= 64);
CREATE INDEX orchestrator_instances_credential_idx
    ON orchestrator_instances (credential_id) WHERE credential_id IS NOT NULL;

CREATE INDEX audit_log_organization_idx ON audit_log (organization_id, at DESC);
