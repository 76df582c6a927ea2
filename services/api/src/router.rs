//! Builds the axum router and the OpenAPI document from the same route list.
//!
//! Routes come in groups; a group's guard (the role it requires) decides the `security` of
//! its operations in the document (`bearer: [<role>]`), so the document cannot claim a route
//! is protected, or needs a role, when it does not (or the reverse); the authorization tests
//! are generated from that document:
//! - public: login, health, the OpenAPI document;
//! - viewer (any authenticated caller): reads, and the caller's own session and password;
//! - org_admin: operator writes (independence, configuration, messages, orchestrator
//!   registration, orchestrator tokens); the handlers also check the organization scope;
//! - superadmin: organizations, users and API tokens;
//! - the SSE stream (viewer), which also accepts `?access_token=`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, PathItem, RefOr, Response as DocResponse};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use moolai_store::Role;

use crate::auth::{Guard, guard};
use crate::error::ApiError;
use crate::routes::{
    auth, controller, docs, events, health, messages, orchestrators, tokens, users,
};
use crate::state::AppState;

/// Name of the security scheme in the document.
const BEARER: &str = "bearer";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Moolai Controller API",
        description = "Operators' REST API of the Moolai Controller: fleet status, \
            independence mode, messages, costs, audit log and a live event stream. \
            Errors always have the shape {\"success\":false,\"error\":{\"code\",\"message\"}}."
    ),
    modifiers(&BearerScheme),
    components(schemas(crate::error::ErrorBody)),
    tags(
        (name = "auth", description = "Operator login sessions"),
        (name = "controller", description = "Fleet reads for the dashboard"),
        (name = "orchestrators", description = "Operator writes about one orchestrator"),
        (name = "messages", description = "Recommendations and monitoring notices"),
        (name = "users", description = "Operator accounts (superadmin)"),
        (name = "tokens", description = "API tokens for machines; orchestrator enrollment and per-orchestrator tokens"),
        (name = "health", description = "Probes"),
        (name = "docs", description = "This document"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A login session token (POST /api/v1/internal/auth/login), an API token \
                         (moo_api_…) or DEV_BEARER_TOKEN. An operation's requirement lists the \
                         least role it needs: viewer < org_admin < superadmin.",
                    ))
                    .build(),
            ),
        );
    }
}

fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(health::health))
        .routes(routes!(health::controller_health))
        .routes(routes!(docs::openapi_json))
}

/// Reads, and what any caller may do with their own session.
fn viewer_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(controller::overview))
        .routes(routes!(controller::list_organizations))
        .routes(routes!(controller::get_organization))
        .routes(routes!(controller::list_orchestrators))
        .routes(routes!(controller::list_orchestrator_instances))
        .routes(routes!(controller::live_orchestrators))
        .routes(routes!(controller::get_orchestrator))
        .routes(routes!(controller::list_connections))
        .routes(routes!(controller::costs))
        .routes(routes!(controller::audit_log))
        .routes(routes!(orchestrators::get_independence))
        .routes(routes!(messages::list_orchestrator_messages))
        .routes(routes!(messages::list_messages))
        .routes(routes!(tokens::list_enrollment_tokens))
        .routes(routes!(tokens::list_orchestrator_tokens))
}

/// Operator writes within the caller's organizations.
fn org_admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(orchestrators::set_independence))
        .routes(routes!(orchestrators::update_config))
        .routes(routes!(orchestrators::register))
        .routes(routes!(orchestrators::deregister))
        .routes(routes!(messages::create_message))
        .routes(routes!(messages::update_message_status))
        .routes(routes!(tokens::create_enrollment_token))
        .routes(routes!(tokens::revoke_enrollment_token))
        .routes(routes!(tokens::create_orchestrator_token))
        .routes(routes!(tokens::revoke_orchestrator_token))
}

/// What spans every organization: organizations themselves, accounts, API tokens.
fn superadmin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(controller::create_organization))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(tokens::list_api_tokens, tokens::create_api_token))
        .routes(routes!(tokens::revoke_api_token))
}

fn stream_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events::events))
}

/// Routes and document; with a state, the guards are attached.
fn assemble(state: Option<&AppState>) -> (Router<AppState>, OpenApi) {
    let groups = [
        (viewer_routes(), Role::Viewer, false),
        (org_admin_routes(), Role::OrgAdmin, false),
        (superadmin_routes(), Role::Superadmin, false),
        (stream_routes(), Role::Viewer, true),
    ];
    let mut app = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(public_routes());
    for (mut group, min_role, allow_query) in groups {
        secure(group.get_openapi_mut(), min_role);
        if let Some(state) = state {
            group = group.route_layer(middleware::from_fn_with_state(
                Guard {
                    state: state.clone(),
                    min_role,
                    allow_query,
                },
                guard,
            ));
        }
        app = app.merge(group);
    }
    let (router, mut doc) = app.split_for_parts();
    document_common_errors(&mut doc);
    (router, doc)
}

