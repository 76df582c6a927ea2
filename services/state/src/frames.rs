//! Orchestrator frames other than hello and heartbeat, answered after they are committed.

use moolai_bus::Delivery;
use moolai_bus::events::{FrameReply, FrameRequest};
use moolai_protocol::{ClientFrame, ServerFrame, StatusData, now_rfc3339, validate_object};
use moolai_store::{Actor, NewMessage, StoreError, UsageWrite};
use serde_json::Value;
use tracing::Instrument;

use crate::StateContext;

pub async fn handle(ctx: &StateContext, delivery: Delivery) {
    let request = match delivery.json::<FrameRequest>() {
        Ok(r) => r,
        Err(e) => {
            let reply = FrameReply {
                frames: vec![ServerFrame::error(
                    "invalid_frame",
                    format!("undecodable frame request: {e}"),
                )],
            };
            let _ = ctx.bus.respond(&delivery, &reply).await;
            return;
        }
    };
    let span = tracing::info_span!(
        "frame",
        orchestrator_id = %request.orchestrator_id,
        frame_type = request.frame.type_name()
    );
    delivery.link_span(&span);
    async {
        let frames = match process(ctx, request).await {
            Ok(frames) => frames,
            Err(e) => vec![store_error_frame(&e)],
        };
        if let Err(e) = ctx.bus.respond(&delivery, &FrameReply { frames }).await {
            tracing::warn!(error = %e, "frame reply not sent");
        }
    }
    .instrument(span)
    .await;
}

fn store_error_frame(e: &StoreError) -> ServerFrame {
    match e {
        StoreError::NotFound(what) => ServerFrame::error("not_found", format!("{what} not found")),
        StoreError::Invalid(m) | StoreError::Conflict(m) | StoreError::Unauthorized(m) => {
            ServerFrame::error("invalid_frame", m.clone())
        }
        StoreError::Unavailable(_) | StoreError::Other(_) => {
            tracing::warn!(error = %e, "frame not stored");
            ServerFrame::Error(moolai_protocol::ErrorFrame {
                code: "unavailable".into(),
                message: "the controller could not store this frame; send it again later".into(),
                retry_after_sec: Some(5),
            })
        }
    }
}

fn ack(kind: &str, id: Option<String>) -> ServerFrame {
    ServerFrame::Ack {
        ack_type: kind.to_owned(),
        id,
    }
}

async fn process(
    ctx: &StateContext,
    request: FrameRequest,
) -> Result<Vec<ServerFrame>, StoreError> {
    let id = request.orchestrator_id.as_str();
    let not_registered = || {
        Ok(vec![ServerFrame::error(
            "not_registered",
            format!("orchestrator {id} is not registered"),
        )])
    };
    match request.frame {
        ClientFrame::RequestStatus(_) => match ctx.store.get_orchestrator(id).await? {
            Some(o) => Ok(vec![ServerFrame::Status {
                data: StatusData {
                    orchestrator_id: o.orchestrator_id,
                    status: o.status.as_str().to_owned(),
                    is_independent: o.is_independent,
                    last_seen: o.last_seen.map(|t| t.to_rfc3339()),
                    ts: now_rfc3339(),
                },
            }]),
            None => not_registered(),
        },
        ClientFrame::ProvisioningRequest(_) => match ctx.store.provisioning(id).await? {
            Some(p) => Ok(vec![ServerFrame::Provisioning { data: p }]),
            None => not_registered(),
        },
        ClientFrame::UpdateMetadata(u) => {
            let Value::Object(map) = u.metadata else {
                return Ok(vec![ServerFrame::error(
                    "invalid_frame",
                    "metadata must be a JSON object",
                )]);
            };
            if ctx.store.update_metadata(id, &map).await? {
                Ok(vec![ack("update_metadata", None)])
            } else {
                not_registered()
            }
        }
        ClientFrame::OConfigSnapshot(s) => {
            if let Err(e) = validate_object("data", Some(&s.data)) {
                return Ok(vec![ServerFrame::error(e.code, e.message)]);
            }
            if ctx.store.save_config_snapshot(id, &s.data).await? {
                Ok(vec![ack("o_config_snapshot", None)])
            } else {
                not_registered()
            }
        }
        ClientFrame::Message(m) => {
            if let Err(e) = m.validate() {
                return Ok(vec![ServerFrame::error(e.code, e.message)]);
            }
            let record = ctx
                .store
                .create_message(&NewMessage {
                    orchestrator_id: id.to_owned(),
                    message_type: m.message_type,
                    content: m.content,
                    metadata: m
                        .metadata
                        .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
                    source: "orchestrator".into(),
                    actor: Actor {
                        name: format!("orchestrator:{id}"),
                        client_addr: None,
                    },
                })
                .await?;
            Ok(vec![ack("message", Some(record.id))])
        }
        ClientFrame::Usage(u) => {
            if let Err(e) = u.usage.validate() {
                return Ok(vec![ServerFrame::error(e.code, e.message)]);
            }
            let now = chrono::Utc::now();
            let rows: Vec<UsageWrite> = u
                .usage
                .into_entries()
                .into_iter()
                .map(|e| UsageWrite {
                    orchestrator_id: id.to_owned(),
                    organization_id: request.organization_id.clone(),
                    model: e.model,
                    requests: i64::try_from(e.requests).unwrap_or(i64::MAX),
                    input_tokens: i64::try_from(e.input_tokens).unwrap_or(i64::MAX),
                    output_tokens: i64::try_from(e.output_tokens).unwrap_or(i64::MAX),
                    cost: e.cost,
                    reported_at: now,
                })
                .collect();
            ctx.store.record_usage(&rows).await?;
            Ok(vec![ack("usage", None)])
        }
        other => Ok(vec![ServerFrame::error(
            "unexpected_frame",
            format!("{} is not handled here", other.type_name()),
        )]),
    }
}
