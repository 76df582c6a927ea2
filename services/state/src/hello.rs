//! Hello requests: authenticate, register, commit, then answer. The edge acknowledges the
//! orchestrator only after this answer, so an acknowledged registration is always in the
//! database, and a refused one never got a `handshake_ack`.
//!
//! Authentication (`ORCHESTRATOR_AUTH`): the token the edge forwarded (the upgrade's bearer or
//! the hello's `auth_token`) must be an active enrollment token of the orchestrator's
//! organization or the orchestrator's own token. The credential decides the organization:
//! a hello claiming another one is refused, and the store refuses an existing orchestrator of
//! another organization, so no token lets a socket claim another organization's orchestrator.

use std::collections::HashMap;

use moolai_bus::events::{Command, HelloReply, HelloRequest};
use moolai_bus::{Delivery, Kind};
use moolai_config::OrchestratorAuth;
use moolai_protocol::validate_id;
use moolai_store::{
    CredentialKind, ENROLLMENT_TOKEN_PREFIX, HelloRegistration, ORCHESTRATOR_TOKEN_PREFIX,
    OrchestratorCredentialRecord, Registered, StatusChange, StoreError, token_hash,
};
use tracing::Instrument;

use crate::StateContext;

/// Credentials looked up in one batch, by token hash: a fleet enrolled with one token
/// costs one lookup per batch, not one per hello. (The store checks the credential again
/// inside the registering transaction, so a revocation in between is still refused.)
type CredentialMemo = HashMap<String, Option<OrchestratorCredentialRecord>>;

