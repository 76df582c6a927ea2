//! Frames an orchestrator sends to the controller.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::validate::{
    MAX_MESSAGE_CONTENT, ValidationError, validate_id, validate_object, validate_text,
};

/// Every frame an orchestrator may send, tagged by `"type"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// HLD dialect hello.
    Register(Register),
    /// Deployed-client dialect hello.
    Handshake(Handshake),
    /// Heartbeat, with an id (HLD) or without one (deployed client; the socket is bound).
    IAmAlive(Heartbeat),
    RequestStatus(OptionalId),
    UpdateMetadata(UpdateMetadata),
    ProvisioningRequest(OptionalId),
    /// The orchestrator's effective configuration.
    OConfigSnapshot(ConfigSnapshot),
    Keepalive(Keepalive),
    /// A recommendation or monitoring notice raised by the orchestrator itself.
    Message(MessageFrame),
    /// Usage counters (requests, tokens, cost) since the previous report.
    Usage(UsageFrame),
}

impl ClientFrame {
    /// The wire name of this frame's type.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Register(_) => "register",
            Self::Handshake(_) => "handshake",
            Self::IAmAlive(_) => "i_am_alive",
            Self::RequestStatus(_) => "request_status",
            Self::UpdateMetadata(_) => "update_metadata",
            Self::ProvisioningRequest(_) => "provisioning_request",
            Self::OConfigSnapshot(_) => "o_config_snapshot",
            Self::Keepalive(_) => "keepalive",
            Self::Message(_) => "message",
            Self::Usage(_) => "usage",
        }
    }

    /// The id a frame claims for itself, if any; the edge rejects frames whose id differs
    /// from the one the socket is bound to.
    #[must_use]
    pub fn claimed_id(&self) -> Option<&str> {
        match self {
            Self::IAmAlive(h) => h.orchestrator_id.as_deref(),
            Self::RequestStatus(o) | Self::ProvisioningRequest(o) => o.orchestrator_id.as_deref(),
            Self::UpdateMetadata(u) => u.orchestrator_id.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Register {
    pub orchestrator_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handshake {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub data: HandshakeData,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandshakeData {
    pub orchestrator_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Value>,
    /// Usage since the previous report, piggybacked on the heartbeat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsagePayload>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OptionalId {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orchestrator_id: Option<String>,
    pub metadata: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSnapshot {
    /// The effective configuration; deployed clients send it under `data`, others under `config`.
    #[serde(default, alias = "config")]
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Keepalive {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageFrame {
    /// `recommendation` or `monitoring`.
    pub message_type: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageFrame {
    pub usage: UsagePayload,
}

/// One usage entry or a list of them (one per model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UsagePayload {
    One(UsageEntry),
    Many(Vec<UsageEntry>),
}

impl UsagePayload {
    #[must_use]
    pub fn into_entries(self) -> Vec<UsageEntry> {
        match self {
            Self::One(e) => vec![e],
            Self::Many(v) => v,
        }
    }

    /// # Errors
    /// `invalid_usage` when a counter is negative or not finite, or there are too many entries.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let entries: &[UsageEntry] = match self {
            Self::One(e) => std::slice::from_ref(e),
            Self::Many(v) => v,
        };
        if entries.len() > 64 {
            return Err(ValidationError::new(
                "invalid_usage",
                "at most 64 usage entries per report",
            ));
        }
        for e in entries {
            if !e.cost.is_finite() || e.cost < 0.0 {
                return Err(ValidationError::new(
                    "invalid_usage",
                    "cost must be a finite, non-negative number",
                ));
            }
            validate_text("model", e.model.as_deref())?;
        }
        Ok(())
    }
}

/// Usage counters since the previous report (deltas, not running totals).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsageEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub requests: u64,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// Cost in US dollars.
    #[serde(default)]
    pub cost: f64,
}

/// A normalized hello, whichever dialect it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub dialect: Dialect,
    pub orchestrator_id: String,
    pub organization_id: Option<String>,
    pub name: Option<String>,
    pub location: Option<String>,
    pub features: Option<Value>,
    pub metadata: Map<String, Value>,
    pub auth_token: Option<String>,
}

/// Which of the two client dialects a socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// `register` hello, ids in every frame.
    Hld,
    /// `handshake` hello, ids bound to the socket.
    Deployed,
}

impl Hello {
    /// Normalizes a hello frame; `None` when the frame is not a hello.
    #[must_use]
    pub fn from_frame(frame: ClientFrame) -> Option<Self> {
        let (dialect, id, org, metadata, token) = match frame {
            ClientFrame::Register(r) => (
                Dialect::Hld,
                r.orchestrator_id,
                r.organization_id,
                r.metadata,
                r.auth_token,
            ),
            ClientFrame::Handshake(h) => (
                Dialect::Deployed,
                h.data.orchestrator_id,
                h.data.organization_id,
                h.data.metadata,
                h.auth_token.or(h.data.auth_token),
            ),
            _ => return None,
        };
        let mut metadata = match metadata {
            Some(Value::Object(m)) => m,
            // Not an object: validation below reports it.
            Some(other) => {
                let mut m = Map::new();
                m.insert("__invalid".into(), other);
                m
            }
            None => Map::new(),
        };
        // A token put inside the metadata is still a token: taken out (metadata is stored and
        // served to operators; a secret must never be).
        let token = match metadata.remove("auth_token") {
            Some(Value::String(t)) => token.or(Some(t)),
            _ => token,
        };
        let text = |k: &str| metadata.get(k).and_then(Value::as_str).map(str::to_owned);
        let organization_id = org.or_else(|| text("organization_id"));
        Some(Self {
            dialect,
            name: text("name"),
            location: text("location"),
            features: metadata.get("features").cloned(),
            orchestrator_id: id,
            organization_id,
            metadata,
            auth_token: token,
        })
    }

    /// # Errors
    /// The first rule the hello breaks.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_id("orchestrator_id", &self.orchestrator_id)?;
        if let Some(org) = &self.organization_id {
            validate_id("organization_id", org)?;
        }
        if self.metadata.contains_key("__invalid") {
            return Err(ValidationError::new(
                "invalid_field",
                "metadata must be a JSON object",
            ));
        }
        validate_text("name", self.name.as_deref())?;
        validate_text("location", self.location.as_deref())?;
        validate_object("features", self.features.as_ref())?;
        Ok(())
    }
}

impl MessageFrame {
    /// # Errors
    /// `invalid_message` when the type is unknown or the content empty or too long.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_message(&self.message_type, &self.content)?;
        validate_object("metadata", self.metadata.as_ref())
    }
}

