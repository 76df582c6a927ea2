//! A store for tests that delegates to the real one, with a switch to fail pings and counts
//! of the orchestrator records and versions read by id.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use moolai_store::*;
use serde_json::{Map, Value};

/// Delegates everything to the real store; `ping` fails while `ping_fails` is set, and
/// `records_read` counts the orchestrators read by id (`orchestrators_in_order`),
/// `version_reads` the pages whose versions were read (`orchestrator_versions_in_order`),
/// `facts_reads` the reads of the whole fleet's facts (`orchestrator_facts`).
pub struct WrappedStore {
    pub inner: Arc<dyn Store>,
    pub ping_fails: Arc<AtomicBool>,
    pub records_read: Arc<AtomicUsize>,
    pub version_reads: Arc<AtomicUsize>,
    pub facts_reads: Arc<AtomicUsize>,
}

impl WrappedStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            ping_fails: Arc::default(),
            records_read: Arc::default(),
            version_reads: Arc::default(),
            facts_reads: Arc::default(),
        }
    }
}

#[async_trait]
impl Store for WrappedStore {
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
        self.records_read.fetch_add(ids.len(), Ordering::SeqCst);
        self.inner.orchestrators_in_order(q, ids).await
    }
    async fn orchestrator_versions_in_order(
        &self,
        q: &OrchestratorQuery,
        ids: &[String],
    ) -> StoreResult<Option<Vec<OrchestratorVersion>>> {
        self.version_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.orchestrator_versions_in_order(q, ids).await
    }
    async fn orchestrator_facts(&self) -> StoreResult<Option<FleetFacts>> {
        self.facts_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.orchestrator_facts().await
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
