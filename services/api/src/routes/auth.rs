//! `POST /api/v1/internal/auth/login`, `POST …/logout`, `GET …/me`.

use axum::extract::State;
use chrono::Utc;
use moolai_store::{Actor, AuditEntry, NewSession};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use tracing::instrument;
use utoipa::ToSchema;

use crate::auth::{self, ClientAddr, Credential, Principal, SUPERADMIN};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::responses::{DataResponse, LoginResponse, LoginUser, Me, MessageOnly};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Exchanges the operator credential (`MOOLAI_ADMIN_USERNAME` / `MOOLAI_ADMIN_PASSWORD`) for
/// a session token. Every attempt is audited as `auth.login`.
#[utoipa::path(
    post,
    path = "/api/v1/internal/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 403, description = "Login is disabled (no credential configured)", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client_addr): ClientAddr,
    Json(body): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let attempted: String = body
        .username
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect();
    let Some((username, password)) = state.settings.admin_credential() else {
        audit_login(
            &state,
            None,
            client_addr,
            &attempted,
            false,
            "login_disabled",
        )
        .await;
        return Err(ApiError::Forbidden(
            "login is disabled on this controller: no operator credential is configured".into(),
        ));
    };
    // Both comparisons always run, so timing does not tell which half was wrong.
    let user_ok = auth::secrets_equal(&body.username, username);
    let password_ok = auth::secrets_equal(&body.password, password.expose_secret());
    if !(user_ok & password_ok) {
        audit_login(
            &state,
            None,
            client_addr,
            &attempted,
            false,
            "bad_credentials",
        )
        .await;
        return Err(ApiError::Unauthorized(
            "invalid username or password".into(),
        ));
    }

    let token = auth::new_session_token();
    let ttl = i64::try_from(state.settings.session_ttl_sec).unwrap_or(43_200);
    let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
    state
        .store
        .create_session(&NewSession {
            token_hash: auth::hash_token(&token),
            username: username.to_owned(),
            role: SUPERADMIN.to_owned(),
            expires_at,
            client_addr: client_addr.clone(),
        })
        .await?;
    audit_login(&state, Some(username), client_addr, username, true, "ok").await;
    tracing::info!(username, "operator logged in");
    Ok(Json(LoginResponse {
        success: true,
        message: "Login successful".to_owned(),
        user: LoginUser {
            username: username.to_owned(),
            role: SUPERADMIN.to_owned(),
            token,
            expires_at,
        },
    }))
}

/// The audit write must not change the answer: a failure is logged.
async fn audit_login(
    state: &AppState,
    user: Option<&str>,
    client_addr: Option<String>,
    attempted: &str,
    success: bool,
    outcome: &str,
) {
    let name = user.map_or_else(|| "anonymous".to_owned(), |u| format!("user:{u}"));
    let entry = AuditEntry {
        actor: Actor { name, client_addr },
        action: "auth.login".to_owned(),
        target: None,
        organization_id: None,
        details: json!({ "username": attempted, "outcome": outcome }),
        success,
    };
    if let Err(e) = state.store.append_audit(&entry).await {
        tracing::warn!(error = %e, "login attempt not audited");
    }
}

/// Ends the session whose token is presented (a no-op for the dev token).
#[utoipa::path(
    post,
    path = "/api/v1/internal/auth/logout",
    tag = "auth",
    responses((status = 200, description = "Logged out", body = MessageOnly))
)]
#[instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<MessageOnly>, ApiError> {
    if let Credential::Session { token_hash, .. } = &principal.credential {
        state.store.delete_session(token_hash).await?;
    }
    let entry = AuditEntry {
        actor: principal.actor(),
        action: "auth.logout".to_owned(),
        target: None,
        organization_id: None,
        details: json!({}),
        success: true,
    };
    if let Err(e) = state.store.append_audit(&entry).await {
        tracing::warn!(error = %e, "logout not audited");
    }
    Ok(Json(MessageOnly {
        success: true,
        message: "Logged out".to_owned(),
    }))
}

/// Who the presented token belongs to.
#[utoipa::path(
    get,
    path = "/api/v1/internal/auth/me",
    tag = "auth",
    responses((status = 200, description = "The caller", body = DataResponse<Me>))
)]
#[instrument(skip_all)]
pub async fn me(principal: Principal) -> Json<DataResponse<Me>> {
    let (auth, expires_at) = match principal.credential {
        Credential::Session { expires_at, .. } => ("session", Some(expires_at)),
        Credential::DevToken => ("dev_token", None),
    };
    DataResponse::json(Me {
        username: principal.username,
        role: principal.role,
        auth: auth.to_owned(),
        expires_at,
    })
}
