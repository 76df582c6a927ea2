//! The orchestrator ⇄ controller wire protocol.
//!
//! Owns every frame that crosses the orchestrator WebSocket, in both dialects that are
//! deployed in the field (the HLD's `register` and the deployed client's `handshake`), and
//! the validation rules for identifiers and payloads. It does no I/O and knows nothing about
//! NATS or storage: the edge decodes with [`decode_client_frame`], validates with
//! [`Hello::validate`] and friends, and encodes [`ServerFrame`]s.
//!
//! Forward compatibility: new fields are `Option` with `#[serde(default)]`, unknown fields are
//! ignored, and an unknown `type` decodes to [`Decoded::Unknown`] so the edge can answer with
//! an `error` frame and keep the socket open.

mod client;
mod server;
mod validate;

pub use client::*;
pub use server::*;
pub use validate::*;

use serde::{Deserialize, Serialize};

/// Derived status of an orchestrator.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Inactive,
    Independent,
}

impl Status {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Independent => "independent",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            "independent" => Self::Independent,
            _ => return None,
        })
    }
}

/// Current time as the RFC 3339 string used in every `ts` field.
#[must_use]
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
