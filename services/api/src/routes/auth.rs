//! `POST /api/v1/internal/auth/login`, `POST …/logout`, `GET …/me`, `PUT …/password`.

use axum::extract::State;
use chrono::{DateTime, Utc};
use moolai_store::{Actor, AuditEntry, NewSession, Role, UserUpdate};
use serde::Deserialize;
use serde_json::json;
use tracing::instrument;
use utoipa::ToSchema;

use crate::auth::{self, ClientAddr, Credential, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Json;
use crate::password;
use crate::responses::{DataResponse, LoginResponse, LoginUser, Me, MessageOnly};
use crate::state::AppState;
use crate::throttle::AttemptKeys;
use crate::validation;

/// The one answer to every failed login (unknown user, wrong password, disabled account).
const BAD_CREDENTIALS: &str = "invalid username or password";

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// Exchanges an operator's user name and password for a session token. Every attempt is
/// audited as `auth.login` (never with the password). Unknown users, wrong passwords and
/// disabled accounts get the same answer in about the same time; repeated failures for one
/// user name or from one client address are locked out for a while (429).
#[utoipa::path(
    post,
    path = "/api/v1/internal/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client_addr): ClientAddr,
    Json(body): Json<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    // What the audit log records as the attempted name: bounded, printable.
    let attempted: String = body
        .username
        .chars()
        .filter(|c| !c.is_control())
        .take(255)
        .collect();
    let keys = AttemptKeys::new(&attempted, client_addr.as_deref());
    if let Some(wait) = state.login_throttle.locked_for(&keys) {
        audit_login(&state, None, client_addr, &attempted, false, "throttled").await;
        return Err(ApiError::TooManyRequests {
            retry_after_sec: wait.as_secs().max(1),
        });
    }

    // A name that cannot exist is looked up anyway (and finds nothing): the same path and
    // time as any other unknown name.
    let found = if validation::username(&body.username).is_ok() {
        state.store.user_login(&body.username).await?
    } else {
        None
    };
    // Argon2 runs whatever happens: against the user's hash, or a dummy one.
    let hash = found
        .as_ref()
        .and_then(|f| f.password_hash.clone())
        .unwrap_or_else(|| state.dummy_password_hash.clone());
    let password_ok = password::verify_blocking(body.password, hash).await;
    let user = match found {
        Some(f) if password_ok && f.password_hash.is_some() && !f.user.disabled => f.user,
        other => {
            let outcome = match other {
                Some(f) if f.user.disabled => "disabled",
                _ => "bad_credentials",
            };
            let locked = state.login_throttle.failed(&keys);
            audit_login(&state, None, client_addr, &attempted, false, outcome).await;
            if locked {
                tracing::warn!("login locked out after repeated failures");
            }
            return Err(ApiError::Unauthorized(BAD_CREDENTIALS.into()));
        }
    };
    state.login_throttle.succeeded(&keys);

    let token = auth::new_session_token();
    let ttl = i64::try_from(state.settings.session_ttl_sec).unwrap_or(43_200);
    let expires_at = Utc::now() + chrono::Duration::seconds(ttl);
    state
        .store
        .create_session(&NewSession {
            token_hash: auth::hash_token(&token),
            username: user.username.clone(),
            role: user.role.as_str().to_owned(),
            expires_at,
            client_addr: client_addr.clone(),
        })
        .await?;
    audit_login(
        &state,
        Some(&user.username),
        client_addr,
        &user.username,
        true,
        "ok",
    )
    .await;
    tracing::info!(username = %user.username, role = user.role.as_str(), "operator logged in");
    Ok(Json(LoginResponse {
        success: true,
        message: "Login successful".to_owned(),
        user: LoginUser {
            username: user.username,
            role: user.role,
            organization_ids: user.organization_ids,
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
        target: Some(format!("user:{attempted}")),
        organization_id: None,
        details: json!({ "username": attempted, "outcome": outcome }),
        success,
    };
    if let Err(e) = state.store.append_audit(&entry).await {
        tracing::warn!(error = %e, "login attempt not audited");
    }
}

/// Ends the session whose token is presented (a no-op for API tokens and the dev token).
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

/// Who the presented token belongs to, with the role and organizations it grants.
#[utoipa::path(
    get,
    path = "/api/v1/internal/auth/me",
    tag = "auth",
    responses((status = 200, description = "The caller", body = DataResponse<Me>))
)]
#[instrument(skip_all)]
pub async fn me(principal: Principal) -> Json<DataResponse<Me>> {
    let (auth, expires_at): (&str, Option<DateTime<Utc>>) = match &principal.credential {
        Credential::Session { expires_at, .. } => ("session", Some(*expires_at)),
        Credential::ApiToken { expires_at, .. } => ("api_token", *expires_at),
        Credential::DevToken => ("dev_token", None),
    };
    DataResponse::json(Me {
        organization_ids: if principal.role == Role::Superadmin {
            Vec::new()
        } else {
            principal.organization_ids
        },
        username: principal.username,
        role: principal.role,
        auth: auth.to_owned(),
        expires_at,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    /// 12 to 1024 characters.
    pub new_password: String,
}

/// Changes the caller's own password (login sessions only). Every session of the user ends,
/// this one included: log in again with the new password.
#[utoipa::path(
    put,
    path = "/api/v1/internal/auth/password",
    tag = "auth",
    request_body = PasswordChange,
    responses(
        (status = 200, description = "Changed; log in again", body = MessageOnly),
        (status = 403, description = "The current password is wrong, or this is not a login session", body = ErrorBody),
        (status = 422, description = "The new password is too short or too long", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<PasswordChange>,
) -> Result<Json<MessageOnly>, ApiError> {
    if !matches!(principal.credential, Credential::Session { .. }) {
        return Err(ApiError::Forbidden(
            "only a logged-in user can change their password".into(),
        ));
    }
    validation::password(&body.new_password)?;
    let stored = state
        .store
        .user_login(&principal.username)
        .await?
        .and_then(|f| f.password_hash)
        .unwrap_or_else(|| state.dummy_password_hash.clone());
    if !password::verify_blocking(body.current_password, stored).await {
        return Err(ApiError::Forbidden("the current password is wrong".into()));
    }
    let password_hash = password::hash_blocking(body.new_password)
        .await
        .map_err(ApiError::Internal)?;
    state
        .store
        .update_user(
            &principal.username,
            &UserUpdate {
                password_hash: Some(password_hash),
                ..UserUpdate::default()
            },
            &principal.actor(),
        )
        .await?
        .ok_or_else(|| ApiError::Unauthorized("the user no longer exists".into()))?;
    Ok(Json(MessageOnly {
        success: true,
        message: "Password changed; log in again".to_owned(),
    }))
}
