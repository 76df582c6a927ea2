//! `/api/v1/internal/users`: operator accounts (superadmin only). Passwords are hashed here
//! with argon2id; the store never sees them.

use axum::extract::State;
use axum::http::StatusCode;
use moolai_store::{NewUser, Page, Role, UserRecord, UserUpdate};
use serde::Deserialize;
use tracing::instrument;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::password;
use crate::responses::{DataResponse, DoneResponse};
use crate::routes::controller::PageParams;
use crate::state::AppState;
use crate::validation;

const USERS_PAGE_SIZE: u32 = 50;
/// More organizations than this on one account is a mistake, not a use case.
const MAX_ORGANIZATIONS: usize = 1000;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUserRequest {
    /// 1 to 64 characters: letters, digits, `.`, `_`, `-`, `@`.
    pub username: String,
    /// 12 to 1024 characters.
    pub password: String,
    pub role: Role,
    /// Organizations an `org_admin` or `viewer` may see (must exist). Ignored for a
    /// superadmin, who sees every organization.
    #[serde(default)]
    pub organization_ids: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserUpdateRequest {
    pub role: Option<Role>,
    /// A new password (12 to 1024 characters).
    pub password: Option<String>,
    pub organization_ids: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

pub(crate) fn organization_list(ids: &[String]) -> Result<(), ApiError> {
    if ids.len() > MAX_ORGANIZATIONS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_ORGANIZATIONS} organizations"
        )));
    }
    for id in ids {
        moolai_protocol::validate_id("organization_ids", id)?;
    }
    Ok(())
}

/// Operator accounts, by name.
#[utoipa::path(
    get,
    path = "/api/v1/internal/users",
    tag = "users",
    params(PageParams),
    responses((status = 200, description = "One page of users", body = DataResponse<Page<UserRecord>>))
)]
#[instrument(skip_all)]
pub async fn list_users(
    State(state): State<AppState>,
    Query(q): Query<PageParams>,
) -> Result<Json<DataResponse<Page<UserRecord>>>, ApiError> {
    let (page, page_size) = validation::page(q.page, q.page_size, USERS_PAGE_SIZE)?;
    Ok(DataResponse::json(
        state.store.list_users(page, page_size).await?,
    ))
}

/// Creates an operator account. Audited as `user.create`.
#[utoipa::path(
    post,
    path = "/api/v1/internal/users",
    tag = "users",
    request_body = NewUserRequest,
    responses(
        (status = 201, description = "Created", body = DataResponse<UserRecord>),
        (status = 404, description = "An organization does not exist", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "Bad name or password", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(username = %body.username))]
pub async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<NewUserRequest>,
) -> Result<(StatusCode, Json<DataResponse<UserRecord>>), ApiError> {
    validation::username(&body.username)?;
    validation::password(&body.password)?;
    organization_list(&body.organization_ids)?;
    let password_hash = password::hash_blocking(body.password)
        .await
        .map_err(ApiError::Internal)?;
    let record = state
        .store
        .create_user(
            &NewUser {
                username: body.username,
                role: body.role,
                password_hash,
                organization_ids: body.organization_ids,
            },
            &principal.actor(),
        )
        .await?;
    Ok((StatusCode::CREATED, DataResponse::json(record)))
}

/// One operator account.
#[utoipa::path(
    get,
    path = "/api/v1/internal/users/{username}",
    tag = "users",
    params(("username" = String, Path, description = "User name")),
    responses(
        (status = 200, description = "The user", body = DataResponse<UserRecord>),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(username = %username))]
pub async fn get_user(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> Result<Json<DataResponse<UserRecord>>, ApiError> {
    let record = state
        .store
        .get_user(&username)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {username} not found")))?;
    Ok(DataResponse::json(record))
}

/// Changes a user's role, organizations, password or disabled flag; the user's sessions end.
/// A superadmin cannot demote or disable themselves (so at least one always remains).
/// Audited as `user.update`.
#[utoipa::path(
    put,
    path = "/api/v1/internal/users/{username}",
    tag = "users",
    params(("username" = String, Path, description = "User name")),
    request_body = UserUpdateRequest,
    responses(
        (status = 200, description = "Updated", body = DoneResponse<UserRecord>),
        (status = 404, description = "No such user or organization", body = ErrorBody),
        (status = 409, description = "A superadmin demoting or disabling themselves", body = ErrorBody),
        (status = 422, description = "Bad password or organization id", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(username = %username))]
pub async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(username): Path<String>,
    Json(body): Json<UserUpdateRequest>,
) -> Result<Json<DoneResponse<UserRecord>>, ApiError> {
    if let Some(ids) = &body.organization_ids {
        organization_list(ids)?;
    }
    if let Some(p) = &body.password {
        validation::password(p)?;
    }
    let is_self = principal.actor().name == format!("user:{username}");
    if is_self && (body.disabled == Some(true) || body.role.is_some_and(|r| r != Role::Superadmin))
    {
        return Err(ApiError::Conflict(
            "you cannot demote or disable yourself; ask another superadmin".into(),
        ));
    }
    let password_hash = match body.password {
        Some(p) => Some(
            password::hash_blocking(p)
                .await
                .map_err(ApiError::Internal)?,
        ),
        None => None,
    };
    let update = UserUpdate {
        role: body.role,
        password_hash,
        organization_ids: body.organization_ids,
        disabled: body.disabled,
    };
    if update.is_empty() {
        return Err(ApiError::invalid(
            "nothing to change: give role, password, organization_ids or disabled",
        ));
    }
    let record = state
        .store
        .update_user(&username, &update, &principal.actor())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("user {username} not found")))?;
    Ok(DoneResponse::json("User updated", record))
}

/// Deletes an operator account and its sessions. Audited as `user.delete`.
#[utoipa::path(
    delete,
    path = "/api/v1/internal/users/{username}",
    tag = "users",
    params(("username" = String, Path, description = "User name")),
    responses(
        (status = 200, description = "Deleted", body = crate::responses::MessageOnly),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "A user deleting themselves", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(username = %username))]
pub async fn delete_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(username): Path<String>,
) -> Result<Json<crate::responses::MessageOnly>, ApiError> {
    if principal.actor().name == format!("user:{username}") {
        return Err(ApiError::Conflict(
            "you cannot delete yourself; ask another superadmin".into(),
        ));
    }
    if !state
        .store
        .delete_user(&username, &principal.actor())
        .await?
    {
        return Err(ApiError::not_found(format!("user {username} not found")));
    }
    Ok(Json(crate::responses::MessageOnly {
        success: true,
        message: "User deleted".to_owned(),
    }))
}
