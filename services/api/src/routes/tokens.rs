//! Tokens: API tokens for machines (`/api/v1/internal/api-tokens`, superadmin only) and
//! orchestrator credentials (enrollment tokens per organization, tokens per orchestrator;
//! org_admins manage those of their organizations).
//!
//! A token is shown once, in the creation response; only its SHA-256 is stored. Revoking an
//! orchestrator credential closes every socket currently registered with it (close code
//! 4001) through the edge holding it.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use moolai_bus::events::Command;
use moolai_store::{
    ApiTokenRecord, CredentialKind, CredentialQuery, CredentialRevocation, NewApiToken,
    NewOrchestratorCredential, OrchestratorCredentialRecord, Page, Role,
};
use serde::Deserialize;
use tracing::instrument;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{self, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::responses::{DataResponse, DoneResponse, TokenCreated};
use crate::routes::controller::{PageParams, existing_orchestrator};
use crate::state::AppState;
use crate::validation;

/// Close code of a socket whose credential was revoked.
pub const CLOSE_CREDENTIAL_REVOKED: u16 = 4001;
const TOKENS_PAGE_SIZE: u32 = 50;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewApiTokenRequest {
    /// What the token is for (shown in listings).
    pub name: String,
    pub role: Role,
    /// Organizations an `org_admin` or `viewer` token may see.
    #[serde(default)]
    pub organization_ids: Vec<String>,
    /// When the token stops working (never, when absent).
    pub expires_at: Option<DateTime<Utc>>,
}

fn future(expires_at: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    match expires_at {
        Some(t) if t <= Utc::now() => Err(ApiError::invalid("expires_at must be in the future")),
        _ => Ok(()),
    }
}

/// API tokens, newest first (revoked ones included).
#[utoipa::path(
    get,
    path = "/api/v1/internal/api-tokens",
    tag = "tokens",
    params(PageParams),
    responses((status = 200, description = "One page of API tokens", body = DataResponse<Page<ApiTokenRecord>>))
)]
#[instrument(skip_all)]
pub async fn list_api_tokens(
    State(state): State<AppState>,
    Query(q): Query<PageParams>,
) -> Result<Json<DataResponse<Page<ApiTokenRecord>>>, ApiError> {
    let (page, page_size) = validation::page(q.page, q.page_size, TOKENS_PAGE_SIZE)?;
    Ok(DataResponse::json(
        state.store.list_api_tokens(page, page_size).await?,
    ))
}

/// Creates an API token (`moo_api_…`), shown once. Audited as `api_token.create`.
#[utoipa::path(
    post,
    path = "/api/v1/internal/api-tokens",
    tag = "tokens",
    request_body = NewApiTokenRequest,
    responses(
        (status = 201, description = "Created; `token` is shown only now", body = TokenCreated<ApiTokenRecord>),
        (status = 404, description = "An organization does not exist", body = ErrorBody),
        (status = 422, description = "Bad name or expiry", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn create_api_token(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<NewApiTokenRequest>,
) -> Result<(StatusCode, Json<TokenCreated<ApiTokenRecord>>), ApiError> {
    validation::token_name(&body.name)?;
    crate::routes::users::organization_list(&body.organization_ids)?;
    future(body.expires_at)?;
    let token = auth::new_prefixed_token(auth::API_TOKEN_PREFIX);
    let record = state
        .store
        .create_api_token(
            &NewApiToken {
                name: body.name,
                token_hash: auth::hash_token(&token),
                role: body.role,
                organization_ids: body.organization_ids,
                expires_at: body.expires_at,
            },
            &principal.actor(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            success: true,
            token,
            data: record,
        }),
    ))
}

/// Revokes an API token at once. Audited as `api_token.revoke`.
#[utoipa::path(
    delete,
    path = "/api/v1/internal/api-tokens/{token_id}",
    tag = "tokens",
    params(("token_id" = String, Path, description = "API token id (`apt_…`)")),
    responses(
        (status = 200, description = "Revoked", body = DoneResponse<ApiTokenRecord>),
        (status = 404, description = "No such token", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(token_id = %token_id))]
pub async fn revoke_api_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(token_id): Path<String>,
) -> Result<Json<DoneResponse<ApiTokenRecord>>, ApiError> {
    validation::id_param("token_id", &token_id)?;
    let record = state
        .store
        .revoke_api_token(&token_id, &principal.actor())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API token {token_id} not found")))?;
    Ok(DoneResponse::json("API token revoked", record))
}

// ---- orchestrator credentials ----------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewCredentialRequest {
    /// What the token is for (shown in listings).
    pub name: Option<String>,
    /// When the token stops working (never, when absent).
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CredentialListParams {
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 50).
    pub page_size: Option<i64>,
    /// Revoked tokens are listed too when true.
    pub include_revoked: Option<bool>,
}

