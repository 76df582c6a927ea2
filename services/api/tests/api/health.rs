//! Health: real pings of PostgreSQL and NATS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use moolai_store::*;
use reqwest::StatusCode;
use serde_json::{Map, Value};

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn health_reports_up_when_database_and_nats_answer() {
    let app = spawn_app().await;
    for path in ["/health", "/api/v1/controller/health"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "up");
        assert_eq!(body["database"], "up");
        assert_eq!(body["nats"], "up");
        let at: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(body["timestamp"].clone()).unwrap();
        assert!((chrono::Utc::now() - at).num_seconds().abs() < 5);
    }
    app.stop().await;
}

#[tokio::test]
async fn health_reports_the_database_down_with_503() {
    let ping_fails = Arc::new(AtomicBool::new(false));
    let flag = ping_fails.clone();
    let app = spawn_app_with(
        |_| {},
        move |inner| {
            Arc::new(FlakyStore {
                inner,
                ping_fails: flag,
            })
        },
    )
    .await;
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    ping_fails.store(true, Ordering::SeqCst);
    for path in ["/health", "/api/v1/controller/health"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "degraded");
        assert_eq!(body["database"], "down");
        assert_eq!(body["nats"], "up");
    }
    ping_fails.store(false, Ordering::SeqCst);
    let response = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.stop().await;
}

/// Delegates everything to the real store; `ping` fails while the flag is set.
struct FlakyStore {
    inner: Arc<dyn Store>,
    ping_fails: Arc<AtomicBool>,
}

