//! `/api/v1/internal/orchestrators/*`: operator writes about one orchestrator. Each write
//! commits through the store first, then tells the fleet over NATS (status events for
//! subscribers, commands for the edge holding the socket).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use moolai_bus::events::{Command, StatusEvent};
use moolai_protocol::{
    ConfigUpdate, MonitoringChange, ServerFrame, Status, now_rfc3339, validate_id, validate_text,
};
use moolai_store::{NewOrchestrator, OrchestratorRecord, derive_status};
use serde::Deserialize;
use serde_json::Value;
use tracing::instrument;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::responses::{
    ConfigUpdated, DataResponse, DoneResponse, IndependenceState, IndependenceUpdated,
};
use crate::routes::controller::existing_orchestrator;
use crate::state::AppState;
use crate::validation;

/// Close code sent to a deregistered orchestrator's socket.
const CLOSE_DEREGISTERED: u16 = 4004;

#[derive(Debug, Deserialize, ToSchema)]
pub struct IndependenceRequest {
    pub is_independent: bool,
}

/// Switches independence mode. Persisted and audited; a status event is published when the
/// value changed, and the matching `stop_monitoring` / `resume_monitoring` command always
/// (level-triggered: repeating a toggle repairs an edge that missed it).
#[utoipa::path(
    put,
    path = "/api/v1/internal/orchestrators/{orchestrator_id}/independence",
    tag = "orchestrators",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id")),
    request_body = IndependenceRequest,
    responses(
        (status = 200, description = "Updated", body = IndependenceUpdated),
        (status = 404, description = "No such orchestrator", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id, is_independent = body.is_independent))]
pub async fn set_independence(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
    Json(body): Json<IndependenceRequest>,
) -> Result<Json<IndependenceUpdated>, ApiError> {
    existing_orchestrator(&state, &principal, &orchestrator_id).await?;
    let wanted = body.is_independent;
    let change = state
        .store
        .set_independence(&orchestrator_id, wanted, &principal.actor())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("orchestrator {orchestrator_id} not found")))?;
    let record = change.record;
    let now = Utc::now();

    if change.previous != wanted {
        let previous_status = if change.previous {
            Status::Independent
        } else {
            derive_status(
                false,
                record.last_seen,
                !record.connected,
                now,
                state.heartbeat_ttl,
            )
        };
        state
            .publish_status(&StatusEvent {
                orchestrator_id: record.orchestrator_id.clone(),
                organization_id: record.organization_id.clone(),
                status: record.status,
                previous_status: Some(previous_status),
                is_independent: wanted,
                last_seen: record.last_seen,
                reason: if wanted {
                    "independence_on"
                } else {
                    "independence_off"
                }
                .to_owned(),
                at: now,
            })
            .await;
    }

    let monitoring = MonitoringChange {
        orchestrator_id: record.orchestrator_id.clone(),
        is_independent: wanted,
        ts: now_rfc3339(),
        reason: Some(
            if wanted {
                "independence enabled by operator"
            } else {
                "independence disabled by operator"
            }
            .to_owned(),
        ),
    };
    let frame = if wanted {
        ServerFrame::StopMonitoring(monitoring)
    } else {
        ServerFrame::ResumeMonitoring(monitoring)
    };
    state
        .publish_command(
            &record.organization_id,
            &record.orchestrator_id,
            &Command::Send {
                frame,
                message_id: None,
            },
        )
        .await;
    tracing::info!(
        changed = change.previous != wanted,
        actor = %principal.actor().name,
        "independence set"
    );

    Ok(Json(IndependenceUpdated {
        success: true,
        message: "Independence mode updated".to_owned(),
        orchestrator_id: record.orchestrator_id,
        is_independent: record.is_independent,
        status: record.status,
    }))
}