fn validate_new_credential(body: &NewCredentialRequest) -> Result<(), ApiError> {
    if let Some(name) = &body.name {
        validation::token_name(name)?;
    }
    future(body.expires_at)
}

/// 404 for an organization the caller does not see, as for one that does not exist.
async fn visible_organization(
    state: &AppState,
    principal: &Principal,
    organization_id: &str,
) -> Result<(), ApiError> {
    validation::id_param("organization_id", organization_id)?;
    let missing = || ApiError::not_found(format!("organization {organization_id} not found"));
    if !principal.sees(organization_id) {
        return Err(missing());
    }
    state
        .store
        .get_organization(organization_id)
        .await?
        .map(|_| ())
        .ok_or_else(missing)
}

async fn credential_page(
    state: &AppState,
    principal: &Principal,
    q: CredentialListParams,
    query: CredentialQuery,
) -> Result<Json<DataResponse<Page<OrchestratorCredentialRecord>>>, ApiError> {
    let (page, page_size) = validation::page(q.page, q.page_size, TOKENS_PAGE_SIZE)?;
    Ok(DataResponse::json(
        state
            .store
            .list_orchestrator_credentials(&CredentialQuery {
                page,
                page_size,
                include_revoked: q.include_revoked.unwrap_or(false),
                scope: principal.scope_owned(),
                ..query
            })
            .await?,
    ))
}

async fn create_credential(
    state: &AppState,
    principal: &Principal,
    new: NewOrchestratorCredential,
    prefix: &str,
) -> Result<(StatusCode, Json<TokenCreated<OrchestratorCredentialRecord>>), ApiError> {
    let token = auth::new_prefixed_token(prefix);
    let record = state
        .store
        .create_orchestrator_credential(
            &NewOrchestratorCredential {
                token_hash: auth::hash_token(&token),
                ..new
            },
            &principal.actor(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            success: true,
            token,
            data: record,
        }),
    ))
}

/// Revokes a credential of `kind` the caller sees, then closes the sockets that used it.
async fn revoke_credential(
    state: &AppState,
    principal: &Principal,
    credential_id: &str,
    kind: CredentialKind,
) -> Result<Json<DoneResponse<OrchestratorCredentialRecord>>, ApiError> {
    validation::id_param("credential_id", credential_id)?;
    let missing = || ApiError::not_found(format!("token {credential_id} not found"));
    let existing = state
        .store
        .get_orchestrator_credential(credential_id)
        .await?
        .filter(|c| c.kind == kind && principal.sees(&c.organization_id))
        .ok_or_else(missing)?;
    let CredentialRevocation { record, sessions } = state
        .store
        .revoke_orchestrator_credential(&existing.credential_id, &principal.actor())
        .await?
        .ok_or_else(missing)?;
    for session in &sessions {
        state
            .publish_command(
                &session.organization_id,
                &session.orchestrator_id,
                &Command::Close {
                    code: CLOSE_CREDENTIAL_REVOKED,
                    reason: "credential revoked".to_owned(),
                    session_id: Some(session.session_id.clone()),
                },
            )
            .await;
    }
    tracing::info!(
        credential_id,
        sockets = sessions.len(),
        "orchestrator credential revoked"
    );
    Ok(DoneResponse::json("Token revoked", record))
}

/// Enrollment tokens of an organization, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/internal/organizations/{organization_id}/enrollment-tokens",
    tag = "tokens",
    params(("organization_id" = String, Path, description = "Organization id"), CredentialListParams),
    responses(
        (status = 200, description = "One page of enrollment tokens", body = DataResponse<Page<OrchestratorCredentialRecord>>),
        (status = 404, description = "No such organization", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(organization_id = %organization_id))]
pub async fn list_enrollment_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Path(organization_id): Path<String>,
    Query(q): Query<CredentialListParams>,
) -> Result<Json<DataResponse<Page<OrchestratorCredentialRecord>>>, ApiError> {
    visible_organization(&state, &principal, &organization_id).await?;
    credential_page(
        &state,
        &principal,
        q,
        CredentialQuery {
            kind: Some(CredentialKind::Enrollment),
            organization_id: Some(organization_id),
            ..CredentialQuery::default()
        },
    )
    .await
}

/// Creates an enrollment token (`moo_enr_…`), shown once: an orchestrator presenting it may
/// register any orchestrator id in this organization (and only in it). Audited as
/// `credential.create`.
#[utoipa::path(
    post,
    path = "/api/v1/internal/organizations/{organization_id}/enrollment-tokens",
    tag = "tokens",
    params(("organization_id" = String, Path, description = "Organization id")),
    request_body = NewCredentialRequest,
    responses(
        (status = 201, description = "Created; `token` is shown only now", body = TokenCreated<OrchestratorCredentialRecord>),
        (status = 404, description = "No such organization", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(organization_id = %organization_id))]
