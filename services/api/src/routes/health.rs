//! `GET /health` and `GET /api/v1/controller/health`: real round trips to PostgreSQL and
//! NATS, each bounded by a timeout so a hung dependency cannot hang the probe.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use tracing::instrument;

use crate::extract::Json;
use crate::responses::HealthReport;
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness and readiness of this api replica (no authentication).
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Database and NATS are up", body = HealthReport),
        (status = 503, description = "A dependency is down", body = HealthReport),
    )
)]
#[instrument(skip_all)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    check(&state).await
}

/// The seed's health path (no authentication).
#[utoipa::path(
    get,
    path = "/api/v1/controller/health",
    tag = "health",
    responses(
        (status = 200, description = "Database and NATS are up", body = HealthReport),
        (status = 503, description = "A dependency is down", body = HealthReport),
    )
)]
#[instrument(skip_all)]
pub async fn controller_health(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    check(&state).await
}

async fn check(state: &AppState) -> (StatusCode, Json<HealthReport>) {
    let (database, nats) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()),
        tokio::time::timeout(CHECK_TIMEOUT, state.bus.ping()),
    );
    let database_up = matches!(database, Ok(Ok(())));
    let nats_up = matches!(nats, Ok(Ok(())));
    if !database_up {
        tracing::warn!(outcome = ?database.map(|r| r.map_err(|e| e.to_string())), "database health check failed");
    }
    if !nats_up {
        tracing::warn!(outcome = ?nats.map(|r| r.map_err(|e| e.to_string())), "NATS health check failed");
    }
    let word = |up: bool| if up { "up" } else { "down" }.to_owned();
    let all_up = database_up && nats_up;
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(HealthReport {
            status: if all_up { "up" } else { "degraded" }.to_owned(),
            database: word(database_up),
            nats: word(nats_up),
            timestamp: Utc::now(),
        }),
    )
}
