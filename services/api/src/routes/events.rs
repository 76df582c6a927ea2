//! `GET /api/v1/controller/events`: the live status stream (Server-Sent Events).
//!
//! Each api process holds ONE NATS subscription on every orchestrator's status subject
//! ([`StatusFanout`]) and fans it out through a broadcast channel, so a thousand dashboards
//! cost one subscription, not a thousand. A client that falls behind gets a `resync` event
//! (refetch, then keep listening) instead of an error.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use moolai_bus::events::StatusEvent;
use moolai_bus::{Bus, Kind};
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::instrument;

use crate::fleet_view::FleetView;
use crate::report_cache::Staleness;
use utoipa::IntoParams;

use crate::auth::{self, Principal};
use crate::error::{ApiError, ErrorBody};
use crate::extract::Query;
use crate::state::AppState;
use crate::validation;

/// Events buffered per client before it counts as lagging.
pub const CHANNEL_CAPACITY: usize = 1024;
/// How often an open stream re-checks the credential it was opened with: a logout, a
/// changed, disabled or deleted user, or a revoked token ends the stream within this.
pub const CREDENTIAL_RECHECK: Duration = Duration::from_secs(10);

/// Answers whether the stream's credential still works (see [`auth::still_valid`]).
type CredentialCheck =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, bool> + Send + Sync + 'static>;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The process's one status subscription.
pub struct StatusFanout;