/// Errors any operation can answer, documented once here rather than on every handler:
/// 400 for a malformed body, query or path (the extractors' rejections), 413 for a body over
/// the limit, 422 for a body of the wrong shape, 503 when the database or the broker is
/// unavailable.
fn document_common_errors(doc: &mut OpenApi) {
    for (path, item) in &mut doc.paths.paths {
        let documents_itself = path == "/api/v1/openapi.json";
        for op in operations_mut(item) {
            let takes_input =
                op.request_body.is_some() || op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            let mut add = |code: &str, description: &str| {
                op.responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| error_response(description));
            };
            if takes_input {
                add("400", "Malformed body, query or path");
            }
            if op.request_body.is_some() {
                add("413", "Body larger than API_MAX_BODY_BYTES");
                add(
                    "422",
                    "Well-formed JSON that is not the expected shape or breaks a rule",
                );
            }
            if !documents_itself {
                add("503", "The database or the message bus is unavailable");
            }
        }
    }
}

/// The OpenAPI document of this API (also served at `GET /api/v1/openapi.json`).
#[must_use]
pub fn openapi() -> OpenApi {
    assemble(None).1
}

/// Marks every operation as requiring the bearer scheme with at least `role`, and documents
/// its 401 and 403.
fn secure(doc: &mut OpenApi, role: Role) {
    for item in doc.paths.paths.values_mut() {
        for op in operations_mut(item) {
            op.security = Some(vec![SecurityRequirement::new(BEARER, [role.as_str()])]);
            let responses = &mut op.responses.responses;
            responses
                .entry("401".to_owned())
                .or_insert_with(|| error_response("Missing, invalid or expired bearer token"));
            responses.entry("403".to_owned()).or_insert_with(|| {
                error_response(&format!(
                    "The caller's role is below {}, or a filter names an organization outside \
                     the caller's scope",
                    role.as_str()
                ))
            });
        }
    }
}

fn error_response(description: &str) -> RefOr<DocResponse> {
    RefOr::T(
        utoipa::openapi::ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorBody",
                    ))))
                    .build(),
            )
            .build(),
    )
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.options.as_mut(),
        item.head.as_mut(),
        item.patch.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// The complete application for `state`: routes, fallbacks, body limit, metrics, tracing and
/// CORS.
pub fn router(state: &AppState, fallback: Option<Router>) -> Router {
    let (routes, _) = assemble(Some(state));
    let routes = match fallback {
        None => routes.fallback(not_found),
        Some(fallback) => routes.fallback_service(
            Router::new()
                .nest_service("/api", Router::new().fallback(not_found))
                .fallback_service(fallback),
        ),
    };
    let mut app = routes
        .layer(DefaultBodyLimit::max(state.settings.api_max_body_bytes))
        .layer(middleware::from_fn(json_method_not_allowed))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            writes_make_reports_stale,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str);
                    tracing::info_span!(
                        "http",
                        method = %request.method(),
                        route,
                        status = tracing::field::Empty,
                        actor = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(|response: &Response, latency: Duration, span: &Span| {
                    span.record("status", response.status().as_u16());
                    tracing::info!(
                        status = response.status().as_u16(),
                        latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                        "request handled"
                    );
                }),
        );
    if let Some(cors) = cors_layer(&state.settings.cors_origins()) {
        app = app.layer(cors);
    }
    app.with_state(state.clone())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// axum answers a known path with an unsupported method by an empty 405; give it the JSON
/// error shape (keeping the `Allow` header).
async fn json_method_not_allowed(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != axum::http::StatusCode::METHOD_NOT_ALLOWED
        || response
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        return response;
    }
    let allow = response.headers().get(axum::http::header::ALLOW).cloned();
    let mut replaced = ApiError::MethodNotAllowed.into_response();
    if let Some(allow) = allow {
        replaced
            .headers_mut()
            .insert(axum::http::header::ALLOW, allow);
    }
    replaced
}

/// A successful write through this process (any method but GET, HEAD, OPTIONS) makes the
/// cached reports stale, so the operator's next overview shows it, and forgets the
/// remembered callers (it may have been a logout, a revocation or a user's change). A write
/// whose client went away before the answer (the handler dropped mid-way, perhaps after its
/// change committed) counts as successful.
async fn writes_make_reports_stale(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let write = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let mut guard = StaleOnDrop(write.then_some(state));
    let response = next.run(request).await;
    if !response.status().is_success() {
        guard.0 = None;
    }
    response
}

/// Makes the cached reports stale and forgets the remembered callers when dropped, unless
/// emptied first.
struct StaleOnDrop(Option<AppState>);

impl Drop for StaleOnDrop {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.staleness.bump();
            state.auth_cache.forget_all();
        }
    }
}

/// Request count and latency by matched route (never the raw path: bounded label values).
async fn record_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    };
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "api_http_requests_total",
        "method" => method,
        "route" => route.clone(),
        "status" => status
    )
    .increment(1);
    metrics::histogram!(
        "api_http_request_duration_seconds",
        "method" => method,
        "route" => route
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// No origins configured → no CORS headers at all (same-origin dashboard). Credentials are
/// never allowed: the API uses bearer headers, not cookies.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_credentials(false)
            .allow_headers([AUTHORIZATION, CONTENT_TYPE])
            .max_age(Duration::from_secs(600)),
    )
}
