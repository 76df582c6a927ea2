//! `spawn_app()` and what the tests share: seeding through the store, NATS subscriptions
//! with deadlines, an SSE reader, and the error-shape assertion.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use moolai_api::ApiSettings;
use moolai_bus::{Bus, Deliveries, Kind, Subjects};
use moolai_config::LivenessSettings;
use moolai_protocol::Dialect;
use moolai_store::{HeartbeatWrite, HelloRegistration, Registered, Store, UsageWrite};
use moolai_store_postgres::PgStore;
use moolai_store_postgres::testing::TestDatabase;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const HEARTBEAT_TTL: Duration = Duration::from_secs(120);
/// How long a test waits for something that should happen within milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(5);

pub fn nats_url() -> String {
    std::env::var("MOOLAI_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A running api with its own database and subject prefix.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The same database the app uses, for seeding and checking.
    pub store: Arc<PgStore>,
    /// A separate NATS connection with the app's prefix, to watch and publish.
    pub bus: Bus,
    pub admin_username: String,
    pub admin_password: String,
    pub dev_token: String,
    /// A session token from a real login (or the dev token when login is disabled).
    pub token: String,
    db: TestDatabase,
    shutdown: CancellationToken,
    server: JoinHandle<anyhow::Result<()>>,
}

/// Test-only secrets, fresh for every app: nothing is hard-coded.
pub fn random_secret(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, |s| s).await
}