pub async fn create_enrollment_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(organization_id): Path<String>,
    Json(body): Json<NewCredentialRequest>,
) -> Result<(StatusCode, Json<TokenCreated<OrchestratorCredentialRecord>>), ApiError> {
    visible_organization(&state, &principal, &organization_id).await?;
    validate_new_credential(&body)?;
    create_credential(
        &state,
        &principal,
        NewOrchestratorCredential {
            kind: CredentialKind::Enrollment,
            organization_id,
            orchestrator_id: None,
            name: body.name,
            token_hash: String::new(),
            expires_at: body.expires_at,
        },
        auth::ENROLLMENT_TOKEN_PREFIX,
    )
    .await
}

/// Revokes an enrollment token; every socket registered with it closes (4001).
#[utoipa::path(
    delete,
    path = "/api/v1/internal/enrollment-tokens/{credential_id}",
    tag = "tokens",
    params(("credential_id" = String, Path, description = "Token id (`crd_…`)")),
    responses(
        (status = 200, description = "Revoked", body = DoneResponse<OrchestratorCredentialRecord>),
        (status = 404, description = "No such enrollment token", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(credential_id = %credential_id))]
pub async fn revoke_enrollment_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(credential_id): Path<String>,
) -> Result<Json<DoneResponse<OrchestratorCredentialRecord>>, ApiError> {
    revoke_credential(
        &state,
        &principal,
        &credential_id,
        CredentialKind::Enrollment,
    )
    .await
}

/// Tokens of one orchestrator, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/internal/orchestrators/{orchestrator_id}/tokens",
    tag = "tokens",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id"), CredentialListParams),
    responses(
        (status = 200, description = "One page of tokens", body = DataResponse<Page<OrchestratorCredentialRecord>>),
        (status = 404, description = "No such orchestrator", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
pub async fn list_orchestrator_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
    Query(q): Query<CredentialListParams>,
) -> Result<Json<DataResponse<Page<OrchestratorCredentialRecord>>>, ApiError> {
    existing_orchestrator(&state, &principal, &orchestrator_id).await?;
    credential_page(
        &state,
        &principal,
        q,
        CredentialQuery {
            kind: Some(CredentialKind::Orchestrator),
            orchestrator_id: Some(orchestrator_id),
            ..CredentialQuery::default()
        },
    )
    .await
}

/// Creates a token (`moo_orc_…`) for one existing orchestrator, shown once. Once it has one,
/// enrollment tokens can no longer claim that orchestrator. Audited as `credential.create`.
#[utoipa::path(
    post,
    path = "/api/v1/internal/orchestrators/{orchestrator_id}/tokens",
    tag = "tokens",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id")),
    request_body = NewCredentialRequest,
    responses(
        (status = 201, description = "Created; `token` is shown only now", body = TokenCreated<OrchestratorCredentialRecord>),
        (status = 404, description = "No such orchestrator", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
pub async fn create_orchestrator_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
    Json(body): Json<NewCredentialRequest>,
) -> Result<(StatusCode, Json<TokenCreated<OrchestratorCredentialRecord>>), ApiError> {
    let orchestrator = existing_orchestrator(&state, &principal, &orchestrator_id).await?;
    validate_new_credential(&body)?;
    create_credential(
        &state,
        &principal,
        NewOrchestratorCredential {
            kind: CredentialKind::Orchestrator,
            organization_id: orchestrator.organization_id,
            orchestrator_id: Some(orchestrator.orchestrator_id),
            name: body.name,
            token_hash: String::new(),
            expires_at: body.expires_at,
        },
        auth::ORCHESTRATOR_TOKEN_PREFIX,
    )
    .await
}

/// Revokes an orchestrator token; the socket registered with it closes (4001).
#[utoipa::path(
    delete,
    path = "/api/v1/internal/orchestrator-tokens/{credential_id}",
    tag = "tokens",
    params(("credential_id" = String, Path, description = "Token id (`crd_…`)")),
    responses(
        (status = 200, description = "Revoked", body = DoneResponse<OrchestratorCredentialRecord>),
        (status = 404, description = "No such orchestrator token", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(credential_id = %credential_id))]
pub async fn revoke_orchestrator_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(credential_id): Path<String>,
) -> Result<Json<DoneResponse<OrchestratorCredentialRecord>>, ApiError> {
    revoke_credential(
        &state,
        &principal,
        &credential_id,
        CredentialKind::Orchestrator,
    )
    .await
}
