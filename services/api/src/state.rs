//! [`AppState`]: what every handler shares, and the two ways handlers talk to NATS
//! (status events and edge commands).

use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;
use moolai_bus::events::{Command, StatusEvent};
use moolai_bus::{Bus, Kind};
use moolai_store::{Granularity, Store};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::auth_cache::AuthCache;
use crate::fleet_view::FleetView;
use crate::listings::{KeptListing, OrchestratorListingKey};
use crate::report_cache::{ReportCache, Staleness};
use crate::responses::SerializedData;
use crate::row_cache::RowCache;
use crate::settings::ApiSettings;
use crate::throttle::LoginThrottle;

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub bus: Bus,
    pub settings: ApiSettings,
    /// `HEARTBEAT_TTL_SEC`: needed to derive the status an orchestrator had before a toggle.
    pub heartbeat_ttl: chrono::Duration,
    /// Fed by the process's one NATS status subscription; every SSE client subscribes here.
    pub status_events: broadcast::Sender<Arc<StatusEvent>>,
    /// The OpenAPI document, serialized once at start.
    pub openapi_json: Bytes,
    /// Fires on shutdown so endless SSE streams end and graceful shutdown can finish.
    pub shutdown: CancellationToken,
    /// Failed-login counters of this process.
    pub login_throttle: LoginThrottle,
    /// An argon2id hash of a random password, verified against when the user name is
    /// unknown, so an unknown name costs the same time as a wrong password.
    pub dummy_password_hash: String,
    /// Bumped by every write through this process (everything cached is stale after it)
    /// and, per organization, by every status event (see `report_cache`).
    pub staleness: Staleness,
    pub overview_cache: Arc<ReportCache<Option<Vec<String>>, SerializedData>>,
    pub costs_cache: Arc<ReportCache<CostKey, SerializedData>>,
    /// Orchestrator listings' totals and, for smaller listings, their order; kept like the
    /// reports.
    pub orchestrator_listings: Arc<ReportCache<OrchestratorListingKey, KeptListing>>,
    /// Orchestrator records as JSON by row version, for listing pages
    /// (`API_ROW_CACHE_MB`).
    pub orchestrator_rows: Arc<RowCache>,
    /// Every orchestrator's version and status facts, read in the background
    /// (`API_FLEET_VIEW_MS`), so listing pages need not ask the database for them.
    pub fleet_view: Arc<FleetView>,
    /// Callers whose token resolved recently (`API_AUTH_CACHE_MS`).
    pub auth_cache: AuthCache,
}

/// What a cost report depends on: the query as the caller gave it (absent bounds mean "this
/// month, until now") and the caller's scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CostKey {
    pub from: Option<String>,
    pub to: Option<String>,
    pub organization_id: Option<String>,
    pub orchestrator_id: Option<String>,
    pub granularity: Granularity,
    pub scope: Option<Vec<String>>,
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    #[must_use]
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }

    /// Publishes a status change on the orchestrator's public status subject. The database
    /// write it reports has committed already, so a failure is logged and counted, not
    /// returned: subscribers that missed it see the state on their next read.
    pub async fn publish_status(&self, event: &StatusEvent) {
        let subject = self.bus.subjects().orchestrator(
            Kind::Status,
            &event.organization_id,
            &event.orchestrator_id,
        );
        if let Err(e) = self.bus.publish(subject, event).await {
            metrics::counter!("api_bus_publish_failures_total", "kind" => "status").increment(1);
            tracing::error!(error = %e, orchestrator_id = %event.orchestrator_id, "status event not published");
        }
    }

    /// Publishes a command for the edge holding the orchestrator's socket. Commands are
    /// level-triggered (the orchestrator receives the current state on its next hello), so a
    /// lost command is repaired on reconnect; a failure is logged and counted.
    pub async fn publish_command(
        &self,
        organization_id: &str,
        orchestrator_id: &str,
        command: &Command,
    ) {
        let subject =
            self.bus
                .subjects()
                .orchestrator(Kind::Command, organization_id, orchestrator_id);
        if let Err(e) = self.bus.publish(subject, command).await {
            metrics::counter!("api_bus_publish_failures_total", "kind" => "command").increment(1);
            tracing::error!(error = %e, %orchestrator_id, "command not published");
        }
    }
}