/// Starts the app with adjusted settings and, optionally, a wrapper around its store.
pub async fn spawn_app_with(
    configure: impl FnOnce(&mut ApiSettings),
    wrap_store: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
) -> TestApp {
    let db = TestDatabase::create().await;
    let store = Arc::new(db.store(HEARTBEAT_TTL).await);
    let subjects = Subjects::new(&format!("test{}", uuid::Uuid::new_v4().simple())).unwrap();
    let app_bus = Bus::connect(&nats_url(), subjects.clone(), "moolai-api-under-test")
        .await
        .unwrap();
    let bus = Bus::connect(&nats_url(), subjects, "moolai-api-test")
        .await
        .unwrap();

    let admin_username = random_secret("ops");
    let admin_password = random_secret("pw");
    let dev_token = random_secret("dev");
    let mut settings = ApiSettings {
        controller_host: "127.0.0.1".into(),
        controller_port: 0,
        dev_bearer_token: Some(SecretString::from(dev_token.clone())),
        moolai_admin_username: Some(admin_username.clone()),
        moolai_admin_password: Some(SecretString::from(admin_password.clone())),
        ..ApiSettings::default()
    };
    configure(&mut settings);
    let login_enabled = settings.admin_credential().is_some();
    let liveness = LivenessSettings {
        heartbeat_ttl_sec: HEARTBEAT_TTL.as_secs(),
        heartbeat_interval_sec: 30,
    };

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let app_store = wrap_store(store.clone() as Arc<dyn Store>);
    let server = tokio::spawn(moolai_api::launch_with_listener(
        settings,
        liveness,
        app_store,
        app_bus,
        listener,
        shutdown.clone(),
    ));

    let mut app = TestApp {
        base,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        store,
        bus,
        admin_username,
        admin_password,
        dev_token: dev_token.clone(),
        token: dev_token,
        db,
        shutdown,
        server,
    };
    if login_enabled {
        let response = app.login(&app.admin_username, &app.admin_password).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        app.token = body["user"]["token"].as_str().unwrap().to_owned();
    }
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the session token.
    pub fn authed(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.authed(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.authed(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.authed(Method::PUT, path)
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/api/v1/internal/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// A request with another bearer token.
    pub fn with_token(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    /// Creates an organization through the API (as the superadmin).
    pub async fn organization(&self, organization_id: &str) {
        let response = self
            .post("/api/v1/controller/organizations")
            .json(&serde_json::json!({
                "organization_id": organization_id,
                "name": format!("{organization_id} name"),
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "create {organization_id}"
        );
    }

    /// Creates a user through the API (as the superadmin), logs them in and returns their
    /// session token.
    pub async fn user_token(&self, username: &str, role: &str, organizations: &[&str]) -> String {
        let password = random_secret("pw");
        let response = self
            .post("/api/v1/internal/users")
            .json(&serde_json::json!({
                "username": username,
                "password": password,
                "role": role,
                "organization_ids": organizations,
            }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            status,
            StatusCode::CREATED,
            "create user {username}: {body}"
        );
        let response = self.login(username, &password).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["user"]["token"].as_str().unwrap().to_owned()
    }

    /// GET with the token, expecting 200, returning the JSON body.
    pub async fn get_ok(&self, path: &str) -> Value {
        let response = self.get(path).send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    /// A hello from an orchestrator, as the state service would register it.
    pub async fn hello(&self, organization_id: &str, orchestrator_id: &str) -> Registered {
        self.store
            .register_hello(&HelloRegistration {
                orchestrator_id: orchestrator_id.to_owned(),
                organization_id: Some(organization_id.to_owned()),
                default_organization_id: "default".to_owned(),
                name: Some(format!("{orchestrator_id} name")),
                location: Some("eu-west".to_owned()),
                features: Some(serde_json::json!({ "cache": true })),
                metadata: serde_json::Map::from_iter([(
                    "version".to_owned(),
                    Value::from("1.4.2"),
                )]),
                session_id: uuid::Uuid::new_v4().to_string(),
                edge_id: "edge-test".to_owned(),
                remote_addr: Some("192.0.2.10".to_owned()),
                dialect: Dialect::Deployed,
                credential_id: None,
            })
            .await
            .unwrap()
    }

    /// One flush of heartbeats received at `at`, as the state service batches them.
    pub async fn heartbeats(&self, orchestrator_ids: &[&str], at: DateTime<Utc>) {
        let beats: Vec<HeartbeatWrite> = orchestrator_ids
            .iter()
            .map(|id| HeartbeatWrite {
                orchestrator_id: (*id).to_owned(),
                received_at: at,
            })
            .collect();
        self.store.flush_heartbeats(&beats).await.unwrap();
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn usage(
        &self,
        organization_id: &str,
        orchestrator_id: &str,
        model: Option<&str>,
        requests: i64,
        tokens: (i64, i64),
        cost: f64,
        at: DateTime<Utc>,
    ) {
        self.store
            .record_usage(&[UsageWrite {
                orchestrator_id: orchestrator_id.to_owned(),
                organization_id: organization_id.to_owned(),
                model: model.map(str::to_owned),
                requests,
                input_tokens: tokens.0,
                output_tokens: tokens.1,
                cost,
                reported_at: at,
            }])
            .await
            .unwrap();
    }

    /// Subscribes on the app's prefix and waits until the broker has the subscription.
    pub async fn subscribe(
        &self,
        kind: Kind,
        organization_id: &str,
        orchestrator_id: &str,
    ) -> Deliveries {
        let subject = self
            .bus
            .subjects()
            .orchestrator(kind, organization_id, orchestrator_id);
        let deliveries = self.bus.subscribe(subject).await.unwrap();
        self.bus.flush().await.unwrap();
        deliveries
    }

    /// Stops the app (draining) and drops its database.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(30), self.server)
            .await
            .expect("the app did not stop within 30 s")
            .expect("the app task panicked");
        assert!(result.is_ok(), "the app failed: {result:?}");
        drop(self.store);
        self.db.drop_database().await;
    }
}

/// The next message of a subscription, decoded, or a panic at the deadline.
pub async fn next_json<T: DeserializeOwned>(deliveries: &mut Deliveries) -> T {
    let delivery = tokio::time::timeout(DEADLINE, deliveries.next())
        .await
        .expect("no message on the subscription before the deadline")
        .expect("subscription ended");
    delivery.json().unwrap()
}

/// Asserts the error shape and status; returns the message.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> String {
    let actual = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}, body {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["success"], Value::Bool(false), "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(!message.is_empty());
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    message
}

/// Reads Server-Sent Events from a response.
pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

/// One event: its name and data (comments are skipped).
#[derive(Debug)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl SseReader {
    pub fn new(response: Response) -> Self {
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event with a name, or `None` at the deadline.
    pub async fn next_event(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim_start().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_owned());
                    }
                }
                if !event.is_empty() || !data.is_empty() {
                    return Some(SseEvent {
                        event,
                        data: data.join("\n"),
                    });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk.ok()?));
        }
    }
}
