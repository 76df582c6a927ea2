//! `GET /api/v1/openapi.json`.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use tracing::instrument;

use crate::state::AppState;

/// This API's OpenAPI 3.1 document (no authentication).
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "docs",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
#[instrument(skip_all)]
pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        state.openapi_json.clone(),
    )
}
