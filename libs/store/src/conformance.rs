//! Backend-independent checks of the [`Store`] contract (feature `conformance`).
//!
//! Each backend's test suite calls every check with a fresh, empty store (its own database),
//! so one backend's passing suite means the same thing as another's. A check panics with a
//! message on the first broken rule.
//!
//! Unless a check says otherwise, the store is built with a heartbeat TTL of [`TTL`]. Checks
//! about expiry take two handles on the *same* database built with different TTLs
//! ([`LONG_TTL`] and [`TTL`]): a heartbeat 10 minutes old is fresh for the first and expired
//! for the second, which tests expiry without sleeping.
//!
//! Time-sensitive inputs are truncated to microseconds, the precision databases keep.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, TimeZone, Utc};
use futures::future::join_all;
use moolai_protocol::{Dialect, Status};
use serde_json::{Map, Value, json};

use crate::{
    Actor, AuditEntry, AuditQuery, CostQuery, CredentialKind, CredentialQuery, Granularity,
    HeartbeatWrite, HelloRegistration, MessageQuery, MessageRecord, MessageStatus, NewApiToken,
    NewMessage, NewOrchestrator, NewOrchestratorCredential, NewOrganization, NewSession, NewUser,
    OrchestratorQuery, Role, Store, StoreError, UsageWrite, UserUpdate,
};

/// Heartbeat TTL of the store handed to every check (and of the `strict` handle).
pub const TTL: Duration = Duration::from_secs(60);
/// Heartbeat TTL of the `lenient` handle of the expiry checks.
pub const LONG_TTL: Duration = Duration::from_secs(60 * 60);

const DEFAULT_ORG: &str = "org-default";

// ---- helpers ---------------------------------------------------------------------------------

/// Now, at the microsecond precision a database keeps.
fn now() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(TimeDelta::microseconds(1))
        .expect("truncating now to microseconds")
}

fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid test date")
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(map) => map,
        other => panic!("test metadata must be an object, got {other}"),
    }
}

fn user(name: &str) -> Actor {
    Actor {
        name: format!("user:{name}"),
        client_addr: Some("192.0.2.10".into()),
    }
}

fn hello(
    orchestrator_id: &str,
    organization_id: Option<&str>,
    session_id: &str,
) -> HelloRegistration {
    HelloRegistration {
        orchestrator_id: orchestrator_id.into(),
        organization_id: organization_id.map(Into::into),
        default_organization_id: DEFAULT_ORG.into(),
        credential_id: None,
        name: None,
        location: None,
        features: None,
        metadata: object(json!({ "version": "1.0.0" })),
        session_id: session_id.into(),
        edge_id: "edge-1".into(),
        remote_addr: Some("198.51.100.7:40000".into()),
        dialect: Dialect::Deployed,
    }
}

/// A user with a placeholder hash (the store never interprets it).
fn new_user(username: &str, role: Role, organization_ids: &[&str]) -> NewUser {
    NewUser {
        username: username.into(),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA${username}"),
        organization_ids: organization_ids.iter().map(|o| (*o).to_owned()).collect(),
    }
}

/// An orchestrator credential numbered `n` (its token hash derived from `n`).
fn credential(
    n: u32,
    kind: CredentialKind,
    organization_id: &str,
    orchestrator_id: Option<&str>,
) -> NewOrchestratorCredential {
    NewOrchestratorCredential {
        kind,
        organization_id: organization_id.into(),
        orchestrator_id: orchestrator_id.map(Into::into),
        name: Some(format!("credential {n}")),
        token_hash: token_hash(n),
        expires_at: None,
    }
}

/// A token hash: 64 hex digits derived from `n`.
fn token_hash(n: u32) -> String {
    format!("{n:064x}")
}

fn beat(orchestrator_id: &str, received_at: DateTime<Utc>) -> HeartbeatWrite {
    HeartbeatWrite {
        orchestrator_id: orchestrator_id.into(),
        received_at,
    }
}

async fn organization(store: &dyn Store, organization_id: &str) {
    store
        .create_organization(
            &NewOrganization {
                organization_id: organization_id.into(),
                name: format!("{organization_id} name"),
                location: None,
                metadata: None,
                features: None,
                settings: None,
            },
            &Actor::system(),
        )
        .await
        .expect("create organization");
}

/// Pre-registers an orchestrator (never seen: no heartbeat, no session).
async fn preregister(store: &dyn Store, orchestrator_id: &str, organization_id: &str) {
    store
        .register_orchestrator(
            &NewOrchestrator::new(orchestrator_id, organization_id),
            &Actor::system(),
        )
        .await
        .expect("register orchestrator");
}

async fn status_of(store: &dyn Store, orchestrator_id: &str) -> Status {
    store
        .get_orchestrator(orchestrator_id)
        .await
        .expect("get orchestrator")
        .unwrap_or_else(|| panic!("orchestrator {orchestrator_id} missing"))
        .status
}

async fn last_seen_of(store: &dyn Store, orchestrator_id: &str) -> Option<DateTime<Utc>> {
    store
        .get_orchestrator(orchestrator_id)
        .await
        .expect("get orchestrator")
        .unwrap_or_else(|| panic!("orchestrator {orchestrator_id} missing"))
        .last_seen
}

async fn audit_of(store: &dyn Store, action: &str) -> crate::Page<crate::AuditRecord> {
    store
        .list_audit(&AuditQuery {
            page: 1,
            page_size: 100,
            action: Some(action.into()),
            ..AuditQuery::default()
        })
        .await
        .expect("list audit")
}

fn message(orchestrator_id: &str, message_type: &str, content: &str, source: &str) -> NewMessage {
    NewMessage {
        orchestrator_id: orchestrator_id.into(),
        message_type: message_type.into(),
        content: content.into(),
        metadata: json!({ "severity": "info" }),
        source: source.into(),
        actor: user("alice"),
    }
}

fn ids(messages: &[MessageRecord]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

fn assert_recent(t: Option<DateTime<Utc>>, what: &str) {
    let t = t.unwrap_or_else(|| panic!("{what}: expected a time, got none"));
    let skew = (Utc::now() - t).num_milliseconds().abs();
    assert!(skew < 10_000, "{what}: {t} is {skew} ms away from now");
}

// ---- hello and sessions ----------------------------------------------------------------------

/// A hello creates its organization and the orchestrator, records the connection and returns
/// the provisioning; a hello naming no organization lands in the default one; a later hello
/// keeps name and features it does not send and replaces the metadata.
pub async fn hello_registers_organization_and_orchestrator(store: &dyn Store) {
    let mut first = hello("orch-1", Some("org-a"), "sess-1");
    first.name = Some("Orchestrator One".into());
    first.location = Some("eu-west-1".into());
    first.features = Some(json!({ "chat": true }));
    first.metadata = object(json!({ "version": "2.3.4", "region": "eu" }));

    let registered = store.register_hello(&first).await.expect("hello");
    assert_eq!(registered.organization_id, "org-a");
    assert_eq!(registered.previous_status, None);
    assert_eq!(registered.status, Status::Active);
    assert_recent(registered.last_seen, "last_seen after hello");
    assert!(registered.pending_messages.is_empty());
    let p = &registered.provisioning;
    assert_eq!(p.orchestrator_id, "orch-1");
    assert_eq!(p.organization_id, "org-a");
    assert_eq!(p.name.as_deref(), Some("Orchestrator One"));
    assert_eq!(p.location.as_deref(), Some("eu-west-1"));
    assert_eq!(p.features, json!({ "chat": true }));
    assert_eq!(p.metadata, json!({ "version": "2.3.4", "region": "eu" }));
    assert_eq!(p.session_config, json!({}));
    assert!(!p.is_independent);
    assert!(!p.privacy_mode);
    assert!(p.monitoring_enabled);
    assert_eq!(p.config_version, 0);

    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("orch-1 exists");
    assert_eq!(record.organization_id, "org-a");
    assert_eq!(record.organization_name.as_deref(), Some("org-a"));
    assert_eq!(record.status, Status::Active);
    assert!(record.connected);
    assert!(!record.is_independent);
    assert_eq!(record.session_id.as_deref(), Some("sess-1"));
    assert_eq!(record.edge_id.as_deref(), Some("edge-1"));
    assert_eq!(record.version.as_deref(), Some("2.3.4"));
    assert_eq!(record.health_status, "healthy");
    assert_eq!(record.last_seen, registered.last_seen);
    assert_recent(record.last_activity, "last_activity after hello");

    let org = store
        .get_organization("org-a")
        .await
        .expect("get organization")
        .expect("org-a was created by the hello");
    assert_eq!(org.name, "org-a");
    assert_eq!(org.orchestrator_count, 1);
    assert_eq!(org.active_orchestrators, 1);
    assert_eq!(org.status, "active");

    let connections = store
        .list_connections("orch-1", 10)
        .await
        .expect("connections");
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].connection_id, "sess-1");
    assert_eq!(connections[0].status, "connected");
    assert_eq!(connections[0].edge_id.as_deref(), Some("edge-1"));
    assert_eq!(
        connections[0].remote_addr.as_deref(),
        Some("198.51.100.7:40000")
    );
    assert_eq!(connections[0].disconnected_at, None);

    // No organization named anywhere: the default one.
    let second = store
        .register_hello(&hello("orch-2", None, "sess-2"))
        .await
        .expect("hello without organization");
    assert_eq!(second.organization_id, DEFAULT_ORG);
    assert_eq!(second.provisioning.organization_id, DEFAULT_ORG);
    let default_org = store
        .get_organization(DEFAULT_ORG)
        .await
        .expect("get organization")
        .expect("default organization created");
    assert_eq!(default_org.orchestrator_count, 1);

    // A later hello that omits name and features keeps them; metadata is replaced.
    let mut again = hello("orch-1", Some("org-a"), "sess-3");
    again.metadata = object(json!({ "version": "2.4.0" }));
    let registered = store.register_hello(&again).await.expect("second hello");
    assert_eq!(registered.previous_status, Some(Status::Active));
    assert_eq!(
        registered.provisioning.name.as_deref(),
        Some("Orchestrator One")
    );
    assert_eq!(
        registered.provisioning.location.as_deref(),
        Some("eu-west-1")
    );
    assert_eq!(registered.provisioning.features, json!({ "chat": true }));
    assert_eq!(
        registered.provisioning.metadata,
        json!({ "version": "2.4.0" })
    );
    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.version.as_deref(), Some("2.4.0"));
    assert_eq!(record.session_id.as_deref(), Some("sess-3"));

    let overview = store.overview(None).await.expect("overview");
    assert_eq!(overview.total_organizations, 2);
    assert_eq!(overview.total_orchestrators, 2);
    assert_eq!(overview.active_orchestrators, 2);
    assert_eq!(overview.inactive_orchestrators, 0);
}

/// An orchestrator keeps its organization: a hello claiming another is refused (and changes
/// nothing); a hello naming none keeps the existing one rather than the default.
pub async fn hello_keeps_the_existing_organization(store: &dyn Store) {
    store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-1"))
        .await
        .expect("hello");
    let refused = store
        .register_hello(&hello("orch-1", Some("org-b"), "sess-2"))
        .await;
    match refused {
        Err(StoreError::Conflict(message)) => assert!(
            message.contains("orch-1") && message.contains("another organization"),
            "{message}"
        ),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.organization_id, "org-a");
    assert_eq!(
        record.session_id.as_deref(),
        Some("sess-1"),
        "refused hello changed the row"
    );
    assert_eq!(
        store
            .list_connections("orch-1", 10)
            .await
            .expect("connections")
            .len(),
        1
    );
    assert!(
        store
            .get_organization("org-b")
            .await
            .expect("get organization")
            .is_none(),
        "refused hello created its organization"
    );

    let kept = store
        .register_hello(&hello("orch-1", None, "sess-3"))
        .await
        .expect("hello without organization");
    assert_eq!(kept.organization_id, "org-a");
    assert_eq!(kept.provisioning.organization_id, "org-a");
}

/// A new session replaces the old one; the old session's disconnect changes nothing, the
/// current one's marks the orchestrator inactive (once), and the next hello revives it.
pub async fn new_session_replaces_old_and_only_current_disconnect_counts(store: &dyn Store) {
    let first = store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-1"))
        .await
        .expect("first hello");
    assert_eq!(first.previous_status, None);
    let second = store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-2"))
        .await
        .expect("second hello");
    assert_eq!(second.previous_status, Some(Status::Active));
    assert_eq!(second.status, Status::Active);

    // The replaced socket's clean-up arrives late: it must not mark the new one inactive.
    let stale = store
        .record_disconnect("orch-1", "sess-1", "replaced")
        .await
        .expect("stale disconnect");
    assert_eq!(stale, None);
    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.status, Status::Active);
    assert!(record.connected);
    assert_eq!(record.session_id.as_deref(), Some("sess-2"));

    let change = store
        .record_disconnect("orch-1", "sess-2", "client closed")
        .await
        .expect("disconnect")
        .expect("the current session's disconnect is a transition");
    assert_eq!(change.orchestrator_id, "orch-1");
    assert_eq!(change.organization_id, "org-a");
    assert_eq!(change.previous, Some(Status::Active));
    assert_eq!(change.current, Status::Inactive);
    assert!(!change.is_independent);
    assert_eq!(change.last_seen, record.last_seen);

    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.status, Status::Inactive);
    assert!(!record.connected);

    let connections = store
        .list_connections("orch-1", 10)
        .await
        .expect("connections");
    let summary: Vec<(&str, &str, Option<&str>)> = connections
        .iter()
        .map(|c| {
            (
                c.connection_id.as_str(),
                c.status.as_str(),
                c.disconnect_reason.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("sess-2", "disconnected", Some("client closed")),
            ("sess-1", "disconnected", Some("replaced")),
        ]
    );
    assert!(connections.iter().all(|c| c.disconnected_at.is_some()));
    assert_eq!(
        store
            .list_connections("orch-1", 1)
            .await
            .expect("connections")
            .len(),
        1
    );

    // Twice, or for someone unknown: nothing.
    assert_eq!(
        store
            .record_disconnect("orch-1", "sess-2", "again")
            .await
            .expect("repeat"),
        None
    );
    assert_eq!(
        store
            .record_disconnect("nobody", "sess-9", "x")
            .await
            .expect("unknown"),
        None
    );

    let third = store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-3"))
        .await
        .expect("third hello");
    assert_eq!(third.previous_status, Some(Status::Inactive));
    assert_eq!(third.status, Status::Active);
    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("exists");
    assert!(record.connected);
    assert_eq!(record.status, Status::Active);
}