impl StatusFanout {
    /// Subscribes (and waits until the broker has the subscription, so nothing published
    /// after this returns is missed), then forwards every status event into `sender` until
    /// `shutdown` fires, making cached reports stale first.
    ///
    /// # Errors
    /// When the subscription cannot be registered.
    pub async fn start(
        bus: &Bus,
        sender: broadcast::Sender<Arc<StatusEvent>>,
        staleness: Staleness,
        fleet_view: Arc<FleetView>,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let subject = bus.subjects().all(Kind::Status);
        let mut deliveries = bus.subscribe(subject.clone()).await?;
        bus.flush().await?;
        tracing::info!(%subject, "listening for status events");
        tracker.spawn(async move {
            loop {
                let delivery = tokio::select! {
                    () = shutdown.cancelled() => break,
                    next = deliveries.next() => match next {
                        Some(d) => d,
                        None => {
                            tracing::error!("status subscription ended");
                            break;
                        }
                    },
                };
                match delivery.json::<StatusEvent>() {
                    // No receivers is fine: nobody is watching right now.
                    Ok(event) => {
                        // Cached reports count statuses: stale before anyone hears of it.
                        staleness.bump_organization(&event.organization_id);
                        fleet_view.forget(&event.orchestrator_id);
                        drop(sender.send(Arc::new(event)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, subject = %delivery.subject, "undecodable status event");
                    }
                }
            }
        });
        Ok(())
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events of this organization.
    pub organization_id: Option<String>,
    /// The bearer token, for clients that cannot set headers (`EventSource`).
    pub access_token: Option<String>,
}

/// Live orchestrator status changes of the caller's organizations. Events: `status` (data: a StatusEvent, the same JSON as
/// the public NATS `status` subject) and `resync` (the client fell behind: refetch the
/// listings). A comment is sent every 15 s to keep proxies from closing the stream.
#[utoipa::path(
    get,
    path = "/api/v1/controller/events",
    tag = "controller",
    params(EventParams),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad organization_id", body = ErrorBody),
    )
)]
#[instrument(skip_all)]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<EventParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    validation::optional_id_param("organization_id", q.organization_id.as_deref())?;
    principal.check_filter(q.organization_id.as_deref())?;
    let receiver = state.status_events.subscribe();
    let filter = OrganizationFilter {
        organization_id: q.organization_id,
        scope: principal.scope_owned(),
    };
    let check: CredentialCheck = {
        let state = state.clone();
        let credential = principal.credential.clone();
        Arc::new(move || {
            let state = state.clone();
            let credential = credential.clone();
            Box::pin(async move { auth::still_valid(&state, &credential).await })
        })
    };
    let stream = status_stream(receiver, filter, check, state.shutdown.clone());
    metrics::gauge!("api_sse_clients").increment(1.0);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Which events a client receives: those of its scope (every organization for a
/// superadmin), narrowed to one organization when it asked for one.
#[derive(Debug, Clone, Default)]
struct OrganizationFilter {
    organization_id: Option<String>,
    scope: Option<Vec<String>>,
}

impl OrganizationFilter {
    fn admits(&self, organization_id: &str) -> bool {
        self.organization_id
            .as_deref()
            .is_none_or(|o| o == organization_id)
            && self
                .scope
                .as_ref()
                .is_none_or(|s| s.iter().any(|o| o == organization_id))
    }
}

/// A receiver turned into SSE events; ends on shutdown (so graceful shutdown can finish) or
/// when the fan-out stops.
fn status_stream(
    receiver: broadcast::Receiver<Arc<StatusEvent>>,
    filter: OrganizationFilter,
    check: CredentialCheck,
    shutdown: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> {
    struct Client {
        receiver: broadcast::Receiver<Arc<StatusEvent>>,
        filter: OrganizationFilter,
        check: CredentialCheck,
        recheck: tokio::time::Interval,
        shutdown: CancellationToken,
    }
    impl Drop for Client {
        fn drop(&mut self) {
            metrics::gauge!("api_sse_clients").decrement(1.0);
        }
    }

    // A first comment so the client sees the stream open at once.
    let hello = futures::stream::once(async { Ok(Event::default().comment("connected")) });
    let mut recheck = tokio::time::interval_at(
        tokio::time::Instant::now() + CREDENTIAL_RECHECK,
        CREDENTIAL_RECHECK,
    );
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let client = Client {
        receiver,
        filter,
        check,
        recheck,
        shutdown,
    };
    let updates = futures::stream::unfold(client, |mut client| async move {
        loop {
            let received = tokio::select! {
                biased;
                () = client.shutdown.cancelled() => return None,
                _ = client.recheck.tick() => {
                    if (client.check)().await {
                        continue;
                    }
                    tracing::info!("event stream ended: its credential no longer works");
                    return None;
                }
                r = client.receiver.recv() => r,
            };
            match received {
                Ok(event) => {
                    if !client.filter.admits(&event.organization_id) {
                        continue;
                    }
                    let sse = Event::default()
                        .event("status")
                        .json_data(&*event)
                        .unwrap_or_else(|_| Event::default().comment("unencodable event"));
                    return Some((Ok(sse), client));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let sse = Event::default()
                        .event("resync")
                        .data(format!("{{\"missed\":{missed}}}"));
                    return Some((Ok(sse), client));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    hello.chain(updates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use moolai_protocol::Status;

    fn always_valid() -> CredentialCheck {
        Arc::new(|| Box::pin(async { true }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_ends_once_its_credential_stops_working() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let valid = Arc::new(AtomicBool::new(true));
        let flag = valid.clone();
        let check: CredentialCheck = Arc::new(move || {
            let flag = flag.clone();
            Box::pin(async move { flag.load(Ordering::SeqCst) })
        });
        let (tx, rx) = broadcast::channel(8);
        let mut s = Box::pin(status_stream(
            rx,
            OrganizationFilter::default(),
            check,
            CancellationToken::new(),
        ));
        assert_eq!(next_text(&mut s).await, ": connected\n\n");
        // Checks pass: events keep flowing across several recheck periods.
        tokio::time::sleep(CREDENTIAL_RECHECK * 3).await;
        tx.send(event("org-a", "a1")).unwrap();
        assert!(next_text(&mut s).await.contains("a1"));
        // Revoked: the stream ends at the next check, without any event arriving.
        valid.store(false, Ordering::SeqCst);
        let ended = tokio::time::timeout(CREDENTIAL_RECHECK * 2, s.next()).await;
        assert!(matches!(ended, Ok(None)), "the stream did not end");
    }

    fn event(org: &str, orch: &str) -> Arc<StatusEvent> {
        Arc::new(StatusEvent {
            orchestrator_id: orch.into(),
            organization_id: org.into(),
            status: Status::Active,
            previous_status: None,
            is_independent: false,
            last_seen: None,
            reason: "registered".into(),
            at: Utc::now(),
        })
    }

    async fn next_text<S: Stream<Item = Result<Event, Infallible>> + Unpin>(s: &mut S) -> String {
        use axum::response::IntoResponse;
        // Render the event the way the response body would.
        let Some(Ok(e)) = s.next().await else {
            return String::new();
        };
        let body = Sse::new(futures::stream::iter([Ok::<_, Infallible>(e)])).into_response();
        let bytes = axum::body::to_bytes(body.into_body(), 1 << 20)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn filters_by_organization_and_reports_lag() {
        let (tx, rx) = broadcast::channel(2);
        let shutdown = CancellationToken::new();
        let filter = OrganizationFilter {
            organization_id: Some("org-a".into()),
            scope: None,
        };
        let mut s = Box::pin(status_stream(rx, filter, always_valid(), shutdown.clone()));
        assert_eq!(next_text(&mut s).await, ": connected\n\n");
        tx.send(event("org-b", "x")).unwrap();
        tx.send(event("org-a", "y")).unwrap();
        let text = next_text(&mut s).await;
        assert!(text.starts_with("event: status\ndata: {"), "{text}");
        assert!(text.contains("\"orchestrator_id\":\"y\""), "{text}");
        for i in 0..5 {
            tx.send(event("org-a", &format!("z{i}"))).unwrap();
        }
        assert_eq!(
            next_text(&mut s).await,
            "event: resync\ndata: {\"missed\":3}\n\n"
        );
        shutdown.cancel();
        // Events still buffered are skipped once shutdown fires.
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn a_scoped_client_only_sees_its_organizations() {
        let (tx, rx) = broadcast::channel(8);
        let filter = OrganizationFilter {
            organization_id: None,
            scope: Some(vec!["org-a".into(), "org-c".into()]),
        };
        let mut s = Box::pin(status_stream(
            rx,
            filter,
            always_valid(),
            CancellationToken::new(),
        ));
        assert_eq!(next_text(&mut s).await, ": connected\n\n");
        for (org, orch) in [
            ("org-b", "b1"),
            ("org-a", "a1"),
            ("org-b", "b2"),
            ("org-c", "c1"),
        ] {
            tx.send(event(org, orch)).unwrap();
        }
        assert!(
            next_text(&mut s)
                .await
                .contains("\"orchestrator_id\":\"a1\"")
        );
        assert!(
            next_text(&mut s)
                .await
                .contains("\"orchestrator_id\":\"c1\"")
        );
        let nobody = OrganizationFilter {
            organization_id: None,
            scope: Some(vec![]),
        };
        assert!(!nobody.admits("org-a"));
        let narrowed = OrganizationFilter {
            organization_id: Some("org-c".into()),
            scope: Some(vec!["org-a".into(), "org-c".into()]),
        };
        assert!(narrowed.admits("org-c") && !narrowed.admits("org-a"));
    }
}
