//! Response envelopes, kept in the seed's shapes: `{"success":true,"data":…}` for reads and
//! a few flat shapes the deployed dashboard reads (login, independence, message creation).

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use moolai_protocol::Status;
use moolai_store::{MessageRecord, OrchestratorRecord, Role};
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::Json;

/// `{"success":true,"data":…}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataResponse<T> {
    /// Always `true`.
    pub success: bool,
    pub data: T,
}

impl<T> DataResponse<T> {
    pub fn json(data: T) -> Json<Self> {
        Json(Self {
            success: true,
            data,
        })
    }
}

/// A `{"success":true,"data":…}` body serialized once, for an answer served many times (the
/// cached reports: a month's cost report is tens of kilobytes of JSON, and cloning and
/// serializing it per request cost more than serving it).
#[derive(Debug, Clone)]
pub struct SerializedData(Bytes);

impl SerializedData {
    /// # Errors
    /// When `data` cannot be serialized (a bug).
    pub fn new<T: Serialize>(data: &T) -> Result<Self, crate::error::ApiError> {
        serde_json::to_vec(&DataResponse {
            success: true,
            data,
        })
        .map(|body| Self(body.into()))
        .map_err(|e| crate::error::ApiError::Internal(format!("serializing a response: {e}")))
    }
}

impl SerializedData {
    /// A body serialized by the caller, in the same envelope.
    #[must_use]
    pub fn from_bytes(body: Bytes) -> Self {
        Self(body)
    }
}

impl IntoResponse for SerializedData {
    fn into_response(self) -> Response {
        ([(CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// `{"success":true,"message":…,"data":…}`: a write that says what it did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DoneResponse<T> {
    pub success: bool,
    pub message: String,
    pub data: T,
}

impl<T> DoneResponse<T> {
    pub fn json(message: &str, data: T) -> Json<Self> {
        Json(Self {
            success: true,
            message: message.to_owned(),
            data,
        })
    }
}

/// `{"success":true,"message":…}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageOnly {
    pub success: bool,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub success: bool,
    /// `Login successful`.
    pub message: String,
    pub user: LoginUser,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginUser {
    pub username: String,
    /// `superadmin`, `org_admin` or `viewer`.
    pub role: Role,
    /// The organizations an `org_admin` or `viewer` may see (empty for a superadmin).
    pub organization_ids: Vec<String>,
    /// Bearer token for every other route; valid until `expires_at`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The user name, or the API token's name.
    pub username: String,
    pub role: Role,
    /// The organizations a scoped role may see (empty for a superadmin: all).
    pub organization_ids: Vec<String>,
    /// `session` (a login), `api_token` or `dev_token` (`DEV_BEARER_TOKEN`).
    pub auth: String,
    /// When the session or token ends (absent when it does not).
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token shown once, at creation: only its hash is kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated<T> {
    pub success: bool,
    /// The token itself. Store it now: it cannot be shown again.
    pub token: String,
    pub data: T,
}

/// The seed's answer to an independence toggle (plus the derived status).
#[derive(Debug, Serialize, ToSchema)]
pub struct IndependenceUpdated {
    pub success: bool,
    /// `Independence mode updated`.
    pub message: String,
    pub orchestrator_id: String,
    pub is_independent: bool,
    pub status: Status,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IndependenceState {
    pub orchestrator_id: String,
    pub is_independent: bool,
    pub status: Status,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigUpdated {
    pub success: bool,
    /// `Configuration updated`.
    pub message: String,
    pub orchestrator_id: String,
    pub config_version: i64,
    pub data: OrchestratorRecord,
}

/// The seed's answer to a new message (plus the record).
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageCreated {
    pub success: bool,
    pub message_id: String,
    pub orchestrator_id: String,
    pub data: MessageRecord,
}

/// `GET /health` and `GET /api/v1/controller/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    /// `up` when every dependency is up, else `degraded`.
    pub status: String,
    /// `up` or `down`.
    pub database: String,
    /// `up` or `down`.
    pub nats: String,
    pub timestamp: DateTime<Utc>,
}