// ---- heartbeats and status -------------------------------------------------------------------

/// A batch keeps the latest heartbeat per orchestrator, `last_seen` never moves backwards,
/// unknown ids are ignored, and only real transitions are returned.
pub async fn heartbeats_keep_the_latest_and_never_move_back(store: &dyn Store) {
    organization(store, "org-a").await;
    for id in ["hb-1", "hb-2", "hb-3"] {
        preregister(store, id, "org-a").await;
    }
    assert_eq!(status_of(store, "hb-1").await, Status::Inactive);
    let t0 = now();

    let changes = store
        .flush_heartbeats(&[
            beat("hb-1", t0 - secs(10)),
            beat("hb-1", t0 - secs(5)),
            beat("ghost", t0),
            beat("hb-1", t0 - secs(20)),
        ])
        .await
        .expect("flush");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].orchestrator_id, "hb-1");
    assert_eq!(changes[0].organization_id, "org-a");
    assert_eq!(changes[0].previous, Some(Status::Inactive));
    assert_eq!(changes[0].current, Status::Active);
    assert!(!changes[0].is_independent);
    assert_eq!(changes[0].last_seen, Some(t0 - secs(5)));
    assert_eq!(last_seen_of(store, "hb-1").await, Some(t0 - secs(5)));
    assert_eq!(status_of(store, "hb-1").await, Status::Active);

    // Older than what is stored: ignored, and no transition.
    let changes = store
        .flush_heartbeats(&[beat("hb-1", t0 - secs(30))])
        .await
        .expect("flush");
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(last_seen_of(store, "hb-1").await, Some(t0 - secs(5)));

    // Newer: moves forward, still no transition (already active).
    let changes = store
        .flush_heartbeats(&[beat("hb-1", t0 - secs(1))])
        .await
        .expect("flush");
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(last_seen_of(store, "hb-1").await, Some(t0 - secs(1)));

    // Several orchestrators in one batch.
    let mut changes = store
        .flush_heartbeats(&[beat("hb-3", t0), beat("hb-2", t0), beat("hb-1", t0)])
        .await
        .expect("flush");
    changes.sort_by(|a, b| a.orchestrator_id.cmp(&b.orchestrator_id));
    let changed: Vec<&str> = changes.iter().map(|c| c.orchestrator_id.as_str()).collect();
    assert_eq!(changed, vec!["hb-2", "hb-3"]);
    for id in ["hb-1", "hb-2", "hb-3"] {
        assert_eq!(last_seen_of(store, id).await, Some(t0), "{id}");
    }

    assert!(
        store
            .flush_heartbeats(&[])
            .await
            .expect("empty flush")
            .is_empty()
    );
}

/// Heartbeats of an independent orchestrator are not recorded (checked in the write itself),
/// and neither is its hello's `last_seen`; switching independence off derives the status again.
pub async fn heartbeats_skip_independent_orchestrators(store: &dyn Store) {
    let registered = store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-1"))
        .await
        .expect("hello");
    let seen_at_hello = registered.last_seen;
    store
        .set_independence("orch-1", true, &user("alice"))
        .await
        .expect("set independence")
        .expect("exists");

    let changes = store
        .flush_heartbeats(&[beat("orch-1", now() + secs(5))])
        .await
        .expect("flush");
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(last_seen_of(store, "orch-1").await, seen_at_hello);
    assert_eq!(status_of(store, "orch-1").await, Status::Independent);

    let again = store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-2"))
        .await
        .expect("hello while independent");
    assert_eq!(again.previous_status, Some(Status::Independent));
    assert_eq!(again.status, Status::Independent);
    assert_eq!(again.last_seen, seen_at_hello);
    assert!(again.provisioning.is_independent);
    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("exists");
    assert!(record.connected);
    assert_eq!(record.session_id.as_deref(), Some("sess-2"));

    // Back under supervision: the hello's last_seen is recent, so it is active again, and
    // heartbeats count again.
    let change = store
        .set_independence("orch-1", false, &user("alice"))
        .await
        .expect("set independence")
        .expect("exists");
    assert_eq!(change.record.status, Status::Active);
    let t = now() + secs(1);
    store
        .flush_heartbeats(&[beat("orch-1", t)])
        .await
        .expect("flush");
    assert_eq!(last_seen_of(store, "orch-1").await, Some(t));
}

/// Status is derived when read: never seen → inactive; heard from within the TTL → active;
/// heard from longer ago → inactive (and a late heartbeat that old does not announce a
/// transition to active); independent → independent. Listing filters use the same rule.
pub async fn status_is_derived_from_last_seen(store: &dyn Store) {
    organization(store, "org-a").await;
    for id in ["fresh", "stale", "never", "free"] {
        preregister(store, id, "org-a").await;
    }
    let record = store
        .get_orchestrator("never")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.status, Status::Inactive);
    assert_eq!(record.last_seen, None);
    assert!(!record.connected);

    let t = now();
    let stale_at = t - TimeDelta::from_std(TTL * 2).expect("ttl fits");
    let changes = store
        .flush_heartbeats(&[beat("stale", stale_at)])
        .await
        .expect("flush stale");
    assert!(
        changes.is_empty(),
        "a heartbeat older than the TTL is not a transition: {changes:?}"
    );
    assert_eq!(last_seen_of(store, "stale").await, Some(stale_at));
    assert_eq!(status_of(store, "stale").await, Status::Inactive);

    let fresh_at = t - TimeDelta::from_std(TTL / 2).expect("ttl fits");
    let changes = store
        .flush_heartbeats(&[beat("fresh", fresh_at)])
        .await
        .expect("flush fresh");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(status_of(store, "fresh").await, Status::Active);

    store
        .set_independence("free", true, &Actor::system())
        .await
        .expect("set independence")
        .expect("exists");
    assert_eq!(status_of(store, "free").await, Status::Independent);

    let listed = |status: Status| OrchestratorQuery {
        page: 1,
        page_size: 50,
        status: Some(status),
        ..OrchestratorQuery::default()
    };
    let names = |page: crate::Page<crate::OrchestratorRecord>| {
        page.items
            .into_iter()
            .map(|o| o.orchestrator_id)
            .collect::<Vec<_>>()
    };
    let active = store
        .list_orchestrators(&listed(Status::Active))
        .await
        .expect("list");
    assert_eq!(active.total, 1);
    assert_eq!(names(active), vec!["fresh"]);
    let inactive = store
        .list_orchestrators(&listed(Status::Inactive))
        .await
        .expect("list");
    assert_eq!(inactive.total, 2);
    assert_eq!(names(inactive), vec!["never", "stale"]);
    let independent = store
        .list_orchestrators(&listed(Status::Independent))
        .await
        .expect("list");
    assert_eq!(names(independent), vec!["free"]);

    let overview = store.overview(None).await.expect("overview");
    assert_eq!(overview.total_orchestrators, 4);
    assert_eq!(overview.active_orchestrators, 1);
    assert_eq!(overview.inactive_orchestrators, 2);
    assert_eq!(overview.independent_orchestrators, 1);
}

