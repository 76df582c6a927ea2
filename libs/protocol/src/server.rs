//! Frames the controller sends to an orchestrator.
//!
//! Deployed clients require `handshake_ack` to be the first frame they receive and ignore
//! types they do not know, so new frames can be added freely.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    HandshakeAck(HandshakeAck),
    Provisioning {
        data: Provisioning,
    },
    ConfigUpdate {
        data: ConfigUpdate,
    },
    /// Independence switched on: the controller no longer supervises this orchestrator.
    StopMonitoring(MonitoringChange),
    /// Independence switched off: supervision (and heartbeats) resume.
    ResumeMonitoring(MonitoringChange),
    Status {
        data: StatusData,
    },
    KeepaliveAck {
        ts: String,
    },
    ControllerHeartbeat {
        ts: String,
    },
    /// An operator accepted a message about this orchestrator.
    Message {
        data: DeliveredMessage,
    },
    /// The controller has durably stored a `message`, `usage` or `update_metadata` frame.
    Ack {
        ack_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    Error(ErrorFrame),
}

impl ServerFrame {
    #[must_use]
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        Self::Error(ErrorFrame {
            code: code.to_owned(),
            message: message.into(),
            retry_after_sec: None,
        })
    }

    /// Serializes to the JSON text sent on the socket.
    #[must_use]
    pub fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string keys.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"error\"}"))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeAck {
    pub success: bool,
    /// Same as `orchestrator_id`; the deployed client reads this name.
    pub orch_id: String,
    pub orchestrator_id: String,
    pub ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// How often the controller expects `i_am_alive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_sec: Option<u64>,
}

/// Everything an orchestrator needs to run, sent after every hello (level-triggered).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provisioning {
    pub orchestrator_id: String,
    pub organization_id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub features: Value,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub session_config: Value,
    pub is_independent: bool,
    #[serde(default)]
    pub privacy_mode: bool,
    #[serde(default = "default_true")]
    pub monitoring_enabled: bool,
    /// Monotonic version of `session_config`; bumped by every operator change.
    #[serde(default)]
    pub config_version: i64,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigUpdate {
    pub orchestrator_id: String,
    pub session_config: Value,
    pub config_version: i64,
    pub ts: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitoringChange {
    pub orchestrator_id: String,
    pub is_independent: bool,
    pub ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusData {
    pub orchestrator_id: String,
    /// `active`, `inactive` or `independent`.
    pub status: String,
    pub is_independent: bool,
    #[serde(default)]
    pub last_seen: Option<String>,
    pub ts: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveredMessage {
    pub id: String,
    pub orchestrator_id: String,
    pub message_type: String,
    pub content: String,
    #[serde(default)]
    pub metadata: Value,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub code: String,
    pub message: String,
    /// Set when the controller asks the client to slow down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_sec: Option<u64>,
}
