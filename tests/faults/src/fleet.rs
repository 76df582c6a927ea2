//! The simulated fleet (the reference client library), what it saw, and the operator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moolai_client::{Backoff, Client, ClientConfig, ClientEvent, ClientHandle, Dialect, Observer};
use serde_json::{Value, json};

/// Everything the orchestrators saw that an invariant needs.
#[derive(Default)]
pub struct Seen {
    /// Acknowledged hellos: (orchestrator, session id). The controller acknowledges a hello
    /// only after committing it, so every one of these must be in the database.
    pub acked: Vec<(String, String)>,
    /// Sessions started per orchestrator.
    pub sessions: HashMap<String, u32>,
    /// Independence switches received, and sessions that started independent:
    /// (orchestrator, on, when).
    pub independence: Vec<(String, bool, Instant)>,
    /// Sessions that ended, by how.
    pub disconnects: HashMap<String, u32>,
}

/// One observer shared by every client of the fleet.
#[derive(Default)]
pub struct Recorder {
    seen: Mutex<Seen>,
}

impl Recorder {
    pub fn with<R>(&self, f: impl FnOnce(&mut Seen) -> R) -> R {
        f(&mut self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Observer for Recorder {
    fn on_event(&self, orchestrator_id: &str, event: &ClientEvent) {
        self.with(|seen| match event {
            ClientEvent::Connected {
                session_id,
                provisioning,
                ..
            } => {
                // A session that starts independent learns it from provisioning (the client
                // reports no separate switch then).
                if provisioning.is_independent {
                    seen.independence
                        .push((orchestrator_id.to_owned(), true, Instant::now()));
                }
                if let Some(session) = session_id {
                    seen.acked
                        .push((orchestrator_id.to_owned(), session.clone()));
                }
                *seen.sessions.entry(orchestrator_id.to_owned()).or_default() += 1;
            }
            ClientEvent::Independence(on) => {
                seen.independence
                    .push((orchestrator_id.to_owned(), *on, Instant::now()));
            }
            ClientEvent::Disconnected { kind, .. } => {
                *seen.disconnects.entry(kind.to_string()).or_default() += 1;
            }
            _ => {}
        });
    }
}

/// How the fleet's clients are configured.
#[derive(Clone)]
pub struct FleetOptions {
    pub count: usize,
    pub id_prefix: String,
    pub organization_id: String,
    pub token: Option<String>,
    /// `Some` pins the heartbeat period (heavier load than the controller asks for).
    pub heartbeat_interval: Option<Duration>,
    /// Keep heartbeating while independent, so an invariant can prove the controller ignores
    /// those heartbeats.
    pub heartbeat_while_independent: bool,
}

pub struct Fleet {
    pub clients: Vec<ClientHandle>,
    pub recorder: Arc<Recorder>,
    pub ids: Vec<String>,
}

/// Configuration of one fleet client: quick reconnects (sessions in these scenarios are short,
/// so "healthy" is 5 s), alternating dialects.
#[must_use]
pub fn client_config(
    url: &str,
    id: &str,
    n: usize,
    options: &FleetOptions,
    recorder: Arc<Recorder>,
) -> ClientConfig {
    let dialect = if n.is_multiple_of(2) {
        Dialect::Hld
    } else {
        Dialect::Deployed
    };
    let mut c = ClientConfig::new(url, id, dialect);
    c.organization_id = Some(options.organization_id.clone());
    c.auth_token = options.token.clone().map(Into::into);
    if let Some(every) = options.heartbeat_interval {
        c.heartbeat_interval = every;
        c.pin_heartbeat_interval = true;
    }
    c.spread_heartbeats = true;
    c.stop_heartbeats_when_independent = !options.heartbeat_while_independent;
    c.backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(5),
        multiplier: 2.0,
    };
    c.healthy_session_reset = Duration::from_secs(5);
    c.handshake_timeout = Duration::from_secs(15);
    c.server_silence_timeout = Duration::from_secs(30);
    c.event_capacity = 0;
    c.observer = Some(recorder);
    c
}

impl Fleet {
    /// Spawns every client (they connect in the background).
    ///
    /// # Errors
    /// When a configuration is invalid.
    pub fn start(url: &str, options: &FleetOptions) -> anyhow::Result<Self> {
        let recorder = Arc::new(Recorder::default());
        let mut clients = Vec::with_capacity(options.count);
        let mut ids = Vec::with_capacity(options.count);
        for n in 0..options.count {
            let id = format!("{}{n:04}", options.id_prefix);
            let config = client_config(url, &id, n, options, recorder.clone());
            clients.push(Client::spawn(config)?);
            ids.push(id);
        }
        Ok(Self {
            clients,
            recorder,
            ids,
        })
    }

    /// How many clients have a session up right now.
    #[must_use]
    pub fn connected(&self) -> usize {
        self.clients.iter().filter(|c| c.state().connected).count()
    }

    /// Clients that stopped for good (replaced, refused…): none should in these scenarios.
    #[must_use]
    pub fn stopped(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter(|c| c.is_finished())
            .map(|c| format!("{}: {:?}", c.orchestrator_id(), c.state().stopped))
            .collect()
    }

    /// Waits until every client has a session up.
    ///
    /// # Errors
    /// When some are still down at the deadline.
    pub async fn wait_connected(&self, within: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let up = self.connected();
            if up == self.clients.len() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > within {
                anyhow::bail!(
                    "only {up} of {} orchestrators connected after {within:?}; stopped: {:?}",
                    self.clients.len(),
                    self.stopped()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// When orchestrator `id` was last told it is independent (`true`) or supervised again.
    #[must_use]
    pub fn told_independent(&self, id: &str) -> Option<(bool, Instant)> {
        self.recorder.with(|s| {
            s.independence
                .iter()
                .rev()
                .find(|(o, _, _)| o == id)
                .map(|(_, on, at)| (*on, *at))
        })
    }

    pub async fn shutdown(self) {
        for c in self.clients {
            c.shutdown().await;
        }
    }
}

/// The operator: HTTP calls through the api balancer, each on a fresh connection so the
/// balancer chooses a live api every time (as a browser behind a load balancer would after a
/// failed request).
#[derive(Clone)]
pub struct Operator {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

/// What one operator call got back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Operator {
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(base: String, token: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { base, token, http })
    }

    /// One call; transport errors come back as status 0 with the error text.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                Answer { status, body }
            }
            Err(e) => Answer {
                status: 0,
                body: Value::String(e.to_string()),
            },
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Switches independence; the answer says whether it was committed.
    pub async fn set_independence(&self, id: &str, on: bool) -> Answer {
        self.call(
            reqwest::Method::PUT,
            &format!("/api/v1/internal/orchestrators/{id}/independence"),
            Some(&json!({"is_independent": on})),
        )
        .await
    }

    /// Creates the organization and an enrollment token for it.
    ///
    /// # Errors
    /// When the api refuses.
    pub async fn enrollment_token(&self, organization_id: &str) -> anyhow::Result<String> {
        let created = self
            .call(
                reqwest::Method::POST,
                "/api/v1/controller/organizations",
                Some(&json!({"organization_id": organization_id, "name": organization_id})),
            )
            .await;
        anyhow::ensure!(
            created.status == 201 || created.status == 409,
            "create organization: {created:?}"
        );
        let token = self
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/internal/organizations/{organization_id}/enrollment-tokens"),
                Some(&json!({"name": "faults"})),
            )
            .await;
        anyhow::ensure!(token.status == 201, "enrollment token: {token:?}");
        token.body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no token in {token:?}"))
    }
}

/// Calls the orchestrator listing in a loop and tallies the answers by status code, so a
/// scenario can say what an operator saw during a fault.
pub struct Traffic {
    pub tally: Arc<Mutex<HashMap<u16, u32>>>,
    /// Bodies of the non-2xx answers (the first few), to check their shape.
    pub failures: Arc<Mutex<Vec<Answer>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    #[must_use]
    pub fn start(operator: Operator, every: Duration) -> Self {
        let tally = Arc::new(Mutex::new(HashMap::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (t, f) = (tally.clone(), failures.clone());
        let task = tokio::spawn(async move {
            loop {
                let answer = operator
                    .get("/api/v1/controller/orchestrators?page=1&page_size=50")
                    .await;
                *t.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(answer.status)
                    .or_default() += 1;
                if !(200..300).contains(&answer.status) {
                    let mut f = f.lock().unwrap_or_else(PoisonError::into_inner);
                    if f.len() < 20 {
                        f.push(answer);
                    }
                }
                tokio::time::sleep(every).await;
            }
        });
        Self {
            tally,
            failures,
            task,
        }
    }

    /// Stops the loop and returns the tally.
    #[must_use]
    pub fn stop(self) -> (HashMap<u16, u32>, Vec<Answer>) {
        self.task.abort();
        let tally = self
            .tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let failures =
            std::mem::take(&mut *self.failures.lock().unwrap_or_else(PoisonError::into_inner));
        (tally, failures)
    }
}