/// Listing: pagination, organization filter and a case-insensitive substring search over id,
/// name and organization in which `%` and `_` match only themselves.
pub async fn orchestrator_listing_pages_filters_and_searches(store: &dyn Store) {
    organization(store, "org-a").await;
    organization(store, "org-b").await;
    for (id, org, name) in [
        ("alpha", "org-a", "Plain"),
        ("beta", "org-a", "100% Ready"),
        ("gamma", "org-b", "under_score"),
        ("delta", "org-b", "Underscore"),
        ("epsilon", "org-b", "Plain Too"),
    ] {
        store
            .register_orchestrator(
                &NewOrchestrator {
                    name: Some(name.into()),
                    ..NewOrchestrator::new(id, org)
                },
                &Actor::system(),
            )
            .await
            .expect("register");
    }
    let query =
        |page: u32, page_size: u32, org: Option<&str>, search: Option<&str>| OrchestratorQuery {
            page,
            page_size,
            status: None,
            organization_id: org.map(Into::into),
            search: search.map(Into::into),
            scope: None,
        };
    let ids = |page: &crate::Page<crate::OrchestratorRecord>| {
        page.items
            .iter()
            .map(|o| o.orchestrator_id.clone())
            .collect::<Vec<_>>()
    };

    let first = store
        .list_orchestrators(&query(1, 2, None, None))
        .await
        .expect("list");
    assert_eq!(first.total, 5);
    assert_eq!((first.page, first.page_size), (1, 2));
    assert_eq!(ids(&first), vec!["alpha", "beta"]);
    let third = store
        .list_orchestrators(&query(3, 2, None, None))
        .await
        .expect("list");
    assert_eq!(ids(&third), vec!["gamma"]);
    let beyond = store
        .list_orchestrators(&query(9, 2, None, None))
        .await
        .expect("list");
    assert_eq!(beyond.total, 5);
    assert!(beyond.items.is_empty());

    let org_b = store
        .list_orchestrators(&query(1, 10, Some("org-b"), None))
        .await
        .expect("list");
    assert_eq!(org_b.total, 3);
    assert_eq!(ids(&org_b), vec!["delta", "epsilon", "gamma"]);

    let search = |s: &'static str| query(1, 10, None, Some(s));
    let percent = store
        .list_orchestrators(&search("%"))
        .await
        .expect("search %");
    assert_eq!(ids(&percent), vec!["beta"]);
    let underscore = store
        .list_orchestrators(&search("_"))
        .await
        .expect("search _");
    assert_eq!(ids(&underscore), vec!["gamma"]);
    let plain = store
        .list_orchestrators(&search("pLaIn"))
        .await
        .expect("search plain");
    assert_eq!(ids(&plain), vec!["alpha", "epsilon"]);
    let by_org = store
        .list_orchestrators(&search("ORG-A"))
        .await
        .expect("search org");
    assert_eq!(ids(&by_org), vec!["alpha", "beta"]);
    let by_id = store
        .list_orchestrators(&search("ELT"))
        .await
        .expect("search id");
    assert_eq!(ids(&by_id), vec!["delta"]);
    let combined = store
        .list_orchestrators(&query(1, 10, Some("org-b"), Some("plain")))
        .await
        .expect("search within org");
    assert_eq!(ids(&combined), vec!["epsilon"]);

    // The count and the items alone agree with the listing, past its end too.
    let inactive_b = OrchestratorQuery {
        status: Some(Status::Inactive),
        ..query(1, 2, Some("org-b"), None)
    };
    let active = OrchestratorQuery {
        status: Some(Status::Active),
        ..query(1, 2, None, None)
    };
    for q in [
        query(1, 2, None, None),
        query(3, 2, None, None),
        query(9, 2, None, None),
        query(1, 10, Some("org-b"), Some("plain")),
        search("_"),
        inactive_b.clone(),
        OrchestratorQuery {
            page: 2,
            ..inactive_b
        },
        active,
    ] {
        let listed = store.list_orchestrators(&q).await.expect("list");
        let total = store.count_orchestrators(&q).await.expect("count");
        let items = store.orchestrator_page_items(&q).await.expect("items");
        assert_eq!(total, listed.total, "{q:?}");
        let item_ids = |items: &[crate::OrchestratorRecord]| {
            items
                .iter()
                .map(|o| o.orchestrator_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(item_ids(&items), ids(&listed), "{q:?}");

        // The kept order: every match's id, and any page read from it by id.
        let limit = usize::try_from(total).expect("count");
        let order = store
            .orchestrator_order(&q, limit)
            .await
            .expect("order")
            .expect("no more than the count");
        assert_eq!(order.len(), limit, "{q:?}");
        let all = store
            .orchestrators_in_order(&q, &order)
            .await
            .expect("all in order");
        assert_eq!(item_ids(&all), order, "{q:?}");
        let (page, size) = crate::page_bounds(q.page, q.page_size);
        let from = usize::try_from(crate::page_offset(page, size))
            .expect("offset")
            .min(order.len());
        let to = (from + size as usize).min(order.len());
        let paged = store
            .orchestrators_in_order(&q, &order[from..to])
            .await
            .expect("page in order");
        assert_eq!(item_ids(&paged), ids(&listed), "{q:?}");
        if limit > 0 {
            let over = store
                .orchestrator_order(&q, limit - 1)
                .await
                .expect("order");
            assert_eq!(over, None, "more matches than the limit: {q:?}");
        }
    }

    // Ids that no longer match (another organization, deleted, or never there) are left out.
    let kept: Vec<String> = ["gamma", "alpha", "delta", "gone"]
        .into_iter()
        .map(Into::into)
        .collect();
    let still = store
        .orchestrators_in_order(&query(1, 10, Some("org-b"), None), &kept)
        .await
        .expect("in order");
    assert_eq!(
        still
            .iter()
            .map(|o| o.orchestrator_id.as_str())
            .collect::<Vec<_>>(),
        vec!["delta", "gamma"]
    );
    assert!(
        still
            .iter()
            .all(|o| o.organization_name.as_deref() == Some("org-b name")),
        "{still:?}"
    );
}

// ---- the expiry sweep ------------------------------------------------------------------------

/// The sweep writes `inactive` for active orchestrators whose heartbeat is older than the TTL,
/// returns exactly those transitions once, and leaves fresh and independent ones alone.
///
/// `lenient` (TTL [`LONG_TTL`]) and `strict` (TTL [`TTL`]) share one database.
pub async fn sweep_marks_expired_orchestrators_inactive(lenient: &dyn Store, strict: &dyn Store) {
    organization(lenient, "org-a").await;
    for id in ["old-1", "old-2", "fresh", "free"] {
        preregister(lenient, id, "org-a").await;
    }
    lenient
        .set_independence("free", true, &Actor::system())
        .await
        .expect("set independence")
        .expect("exists");
    let t = now();
    let changes = lenient
        .flush_heartbeats(&[
            beat("old-1", t - secs(600)),
            beat("old-2", t - secs(1200)),
            beat("fresh", t),
            beat("free", t),
        ])
        .await
        .expect("flush");
    assert_eq!(
        changes.len(),
        3,
        "within the long TTL all three become active: {changes:?}"
    );

    // Reads derive: the strict handle already shows them inactive, the lenient one active.
    assert_eq!(status_of(strict, "old-1").await, Status::Inactive);
    assert_eq!(status_of(lenient, "old-1").await, Status::Active);

    let outcome = strict.sweep_expired().await.expect("sweep");
    assert_eq!(outcome.skipped, None);
    let mut changes = outcome.changes;
    changes.sort_by(|a, b| a.orchestrator_id.cmp(&b.orchestrator_id));
    let summary: Vec<_> = changes
        .iter()
        .map(|c| {
            (
                c.orchestrator_id.as_str(),
                c.previous,
                c.current,
                c.last_seen,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "old-1",
                Some(Status::Active),
                Status::Inactive,
                Some(t - secs(600))
            ),
            (
                "old-2",
                Some(Status::Active),
                Status::Inactive,
                Some(t - secs(1200))
            ),
        ]
    );
    assert!(
        changes
            .iter()
            .all(|c| c.organization_id == "org-a" && !c.is_independent)
    );

    let again = strict.sweep_expired().await.expect("second sweep");
    assert_eq!(again.skipped, None);
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(status_of(strict, "fresh").await, Status::Active);
    assert_eq!(status_of(strict, "free").await, Status::Independent);

    // A later heartbeat within the TTL makes it active again, announced once.
    let revived = lenient
        .flush_heartbeats(&[beat("old-1", t - secs(300))])
        .await
        .expect("flush");
    assert_eq!(revived.len(), 1);
    assert_eq!(revived[0].previous, Some(Status::Inactive));
    assert_eq!(revived[0].current, Status::Active);
}

/// When no orchestrator at all has been heard from within the TTL but several are stored as
/// active, the sweep refuses (and says why) instead of flipping the whole fleet; one or two
/// silent orchestrators are still swept, and so is everyone once someone is alive.
///
/// `lenient` (TTL [`LONG_TTL`]) and `strict` (TTL [`TTL`]) share one database.
pub async fn sweep_refuses_when_the_whole_fleet_is_silent(lenient: &dyn Store, strict: &dyn Store) {
    organization(lenient, "org-a").await;
    let t = now();

    // Two silent orchestrators are below the guard's threshold.
    for id in ["small-1", "small-2"] {
        preregister(lenient, id, "org-a").await;
    }
    lenient
        .flush_heartbeats(&[
            beat("small-1", t - secs(600)),
            beat("small-2", t - secs(600)),
        ])
        .await
        .expect("flush");
    let outcome = strict.sweep_expired().await.expect("sweep");
    assert_eq!(outcome.skipped, None);
    assert_eq!(outcome.changes.len(), 2, "{:?}", outcome.changes);

    // Three stored active, none alive: refuse.
    for id in ["a", "b", "c"] {
        preregister(lenient, id, "org-a").await;
    }
    let changes = lenient
        .flush_heartbeats(&[
            beat("a", t - secs(600)),
            beat("b", t - secs(700)),
            beat("c", t - secs(800)),
        ])
        .await
        .expect("flush");
    assert_eq!(changes.len(), 3);
    let outcome = strict.sweep_expired().await.expect("sweep");
    assert!(outcome.changes.is_empty(), "{:?}", outcome.changes);
    let reason = outcome.skipped.expect("the sweep says why it refused");
    assert!(reason.contains("silent"), "{reason}");
    // Reads still derive the truth.
    assert_eq!(status_of(strict, "a").await, Status::Inactive);

    // Someone is alive: the silent ones are really gone, sweep them.
    preregister(lenient, "alive", "org-a").await;
    lenient
        .flush_heartbeats(&[beat("alive", now())])
        .await
        .expect("flush");
    let outcome = strict.sweep_expired().await.expect("sweep");
    assert_eq!(outcome.skipped, None);
    let mut swept: Vec<String> = outcome
        .changes
        .into_iter()
        .map(|c| c.orchestrator_id)
        .collect();
    swept.sort();
    assert_eq!(swept, vec!["a", "b", "c"]);
}

// ---- operator writes -------------------------------------------------------------------------

/// Independence on and off: the returned record derives the new status, and each change is
/// audited with who did it and what it was before.
pub async fn independence_changes_are_audited(store: &dyn Store) {
    store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-1"))
        .await
        .expect("hello");

    let on = store
        .set_independence("orch-1", true, &user("alice"))
        .await
        .expect("independence on")
        .expect("exists");
    assert!(!on.previous);
    assert!(on.record.is_independent);
    assert_eq!(on.record.status, Status::Independent);
    assert_eq!(
        store
            .provisioning("orch-1")
            .await
            .expect("provisioning")
            .map(|p| p.is_independent),
        Some(true)
    );

    let audit = audit_of(store, "orchestrator.independence").await;
    assert_eq!(audit.total, 1);
    let entry = &audit.items[0];
    assert_eq!(entry.actor, "user:alice");
    assert_eq!(entry.client_addr.as_deref(), Some("192.0.2.10"));
    assert_eq!(entry.target.as_deref(), Some("orchestrator:orch-1"));
    assert_eq!(entry.organization_id.as_deref(), Some("org-a"));
    assert_eq!(
        entry.details,
        json!({ "is_independent": true, "previous": false })
    );
    assert!(entry.success);

    let off = store
        .set_independence("orch-1", false, &user("bob"))
        .await
        .expect("independence off")
        .expect("exists");
    assert!(off.previous);
    assert!(!off.record.is_independent);
    assert_eq!(off.record.status, Status::Active);

    let audit = audit_of(store, "orchestrator.independence").await;
    assert_eq!(audit.total, 2);
    assert_eq!(audit.items[0].actor, "user:bob");
    assert_eq!(
        audit.items[0].details,
        json!({ "is_independent": false, "previous": true })
    );

    assert!(
        store
            .set_independence("missing", true, &user("alice"))
            .await
            .expect("missing")
            .is_none()
    );
    assert_eq!(audit_of(store, "orchestrator.independence").await.total, 2);
}

/// Each session-config change replaces the config, bumps the version by one and is audited;
/// the next hello's provisioning carries both.
pub async fn session_config_updates_bump_the_version(store: &dyn Store) {
    store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-1"))
        .await
        .expect("hello");
    let v1 = store
        .update_session_config(
            "orch-1",
            &json!({ "model": "a", "limit": 1 }),
            &user("alice"),
        )
        .await
        .expect("update");
    assert_eq!(v1, Some(1));
    let v2 = store
        .update_session_config("orch-1", &json!({ "model": "b" }), &user("alice"))
        .await
        .expect("update");
    assert_eq!(v2, Some(2));

    let p = store
        .provisioning("orch-1")
        .await
        .expect("provisioning")
        .expect("exists");
    assert_eq!(p.session_config, json!({ "model": "b" }));
    assert_eq!(p.config_version, 2);
    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.config_version, 2);
    assert_eq!(record.session_config, json!({ "model": "b" }));

    let registered = store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-2"))
        .await
        .expect("hello");
    assert_eq!(registered.provisioning.config_version, 2);
    assert_eq!(
        registered.provisioning.session_config,
        json!({ "model": "b" })
    );

    let audit = audit_of(store, "orchestrator.config_update").await;
    assert_eq!(audit.total, 2);
    assert!(
        audit
            .items
            .iter()
            .all(|a| a.target.as_deref() == Some("orchestrator:orch-1"))
    );

    assert_eq!(
        store
            .update_session_config("missing", &json!({}), &user("alice"))
            .await
            .expect("missing"),
        None
    );
    assert!(
        store
            .provisioning("missing")
            .await
            .expect("provisioning")
            .is_none()
    );

    // What an edge repairing its sockets reads: the current session, independence and
    // configuration, in one call; unknown ids are absent.
    let supervision = store
        .supervision(&["orch-1".to_owned(), "missing".to_owned()])
        .await
        .expect("supervision");
    assert_eq!(supervision.len(), 1, "{supervision:?}");
    let s = &supervision[0];
    assert_eq!(s.orchestrator_id, "orch-1");
    assert_eq!(s.session_id.as_deref(), Some("sess-2"));
    assert!(!s.is_independent);
    assert_eq!(s.config_version, 2);
    assert_eq!(s.session_config, json!({ "model": "b" }));
    assert!(store.supervision(&[]).await.expect("empty").is_empty());
}

/// Pre-registration needs an existing organization and a new id; deregistration returns what
/// it deleted, removes the connection history and keeps the messages.
pub async fn operators_register_and_deregister_orchestrators(store: &dyn Store) {
    let new = NewOrchestrator {
        orchestrator_id: "orch-1".into(),
        organization_id: "org-a".into(),
        name: Some("First".into()),
        location: Some("lab".into()),
        features: Some(json!({ "f": 1 })),
        session_config: Some(json!({ "s": 2 })),
        metadata: Some(json!({ "version": "0.9" })),
    };
    match store.register_orchestrator(&new, &user("alice")).await {
        Err(StoreError::NotFound(what)) => assert!(what.contains("org-a"), "{what}"),
        other => panic!("expected not found, got {other:?}"),
    }
    organization(store, "org-a").await;
    let record = store
        .register_orchestrator(&new, &user("alice"))
        .await
        .expect("register");
    assert_eq!(record.orchestrator_id, "orch-1");
    assert_eq!(record.organization_id, "org-a");
    assert_eq!(record.organization_name.as_deref(), Some("org-a name"));
    assert_eq!(record.name.as_deref(), Some("First"));
    assert_eq!(record.location.as_deref(), Some("lab"));
    assert_eq!(record.features, json!({ "f": 1 }));
    assert_eq!(record.session_config, json!({ "s": 2 }));
    assert_eq!(record.version.as_deref(), Some("0.9"));
    assert_eq!(record.status, Status::Inactive);
    assert!(!record.connected);
    assert_eq!(record.last_seen, None);
    assert_eq!(record.config_version, 0);
    assert!(matches!(
        store.register_orchestrator(&new, &user("alice")).await,
        Err(StoreError::Conflict(_))
    ));
    let registered = audit_of(store, "orchestrator.register").await;
    assert_eq!(registered.total, 1);
    assert_eq!(registered.items[0].actor, "user:alice");

    store
        .register_hello(&hello("orch-1", Some("org-a"), "sess-1"))
        .await
        .expect("hello");
    let kept = store
        .create_message(&message("orch-1", "recommendation", "keep me", "api"))
        .await
        .expect("message");

    let deleted = store
        .deregister_orchestrator("orch-1", &user("alice"))
        .await
        .expect("deregister")
        .expect("existed");
    assert_eq!(deleted.orchestrator_id, "orch-1");
    assert_eq!(deleted.name.as_deref(), Some("First"));
    assert_eq!(deleted.status, Status::Active);
    assert!(
        store
            .get_orchestrator("orch-1")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        store
            .list_connections("orch-1", 10)
            .await
            .expect("connections")
            .is_empty()
    );

    let messages = store
        .list_messages(&MessageQuery {
            orchestrator_id: Some("orch-1".into()),
            limit: 10,
            ..MessageQuery::default()
        })
        .await
        .expect("messages");
    assert_eq!(ids(&messages), vec![kept.id.as_str()]);
    assert!(!messages[0].orchestrator_is_independent);
    assert_eq!(messages[0].organization_id.as_deref(), Some("org-a"));

    let audit = audit_of(store, "orchestrator.deregister").await;
    assert_eq!(audit.total, 1);
    assert_eq!(audit.items[0].actor, "user:alice");
    assert_eq!(
        audit.items[0].target.as_deref(),
        Some("orchestrator:orch-1")
    );
    assert!(
        store
            .deregister_orchestrator("orch-1", &user("alice"))
            .await
            .expect("again")
            .is_none()
    );
    let org = store
        .get_organization("org-a")
        .await
        .expect("get organization")
        .expect("exists");
    assert_eq!(org.orchestrator_count, 0);
}

/// Metadata updates merge keys; config snapshots are stored with their time; both report
/// whether the orchestrator exists.
pub async fn metadata_merges_and_config_snapshots_are_kept(store: &dyn Store) {
    let mut first = hello("orch-1", Some("org-a"), "sess-1");
    first.metadata = object(json!({ "version": "1.0", "region": "eu" }));
    store.register_hello(&first).await.expect("hello");

    assert!(
        store
            .update_metadata("orch-1", &object(json!({ "version": "1.1", "gpu": true })))
            .await
            .expect("update metadata")
    );
    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        record.metadata,
        json!({ "version": "1.1", "region": "eu", "gpu": true })
    );
    assert_eq!(record.version.as_deref(), Some("1.1"));
    assert!(
        !store
            .update_metadata("missing", &object(json!({ "a": 1 })))
            .await
            .expect("update missing")
    );

    assert_eq!(record.config_snapshot, None);
    let snapshot = json!({ "effective": { "model": "m", "limits": [1, 2, 3] } });
    assert!(
        store
            .save_config_snapshot("orch-1", &snapshot)
            .await
            .expect("snapshot")
    );
    let record = store
        .get_orchestrator("orch-1")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.config_snapshot, Some(snapshot.clone()));
    assert_recent(record.config_snapshot_at, "config_snapshot_at");
    assert!(
        !store
            .save_config_snapshot("missing", &snapshot)
            .await
            .expect("snapshot missing")
    );
}

