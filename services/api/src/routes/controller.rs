//! `/api/v1/controller/*`: the dashboard's reads (fleet, organizations, costs, audit log) and
//! organization creation.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use moolai_protocol::{Status, validate_text};
use moolai_store::{
    AuditQuery, AuditRecord, ConnectionRecord, CostQuery, CostReport, Granularity, NewOrganization,
    OrchestratorQuery, OrchestratorRecord, OrganizationRecord, Overview, Page,
};
use serde::Deserialize;
use tracing::instrument;
use utoipa::IntoParams;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::listings::{KeptListing, OrchestratorListingKey};
use crate::responses::{DataResponse, SerializedData};
use crate::state::{AppState, CostKey};
use crate::validation;

/// Default page size of the organization listing (the seed's).
const ORGANIZATIONS_PAGE_SIZE: u32 = 10;
/// Default page size of the orchestrator listings.
const ORCHESTRATORS_PAGE_SIZE: u32 = 50;
/// Default page size of the audit log.
const AUDIT_PAGE_SIZE: u32 = 50;
/// Longest cost report range.
const MAX_COST_RANGE_DAYS: i64 = 400;

/// Fleet statistics for the dashboard's first screen (over the caller's organizations).
#[utoipa::path(
    get,
    path = "/api/v1/controller/overview",
    tag = "controller",
    responses((status = 200, description = "Fleet statistics", body = DataResponse<Overview>))
)]
#[instrument(skip_all)]
pub async fn overview(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<SerializedData, ApiError> {
    let scope = principal.scope_owned();
    let store = state.store.clone();
    let key = scope.clone();
    let overview = state
        .overview_cache
        .get(key, move || async move {
            SerializedData::new(&store.overview(scope.as_deref()).await?)
        })
        .await?;
    Ok(SerializedData::clone(&overview))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 100.
    pub page_size: Option<i64>,
}

/// Organizations, paginated (default page size 10).
#[utoipa::path(
    get,
    path = "/api/v1/controller/organizations",
    tag = "controller",
    params(PageParams),
    responses(
        (status = 200, description = "One page of organizations", body = DataResponse<Page<OrganizationRecord>>),
        (status = 400, description = "page or page_size out of range", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn list_organizations(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageParams>,
) -> Result<Json<DataResponse<Page<OrganizationRecord>>>, ApiError> {
    let (page, page_size) = validation::page(q.page, q.page_size, ORGANIZATIONS_PAGE_SIZE)?;
    Ok(DataResponse::json(
        state
            .store
            .list_organizations(page, page_size, principal.scope())
            .await?,
    ))
}

/// Creates an organization (superadmin).
#[utoipa::path(
    post,
    path = "/api/v1/controller/organizations",
    tag = "controller",
    request_body = NewOrganization,
    responses(
        (status = 201, description = "Created", body = DataResponse<OrganizationRecord>),
        (status = 409, description = "The id exists", body = ErrorBody),
        (status = 422, description = "A field breaks a rule", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(organization_id = %new.organization_id))]
pub async fn create_organization(
    State(state): State<AppState>,
    principal: Principal,
    Json(new): Json<NewOrganization>,
) -> Result<(StatusCode, Json<DataResponse<OrganizationRecord>>), ApiError> {
    moolai_protocol::validate_id("organization_id", &new.organization_id)?;
    if new.name.trim().is_empty() || new.name.len() > moolai_protocol::MAX_TEXT_LEN {
        return Err(ApiError::invalid(format!(
            "name must be non-empty and at most {} bytes",
            moolai_protocol::MAX_TEXT_LEN
        )));
    }
    validation::storable_text("name", &new.name)?;
    validate_text("location", new.location.as_deref())?;
    validation::storable_text("location", new.location.as_deref().unwrap_or_default())?;
    validation::optional_json_object("metadata", new.metadata.as_ref())?;
    validation::optional_json_object("features", new.features.as_ref())?;
    validation::optional_json_object("settings", new.settings.as_ref())?;
    let record = state
        .store
        .create_organization(&new, &principal.actor())
        .await?;
    Ok((StatusCode::CREATED, DataResponse::json(record)))
}

/// One organization.
#[utoipa::path(
    get,
    path = "/api/v1/controller/organizations/{organization_id}",
    tag = "controller",
    params(("organization_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization", body = DataResponse<OrganizationRecord>),
        (status = 404, description = "No such organization", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(organization_id = %organization_id))]
pub async fn get_organization(
    State(state): State<AppState>,
    principal: Principal,
    Path(organization_id): Path<String>,
) -> Result<Json<DataResponse<OrganizationRecord>>, ApiError> {
    validation::id_param("organization_id", &organization_id)?;
    let record = state
        .store
        .get_organization(&organization_id)
        .await?
        // Outside the caller's scope looks exactly like missing.
        .filter(|o| principal.sees(&o.organization_id))
        .ok_or_else(|| ApiError::not_found(format!("organization {organization_id} not found")))?;
    Ok(DataResponse::json(record))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrchestratorListParams {
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 50).
    pub page_size: Option<i64>,
    /// Only orchestrators with this derived status.
    pub status: Option<Status>,
    /// Only orchestrators of this organization.
    pub organization_id: Option<String>,
    /// Case-insensitive substring of the id, name or organization id (at most 128 characters).
    pub search: Option<String>,
}

async fn orchestrator_page(
    state: &AppState,
    principal: &Principal,
    q: OrchestratorListParams,
) -> Result<SerializedData, ApiError> {
    let (page, page_size) = validation::page(q.page, q.page_size, ORCHESTRATORS_PAGE_SIZE)?;
    validation::optional_id_param("organization_id", q.organization_id.as_deref())?;
    principal.check_filter(q.organization_id.as_deref())?;
    let query = OrchestratorQuery {
        page,
        page_size,
        status: q.status,
        organization_id: q.organization_id,
        search: validation::text_filter("search", q.search)?,
        scope: principal.scope_owned(),
    };
    let store = state.store.clone();
    let read = query.clone();
    let kept = state
        .orchestrator_listings
        .get(OrchestratorListingKey::of(&query), move || async move {
            KeptListing::read(&*store, &read).await
        })
        .await?;
    kept.page(
        &*state.store,
        &state.orchestrator_rows,
        &state.fleet_view,
        &query,
    )
    .await
}

/// Orchestrators, paginated and filtered; `status` is derived at read time.
#[utoipa::path(
    get,
    path = "/api/v1/controller/orchestrators",
    tag = "controller",
    params(OrchestratorListParams),
    responses(
        (status = 200, description = "One page of orchestrators", body = DataResponse<Page<OrchestratorRecord>>),
        (status = 400, description = "A parameter is out of range", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn list_orchestrators(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<OrchestratorListParams>,
) -> Result<SerializedData, ApiError> {
    orchestrator_page(&state, &principal, q).await
}

/// The same listing as `/controller/orchestrators` (the seed's dashboard reads this path).
#[utoipa::path(
    get,
    path = "/api/v1/controller/orchestrator-instances",
    tag = "controller",
    params(OrchestratorListParams),
    responses(
        (status = 200, description = "One page of orchestrators", body = DataResponse<Page<OrchestratorRecord>>),
        (status = 400, description = "A parameter is out of range", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn list_orchestrator_instances(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<OrchestratorListParams>,
) -> Result<SerializedData, ApiError> {
    orchestrator_page(&state, &principal, q).await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveParams {
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 50).
    pub page_size: Option<i64>,
    /// Only orchestrators of this organization.
    pub organization_id: Option<String>,
}

/// Orchestrators whose derived status is `active` right now.
#[utoipa::path(
    get,
    path = "/api/v1/controller/orchestrators/live",
    tag = "controller",
    params(LiveParams),
    responses(
        (status = 200, description = "One page of active orchestrators", body = DataResponse<Page<OrchestratorRecord>>),
        (status = 400, description = "A parameter is out of range", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn live_orchestrators(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<LiveParams>,
) -> Result<SerializedData, ApiError> {
    orchestrator_page(
        &state,
        &principal,
        OrchestratorListParams {
            page: q.page,
            page_size: q.page_size,
            status: Some(Status::Active),
            organization_id: q.organization_id,
            search: None,
        },
    )
    .await
}

/// One orchestrator.
#[utoipa::path(
    get,
    path = "/api/v1/controller/orchestrators/{orchestrator_id}",
    tag = "controller",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id")),
    responses(
        (status = 200, description = "The orchestrator", body = DataResponse<OrchestratorRecord>),
        (status = 404, description = "No such orchestrator", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
pub async fn get_orchestrator(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
) -> Result<Json<DataResponse<OrchestratorRecord>>, ApiError> {
    Ok(DataResponse::json(
        existing_orchestrator(&state, &principal, &orchestrator_id).await?,
    ))
}

/// Loads an orchestrator named in a path: 400 for an impossible id, 404 when missing or
/// outside the caller's scope (the two look the same, so nothing about another
/// organization's orchestrators leaks).
pub(crate) async fn existing_orchestrator(
    state: &AppState,
    principal: &Principal,
    orchestrator_id: &str,
) -> Result<OrchestratorRecord, ApiError> {
    validation::id_param("orchestrator_id", orchestrator_id)?;
    state
        .store
        .get_orchestrator(orchestrator_id)
        .await?
        .filter(|o| principal.sees(&o.organization_id))
        .ok_or_else(|| ApiError::not_found(format!("orchestrator {orchestrator_id} not found")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionParams {
    /// Newest first, at most this many (1 to 200, default 50).
    pub limit: Option<i64>,
}

/// Connection history of one orchestrator, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/controller/orchestrators/{orchestrator_id}/connections",
    tag = "controller",
    params(("orchestrator_id" = String, Path, description = "Orchestrator id"), ConnectionParams),
    responses(
        (status = 200, description = "Connections", body = DataResponse<Vec<ConnectionRecord>>),
        (status = 404, description = "No such orchestrator", body = ErrorBody),
    )
)]
#[instrument(skip_all, fields(orchestrator_id = %orchestrator_id))]
pub async fn list_connections(
    State(state): State<AppState>,
    principal: Principal,
    Path(orchestrator_id): Path<String>,
    Query(q): Query<ConnectionParams>,
) -> Result<Json<DataResponse<Vec<ConnectionRecord>>>, ApiError> {
    let limit = validation::limit(q.limit, 50, 200)?;
    existing_orchestrator(&state, &principal, &orchestrator_id).await?;
    Ok(DataResponse::json(
        state
            .store
            .list_connections(&orchestrator_id, limit)
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// Start (inclusive): RFC 3339 or `YYYY-MM-DD` (UTC midnight). Default: the first day of
    /// the current month.
    pub from: Option<String>,
    /// End (exclusive): RFC 3339, or `YYYY-MM-DD` meaning the end of that day. Default: now.
    pub to: Option<String>,
    /// Series bucket size (default `day`).
    pub granularity: Option<Granularity>,
    pub organization_id: Option<String>,
    pub orchestrator_id: Option<String>,
}

/// Reported usage and cost, aggregated (at most 400 days), over the caller's organizations.
#[utoipa::path(
    get,
    path = "/api/v1/controller/costs",
    tag = "controller",
    params(CostParams),
    responses(
        (status = 200, description = "Aggregated usage", body = DataResponse<CostReport>),
        (status = 400, description = "Bad range or filter", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn costs(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<CostParams>,
) -> Result<SerializedData, ApiError> {
    let now = Utc::now();
    let from = match q.from.as_deref() {
        Some(s) => parse_instant("from", s, false)?,
        None => month_start(now),
    };
    let to = match q.to.as_deref() {
        Some(s) => parse_instant("to", s, true)?,
        None => now,
    };
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    if to - from > chrono::Duration::days(MAX_COST_RANGE_DAYS) {
        return Err(ApiError::bad_request(format!(
            "the range must be at most {MAX_COST_RANGE_DAYS} days"
        )));
    }
    validation::optional_id_param("organization_id", q.organization_id.as_deref())?;
    validation::optional_id_param("orchestrator_id", q.orchestrator_id.as_deref())?;
    principal.check_filter(q.organization_id.as_deref())?;
    let granularity = q.granularity.unwrap_or_default();
    let scope = principal.scope_owned();
    let key = CostKey {
        from: q.from,
        to: q.to,
        organization_id: q.organization_id.clone(),
        orchestrator_id: q.orchestrator_id.clone(),
        granularity,
        scope: scope.clone(),
    };
    let query = CostQuery {
        from,
        to,
        organization_id: q.organization_id,
        orchestrator_id: q.orchestrator_id,
        granularity,
        scope,
    };
    let store = state.store.clone();
    let report = state
        .costs_cache
        .get(key, move || async move {
            SerializedData::new(&store.costs(&query).await?)
        })
        .await?;
    Ok(SerializedData::clone(&report))
}

fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// RFC 3339, or a date (midnight UTC; with `end_of_day`, the following midnight).
fn parse_instant(field: &str, s: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || ApiError::bad_request(format!("{field} must be an RFC 3339 time or YYYY-MM-DD"));
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    let date = if end_of_day {
        date.succ_opt().ok_or_else(bad)?
    } else {
        date
    };
    Ok(date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// 1-based page (default 1).
    pub page: Option<i64>,
    /// Items per page, 1 to 100 (default 50).
    pub page_size: Option<i64>,
    /// e.g. `auth.login`, `orchestrator.independence`, `message.status`.
    pub action: Option<String>,
    /// e.g. `user:ops`, `token:dev`.
    pub actor: Option<String>,
    /// e.g. `orchestrator:orch-001`.
    pub target: Option<String>,
    pub organization_id: Option<String>,
    /// Only entries at or after this time (RFC 3339 or `YYYY-MM-DD`).
    pub from: Option<String>,
    /// Only entries before this time (RFC 3339, or `YYYY-MM-DD` meaning the end of that day).
    pub to: Option<String>,
    /// Only successful (`true`) or failed (`false`) attempts.
    pub success: Option<bool>,
}

/// The audit log, newest first: logins, user and token changes, independence toggles,
/// message decisions, configuration updates, orchestrator registrations and
/// deregistrations, with actor, target, time and client address. Scoped readers see the
/// entries of their organizations only (not logins or account changes).
#[utoipa::path(
    get,
    path = "/api/v1/controller/logs",
    tag = "controller",
    params(AuditParams),
    responses(
        (status = 200, description = "One page of audit records", body = DataResponse<Page<AuditRecord>>),
        (status = 400, description = "A parameter is out of range", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn audit_log(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AuditParams>,
) -> Result<Json<DataResponse<Page<AuditRecord>>>, ApiError> {
    let (page, page_size) = validation::page(q.page, q.page_size, AUDIT_PAGE_SIZE)?;
    validation::optional_id_param("organization_id", q.organization_id.as_deref())?;
    principal.check_filter(q.organization_id.as_deref())?;
    let from = q
        .from
        .as_deref()
        .map(|s| parse_instant("from", s, false))
        .transpose()?;
    let to =
        q.to.as_deref()
            .map(|s| parse_instant("to", s, true))
            .transpose()?;
    let query = AuditQuery {
        page,
        page_size,
        action: validation::text_filter("action", q.action)?,
        actor: validation::text_filter("actor", q.actor)?,
        target: validation::text_filter("target", q.target)?,
        organization_id: q.organization_id,
        from,
        to,
        success: q.success,
        scope: principal.scope_owned(),
    };
    Ok(DataResponse::json(state.store.list_audit(&query).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants() {
        let t = parse_instant("from", "2026-03-01", false).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T00:00:00+00:00");
        let t = parse_instant("to", "2026-03-31", true).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-04-01T00:00:00+00:00");
        let t = parse_instant("to", "2026-03-31T10:00:00+02:00", true).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-31T08:00:00+00:00");
        assert!(parse_instant("from", "yesterday", false).is_err());
        assert!(parse_instant("from", "2026-02-30", false).is_err());
    }

    #[test]
    fn month_starts() {
        let now = Utc.with_ymd_and_hms(2026, 5, 17, 13, 4, 5).unwrap();
        assert_eq!(month_start(now).to_rfc3339(), "2026-05-01T00:00:00+00:00");
    }
}