/// Answers a batch of hello requests (what was waiting, at most `HELLO_BATCH_MAX`): each is
/// decoded and authenticated, the accepted ones are registered together, then each gets its
/// reply. Under light load a batch is one hello.
pub async fn handle_batch(ctx: &StateContext, deliveries: Vec<Delivery>) {
    let started = std::time::Instant::now();
    let mut memo = CredentialMemo::new();
    let mut replies: Vec<Option<HelloReply>> = deliveries.iter().map(|_| None).collect();
    let mut waiting = Vec::new();
    let mut registrations = Vec::new();
    for (index, delivery) in deliveries.iter().enumerate() {
        let span = tracing::info_span!("hello", orchestrator_id = tracing::field::Empty);
        delivery.link_span(&span);
        let prepared = async {
            match delivery.json::<HelloRequest>() {
                Ok(request) => {
                    tracing::Span::current()
                        .record("orchestrator_id", request.orchestrator_id.as_str());
                    prepare(ctx, request, &mut memo).await
                }
                Err(e) => Err(HelloReply::Rejected {
                    code: "invalid_hello".into(),
                    message: format!("undecodable hello request: {e}"),
                }),
            }
        }
        .instrument(span)
        .await;
        match prepared {
            Ok(registration) => {
                waiting.push(index);
                registrations.push(registration);
            }
            Err(reply) => replies[index] = Some(reply),
        }
    }
    if !registrations.is_empty() {
        // The batch's span is part of its first hello's trace and linked from the others'.
        let batch_span = tracing::info_span!("hello_batch", hellos = registrations.len());
        for (n, &index) in waiting.iter().enumerate() {
            if n == 0 {
                deliveries[index].link_span(&batch_span);
            } else {
                deliveries[index].add_link_to(&batch_span);
            }
        }
        let outcomes = ctx
            .store
            .register_hellos(&registrations)
            .instrument(batch_span)
            .await;
        metrics::histogram!("moolai_state_hello_batch_size").record(registrations.len() as f64);
        for ((index, registration), outcome) in waiting.into_iter().zip(registrations).zip(outcomes)
        {
            replies[index] = Some(finish(ctx, registration, outcome).await);
        }
    }
    for (delivery, reply) in deliveries.iter().zip(replies) {
        let reply = reply.unwrap_or_else(unavailable);
        let outcome = match &reply {
            HelloReply::Accepted { .. } => "accepted",
            HelloReply::Rejected { .. } => "rejected",
        };
        if let Err(e) = ctx.bus.respond(delivery, &reply).await {
            tracing::warn!(error = %e, "hello reply not sent; the edge will time out and the client retry");
        }
        metrics::histogram!("moolai_state_hello_seconds", "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
    }
}

fn rejected(code: &str, message: impl Into<String>) -> HelloReply {
    HelloReply::Rejected {
        code: code.to_owned(),
        message: message.into(),
    }
}

/// What the hello's credential grants: `None` for an unauthenticated legacy client (only
/// under `ORCHESTRATOR_AUTH=open`). Rejections name no secret and say nothing about other
/// organizations' orchestrators.
async fn authenticate(
    ctx: &StateContext,
    request: &HelloRequest,
    memo: &mut CredentialMemo,
) -> Result<Option<OrchestratorCredentialRecord>, HelloReply> {
    let Some(token) = request.auth_token.as_deref().filter(|t| !t.is_empty()) else {
        return match ctx.settings.orchestrator_auth {
            OrchestratorAuth::Open => Ok(None),
            OrchestratorAuth::Token => Err(rejected(
                "unauthorized",
                "this controller requires an orchestrator token: send Authorization: Bearer \
                 <token> on the upgrade or auth_token in the hello",
            )),
        };
    };
    let invalid = || {
        rejected(
            "unauthorized",
            "invalid, revoked or expired orchestrator token",
        )
    };
    let well_formed = [ENROLLMENT_TOKEN_PREFIX, ORCHESTRATOR_TOKEN_PREFIX]
        .iter()
        .filter_map(|prefix| token.strip_prefix(prefix))
        .any(|rest| rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(invalid());
    }
    let hash = token_hash(token);
    let found = match memo.get(&hash) {
        Some(found) => found.clone(),
        None => match ctx.store.orchestrator_credential_by_hash(&hash).await {
            Ok(found) => {
                memo.insert(hash, found.clone());
                found
            }
            Err(e) => {
                tracing::warn!(error = %e, "credential not checked");
                return Err(unavailable());
            }
        },
    };
    let credential = match found {
        Some(c) if c.is_active(chrono::Utc::now()) => c,
        _ => return Err(invalid()),
    };
    if credential.kind == CredentialKind::Orchestrator
        && credential.orchestrator_id.as_deref() != Some(request.orchestrator_id.as_str())
    {
        return Err(rejected(
            "forbidden",
            "this token belongs to another orchestrator",
        ));
    }
    if let Some(claimed) = &request.organization_id
        && *claimed != credential.organization_id
    {
        return Err(rejected(
            "organization_mismatch",
            "this token belongs to another organization",
        ));
    }
    Ok(Some(credential))
}

fn unavailable() -> HelloReply {
    rejected(
        "unavailable",
        "the controller cannot register orchestrators right now; retry later",
    )
}

/// Validates and authenticates one hello: the registration to commit, or the refusal.
async fn prepare(
    ctx: &StateContext,
    request: HelloRequest,
    memo: &mut CredentialMemo,
) -> Result<HelloRegistration, HelloReply> {
    // Defence in depth: the edge validated already, but ids end up in subjects.
    if let Err(e) = validate_id("orchestrator_id", &request.orchestrator_id).and_then(|()| {
        request
            .organization_id
            .as_deref()
            .map_or(Ok(()), |o| validate_id("organization_id", o))
    }) {
        return Err(HelloReply::Rejected {
            code: e.code.into(),
            message: e.message,
        });
    }
    let credential = match authenticate(ctx, &request, memo).await {
        Ok(c) => c,
        Err(reply) => {
            if let HelloReply::Rejected { code, .. } = &reply {
                metrics::counter!("moolai_state_hellos_refused_total", "code" => code.clone())
                    .increment(1);
                tracing::info!(code = %code, edge_id = %request.edge_id, "hello refused");
            }
            return Err(reply);
        }
    };
    Ok(HelloRegistration {
        orchestrator_id: request.orchestrator_id.clone(),
        // A credential decides the organization; without one (open mode) the hello claims it.
        organization_id: credential
            .as_ref()
            .map(|c| c.organization_id.clone())
            .or_else(|| request.organization_id.clone()),
        default_organization_id: ctx.settings.default_organization_id.clone(),
        name: request.name,
        location: request.location,
        features: request.features,
        metadata: request.metadata,
        session_id: request.session_id,
        edge_id: request.edge_id,
        remote_addr: request.remote_addr,
        dialect: request.dialect,
        credential_id: credential.map(|c| c.credential_id),
    })
}

/// After the commit: tells other sockets of this orchestrator that they are stale, publishes
/// a status change, and builds the reply.
async fn finish(
    ctx: &StateContext,
    request: HelloRegistration,
    outcome: Result<Registered, StoreError>,
) -> HelloReply {
    match outcome {
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
        // Revoked between the lookup above and the commit, or an enrollment token claiming an
        // orchestrator that has its own.
        Err(StoreError::Unauthorized(message)) => rejected("unauthorized", message),
        Err(e) => {
            tracing::warn!(error = %e, "hello not registered");
            unavailable()
        }
    }
}