// ---- messages --------------------------------------------------------------------------------

/// Create (organization copied from the orchestrator, not found for an unknown one), list
/// newest first with each filter and the limit, accept/dismiss once (conflict after, not found
/// for an unknown id), audited when the source is the API.
pub async fn messages_are_created_listed_and_decided_once(store: &dyn Store) {
    match store
        .create_message(&message("missing", "recommendation", "x", "api"))
        .await
    {
        Err(StoreError::NotFound(what)) => assert!(what.contains("missing"), "{what}"),
        other => panic!("expected not found, got {other:?}"),
    }
    store
        .register_hello(&hello("o1", Some("org-a"), "s1"))
        .await
        .expect("hello o1");
    store
        .register_hello(&hello("o2", Some("org-b"), "s2"))
        .await
        .expect("hello o2");

    let m1 = store
        .create_message(&message("o1", "recommendation", "scale up", "api"))
        .await
        .expect("m1");
    let m2 = store
        .create_message(&message("o1", "monitoring", "latency high", "orchestrator"))
        .await
        .expect("m2");
    let m3 = store
        .create_message(&message("o2", "recommendation", "rotate keys", "api"))
        .await
        .expect("m3");

    assert!(m1.id.starts_with("msg_"), "{}", m1.id);
    assert_eq!(m1.id.len(), 4 + 32, "{}", m1.id);
    assert_eq!(m1.orchestrator_id, "o1");
    assert_eq!(m1.organization_id.as_deref(), Some("org-a"));
    assert_eq!(m1.message_type, "recommendation");
    assert_eq!(m1.content, "scale up");
    assert_eq!(m1.message_metadata, json!({ "severity": "info" }));
    assert_eq!(m1.status, MessageStatus::Pending);
    assert_eq!(m1.source, "api");
    assert!(!m1.orchestrator_is_independent);
    assert_eq!(m1.delivered_at, None);
    assert_eq!(m2.source, "orchestrator");
    assert_eq!(m3.organization_id.as_deref(), Some("org-b"));

    let list =
        |q: MessageQuery| async move { store.list_messages(&q).await.expect("list messages") };
    let all = MessageQuery {
        limit: 10,
        ..MessageQuery::default()
    };
    assert_eq!(ids(&list(all.clone()).await), vec![&m3.id, &m2.id, &m1.id]);
    assert_eq!(
        ids(&list(MessageQuery {
            limit: 2,
            ..all.clone()
        })
        .await),
        vec![&m3.id, &m2.id]
    );
    assert_eq!(
        ids(&list(MessageQuery {
            orchestrator_id: Some("o1".into()),
            ..all.clone()
        })
        .await),
        vec![&m2.id, &m1.id]
    );
    assert_eq!(
        ids(&list(MessageQuery {
            organization_id: Some("org-b".into()),
            ..all.clone()
        })
        .await),
        vec![&m3.id]
    );
    assert_eq!(
        ids(&list(MessageQuery {
            message_type: Some("monitoring".into()),
            ..all.clone()
        })
        .await),
        vec![&m2.id]
    );
    assert_eq!(
        list(MessageQuery {
            status: Some(MessageStatus::Pending),
            ..all.clone()
        })
        .await
        .len(),
        3
    );

    let accepted = store
        .update_message_status(&m1.id, MessageStatus::Accepted, &user("alice"))
        .await
        .expect("accept");
    assert_eq!(accepted.status, MessageStatus::Accepted);
    assert_eq!(accepted.id, m1.id);
    assert!(accepted.updated_at >= m1.updated_at);
    match store
        .update_message_status(&m1.id, MessageStatus::Dismissed, &user("alice"))
        .await
    {
        Err(StoreError::Conflict(why)) => assert!(why.contains("already accepted"), "{why}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let dismissed = store
        .update_message_status(&m3.id, MessageStatus::Dismissed, &user("bob"))
        .await
        .expect("dismiss");
    assert_eq!(dismissed.status, MessageStatus::Dismissed);
    assert!(matches!(
        store
            .update_message_status("msg_nope", MessageStatus::Accepted, &user("alice"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .update_message_status(&m2.id, MessageStatus::Pending, &user("alice"))
            .await,
        Err(StoreError::Invalid(_))
    ));

    assert_eq!(
        ids(&list(MessageQuery {
            status: Some(MessageStatus::Accepted),
            ..all.clone()
        })
        .await),
        vec![&m1.id]
    );
    assert_eq!(
        ids(&list(MessageQuery {
            status: Some(MessageStatus::Dismissed),
            ..all.clone()
        })
        .await),
        vec![&m3.id]
    );
    assert_eq!(
        ids(&list(MessageQuery {
            status: Some(MessageStatus::Pending),
            ..all.clone()
        })
        .await),
        vec![&m2.id]
    );

    // Audit: creation only for the API's messages, every decision.
    let created = audit_of(store, "message.create").await;
    assert_eq!(created.total, 2);
    assert_eq!(
        created.items[0].target.as_deref(),
        Some(format!("message:{}", m3.id).as_str())
    );
    let decided = audit_of(store, "message.status").await;
    assert_eq!(decided.total, 2);
    assert_eq!(decided.items[0].actor, "user:bob");
    assert_eq!(decided.items[0].details, json!({ "status": "dismissed" }));
    assert_eq!(decided.items[1].details, json!({ "status": "accepted" }));
    assert_eq!(decided.items[1].organization_id.as_deref(), Some("org-a"));

    // The dashboard hides messages of independent orchestrators: the flag follows.
    store
        .set_independence("o1", true, &user("alice"))
        .await
        .expect("independence")
        .expect("exists");
    let o1 = list(MessageQuery {
        orchestrator_id: Some("o1".into()),
        ..all
    })
    .await;
    assert!(o1.iter().all(|m| m.orchestrator_is_independent));
}

/// 1000 messages created at once get 1000 distinct ids.
pub async fn message_ids_are_unique_under_concurrency(store: &dyn Store) {
    store
        .register_hello(&hello("o1", Some("org-a"), "s1"))
        .await
        .expect("hello");
    let created = join_all((0..1000).map(|i| async move {
        store
            .create_message(&message(
                "o1",
                "monitoring",
                &format!("note {i}"),
                "orchestrator",
            ))
            .await
    }))
    .await;
    let mut unique = HashSet::new();
    for result in created {
        let record = result.expect("concurrent create");
        assert!(
            unique.insert(record.id.clone()),
            "duplicate id {}",
            record.id
        );
    }
    assert_eq!(unique.len(), 1000);
    let listed = store
        .list_messages(&MessageQuery {
            limit: 5000,
            ..MessageQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1000);
    let listed: HashSet<String> = listed.into_iter().map(|m| m.id).collect();
    assert_eq!(listed, unique);
}

/// Accepted, undelivered messages are pending deliveries (oldest first), carried by the next
/// hello, and leave the list once marked delivered (the first delivery's time is kept).
pub async fn accepted_messages_are_delivered_once(store: &dyn Store) {
    store
        .register_hello(&hello("o1", Some("org-a"), "s1"))
        .await
        .expect("hello");
    let mut made = Vec::new();
    for content in ["first", "second", "third"] {
        made.push(
            store
                .create_message(&message("o1", "recommendation", content, "api"))
                .await
                .expect("create"),
        );
    }
    assert!(
        store
            .pending_deliveries("o1")
            .await
            .expect("pending")
            .is_empty()
    );
    let actor = user("alice");
    store
        .update_message_status(&made[2].id, MessageStatus::Accepted, &actor)
        .await
        .expect("accept third");
    store
        .update_message_status(&made[0].id, MessageStatus::Accepted, &actor)
        .await
        .expect("accept first");
    store
        .update_message_status(&made[1].id, MessageStatus::Dismissed, &actor)
        .await
        .expect("dismiss second");

    let pending = store.pending_deliveries("o1").await.expect("pending");
    let pending_ids: Vec<&str> = pending.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(pending_ids, vec![made[0].id.as_str(), made[2].id.as_str()]);
    assert_eq!(pending[0].content, "first");
    assert_eq!(pending[0].status, "accepted");
    assert_eq!(pending[0].message_type, "recommendation");
    assert_eq!(pending[0].orchestrator_id, "o1");
    assert_eq!(pending[0].metadata, json!({ "severity": "info" }));

    let registered = store
        .register_hello(&hello("o1", Some("org-a"), "s2"))
        .await
        .expect("hello");
    assert_eq!(registered.pending_messages, pending);

    store
        .mark_delivered(&made[0].id, "s2")
        .await
        .expect("mark delivered");
    let pending = store.pending_deliveries("o1").await.expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, made[2].id);

    let delivered_at = |messages: Vec<MessageRecord>, id: &str| {
        messages
            .into_iter()
            .find(|m| m.id == id)
            .and_then(|m| m.delivered_at)
    };
    let all = MessageQuery {
        limit: 10,
        ..MessageQuery::default()
    };
    let first_time = delivered_at(store.list_messages(&all).await.expect("list"), &made[0].id);
    assert_recent(first_time, "delivered_at");
    store
        .mark_delivered(&made[0].id, "s3")
        .await
        .expect("mark again");
    let second_time = delivered_at(store.list_messages(&all).await.expect("list"), &made[0].id);
    assert_eq!(
        first_time, second_time,
        "a second delivery must not move delivered_at"
    );
    store
        .mark_delivered("msg_unknown", "s3")
        .await
        .expect("unknown id is not an error");
    assert!(
        store
            .pending_deliveries("nobody")
            .await
            .expect("pending")
            .is_empty()
    );
}

// ---- usage, costs, overview, organizations ---------------------------------------------------

fn usage(
    orchestrator_id: &str,
    organization_id: &str,
    model: Option<&str>,
    (requests, input_tokens, output_tokens): (i64, i64, i64),
    cost: f64,
    reported_at: DateTime<Utc>,
) -> UsageWrite {
    UsageWrite {
        orchestrator_id: orchestrator_id.into(),
        organization_id: organization_id.into(),
        model: model.map(Into::into),
        requests,
        input_tokens,
        output_tokens,
        cost,
        reported_at,
    }
}

/// Cost report totals and breakdowns are exact over the half-open range `[from, to)`, with
/// each granularity and filter; periods are UTC days, weeks starting on Monday and calendar
/// months, exact at their edges; the overview counts this month's usage, users and pending
/// messages of supervised orchestrators.
pub async fn usage_costs_and_overview_add_up(store: &dyn Store) {
    // 2025-06-02 is a Monday.
    let rows = vec![
        usage(
            "o1",
            "org-a",
            Some("gpt-4o"),
            (10, 100, 50),
            1.5,
            utc(2025, 6, 2, 10, 0, 0),
        ),
        usage(
            "o1",
            "org-a",
            Some("gpt-4o"),
            (5, 40, 10),
            0.5,
            utc(2025, 6, 2, 23, 59, 59),
        ),
        usage(
            "o2",
            "org-a",
            None,
            (1, 7, 3),
            0.25,
            utc(2025, 6, 3, 0, 0, 0),
        ),
        usage(
            "o3",
            "org-b",
            Some("claude"),
            (2, 20, 20),
            2.0,
            utc(2025, 6, 10, 12, 0, 0),
        ),
        // Exactly at `to`: outside.
        usage(
            "o1",
            "org-a",
            Some("gpt-4o"),
            (100, 1, 1),
            100.0,
            utc(2025, 6, 15, 0, 0, 0),
        ),
        // Just before `from`: outside.
        usage(
            "o1",
            "org-a",
            Some("gpt-4o"),
            (100, 1, 1),
            100.0,
            utc(2025, 6, 2, 0, 0, 0) - TimeDelta::microseconds(1),
        ),
    ];
    store.record_usage(&rows).await.expect("record usage");
    store.record_usage(&[]).await.expect("empty usage batch");

    let query = |granularity: Granularity| CostQuery {
        from: utc(2025, 6, 2, 0, 0, 0),
        to: utc(2025, 6, 15, 0, 0, 0),
        organization_id: None,
        orchestrator_id: None,
        granularity,
        scope: None,
    };
    let report = store.costs(&query(Granularity::Day)).await.expect("costs");
    assert_eq!(report.from, utc(2025, 6, 2, 0, 0, 0));
    assert_eq!(report.granularity, Granularity::Day);
    let t = &report.totals;
    assert_eq!(
        (t.requests, t.input_tokens, t.output_tokens, t.total_tokens),
        (18, 167, 83, 250)
    );
    assert!((t.cost - 4.25).abs() < 1e-9, "{}", t.cost);

    let buckets = |b: &[crate::CostBucket]| {
        b.iter()
            .map(|b| {
                (
                    b.key.clone(),
                    b.totals.requests,
                    b.totals.total_tokens,
                    b.totals.cost,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        buckets(&report.by_organization),
        vec![
            ("org-a".into(), 16, 210, 2.25),
            ("org-b".into(), 2, 40, 2.0)
        ]
    );
    assert_eq!(
        buckets(&report.by_orchestrator),
        vec![
            ("o1".into(), 15, 200, 2.0),
            ("o3".into(), 2, 40, 2.0),
            ("o2".into(), 1, 10, 0.25)
        ]
    );
    assert_eq!(
        buckets(&report.by_model),
        vec![
            ("claude".into(), 2, 40, 2.0),
            ("gpt-4o".into(), 15, 200, 2.0),
            ("unknown".into(), 1, 10, 0.25),
        ]
    );
    let series = |r: &crate::CostReport| {
        r.series
            .iter()
            .map(|p| (p.period_start, p.totals.requests, p.totals.cost))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        series(&report),
        vec![
            (utc(2025, 6, 2, 0, 0, 0), 15, 2.0),
            (utc(2025, 6, 3, 0, 0, 0), 1, 0.25),
            (utc(2025, 6, 10, 0, 0, 0), 2, 2.0),
        ]
    );
    let weekly = store
        .costs(&query(Granularity::Week))
        .await
        .expect("weekly");
    assert_eq!(
        series(&weekly),
        vec![
            (utc(2025, 6, 2, 0, 0, 0), 16, 2.25),
            (utc(2025, 6, 9, 0, 0, 0), 2, 2.0)
        ]
    );
    let monthly = store
        .costs(&query(Granularity::Month))
        .await
        .expect("monthly");
    assert_eq!(series(&monthly), vec![(utc(2025, 6, 1, 0, 0, 0), 18, 4.25)]);

    let org_b = store
        .costs(&CostQuery {
            organization_id: Some("org-b".into()),
            ..query(Granularity::Day)
        })
        .await
        .expect("org-b costs");
    assert_eq!(org_b.totals.requests, 2);
    assert_eq!(
        buckets(&org_b.by_organization),
        vec![("org-b".into(), 2, 40, 2.0)]
    );
    let o1 = store
        .costs(&CostQuery {
            orchestrator_id: Some("o1".into()),
            ..query(Granularity::Day)
        })
        .await
        .expect("o1 costs");
    assert_eq!((o1.totals.requests, o1.totals.total_tokens), (15, 200));
    assert_eq!(buckets(&o1.by_model), vec![("gpt-4o".into(), 15, 200, 2.0)]);
    let scoped = store
        .costs(&CostQuery {
            scope: Some(vec!["org-b".into(), "org-none".into()]),
            ..query(Granularity::Day)
        })
        .await
        .expect("scoped costs");
    assert_eq!(
        (scoped.totals.requests, scoped.totals.total_tokens),
        (2, 40)
    );
    assert_eq!(
        buckets(&scoped.by_organization),
        vec![("org-b".into(), 2, 40, 2.0)]
    );
    let outside = store
        .costs(&CostQuery {
            organization_id: Some("org-a".into()),
            scope: Some(vec!["org-b".into()]),
            ..query(Granularity::Week)
        })
        .await
        .expect("filter outside the scope");
    assert_eq!(outside.totals.requests, 0);
    assert!(outside.by_orchestrator.is_empty() && outside.series.is_empty());
    let empty = store
        .costs(&CostQuery {
            organization_id: Some("org-none".into()),
            ..query(Granularity::Day)
        })
        .await
        .expect("empty costs");
    assert_eq!(empty.totals.requests, 0);
    assert!(empty.totals.cost.abs() < f64::EPSILON);
    assert!(empty.by_model.is_empty() && empty.series.is_empty());

    // The report names the 100 costliest orchestrators; the totals count them all.
    let many: Vec<UsageWrite> = (0..105_i32)
        .map(|i| {
            usage(
                &format!("m{i:03}"),
                "org-many",
                Some("gpt-4o"),
                (1, 1, 1),
                f64::from(i) / 100.0,
                utc(2025, 6, 4, 12, 0, 0),
            )
        })
        .collect();
    store.record_usage(&many).await.expect("usage of many");
    let crowded = store
        .costs(&CostQuery {
            organization_id: Some("org-many".into()),
            ..query(Granularity::Day)
        })
        .await
        .expect("costs of many");
    assert_eq!(crowded.totals.requests, 105);
    assert_eq!(crowded.by_orchestrator.len(), 100);
    assert_eq!(
        (
            crowded.by_orchestrator[0].key.as_str(),
            crowded.by_orchestrator[99].key.as_str()
        ),
        ("m104", "m005")
    );
    assert_eq!(
        crowded
            .by_model
            .iter()
            .map(|b| (b.key.as_str(), b.totals.requests, b.totals.total_tokens))
            .collect::<Vec<_>>(),
        vec![("gpt-4o", 105, 210)]
    );

    // Overview: this month's usage only.
    store
        .record_usage(&[usage("o1", "org-a", Some("m"), (3, 30, 12), 0.75, now())])
        .await
        .expect("usage now");
    store
        .register_hello(&hello("live", Some("org-a"), "s1"))
        .await
        .expect("hello");
    store
        .register_hello(&hello("free", Some("org-b"), "s2"))
        .await
        .expect("hello");
    preregister(store, "idle", "org-b").await;
    store
        .set_independence("free", true, &Actor::system())
        .await
        .expect("independence")
        .expect("exists");
    store
        .create_message(&message("live", "recommendation", "pending", "api"))
        .await
        .expect("message");
    store
        .create_message(&message("free", "recommendation", "hidden", "api"))
        .await
        .expect("message");
    let decided = store
        .create_message(&message("live", "recommendation", "decided", "api"))
        .await
        .expect("message");
    store
        .update_message_status(&decided.id, MessageStatus::Accepted, &Actor::system())
        .await
        .expect("accept");
    store
        .create_user(&new_user("admin", Role::Superadmin, &[]), &Actor::system())
        .await
        .expect("user");
    store
        .create_user(
            &new_user("viewer", Role::Viewer, &["org-b"]),
            &Actor::system(),
        )
        .await
        .expect("user");

    let overview = store.overview(None).await.expect("overview");
    assert_eq!(overview.total_organizations, 2);
    assert_eq!(overview.total_orchestrators, 3);
    assert_eq!(overview.active_orchestrators, 1);
    assert_eq!(overview.inactive_orchestrators, 1);
    assert_eq!(overview.independent_orchestrators, 1);
    assert_eq!(overview.total_users, 2);
    assert_eq!(overview.pending_messages, 1);

    // Scoped to org-b: its orchestrators (one independent, one never seen), its user, no
    // pending message of a supervised orchestrator, none of org-a's usage.
    let scoped = store
        .overview(Some(&["org-b".to_owned()]))
        .await
        .expect("scoped overview");
    assert_eq!(scoped.total_organizations, 1);
    assert_eq!(scoped.total_orchestrators, 2);
    assert_eq!(scoped.active_orchestrators, 0);
    assert_eq!(scoped.independent_orchestrators, 1);
    assert_eq!(scoped.inactive_orchestrators, 1);
    assert_eq!(scoped.total_users, 1);
    assert_eq!(scoped.pending_messages, 0);
    assert_eq!(scoped.requests_this_month, 0);
    let nothing = store
        .overview(Some(&[]))
        .await
        .expect("empty scope overview");
    assert_eq!(
        (
            nothing.total_organizations,
            nothing.total_orchestrators,
            nothing.total_users
        ),
        (0, 0, 0)
    );
    assert_eq!(overview.requests_this_month, 3);
    assert_eq!(overview.tokens_this_month, 42);
    assert!(
        (overview.cost_this_month - 0.75).abs() < 1e-9,
        "{}",
        overview.cost_this_month
    );

    // Period edges: weeks start on Monday (a Sunday belongs to the week before it, also
    // across a new year), months and days at midnight UTC, to the microsecond. Long ago, so
    // this month's overview above is unaffected; in an organization of its own.
    let edge = |requests: i64, at: DateTime<Utc>| {
        usage("o-edge", "org-edges", None, (requests, 0, 0), 0.0, at)
    };
    let last_micro = |t: DateTime<Utc>| t - TimeDelta::microseconds(1);
    store
        .record_usage(&[
            // Sunday, the last microsecond of the week of Monday 2020-12-21.
            edge(1, last_micro(utc(2020, 12, 28, 0, 0, 0))),
            // Monday 2020-12-28, the first instant of its week.
            edge(2, utc(2020, 12, 28, 0, 0, 0)),
            // The last microsecond of December (a Thursday).
            edge(4, last_micro(utc(2021, 1, 1, 0, 0, 0))),
            // New Year's Day (a Friday), still the week of 2020-12-28.
            edge(8, utc(2021, 1, 1, 0, 0, 0)),
            // Sunday 2021-01-03, the last day of that week.
            edge(16, utc(2021, 1, 3, 12, 0, 0)),
        ])
        .await
        .expect("record edge usage");
    let edges = |granularity: Granularity| CostQuery {
        from: utc(2020, 12, 1, 0, 0, 0),
        to: utc(2021, 2, 1, 0, 0, 0),
        organization_id: Some("org-edges".into()),
        orchestrator_id: None,
        granularity,
        scope: None,
    };
    let requests = |r: &crate::CostReport| {
        r.series
            .iter()
            .map(|p| (p.period_start, p.totals.requests))
            .collect::<Vec<_>>()
    };
    let weekly = store
        .costs(&edges(Granularity::Week))
        .await
        .expect("weekly edges");
    assert_eq!(
        requests(&weekly),
        vec![
            (utc(2020, 12, 21, 0, 0, 0), 1),
            (utc(2020, 12, 28, 0, 0, 0), 30)
        ]
    );
    let monthly = store
        .costs(&edges(Granularity::Month))
        .await
        .expect("monthly edges");
    assert_eq!(
        requests(&monthly),
        vec![
            (utc(2020, 12, 1, 0, 0, 0), 7),
            (utc(2021, 1, 1, 0, 0, 0), 24)
        ]
    );
    let daily = store
        .costs(&edges(Granularity::Day))
        .await
        .expect("daily edges");
    assert_eq!(
        requests(&daily),
        vec![
            (utc(2020, 12, 27, 0, 0, 0), 1),
            (utc(2020, 12, 28, 0, 0, 0), 2),
            (utc(2020, 12, 31, 0, 0, 0), 4),
            (utc(2021, 1, 1, 0, 0, 0), 8),
            (utc(2021, 1, 3, 0, 0, 0), 16),
        ]
    );
    assert_eq!(daily.totals.requests, 31);
    assert!(daily.totals.cost.abs() < f64::EPSILON);
}

/// Organizations: created once (audited), listed by id in pages with a total, each with its
/// orchestrator counts and a status that is active when one of them is.
pub async fn organizations_page_with_counts(store: &dyn Store) {
    for i in 1..=5 {
        let created = store
            .create_organization(
                &NewOrganization {
                    organization_id: format!("org-0{i}"),
                    name: format!("Organization {i}"),
                    location: Some("somewhere".into()),
                    metadata: Some(json!({ "tier": i })),
                    features: None,
                    settings: Some(json!({ "retention_days": 30 })),
                },
                &user("alice"),
            )
            .await
            .expect("create organization");
        assert_eq!(created.name, format!("Organization {i}"));
        assert_eq!(created.metadata, json!({ "tier": i }));
        assert_eq!(created.settings, json!({ "retention_days": 30 }));
        assert_eq!(created.features, json!({}));
        assert_eq!(created.orchestrator_count, 0);
        assert_eq!(created.status, "inactive");
        assert!(created.is_active);
    }
    let duplicate = store
        .create_organization(
            &NewOrganization {
                organization_id: "org-03".into(),
                name: "again".into(),
                location: None,
                metadata: None,
                features: None,
                settings: None,
            },
            &user("alice"),
        )
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    let audit = audit_of(store, "organization.create").await;
    assert_eq!(audit.total, 5);
    assert_eq!(
        audit.items[0].target.as_deref(),
        Some("organization:org-05")
    );

    store
        .register_hello(&hello("live", Some("org-02"), "s1"))
        .await
        .expect("hello");
    preregister(store, "idle", "org-02").await;
    preregister(store, "free", "org-03").await;
    store
        .set_independence("free", true, &Actor::system())
        .await
        .expect("independence")
        .expect("exists");

    let page = store.list_organizations(1, 2, None).await.expect("page 1");
    assert_eq!(page.total, 5);
    assert_eq!((page.page, page.page_size), (1, 2));
    let ids: Vec<&str> = page
        .items
        .iter()
        .map(|o| o.organization_id.as_str())
        .collect();
    assert_eq!(ids, vec!["org-01", "org-02"]);
    let org2 = &page.items[1];
    assert_eq!((org2.orchestrator_count, org2.active_orchestrators), (2, 1));
    assert_eq!(org2.status, "active");
    let org1 = &page.items[0];
    assert_eq!((org1.orchestrator_count, org1.active_orchestrators), (0, 0));
    assert_eq!(org1.status, "inactive");

    let last = store.list_organizations(3, 2, None).await.expect("page 3");
    let ids: Vec<&str> = last
        .items
        .iter()
        .map(|o| o.organization_id.as_str())
        .collect();
    assert_eq!(ids, vec!["org-05"]);
    let beyond = store.list_organizations(4, 2, None).await.expect("page 4");
    assert_eq!(beyond.total, 5);
    assert!(beyond.items.is_empty());

    let org3 = store
        .get_organization("org-03")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((org3.orchestrator_count, org3.active_orchestrators), (1, 0));
    assert_eq!(org3.status, "inactive");
    assert!(
        store
            .get_organization("org-99")
            .await
            .expect("get")
            .is_none()
    );
}

// ---- hostile input, audit, sessions ----------------------------------------------------------

const SQL_PAYLOAD: &str = "'; DROP TABLE orchestrator_instances; --";
const HTML_PAYLOAD: &str = "<script>alert(\"x\")</script>";
const ODD_PAYLOAD: &str = "ünïcødé 🚀 \\ \" ' % _ $1 ?";

/// Strings that look like SQL or HTML are stored and returned byte for byte, everywhere a
/// caller's text goes, and nothing is executed.
pub async fn hostile_strings_round_trip(store: &dyn Store) {
    let org_id = format!("org{SQL_PAYLOAD}");
    let orch_id = format!("orch{HTML_PAYLOAD}");
    let mut h = hello(&orch_id, Some(&org_id), SQL_PAYLOAD);
    h.name = Some(SQL_PAYLOAD.into());
    h.location = Some(HTML_PAYLOAD.into());
    h.features = Some(json!({ SQL_PAYLOAD: HTML_PAYLOAD }));
    h.metadata = object(json!({ "version": ODD_PAYLOAD, "note": SQL_PAYLOAD }));
    h.edge_id = HTML_PAYLOAD.into();
    h.remote_addr = Some(ODD_PAYLOAD.into());
    let registered = store.register_hello(&h).await.expect("hello");
    assert_eq!(registered.organization_id, org_id);

    let record = store
        .get_orchestrator(&orch_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(record.orchestrator_id, orch_id);
    assert_eq!(record.organization_id, org_id);
    assert_eq!(record.organization_name.as_deref(), Some(org_id.as_str()));
    assert_eq!(record.name.as_deref(), Some(SQL_PAYLOAD));
    assert_eq!(record.location.as_deref(), Some(HTML_PAYLOAD));
    assert_eq!(record.features, json!({ SQL_PAYLOAD: HTML_PAYLOAD }));
    assert_eq!(record.version.as_deref(), Some(ODD_PAYLOAD));
    assert_eq!(record.session_id.as_deref(), Some(SQL_PAYLOAD));
    assert_eq!(record.edge_id.as_deref(), Some(HTML_PAYLOAD));
    let connections = store
        .list_connections(&orch_id, 5)
        .await
        .expect("connections");
    assert_eq!(connections[0].remote_addr.as_deref(), Some(ODD_PAYLOAD));

    let search = store
        .list_orchestrators(&OrchestratorQuery {
            page: 1,
            page_size: 10,
            search: Some("drop table".into()),
            ..OrchestratorQuery::default()
        })
        .await
        .expect("search");
    assert_eq!(search.total, 1);
    assert_eq!(search.items[0].orchestrator_id, orch_id);
    let filtered = store
        .list_orchestrators(&OrchestratorQuery {
            page: 1,
            page_size: 10,
            organization_id: Some(org_id.clone()),
            ..OrchestratorQuery::default()
        })
        .await
        .expect("filter");
    assert_eq!(filtered.total, 1);

    let content = format!("{HTML_PAYLOAD}{SQL_PAYLOAD}{ODD_PAYLOAD}");
    let mut new = message(&orch_id, "recommendation", &content, "api");
    new.metadata = json!({ "html": HTML_PAYLOAD, "nested": [SQL_PAYLOAD] });
    new.actor = Actor {
        name: format!("user:{SQL_PAYLOAD}"),
        client_addr: Some(HTML_PAYLOAD.into()),
    };
    let created = store.create_message(&new).await.expect("message");
    let listed = store
        .list_messages(&MessageQuery {
            orchestrator_id: Some(orch_id.clone()),
            organization_id: Some(org_id.clone()),
            limit: 10,
            ..MessageQuery::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.id);
    assert_eq!(listed[0].content, content);
    assert_eq!(
        listed[0].message_metadata,
        json!({ "html": HTML_PAYLOAD, "nested": [SQL_PAYLOAD] })
    );

    let hostile_message_type = store
        .create_message(&message(&orch_id, SQL_PAYLOAD, "x", "api"))
        .await;
    assert!(
        matches!(hostile_message_type, Err(StoreError::Invalid(_))),
        "an unknown message type breaks a data rule: {hostile_message_type:?}"
    );

    store
        .append_audit(&AuditEntry {
            actor: Actor {
                name: HTML_PAYLOAD.into(),
                client_addr: None,
            },
            action: SQL_PAYLOAD.into(),
            target: Some(ODD_PAYLOAD.into()),
            organization_id: Some(org_id.clone()),
            details: json!({ "q": SQL_PAYLOAD }),
            success: false,
        })
        .await
        .expect("audit");
    let audit = store
        .list_audit(&AuditQuery {
            page: 1,
            page_size: 10,
            action: Some(SQL_PAYLOAD.into()),
            actor: Some(HTML_PAYLOAD.into()),
            target: Some(ODD_PAYLOAD.into()),
            organization_id: Some(org_id.clone()),
            ..AuditQuery::default()
        })
        .await
        .expect("audit list");
    assert_eq!(audit.total, 1);
    assert_eq!(audit.items[0].details, json!({ "q": SQL_PAYLOAD }));
    assert!(!audit.items[0].success);
    let created_audit = audit_of(store, "message.create").await;
    assert_eq!(created_audit.items[0].actor, format!("user:{SQL_PAYLOAD}"));
    assert_eq!(
        created_audit.items[0].client_addr.as_deref(),
        Some(HTML_PAYLOAD)
    );

    // Everything is still there.
    let overview = store.overview(None).await.expect("overview");
    assert_eq!(overview.total_orchestrators, 1);
    assert_eq!(overview.total_organizations, 1);
}

/// The audit log lists newest first, in pages, with exact filters on action, actor, target and
/// organization.
pub async fn audit_log_lists_newest_first_with_filters(store: &dyn Store) {
    let entries = [
        (
            "auth.login",
            "user:alice",
            Some("session"),
            Some("org-a"),
            true,
        ),
        ("auth.login", "user:bob", Some("session"), None, false),
        (
            "orchestrator.note",
            "user:alice",
            Some("orchestrator:o1"),
            Some("org-a"),
            true,
        ),
        ("auth.logout", "user:alice", None, None, true),
        (
            "auth.login",
            "user:alice",
            Some("session"),
            Some("org-b"),
            true,
        ),
    ];
    for (i, (action, actor, target, org, success)) in entries.iter().enumerate() {
        store
            .append_audit(&AuditEntry {
                actor: Actor {
                    name: (*actor).into(),
                    client_addr: Some(format!("192.0.2.{i}")),
                },
                action: (*action).into(),
                target: target.map(Into::into),
                organization_id: org.map(Into::into),
                details: json!({ "n": i }),
                success: *success,
            })
            .await
            .expect("append");
    }
    let query = |page: u32, page_size: u32| AuditQuery {
        page,
        page_size,
        ..AuditQuery::default()
    };
    let numbers = |page: &crate::Page<crate::AuditRecord>| {
        page.items
            .iter()
            .map(|a| a.details["n"].clone())
            .collect::<Vec<_>>()
    };

    let first = store.list_audit(&query(1, 2)).await.expect("page 1");
    assert_eq!(first.total, 5);
    assert_eq!(numbers(&first), vec![json!(4), json!(3)]);
    assert!(first.items[0].at >= first.items[1].at);
    assert_eq!(first.items[0].client_addr.as_deref(), Some("192.0.2.4"));
    let third = store.list_audit(&query(3, 2)).await.expect("page 3");
    assert_eq!(numbers(&third), vec![json!(0)]);

    let logins = store
        .list_audit(&AuditQuery {
            action: Some("auth.login".into()),
            ..query(1, 10)
        })
        .await
        .expect("logins");
    assert_eq!(logins.total, 3);
    assert_eq!(numbers(&logins), vec![json!(4), json!(1), json!(0)]);
    assert!(!logins.items[1].success);

    let alice_logins = store
        .list_audit(&AuditQuery {
            action: Some("auth.login".into()),
            actor: Some("user:alice".into()),
            ..query(1, 10)
        })
        .await
        .expect("alice");
    assert_eq!(numbers(&alice_logins), vec![json!(4), json!(0)]);
    let by_target = store
        .list_audit(&AuditQuery {
            target: Some("orchestrator:o1".into()),
            ..query(1, 10)
        })
        .await
        .expect("target");
    assert_eq!(numbers(&by_target), vec![json!(2)]);
    let by_org = store
        .list_audit(&AuditQuery {
            organization_id: Some("org-a".into()),
            ..query(1, 10)
        })
        .await
        .expect("org");
    assert_eq!(numbers(&by_org), vec![json!(2), json!(0)]);
    let none = store
        .list_audit(&AuditQuery {
            actor: Some("user:ALICE".into()),
            ..query(1, 10)
        })
        .await
        .expect("exact match only");
    assert_eq!(none.total, 0);
}

/// Login sessions are found by token hash until they expire, and not after they are deleted;
/// they carry their user's current role and organizations, and stop working when the user is
/// disabled, changed or deleted.
pub async fn login_sessions_expire_and_can_be_deleted(store: &dyn Store) {
    organization(store, "org-a").await;
    store
        .create_user(&new_user("alice", Role::Superadmin, &[]), &Actor::system())
        .await
        .expect("alice");
    store
        .create_user(&new_user("bob", Role::Viewer, &["org-a"]), &Actor::system())
        .await
        .expect("bob");
    let session = |n: u32, username: &str, expires_at: DateTime<Utc>| NewSession {
        token_hash: token_hash(n),
        username: username.into(),
        role: "superadmin".into(),
        expires_at,
        client_addr: Some("192.0.2.1".into()),
    };
    let expires_at = now() + secs(3600);
    store
        .create_session(&session(1, "alice", expires_at))
        .await
        .expect("create session");
    store
        .create_session(&session(2, "bob", now() - secs(1)))
        .await
        .expect("create expired session");
    store
        .create_session(&session(4, "bob", expires_at))
        .await
        .expect("bob's live session");
    // A session row whose user does not exist (deleted meanwhile) authenticates nobody.
    store
        .create_session(&session(5, "ghost", expires_at))
        .await
        .expect("orphan session");

    let found = store
        .session_by_token_hash(&token_hash(1))
        .await
        .expect("lookup")
        .expect("live session");
    assert_eq!(found.username, "alice");
    assert_eq!(found.role, Role::Superadmin);
    assert_eq!(found.expires_at, expires_at);
    // The role comes from the user, not from what the session row recorded at login.
    let bob = store
        .session_by_token_hash(&token_hash(4))
        .await
        .expect("lookup")
        .expect("bob");
    assert_eq!(bob.role, Role::Viewer);
    assert_eq!(bob.organization_ids, vec!["org-a".to_owned()]);
    for missing in [2, 3, 5] {
        assert_eq!(
            store
                .session_by_token_hash(&token_hash(missing))
                .await
                .expect("lookup"),
            None,
            "session {missing}"
        );
    }

    let duplicate = store
        .create_session(&session(1, "mallory", expires_at))
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );

    store.delete_session(&token_hash(1)).await.expect("delete");
    assert_eq!(
        store
            .session_by_token_hash(&token_hash(1))
            .await
            .expect("lookup"),
        None
    );
    store
        .delete_session(&token_hash(1))
        .await
        .expect("deleting twice is fine");

    // Disabling bob ends his session.
    store
        .update_user(
            "bob",
            &UserUpdate {
                disabled: Some(true),
                ..UserUpdate::default()
            },
            &user("alice"),
        )
        .await
        .expect("disable")
        .expect("bob exists");
    assert_eq!(
        store
            .session_by_token_hash(&token_hash(4))
            .await
            .expect("lookup"),
        None
    );
    store.ping().await.expect("ping");
}

/// Users: created once per name with existing organizations only, read with or without their
/// hash, listed in pages, updated (which ends their sessions) and deleted, every change
/// audited without the hash.
pub async fn users_are_created_updated_and_deleted(store: &dyn Store) {
    organization(store, "org-a").await;
    organization(store, "org-b").await;
    let admin = user("root");
    let carol = store
        .create_user(
            &new_user("carol", Role::OrgAdmin, &["org-a", "org-b", "org-a"]),
            &admin,
        )
        .await
        .expect("carol");
    assert_eq!(carol.role, Role::OrgAdmin);
    assert_eq!(carol.organization_ids, vec!["org-a", "org-b"]);
    assert!(!carol.disabled);
    assert_recent(Some(carol.created_at), "created_at");

    let again = store
        .create_user(&new_user("carol", Role::Viewer, &[]), &admin)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let unknown_org = store
        .create_user(
            &new_user("dave", Role::Viewer, &["org-a", "org-nope"]),
            &admin,
        )
        .await;
    assert!(
        matches!(&unknown_org, Err(StoreError::NotFound(m)) if m.contains("org-nope")),
        "{unknown_org:?}"
    );
    assert_eq!(store.get_user("dave").await.expect("get"), None);

    for name in ["erin", "alan", "zoe"] {
        store
            .create_user(&new_user(name, Role::Viewer, &["org-b"]), &admin)
            .await
            .expect("user");
    }
    let page = store.list_users(1, 3).await.expect("page");
    assert_eq!(page.total, 4);
    let names: Vec<&str> = page.items.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, vec!["alan", "carol", "erin"]);
    let last = store.list_users(2, 3).await.expect("page 2");
    assert_eq!(last.items.len(), 1);
    assert_eq!(last.items[0].username, "zoe");

    let login = store
        .user_login("carol")
        .await
        .expect("login lookup")
        .expect("carol");
    assert_eq!(login.user, carol);
    assert_eq!(
        login.password_hash.as_deref(),
        Some(new_user("carol", Role::Viewer, &[]).password_hash.as_str())
    );
    assert_eq!(store.user_login("nobody").await.expect("lookup"), None);

    store
        .create_session(&NewSession {
            token_hash: token_hash(7),
            username: "carol".into(),
            role: "org_admin".into(),
            expires_at: now() + secs(600),
            client_addr: None,
        })
        .await
        .expect("session");
    let updated = store
        .update_user(
            "carol",
            &UserUpdate {
                role: Some(Role::Viewer),
                organization_ids: Some(vec!["org-b".into()]),
                password_hash: Some("$argon2id$new".into()),
                disabled: None,
            },
            &admin,
        )
        .await
        .expect("update")
        .expect("carol exists");
    assert_eq!(updated.role, Role::Viewer);
    assert_eq!(updated.organization_ids, vec!["org-b"]);
    assert!(updated.updated_at >= carol.updated_at);
    assert_eq!(
        store
            .session_by_token_hash(&token_hash(7))
            .await
            .expect("lookup"),
        None,
        "an update ends the user's sessions"
    );
    assert_eq!(
        store
            .user_login("carol")
            .await
            .expect("lookup")
            .and_then(|l| l.password_hash)
            .as_deref(),
        Some("$argon2id$new")
    );
    let bad = store
        .update_user(
            "carol",
            &UserUpdate {
                organization_ids: Some(vec!["org-nope".into()]),
                ..UserUpdate::default()
            },
            &admin,
        )
        .await;
    assert!(matches!(bad, Err(StoreError::NotFound(_))), "{bad:?}");
    assert_eq!(
        store
            .get_user("carol")
            .await
            .expect("get")
            .expect("carol")
            .organization_ids,
        vec!["org-b"],
        "a refused update changes nothing"
    );
    assert_eq!(
        store
            .update_user("nobody", &UserUpdate::default(), &admin)
            .await
            .expect("update"),
        None
    );

    assert!(store.delete_user("carol", &admin).await.expect("delete"));
    assert!(!store.delete_user("carol", &admin).await.expect("again"));
    assert_eq!(store.get_user("carol").await.expect("get"), None);

    let created = audit_of(store, "user.create").await;
    assert_eq!(created.total, 4);
    let changes = audit_of(store, "user.update").await;
    assert_eq!(changes.total, 1);
    let change = &changes.items[0];
    assert_eq!(change.actor, "user:root");
    assert_eq!(change.target.as_deref(), Some("user:carol"));
    assert_eq!(change.details["password_changed"], json!(true));
    assert_eq!(change.details["role"], json!("viewer"));
    let deleted = audit_of(store, "user.delete").await;
    assert_eq!(deleted.total, 1);
    for action in ["user.create", "user.update", "user.delete"] {
        for record in audit_of(store, action).await.items {
            assert!(
                !record.details.to_string().contains("argon2"),
                "{action} audited a hash: {}",
                record.details
            );
        }
    }
}

/// API tokens are found by hash while neither revoked nor expired; revoking is audited and
/// idempotent.
pub async fn api_tokens_are_found_by_hash_until_revoked(store: &dyn Store) {
    organization(store, "org-a").await;
    let admin = user("root");
    let token = |n: u32, name: &str, expires_at: Option<DateTime<Utc>>| NewApiToken {
        name: name.into(),
        token_hash: token_hash(n),
        role: Role::Viewer,
        organization_ids: vec!["org-a".into()],
        expires_at,
    };
    let ci = store
        .create_api_token(&token(1, "ci", None), &admin)
        .await
        .expect("ci token");
    assert!(ci.token_id.starts_with("apt_"), "{}", ci.token_id);
    assert_eq!(ci.created_by, "user:root");
    assert_eq!(ci.organization_ids, vec!["org-a"]);
    assert_eq!(ci.revoked_at, None);
    let later = now() + secs(3600);
    let expiring = store
        .create_api_token(&token(2, "expiring", Some(later)), &admin)
        .await
        .expect("expiring token");
    assert_eq!(expiring.expires_at, Some(later));
    store
        .create_api_token(&token(3, "expired", Some(now() - secs(1))), &admin)
        .await
        .expect("expired token");
    let duplicate = store
        .create_api_token(&token(1, "same hash", None), &admin)
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    let bad_org = store
        .create_api_token(
            &NewApiToken {
                organization_ids: vec!["org-nope".into()],
                ..token(4, "bad", None)
            },
            &admin,
        )
        .await;
    assert!(
        matches!(bad_org, Err(StoreError::NotFound(_))),
        "{bad_org:?}"
    );

    assert_eq!(
        store
            .api_token_by_hash(&token_hash(1))
            .await
            .expect("lookup"),
        Some(ci.clone())
    );
    assert!(
        store
            .api_token_by_hash(&token_hash(2))
            .await
            .expect("lookup")
            .is_some()
    );
    assert_eq!(
        store
            .api_token_by_hash(&token_hash(3))
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        store
            .api_token_by_hash(&token_hash(9))
            .await
            .expect("lookup"),
        None
    );

    let listed = store.list_api_tokens(1, 10).await.expect("list");
    assert_eq!(listed.total, 3);
    let names: Vec<&str> = listed.items.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, vec!["expired", "expiring", "ci"], "newest first");

    let revoked = store
        .revoke_api_token(&ci.token_id, &admin)
        .await
        .expect("revoke")
        .expect("exists");
    let at = revoked.revoked_at.expect("revoked_at");
    assert_recent(Some(at), "revoked_at");
    assert_eq!(
        store
            .api_token_by_hash(&token_hash(1))
            .await
            .expect("lookup"),
        None
    );
    let again = store
        .revoke_api_token(&ci.token_id, &admin)
        .await
        .expect("revoke again")
        .expect("exists");
    assert_eq!(
        again.revoked_at,
        Some(at),
        "revoking twice keeps the first time"
    );
    assert_eq!(
        store
            .revoke_api_token("apt_missing", &admin)
            .await
            .expect("revoke"),
        None
    );
    assert_eq!(audit_of(store, "api_token.create").await.total, 3);
    let revocations = audit_of(store, "api_token.revoke").await;
    assert_eq!(revocations.total, 2);
    assert_eq!(
        revocations.items[0].target.as_deref(),
        Some(format!("api_token:{}", ci.token_id).as_str())
    );
}

/// Orchestrator credentials: created for existing organizations (and orchestrators), found by
/// hash while active, listed with filters and scope; a hello with a credential records it, is
/// refused once it is revoked, and an enrollment credential cannot claim an orchestrator that
/// has its own. Revoking returns the sessions to close; deregistering an orchestrator revokes
/// its own credentials.
pub async fn orchestrator_credentials_gate_hellos(store: &dyn Store) {
    organization(store, "org-a").await;
    organization(store, "org-b").await;
    let admin = user("root");
    let enroll_a = store
        .create_orchestrator_credential(
            &credential(1, CredentialKind::Enrollment, "org-a", None),
            &admin,
        )
        .await
        .expect("enrollment a");
    assert!(enroll_a.credential_id.starts_with("crd_"));
    assert_eq!(enroll_a.kind, CredentialKind::Enrollment);
    assert!(enroll_a.is_active(Utc::now()));
    let enroll_b = store
        .create_orchestrator_credential(
            &credential(2, CredentialKind::Enrollment, "org-b", None),
            &admin,
        )
        .await
        .expect("enrollment b");
    let missing_org = store
        .create_orchestrator_credential(
            &credential(3, CredentialKind::Enrollment, "org-nope", None),
            &admin,
        )
        .await;
    assert!(
        matches!(missing_org, Err(StoreError::NotFound(_))),
        "{missing_org:?}"
    );
    let mismatched = store
        .create_orchestrator_credential(
            &credential(3, CredentialKind::Enrollment, "org-a", Some("x")),
            &admin,
        )
        .await;
    assert!(
        matches!(mismatched, Err(StoreError::Invalid(_))),
        "{mismatched:?}"
    );

    // An enrollment hello registers a new orchestrator, records the credential, and audits
    // the registration.
    let mut first = hello("orch-1", Some("org-a"), "sess-1");
    first.credential_id = Some(enroll_a.credential_id.clone());
    store.register_hello(&first).await.expect("enrolled hello");
    let registered = audit_of(store, "orchestrator.register").await;
    assert_eq!(registered.total, 1);
    assert_eq!(registered.items[0].actor, "orchestrator:orch-1");
    assert_eq!(
        registered.items[0].organization_id.as_deref(),
        Some("org-a")
    );
    assert_eq!(
        registered.items[0].details["credential_id"],
        json!(enroll_a.credential_id)
    );
    // A repeated hello is not a new registration.
    store
        .register_hello(&HelloRegistration {
            session_id: "sess-1b".into(),
            ..first.clone()
        })
        .await
        .expect("second hello");
    assert_eq!(audit_of(store, "orchestrator.register").await.total, 1);

    // An orchestrator credential: the orchestrator must exist in that organization.
    let wrong_org = store
        .create_orchestrator_credential(
            &credential(4, CredentialKind::Orchestrator, "org-b", Some("orch-1")),
            &admin,
        )
        .await;
    assert!(
        matches!(wrong_org, Err(StoreError::NotFound(_))),
        "{wrong_org:?}"
    );
    let own = store
        .create_orchestrator_credential(
            &credential(4, CredentialKind::Orchestrator, "org-a", Some("orch-1")),
            &admin,
        )
        .await
        .expect("own credential");
    assert_eq!(own.orchestrator_id.as_deref(), Some("orch-1"));

    // Now the enrollment credential cannot claim orch-1 any more; its own credential can.
    let mut via_enrollment = hello("orch-1", Some("org-a"), "sess-2");
    via_enrollment.credential_id = Some(enroll_a.credential_id.clone());
    let refused = store.register_hello(&via_enrollment).await;
    assert!(
        matches!(refused, Err(StoreError::Unauthorized(_))),
        "{refused:?}"
    );
    let mut via_own = hello("orch-1", Some("org-a"), "sess-3");
    via_own.credential_id = Some(own.credential_id.clone());
    store.register_hello(&via_own).await.expect("own hello");
    // Another orchestrator through the enrollment credential, still fine.
    let mut second = hello("orch-2", Some("org-a"), "sess-4");
    second.credential_id = Some(enroll_a.credential_id.clone());
    store.register_hello(&second).await.expect("orch-2 hello");

    assert_eq!(
        store
            .orchestrator_credential_by_hash(&token_hash(4))
            .await
            .expect("lookup"),
        Some(own.clone())
    );
    assert_eq!(
        store
            .get_orchestrator_credential(&enroll_b.credential_id)
            .await
            .expect("get"),
        Some(enroll_b.clone())
    );

    let list = |q: CredentialQuery| async move {
        store
            .list_orchestrator_credentials(&CredentialQuery {
                page: 1,
                page_size: 10,
                ..q
            })
            .await
            .expect("list credentials")
            .items
            .into_iter()
            .map(|c| c.credential_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(CredentialQuery::default()).await,
        vec![
            own.credential_id.clone(),
            enroll_b.credential_id.clone(),
            enroll_a.credential_id.clone()
        ]
    );
    assert_eq!(
        list(CredentialQuery {
            kind: Some(CredentialKind::Enrollment),
            organization_id: Some("org-a".into()),
            ..CredentialQuery::default()
        })
        .await,
        vec![enroll_a.credential_id.clone()]
    );
    assert_eq!(
        list(CredentialQuery {
            orchestrator_id: Some("orch-1".into()),
            ..CredentialQuery::default()
        })
        .await,
        vec![own.credential_id.clone()]
    );
    assert_eq!(
        list(CredentialQuery {
            scope: Some(vec!["org-b".into()]),
            ..CredentialQuery::default()
        })
        .await,
        vec![enroll_b.credential_id.clone()]
    );

    // Revoking the enrollment credential returns orch-2's current session (orch-1 is on its
    // own credential now), and the credential stops working.
    let revocation = store
        .revoke_orchestrator_credential(&enroll_a.credential_id, &admin)
        .await
        .expect("revoke")
        .expect("exists");
    assert!(revocation.record.revoked_at.is_some());
    assert!(!revocation.record.is_active(Utc::now()));
    assert_eq!(
        revocation.sessions,
        vec![crate::CredentialSession {
            orchestrator_id: "orch-2".into(),
            organization_id: "org-a".into(),
            session_id: "sess-4".into(),
        }]
    );
    assert_eq!(
        store
            .orchestrator_credential_by_hash(&token_hash(1))
            .await
            .expect("lookup"),
        None
    );
    let mut late = hello("orch-3", Some("org-a"), "sess-5");
    late.credential_id = Some(enroll_a.credential_id.clone());
    let refused = store.register_hello(&late).await;
    assert!(
        matches!(refused, Err(StoreError::Unauthorized(_))),
        "{refused:?}"
    );
    assert!(
        store
            .get_orchestrator("orch-3")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        list(CredentialQuery::default())
            .await
            .iter()
            .all(|id| *id != enroll_a.credential_id),
        "revoked credentials are not listed by default"
    );
    assert_eq!(
        list(CredentialQuery {
            include_revoked: true,
            ..CredentialQuery::default()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        store
            .revoke_orchestrator_credential("crd_missing", &admin)
            .await
            .expect("revoke missing"),
        None
    );

    // Deregistering orch-1 revokes its own credential.
    store
        .deregister_orchestrator("orch-1", &admin)
        .await
        .expect("deregister")
        .expect("existed");
    assert_eq!(
        store
            .orchestrator_credential_by_hash(&token_hash(4))
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(audit_of(store, "credential.create").await.total, 3);
    let revoked = audit_of(store, "credential.revoke").await;
    // Deregistration's revocation is part of its own audit entry.
    assert_eq!(revoked.total, 1);
    assert_eq!(revoked.items[0].details["sessions_closed"], json!(1));
}

/// An organization scope restricts every listing to its organizations: orchestrators,
/// messages, organizations and the audit log (where entries without an organization are
/// hidden from scoped readers); single messages are read by id.
pub async fn scopes_restrict_every_listing(store: &dyn Store) {
    for (orch, org) in [
        ("a1", "org-a"),
        ("a2", "org-a"),
        ("b1", "org-b"),
        ("c1", "org-c"),
    ] {
        store
            .register_hello(&hello(orch, Some(org), &format!("s-{orch}")))
            .await
            .expect("hello");
    }
    let mut messages = Vec::new();
    for orch in ["a1", "b1", "c1"] {
        messages.push(
            store
                .create_message(&message(
                    orch,
                    "monitoring",
                    &format!("about {orch}"),
                    "api",
                ))
                .await
                .expect("message"),
        );
    }
    store
        .append_audit(&AuditEntry {
            actor: user("ops"),
            action: "auth.login".into(),
            target: None,
            organization_id: None,
            details: json!({}),
            success: true,
        })
        .await
        .expect("audit without organization");
    let scope = Some(vec!["org-a".to_owned(), "org-c".to_owned()]);

    let orchestrators = store
        .list_orchestrators(&OrchestratorQuery {
            page: 1,
            page_size: 10,
            scope: scope.clone(),
            ..OrchestratorQuery::default()
        })
        .await
        .expect("scoped orchestrators");
    assert_eq!(orchestrators.total, 3);
    let ids: Vec<&str> = orchestrators
        .items
        .iter()
        .map(|o| o.orchestrator_id.as_str())
        .collect();
    assert_eq!(ids, vec!["a1", "a2", "c1"]);
    let outside = store
        .list_orchestrators(&OrchestratorQuery {
            page: 1,
            page_size: 10,
            organization_id: Some("org-b".into()),
            scope: scope.clone(),
            ..OrchestratorQuery::default()
        })
        .await
        .expect("filter outside the scope");
    assert_eq!(outside.total, 0);
    let none = store
        .list_orchestrators(&OrchestratorQuery {
            page: 1,
            page_size: 10,
            scope: Some(vec![]),
            ..OrchestratorQuery::default()
        })
        .await
        .expect("empty scope");
    assert_eq!(none.total, 0);

    let listed = store
        .list_messages(&MessageQuery {
            limit: 10,
            scope: scope.clone(),
            ..MessageQuery::default()
        })
        .await
        .expect("scoped messages");
    let mut orchs: Vec<&str> = listed.iter().map(|m| m.orchestrator_id.as_str()).collect();
    orchs.sort_unstable();
    assert_eq!(orchs, vec!["a1", "c1"]);

    let one = store
        .get_message(&messages[1].id)
        .await
        .expect("get message")
        .expect("exists");
    assert_eq!(one.id, messages[1].id);
    assert_eq!(one.organization_id.as_deref(), Some("org-b"));
    assert_eq!(one.content, "about b1");
    assert!(
        store
            .get_message("msg_missing")
            .await
            .expect("get")
            .is_none()
    );

    let organizations = store
        .list_organizations(1, 10, scope.as_deref())
        .await
        .expect("scoped organizations");
    assert_eq!(organizations.total, 2);
    let orgs: Vec<&str> = organizations
        .items
        .iter()
        .map(|o| o.organization_id.as_str())
        .collect();
    assert_eq!(orgs, vec!["org-a", "org-c"]);
    assert_eq!(organizations.items[0].orchestrator_count, 2);

    let audit = store
        .list_audit(&AuditQuery {
            page: 1,
            page_size: 50,
            scope: scope.clone(),
            ..AuditQuery::default()
        })
        .await
        .expect("scoped audit");
    assert!(audit.total > 0);
    assert!(
        audit
            .items
            .iter()
            .all(|a| matches!(a.organization_id.as_deref(), Some("org-a" | "org-c"))),
        "{:?}",
        audit.items
    );
    let all = store
        .list_audit(&AuditQuery {
            page: 1,
            page_size: 50,
            ..AuditQuery::default()
        })
        .await
        .expect("audit");
    assert!(all.items.iter().any(|a| a.organization_id.is_none()));
    assert!(all.total > audit.total);

    // Time and outcome filters.
    let after = store
        .list_audit(&AuditQuery {
            page: 1,
            page_size: 50,
            from: Some(now() + secs(60)),
            ..AuditQuery::default()
        })
        .await
        .expect("future");
    assert_eq!(after.total, 0);
    let before = store
        .list_audit(&AuditQuery {
            page: 1,
            page_size: 50,
            to: Some(now() + secs(60)),
            success: Some(true),
            ..AuditQuery::default()
        })
        .await
        .expect("past");
    assert_eq!(before.total, all.total);
    let failures = store
        .list_audit(&AuditQuery {
            page: 1,
            page_size: 50,
            success: Some(false),
            ..AuditQuery::default()
        })
        .await
        .expect("failures");
    assert_eq!(failures.total, 0);
}

/// Hellos registered together get, each, the outcome they would get alone and in order:
/// new and known orchestrators, an organization conflict, a revoked credential, an
/// enrollment token claiming an orchestrator that has its own, the same orchestrator twice
/// (the later hello counts), an organization first named here, pending messages.
#[allow(clippy::too_many_lines)]
pub async fn hellos_registered_together_are_decided_one_by_one(store: &dyn Store) {
    organization(store, "org-a").await;
    organization(store, "org-b").await;
    let admin = user("root");
    let enroll = store
        .create_orchestrator_credential(
            &credential(1, CredentialKind::Enrollment, "org-a", None),
            &admin,
        )
        .await
        .expect("enrollment");
    let revoked = store
        .create_orchestrator_credential(
            &credential(2, CredentialKind::Enrollment, "org-a", None),
            &admin,
        )
        .await
        .expect("second enrollment");
    store
        .revoke_orchestrator_credential(&revoked.credential_id, &admin)
        .await
        .expect("revoke");

    let mut known = hello("known", Some("org-a"), "k-1");
    known.name = Some("Known".into());
    known.features = Some(json!({ "chat": true }));
    store.register_hello(&known).await.expect("known");
    store
        .register_hello(&hello("other-org", Some("org-a"), "x-1"))
        .await
        .expect("other-org");
    store
        .register_hello(&hello("owned", Some("org-a"), "w-1"))
        .await
        .expect("owned");
    store
        .create_orchestrator_credential(
            &credential(3, CredentialKind::Orchestrator, "org-a", Some("owned")),
            &admin,
        )
        .await
        .expect("own credential");
    let message = store
        .create_message(&message("known", "recommendation", "waiting", "api"))
        .await
        .expect("message");
    store
        .update_message_status(&message.id, MessageStatus::Accepted, &admin)
        .await
        .expect("accept");
    let audited_before = audit_of(store, "orchestrator.register").await.total;

    let with = |mut h: HelloRegistration, credential_id: &str| {
        h.credential_id = Some(credential_id.to_owned());
        h
    };
    let batch = vec![
        with(hello("fresh", Some("org-a"), "f-1"), &enroll.credential_id),
        hello("known", None, "k-2"),
        hello("other-org", Some("org-b"), "x-2"),
        with(hello("late", Some("org-a"), "l-1"), &revoked.credential_id),
        with(hello("owned", Some("org-a"), "w-2"), &enroll.credential_id),
        with(hello("fresh", Some("org-a"), "f-2"), &enroll.credential_id),
        hello("elsewhere", Some("org-new"), "e-1"),
    ];
    let outcomes = store.register_hellos(&batch).await;
    assert_eq!(outcomes.len(), batch.len());

    let fresh = outcomes[0].as_ref().expect("fresh registered");
    assert_eq!(fresh.previous_status, None);
    assert_eq!(fresh.status, Status::Active);
    assert_eq!(fresh.organization_id, "org-a");

    let known = outcomes[1].as_ref().expect("known registered");
    assert_eq!(known.previous_status, Some(Status::Active));
    assert_eq!(known.organization_id, "org-a");
    assert_eq!(known.provisioning.name.as_deref(), Some("Known"));
    assert_eq!(known.provisioning.features, json!({ "chat": true }));
    let pending: Vec<&str> = known
        .pending_messages
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(pending, vec![message.id.as_str()]);
    assert!(
        fresh.pending_messages.is_empty(),
        "pending messages of another orchestrator"
    );

    assert!(
        matches!(outcomes[2], Err(StoreError::Conflict(_))),
        "{:?}",
        outcomes[2]
    );
    assert!(
        matches!(outcomes[3], Err(StoreError::Unauthorized(_))),
        "{:?}",
        outcomes[3]
    );
    assert!(
        matches!(outcomes[4], Err(StoreError::Unauthorized(_))),
        "{:?}",
        outcomes[4]
    );
    let again = outcomes[5].as_ref().expect("fresh again");
    assert_eq!(again.previous_status, Some(Status::Active));
    let elsewhere = outcomes[6].as_ref().expect("elsewhere registered");
    assert_eq!(elsewhere.organization_id, "org-new");

    // What the database holds afterwards.
    let record = |id: &'static str| async move {
        store
            .get_orchestrator(id)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{id} exists"))
    };
    assert_eq!(record("fresh").await.session_id.as_deref(), Some("f-2"));
    assert_eq!(record("known").await.session_id.as_deref(), Some("k-2"));
    assert_eq!(record("other-org").await.organization_id, "org-a");
    assert_eq!(record("other-org").await.session_id.as_deref(), Some("x-1"));
    assert_eq!(record("owned").await.session_id.as_deref(), Some("w-1"));
    assert!(store.get_orchestrator("late").await.expect("get").is_none());
    let org = store
        .get_organization("org-new")
        .await
        .expect("get organization")
        .expect("org-new created by the batch");
    assert_eq!(org.name, "org-new");
    for (id, session) in [("fresh", "f-1"), ("fresh", "f-2"), ("known", "k-2")] {
        let connections = store.list_connections(id, 10).await.expect("connections");
        assert!(
            connections.iter().any(|c| c.connection_id == session),
            "{id}: no connection {session}: {connections:?}"
        );
    }
    assert_eq!(
        store
            .list_connections("other-org", 10)
            .await
            .expect("connections")
            .len(),
        1,
        "a refused hello recorded no connection"
    );
    // Two new orchestrators (fresh, elsewhere): two registrations audited.
    assert_eq!(
        audit_of(store, "orchestrator.register").await.total,
        audited_before + 2
    );
}

/// Batches racing over the same orchestrators (new ones and known ones, in different
/// orders): every hello is registered, none is refused, and each orchestrator ends with one
/// of its sessions.
pub async fn racing_hello_batches_all_register(store: &dyn Store) {
    let ids: Vec<String> = (0..60).map(|i| format!("race-{i:02}")).collect();
    for id in ids.iter().step_by(2) {
        store
            .register_hello(&hello(id, Some("org-r"), &format!("{id}-0")))
            .await
            .expect("known before the race");
    }
    let batches: Vec<Vec<HelloRegistration>> = (0..6)
        .map(|b| {
            let mut order: Vec<&String> = ids.iter().collect();
            order.rotate_left(b * 7);
            if b % 2 == 1 {
                order.reverse();
            }
            order
                .into_iter()
                .map(|id| hello(id, Some("org-r"), &format!("{id}-{}", b + 1)))
                .collect()
        })
        .collect();
    let outcomes =
        futures::future::join_all(batches.iter().map(|b| store.register_hellos(b))).await;
    for (b, batch) in outcomes.iter().enumerate() {
        for (i, outcome) in batch.iter().enumerate() {
            assert!(outcome.is_ok(), "batch {b} hello {i}: {outcome:?}");
        }
    }
    for id in &ids {
        let record = store
            .get_orchestrator(id)
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{id} registered"));
        assert_eq!(record.organization_id, "org-r");
        let session = record.session_id.unwrap_or_default();
        assert!(
            (1..=6).any(|b| session == format!("{id}-{b}")),
            "{id} ended with session {session}"
        );
        assert_eq!(record.status, Status::Active);
    }
}
