//! Rows as SQLite returns them, and their conversion into the store's records. Text
//! columns holding an enum are parsed here, so a bad value is one clear error. Times decode
//! from their RFC 3339 text (see [`crate::time`]), JSON from its text, booleans from 0/1.

use chrono::{DateTime, Utc};
use moolai_protocol::{DeliveredMessage, Provisioning, Status};
use moolai_store::{
    AuditRecord, ConnectionRecord, MessageRecord, MessageStatus, OrchestratorRecord,
    OrganizationRecord, StatusChange, StoreError,
};
use serde_json::Value;

pub(crate) fn parse_status(s: &str) -> Result<Status, StoreError> {
    Status::parse(s).ok_or_else(|| StoreError::Other(format!("unknown orchestrator status {s:?}")))
}

fn parse_message_status(s: &str) -> Result<MessageStatus, StoreError> {
    MessageStatus::parse(s)
        .ok_or_else(|| StoreError::Other(format!("unknown message status {s:?}")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrchestratorRow {
    orchestrator_id: String,
    organization_id: String,
    organization_name: Option<String>,
    name: Option<String>,
    location: Option<String>,
    status: String,
    last_seen: Option<DateTime<Utc>>,
    is_independent: bool,
    connected: bool,
    health_status: String,
    metadata: Value,
    features: Value,
    session_config: Value,
    config_version: i64,
    config_snapshot: Option<Value>,
    config_snapshot_at: Option<DateTime<Utc>>,
    privacy_mode: bool,
    monitoring_enabled: bool,
    session_id: Option<String>,
    edge_id: Option<String>,
    version: Option<String>,
    last_activity: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<OrchestratorRow> for OrchestratorRecord {
    type Error = StoreError;

    fn try_from(r: OrchestratorRow) -> Result<Self, StoreError> {
        Ok(Self {
            status: parse_status(&r.status)?,
            orchestrator_id: r.orchestrator_id,
            organization_id: r.organization_id,
            organization_name: r.organization_name,
            name: r.name,
            location: r.location,
            last_seen: r.last_seen,
            is_independent: r.is_independent,
            connected: r.connected,
            health_status: r.health_status,
            metadata: r.metadata,
            features: r.features,
            session_config: r.session_config,
            config_version: r.config_version,
            config_snapshot: r.config_snapshot,
            config_snapshot_at: r.config_snapshot_at,
            privacy_mode: r.privacy_mode,
            monitoring_enabled: r.monitoring_enabled,
            session_id: r.session_id,
            edge_id: r.edge_id,
            version: r.version,
            last_activity: r.last_activity,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// What an orchestrator needs to run (see [`Provisioning`]).
#[derive(sqlx::FromRow)]
pub(crate) struct ProvisioningRow {
    pub(crate) orchestrator_id: String,
    pub(crate) organization_id: String,
    pub(crate) name: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) features: Value,
    pub(crate) metadata: Value,
    pub(crate) session_config: Value,
    pub(crate) is_independent: bool,
    pub(crate) privacy_mode: bool,
    pub(crate) monitoring_enabled: bool,
    pub(crate) config_version: i64,
}

impl From<ProvisioningRow> for Provisioning {
    fn from(r: ProvisioningRow) -> Self {
        Self {
            orchestrator_id: r.orchestrator_id,
            organization_id: r.organization_id,
            name: r.name,
            location: r.location,
            features: r.features,
            metadata: r.metadata,
            session_config: r.session_config,
            is_independent: r.is_independent,
            privacy_mode: r.privacy_mode,
            monitoring_enabled: r.monitoring_enabled,
            config_version: r.config_version,
        }
    }
}

/// A row returned by a status-writing statement: the stored status before and after.
#[derive(sqlx::FromRow)]
pub(crate) struct StatusWriteRow {
    pub(crate) orchestrator_id: String,
    pub(crate) organization_id: String,
    pub(crate) previous: String,
    pub(crate) current: String,
    pub(crate) is_independent: bool,
    pub(crate) last_seen: Option<DateTime<Utc>>,
}

impl StatusWriteRow {
    /// The transition, or `None` when the stored status did not change.
    pub(crate) fn into_change(self) -> Result<Option<StatusChange>, StoreError> {
        if self.previous == self.current {
            return Ok(None);
        }
        Ok(Some(StatusChange {
            previous: Some(parse_status(&self.previous)?),
            current: parse_status(&self.current)?,
            orchestrator_id: self.orchestrator_id,
            organization_id: self.organization_id,
            is_independent: self.is_independent,
            last_seen: self.last_seen,
        }))
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct OrganizationRow {
    organization_id: String,
    name: String,
    location: Option<String>,
    is_independent: bool,
    is_active: bool,
    metadata: Value,
    features: Value,
    settings: Value,
    orchestrator_count: i64,
    active_orchestrators: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<OrganizationRow> for OrganizationRecord {
    fn from(r: OrganizationRow) -> Self {
        Self {
            organization_id: r.organization_id,
            name: r.name,
            location: r.location,
            // Active when one of its orchestrators is (derived, like theirs).
            status: if r.active_orchestrators > 0 {
                "active"
            } else {
                "inactive"
            }
            .to_owned(),
            is_independent: r.is_independent,
            is_active: r.is_active,
            metadata: r.metadata,
            features: r.features,
            settings: r.settings,
            orchestrator_count: r.orchestrator_count,
            active_orchestrators: r.active_orchestrators,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct MessageRow {
    id: String,
    orchestrator_id: String,
    organization_id: Option<String>,
    message_type: String,
    content: String,
    message_metadata: Value,
    status: String,
    source: String,
    orchestrator_is_independent: bool,
    delivered_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<MessageRow> for MessageRecord {
    type Error = StoreError;

    fn try_from(r: MessageRow) -> Result<Self, StoreError> {
        Ok(Self {
            status: parse_message_status(&r.status)?,
            id: r.id,
            orchestrator_id: r.orchestrator_id,
            organization_id: r.organization_id,
            message_type: r.message_type,
            content: r.content,
            message_metadata: r.message_metadata,
            source: r.source,
            orchestrator_is_independent: r.orchestrator_is_independent,
            delivered_at: r.delivered_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: String,
    orchestrator_id: String,
    message_type: String,
    content: String,
    message_metadata: Value,
    status: String,
}

impl From<DeliveryRow> for DeliveredMessage {
    fn from(r: DeliveryRow) -> Self {
        Self {
            id: r.id,
            orchestrator_id: r.orchestrator_id,
            message_type: r.message_type,
            content: r.content,
            metadata: r.message_metadata,
            status: r.status,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    client_addr: Option<String>,
    action: String,
    target: Option<String>,
    organization_id: Option<String>,
    details: Value,
    success: bool,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            at: r.at,
            actor: r.actor,
            client_addr: r.client_addr,
            action: r.action,
            target: r.target,
            organization_id: r.organization_id,
            details: r.details,
            success: r.success,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ConnectionRow {
    connection_id: String,
    orchestrator_id: String,
    status: String,
    edge_id: Option<String>,
    remote_addr: Option<String>,
    connected_at: DateTime<Utc>,
    disconnected_at: Option<DateTime<Utc>>,
    disconnect_reason: Option<String>,
}

impl From<ConnectionRow> for ConnectionRecord {
    fn from(r: ConnectionRow) -> Self {
        Self {
            connection_id: r.connection_id,
            orchestrator_id: r.orchestrator_id,
            status: r.status,
            edge_id: r.edge_id,
            remote_addr: r.remote_addr,
            connected_at: r.connected_at,
            disconnected_at: r.disconnected_at,
            disconnect_reason: r.disconnect_reason,
        }
    }
}
