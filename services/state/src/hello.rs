//! Hello requests: register, commit, then answer. The edge acknowledges the orchestrator only
//! after this answer, so an acknowledged registration is always in the database.

use moolai_bus::events::{Command, HelloReply, HelloRequest};
use moolai_bus::{Delivery, Kind};
use moolai_protocol::validate_id;
use moolai_store::{HelloRegistration, StatusChange, StoreError};
use tracing::Instrument;

use crate::StateContext;

pub async fn handle(ctx: &StateContext, delivery: Delivery) {
    let span = tracing::info_span!("hello", orchestrator_id = tracing::field::Empty);
    delivery.link_span(&span);
    async {
        let started = std::time::Instant::now();
        let reply = match delivery.json::<HelloRequest>() {
            Ok(request) => {
                tracing::Span::current().record("orchestrator_id", request.orchestrator_id.as_str());
                register(ctx, request).await
            }
            Err(e) => HelloReply::Rejected {
                code: "invalid_hello".into(),
                message: format!("undecodable hello request: {e}"),
            },
        };
        let outcome = match &reply {
            HelloReply::Accepted { .. } => "accepted",
            HelloReply::Rejected { .. } => "rejected",
        };
        if let Err(e) = ctx.bus.respond(&delivery, &reply).await {
            tracing::warn!(error = %e, "hello reply not sent; the edge will time out and the client retry");
        }
        metrics::histogram!("moolai_state_hello_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
    }
    .instrument(span)
    .await;
}

async fn register(ctx: &StateContext, request: HelloRequest) -> HelloReply {
    // Defence in depth: the edge validated already, but ids end up in subjects.
    if let Err(e) = validate_id("orchestrator_id", &request.orchestrator_id).and_then(|()| {
        request
            .organization_id
            .as_deref()
            .map_or(Ok(()), |o| validate_id("organization_id", o))
    }) {
        return HelloReply::Rejected {
            code: e.code.into(),
            message: e.message,
        };
    }
    let registration = HelloRegistration {
        orchestrator_id: request.orchestrator_id.clone(),
        organization_id: request.organization_id.clone(),
        default_organization_id: ctx.settings.default_organization_id.clone(),
        name: request.name,
        location: request.location,
        features: request.features,
        metadata: request.metadata,
        session_id: request.session_id.clone(),
        edge_id: request.edge_id,
        remote_addr: request.remote_addr,
        dialect: request.dialect,
        credential_id: None,
    };
    match ctx.store.register_hello(&registration).await {
        Ok(registered) => {
            let org = registered.organization_id.clone();
            // Any other socket of this id, on any edge, is now stale: close it.
            let command = Command::SessionStarted {
                session_id: request.session_id,
            };
            let subject =
                ctx.bus
                    .subjects()
                    .orchestrator(Kind::Command, &org, &request.orchestrator_id);
            if let Err(e) = ctx.bus.publish(subject, &command).await {
                tracing::warn!(error = %e, "session_started command not published");
            }
            if registered.previous_status != Some(registered.status) {
                let change = StatusChange {
                    orchestrator_id: request.orchestrator_id,
                    organization_id: org,
                    previous: registered.previous_status,
                    current: registered.status,
                    is_independent: registered.provisioning.is_independent,
                    last_seen: registered.last_seen,
                };
                ctx.publish_status(&change, "registered").await;
            }
            HelloReply::Accepted {
                provisioning: registered.provisioning,
                pending_messages: registered.pending_messages,
            }
        }
        Err(StoreError::Conflict(message)) => HelloReply::Rejected {
            code: "organization_mismatch".into(),
            message,
        },
        Err(StoreError::Invalid(message)) => HelloReply::Rejected {
            code: "invalid_hello".into(),
            message,
        },
        Err(e) => {
            tracing::warn!(error = %e, "hello not registered");
            HelloReply::Rejected {
                code: "unavailable".into(),
                message: "the controller cannot register orchestrators right now; retry later"
                    .into(),
            }
        }
    }
}