/// Current independence mode and derived status.
#[utoipa::path(
    get,
    path = "/api/v1/internal/orchestrators/{orchestrator_id}/independence",
    tag = "orchestrators",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id")),
    responses(
        (status = 200, description = "Current mode", body = DataResponse<IndependenceState>),
        (status = 404, description = "No such orchestrator", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
pub async fn get_independence(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
) -> Result<Json<DataResponse<IndependenceState>>, ApiError> {
    let record = existing_orchestrator(&state, &principal, &orchestrator_id).await?;
    Ok(DataResponse::json(IndependenceState {
        orchestrator_id: record.orchestrator_id,
        is_independent: record.is_independent,
        status: record.status,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfigRequest {
    /// Replaces the orchestrator's session configuration (a JSON object).
    #[schema(value_type = Object)]
    pub session_config: Value,
}

/// Replaces the session configuration, bumps its version and sends `config_update` to the
/// orchestrator.
#[utoipa::path(
    put,
    path = "/api/v1/internal/orchestrators/{orchestrator_id}/config",
    tag = "orchestrators",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id")),
    request_body = ConfigRequest,
    responses(
        (status = 200, description = "Updated", body = ConfigUpdated),
        (status = 404, description = "No such orchestrator", body = ErrorBody),
        (status = 422, description = "session_config is not a JSON object", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
pub async fn update_config(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
    Json(body): Json<ConfigRequest>,
) -> Result<Json<ConfigUpdated>, ApiError> {
    existing_orchestrator(&state, &principal, &orchestrator_id).await?;
    crate::validation::json_object("session_config", &body.session_config)?;
    let version = state
        .store
        .update_session_config(&orchestrator_id, &body.session_config, &principal.actor())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("orchestrator {orchestrator_id} not found")))?;
    let record = existing_orchestrator(&state, &principal, &orchestrator_id).await?;
    state
        .publish_command(
            &record.organization_id,
            &record.orchestrator_id,
            &Command::Send {
                frame: ServerFrame::ConfigUpdate {
                    data: ConfigUpdate {
                        orchestrator_id: record.orchestrator_id.clone(),
                        session_config: body.session_config,
                        config_version: version,
                        ts: now_rfc3339(),
                    },
                },
                message_id: None,
            },
        )
        .await;
    Ok(Json(ConfigUpdated {
        success: true,
        message: "Configuration updated".to_owned(),
        orchestrator_id: record.orchestrator_id.clone(),
        config_version: version,
        data: record,
    }))
}

/// Pre-registers an orchestrator (before its first hello).
#[utoipa::path(
    post,
    path = "/api/v1/internal/orchestrators/register",
    tag = "orchestrators",
    request_body = NewOrchestrator,
    responses(
        (status = 201, description = "Registered", body = DataResponse<OrchestratorRecord>),
        (status = 409, description = "The id exists", body = ErrorBody),
        (status = 422, description = "A field breaks a rule", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %new.orchestrator_id))]
pub async fn register(
    State(state): State<AppState>,
    principal: Principal,
    Json(new): Json<NewOrchestrator>,
) -> Result<(StatusCode, Json<DataResponse<OrchestratorRecord>>), ApiError> {
    validate_id("orchestrator_id", &new.orchestrator_id)?;
    validate_id("organization_id", &new.organization_id)?;
    principal.check_filter(Some(&new.organization_id))?;
    validate_text("name", new.name.as_deref())?;
    validate_text("location", new.location.as_deref())?;
    validation::storable_text("name", new.name.as_deref().unwrap_or_default())?;
    validation::storable_text("location", new.location.as_deref().unwrap_or_default())?;
    validation::optional_json_object("features", new.features.as_ref())?;
    validation::optional_json_object("session_config", new.session_config.as_ref())?;
    validation::optional_json_object("metadata", new.metadata.as_ref())?;
    let record = state
        .store
        .register_orchestrator(&new, &principal.actor())
        .await?;
    Ok((StatusCode::CREATED, DataResponse::json(record)))
}

/// Deletes the orchestrator (its messages and usage stay), closes its socket with 4004 and
/// publishes it as `inactive`.
#[utoipa::path(
    post,
    path = "/api/v1/internal/orchestrators/{orchestrator_id}/deregister",
    tag = "orchestrators",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id")),
    responses(
        (status = 200, description = "Deregistered; data is the deleted record", body = DoneResponse<OrchestratorRecord>),
        (status = 404, description = "No such orchestrator", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
pub async fn deregister(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
) -> Result<Json<DoneResponse<OrchestratorRecord>>, ApiError> {
    existing_orchestrator(&state, &principal, &orchestrator_id).await?;
    let record = state
        .store
        .deregister_orchestrator(&orchestrator_id, &principal.actor())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("orchestrator {orchestrator_id} not found")))?;
    state
        .publish_command(
            &record.organization_id,
            &record.orchestrator_id,
            &Command::Close {
                code: CLOSE_DEREGISTERED,
                reason: "deregistered".to_owned(),
                session_id: None,
            },
        )
        .await;
    state
        .publish_status(&StatusEvent {
            orchestrator_id: record.orchestrator_id.clone(),
            organization_id: record.organization_id.clone(),
            status: Status::Inactive,
            previous_status: Some(record.status),
            is_independent: record.is_independent,
            last_seen: record.last_seen,
            reason: "deregistered".to_owned(),
            at: Utc::now(),
        })
        .await;
    Ok(DoneResponse::json("Orchestrator deregistered", record))
}