#[async_trait]
impl Store for FlakyStore {
    async fn ping(&self) -> StoreResult<()> {
        if self.ping_fails.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected ping failure".into()));
        }
        self.inner.ping().await
    }
    async fn register_hello(&self, h: &HelloRegistration) -> StoreResult<Registered> {
        self.inner.register_hello(h).await
    }
    async fn flush_heartbeats(&self, b: &[HeartbeatWrite]) -> StoreResult<Vec<StatusChange>> {
        self.inner.flush_heartbeats(b).await
    }
    async fn record_usage(&self, r: &[UsageWrite]) -> StoreResult<()> {
        self.inner.record_usage(r).await
    }
    async fn record_disconnect(
        &self,
        o: &str,
        s: &str,
        r: &str,
    ) -> StoreResult<Option<StatusChange>> {
        self.inner.record_disconnect(o, s, r).await
    }
    async fn sweep_expired(&self) -> StoreResult<SweepOutcome> {
        self.inner.sweep_expired().await
    }
    async fn update_metadata(&self, o: &str, m: &Map<String, Value>) -> StoreResult<bool> {
        self.inner.update_metadata(o, m).await
    }
    async fn save_config_snapshot(&self, o: &str, s: &Value) -> StoreResult<bool> {
        self.inner.save_config_snapshot(o, s).await
    }
    async fn provisioning(&self, o: &str) -> StoreResult<Option<moolai_protocol::Provisioning>> {
        self.inner.provisioning(o).await
    }
    async fn supervision(&self, ids: &[String]) -> StoreResult<Vec<moolai_store::Supervision>> {
        self.inner.supervision(ids).await
    }
    async fn mark_delivered(&self, m: &str, s: &str) -> StoreResult<()> {
        self.inner.mark_delivered(m, s).await
    }
    async fn pending_deliveries(
        &self,
        o: &str,
    ) -> StoreResult<Vec<moolai_protocol::DeliveredMessage>> {
        self.inner.pending_deliveries(o).await
    }
    async fn orchestrator_order(
        &self,
        q: &OrchestratorQuery,
        limit: usize,
    ) -> StoreResult<Option<Vec<String>>> {
        self.inner.orchestrator_order(q, limit).await
    }
    async fn orchestrators_in_order(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
    ) -> StoreResult<Vec<OrchestratorRecord>> {
        self.inner.orchestrators_in_order(q, ids).await
    }
    async fn list_orchestrators(
        &self,
        q: &OrchestratorQuery,
    ) -> StoreResult<Page<OrchestratorRecord>> {
        self.inner.list_orchestrators(q).await
    }
    async fn get_orchestrator(&self, o: &str) -> StoreResult<Option<OrchestratorRecord>> {
        self.inner.get_orchestrator(o).await
    }
    async fn register_orchestrator(
        &self,
        n: &NewOrchestrator,
        a: &Actor,
    ) -> StoreResult<OrchestratorRecord> {
        self.inner.register_orchestrator(n, a).await
    }
    async fn deregister_orchestrator(
        &self,
        o: &str,
        a: &Actor,
    ) -> StoreResult<Option<OrchestratorRecord>> {
        self.inner.deregister_orchestrator(o, a).await
    }
    async fn set_independence(
        &self,
        o: &str,
        v: bool,
        a: &Actor,
    ) -> StoreResult<Option<IndependenceChange>> {
        self.inner.set_independence(o, v, a).await
    }
    async fn update_session_config(
        &self,
        o: &str,
        c: &Value,
        a: &Actor,
    ) -> StoreResult<Option<i64>> {
        self.inner.update_session_config(o, c, a).await
    }
    async fn list_organizations(
        &self,
        p: u32,
        s: u32,
        scope: Option<&[String]>,
    ) -> StoreResult<Page<OrganizationRecord>> {
        self.inner.list_organizations(p, s, scope).await
    }
    async fn get_organization(&self, o: &str) -> StoreResult<Option<OrganizationRecord>> {
        self.inner.get_organization(o).await
    }
    async fn create_organization(
        &self,
        n: &NewOrganization,
        a: &Actor,
    ) -> StoreResult<OrganizationRecord> {
        self.inner.create_organization(n, a).await
    }
    async fn overview(&self, scope: Option<&[String]>) -> StoreResult<Overview> {
        self.inner.overview(scope).await
    }
    async fn costs(&self, q: &CostQuery) -> StoreResult<CostReport> {
        self.inner.costs(q).await
    }
    async fn create_message(&self, n: &NewMessage) -> StoreResult<MessageRecord> {
        self.inner.create_message(n).await
    }
    async fn list_messages(&self, q: &MessageQuery) -> StoreResult<Vec<MessageRecord>> {
        self.inner.list_messages(q).await
    }
    async fn get_message(&self, m: &str) -> StoreResult<Option<MessageRecord>> {
        self.inner.get_message(m).await
    }
    async fn update_message_status(
        &self,
        m: &str,
        s: MessageStatus,
        a: &Actor,
    ) -> StoreResult<MessageRecord> {
        self.inner.update_message_status(m, s, a).await
    }
    async fn append_audit(&self, e: &AuditEntry) -> StoreResult<()> {
        self.inner.append_audit(e).await
    }
    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Page<AuditRecord>> {
        self.inner.list_audit(q).await
    }
    async fn create_user(&self, n: &NewUser, a: &Actor) -> StoreResult<UserRecord> {
        self.inner.create_user(n, a).await
    }
    async fn get_user(&self, u: &str) -> StoreResult<Option<UserRecord>> {
        self.inner.get_user(u).await
    }
    async fn user_login(&self, u: &str) -> StoreResult<Option<UserLogin>> {
        self.inner.user_login(u).await
    }
    async fn list_users(&self, p: u32, s: u32) -> StoreResult<Page<UserRecord>> {
        self.inner.list_users(p, s).await
    }
    async fn update_user(
        &self,
        u: &str,
        c: &UserUpdate,
        a: &Actor,
    ) -> StoreResult<Option<UserRecord>> {
        self.inner.update_user(u, c, a).await
    }
    async fn delete_user(&self, u: &str, a: &Actor) -> StoreResult<bool> {
        self.inner.delete_user(u, a).await
    }
    async fn create_session(&self, s: &NewSession) -> StoreResult<()> {
        self.inner.create_session(s).await
    }
    async fn session_by_token_hash(&self, h: &str) -> StoreResult<Option<SessionRecord>> {
        self.inner.session_by_token_hash(h).await
    }
    async fn delete_session(&self, h: &str) -> StoreResult<()> {
        self.inner.delete_session(h).await
    }
    async fn create_api_token(&self, n: &NewApiToken, a: &Actor) -> StoreResult<ApiTokenRecord> {
        self.inner.create_api_token(n, a).await
    }
    async fn list_api_tokens(&self, p: u32, s: u32) -> StoreResult<Page<ApiTokenRecord>> {
        self.inner.list_api_tokens(p, s).await
    }
    async fn api_token_by_hash(&self, h: &str) -> StoreResult<Option<ApiTokenRecord>> {
        self.inner.api_token_by_hash(h).await
    }
    async fn revoke_api_token(&self, t: &str, a: &Actor) -> StoreResult<Option<ApiTokenRecord>> {
        self.inner.revoke_api_token(t, a).await
    }
    async fn create_orchestrator_credential(
        &self,
        n: &NewOrchestratorCredential,
        a: &Actor,
    ) -> StoreResult<OrchestratorCredentialRecord> {
        self.inner.create_orchestrator_credential(n, a).await
    }
    async fn list_orchestrator_credentials(
        &self,
        q: &CredentialQuery,
    ) -> StoreResult<Page<OrchestratorCredentialRecord>> {
        self.inner.list_orchestrator_credentials(q).await
    }
    async fn get_orchestrator_credential(
        &self,
        c: &str,
    ) -> StoreResult<Option<OrchestratorCredentialRecord>> {
        self.inner.get_orchestrator_credential(c).await
    }
    async fn orchestrator_credential_by_hash(
        &self,
        h: &str,
    ) -> StoreResult<Option<OrchestratorCredentialRecord>> {
        self.inner.orchestrator_credential_by_hash(h).await
    }
    async fn revoke_orchestrator_credential(
        &self,
        c: &str,
        a: &Actor,
    ) -> StoreResult<Option<CredentialRevocation>> {
        self.inner.revoke_orchestrator_credential(c, a).await
    }
    async fn list_connections(&self, o: &str, l: u32) -> StoreResult<Vec<ConnectionRecord>> {
        self.inner.list_connections(o, l).await
    }
}

#[tokio::test]
async fn request_metrics_are_labelled_by_matched_route() {
    let metrics = moolai_telemetry::metrics();
    let app = spawn_app().await;
    let response = app
        .get("/api/v1/controller/orchestrators/orch-unlabelled-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("api_http_requests_total{")
                && l.contains("route=\"/api/v1/controller/orchestrators/{orchestrator_id}\"")
                && l.contains("status=\"404\"")
        })
        .unwrap_or_else(|| panic!("no labelled counter in:\n{text}"));
    assert!(line.contains("method=\"GET\""), "{line}");
    assert!(!text.contains("orch-unlabelled-42"));
    assert!(text.contains("api_http_request_duration_seconds"));
    app.stop().await;
}
