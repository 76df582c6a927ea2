//! Messages about orchestrators: created by operators (or other systems) here, decided
//! (`accepted` / `dismissed`) by operators; an accepted message is sent to its orchestrator.

use axum::extract::State;
use axum::http::StatusCode;
use moolai_bus::events::Command;
use moolai_protocol::{MESSAGE_TYPES, ServerFrame, validate_message};
use moolai_store::{MessageQuery, MessageRecord, MessageStatus, NewMessage};
use serde::Deserialize;
use serde_json::Value;
use tracing::instrument;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::responses::{DataResponse, DoneResponse, MessageCreated};
use crate::routes::controller::existing_orchestrator;
use crate::state::AppState;
use crate::validation;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 500;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewMessageRequest {
    /// `recommendation` or `monitoring`.
    pub message_type: String,
    /// Non-empty, at most 16 KiB.
    pub content: String,
    /// Free-form JSON object kept with the message.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Creates a `pending` message about an orchestrator.
#[utoipa::path(
    post,
    path = "/api/v1/internal/orchestrators/{orchestrator_id}/messages",
    tag = "messages",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id")),
    request_body = NewMessageRequest,
    responses(
        (status = 201, description = "Created", body = MessageCreated),
        (status = 404, description = "No such orchestrator", body = ErrorBody),
        (status = 422, description = "Unknown type, empty or oversized content", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
pub async fn create_message(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
    Json(body): Json<NewMessageRequest>,
) -> Result<(StatusCode, Json<MessageCreated>), ApiError> {
    existing_orchestrator(&state, &principal, &orchestrator_id).await?;
    validate_message(&body.message_type, &body.content)?;
    validation::storable_text("content", &body.content)?;
    validation::optional_json_object("metadata", body.metadata.as_ref())?;
    let record = state
        .store
        .create_message(&NewMessage {
            orchestrator_id: orchestrator_id.clone(),
            message_type: body.message_type,
            content: body.content,
            metadata: match body.metadata {
                Some(Value::Null) | None => Value::Object(serde_json::Map::new()),
                Some(m) => m,
            },
            source: "api".to_owned(),
            actor: principal.actor(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(MessageCreated {
            success: true,
            message_id: record.id.clone(),
            orchestrator_id: record.orchestrator_id.clone(),
            data: record,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrchestratorMessageParams {
    pub status: Option<MessageStatus>,
    /// `recommendation` or `monitoring`.
    pub message_type: Option<String>,
    /// Newest first, at most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// Messages about one orchestrator, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/internal/orchestrators/{orchestrator_id}/messages",
    tag = "messages",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id"), OrchestratorMessageParams),
    responses(
        (status = 200, description = "Messages", body = DataResponse<Vec<MessageRecord>>),
        (status = 400, description = "A parameter is out of range", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
pub async fn list_orchestrator_messages(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
    Query(q): Query<OrchestratorMessageParams>,
) -> Result<Json<DataResponse<Vec<MessageRecord>>>, ApiError> {
    validation::id_param("orchestrator_id", &orchestrator_id)?;
    // Messages outlive a deregistered orchestrator, so a missing orchestrator is not an
    // error; one of another organization is (and looks missing).
    if let Some(found) = state.store.get_orchestrator(&orchestrator_id).await?
        && !principal.sees(&found.organization_id)
    {
        return Err(ApiError::not_found(format!(
            "orchestrator {orchestrator_id} not found"
        )));
    }
    let query = MessageQuery {
        status: q.status,
        message_type: message_type_filter(q.message_type)?,
        orchestrator_id: Some(orchestrator_id),
        organization_id: None,
        limit: validation::limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
        scope: principal.scope_owned(),
    };
    Ok(DataResponse::json(state.store.list_messages(&query).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageListParams {
    pub status: Option<MessageStatus>,
    /// `recommendation` or `monitoring`.
    pub message_type: Option<String>,
    pub orchestrator_id: Option<String>,
    pub organization_id: Option<String>,
    /// Newest first, at most this many (1 to 500, default 100).
    pub limit: Option<i64>,
}

/// Messages across the fleet, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/internal/messages",
    tag = "messages",
    params(MessageListParams),
    responses(
        (status = 200, description = "Messages", body = DataResponse<Vec<MessageRecord>>),
        (status = 400, description = "A parameter is out of range", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn list_messages(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<MessageListParams>,
) -> Result<Json<DataResponse<Vec<MessageRecord>>>, ApiError> {
    validation::optional_id_param("orchestrator_id", q.orchestrator_id.as_deref())?;
    validation::optional_id_param("organization_id", q.organization_id.as_deref())?;
    principal.check_filter(q.organization_id.as_deref())?;
    let query = MessageQuery {
        status: q.status,
        message_type: message_type_filter(q.message_type)?,
        orchestrator_id: q.orchestrator_id,
        organization_id: q.organization_id,
        limit: validation::limit(q.limit, DEFAULT_LIMIT, MAX_LIMIT)?,
        scope: principal.scope_owned(),
    };
    Ok(DataResponse::json(state.store.list_messages(&query).await?))
}

fn message_type_filter(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(t) if !MESSAGE_TYPES.contains(&t.as_str()) => Err(ApiError::bad_request(
            "message_type must be 'recommendation' or 'monitoring'",
        )),
        other => Ok(other),
    }
}

/// An operator's decision on a pending message.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Accepted,
    Dismissed,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct MessageStatusRequest {
    pub status: Decision,
}

/// `pending` → `accepted` | `dismissed`. An accepted message is sent to its orchestrator
/// (at once when connected, otherwise on its next hello).
#[utoipa::path(
    put,
    path = "/api/v1/internal/messages/{message_id}/status",
    tag = "messages",
    params(("message_id" = String, Path, description = "Message id")),
    request_body = MessageStatusRequest,
    responses(
        (status = 200, description = "Updated", body = DoneResponse<MessageRecord>),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 409, description = "The message is not pending", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(message_id = %message_id))]
pub async fn update_message_status(
    State(state): State<AppState>,
    principal: Principal,
    Path(message_id): Path<String>,
    Json(body): Json<MessageStatusRequest>,
) -> Result<Json<DoneResponse<MessageRecord>>, ApiError> {
    validation::id_param("message_id", &message_id)?;
    // A message of another organization looks missing. (The organization is copied into the
    // message at creation and never changes, so checking before the update is race-free.)
    state
        .store
        .get_message(&message_id)
        .await?
        .filter(|m| {
            principal.scope().is_none()
                || m.organization_id
                    .as_deref()
                    .is_some_and(|o| principal.sees(o))
        })
        .ok_or_else(|| ApiError::not_found(format!("message {message_id} not found")))?;
    let status = match body.status {
        Decision::Accepted => MessageStatus::Accepted,
        Decision::Dismissed => MessageStatus::Dismissed,
    };
    let record = state
        .store
        .update_message_status(&message_id, status, &principal.actor())
        .await?;
    if status == MessageStatus::Accepted {
        deliver(&state, &record).await;
    }
    Ok(DoneResponse::json("Message status updated", record))
}

/// Asks the edge holding the orchestrator's socket to send the message; the edge reports the
/// delivery. When the orchestrator is gone (deregistered) there is nobody to deliver to.
async fn deliver(state: &AppState, record: &MessageRecord) {
    let organization_id = match &record.organization_id {
        Some(org) => Some(org.clone()),
        None => match state.store.get_orchestrator(&record.orchestrator_id).await {
            Ok(found) => found.map(|o| o.organization_id),
            Err(e) => {
                tracing::warn!(error = %e, "cannot resolve the message's organization");
                None
            }
        },
    };
    let Some(organization_id) = organization_id else {
        tracing::info!(message_id = %record.id, "accepted message has no orchestrator to deliver to");
        return;
    };
    state
        .publish_command(
            &organization_id,
            &record.orchestrator_id,
            &Command::Send {
                frame: ServerFrame::Message {
                    data: record.to_delivered(),
                },
                message_id: Some(record.id.clone()),
            },
        )
        .await;
}