/// Message types the controller knows.
pub const MESSAGE_TYPES: [&str; 2] = ["recommendation", "monitoring"];

/// Shared by the API and the wire: a message is a known type with non-empty, bounded content.
///
/// # Errors
/// `invalid_message` describing the rule broken.
pub fn validate_message(message_type: &str, content: &str) -> Result<(), ValidationError> {
    if !MESSAGE_TYPES.contains(&message_type) {
        return Err(ValidationError::new(
            "invalid_message",
            "message_type must be 'recommendation' or 'monitoring'",
        ));
    }
    if content.trim().is_empty() || content.len() > MAX_MESSAGE_CONTENT {
        return Err(ValidationError::new(
            "invalid_message",
            format!("content must be non-empty and at most {MAX_MESSAGE_CONTENT} bytes"),
        ));
    }
    Ok(())
}

/// The result of decoding one text frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Frame(ClientFrame),
    /// Valid JSON object with a `type` this controller does not know.
    Unknown(String),
    /// Not JSON, not an object, no `type`, or a known type with a bad shape.
    Invalid(String),
}

/// Decodes one text frame. The fast path is a single parse; the type name of an unknown
/// frame is only extracted when the parse fails.
#[must_use]
pub fn decode_client_frame(text: &str) -> Decoded {
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => Decoded::Frame(frame),
        Err(err) => {
            #[derive(Deserialize)]
            struct TypeOnly {
                #[serde(rename = "type")]
                kind: String,
            }
            match serde_json::from_str::<TypeOnly>(text) {
                Ok(t) if !KNOWN_CLIENT_TYPES.contains(&t.kind.as_str()) => {
                    Decoded::Unknown(t.kind.chars().take(64).collect())
                }
                _ => Decoded::Invalid(err.to_string()),
            }
        }
    }
}

/// Wire names of every [`ClientFrame`] variant.
pub const KNOWN_CLIENT_TYPES: [&str; 10] = [
    "register",
    "handshake",
    "i_am_alive",
    "request_status",
    "update_metadata",
    "provisioning_request",
    "o_config_snapshot",
    "keepalive",
    "message",
    "usage",
];
