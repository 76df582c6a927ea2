//! The single binary on embedded defaults (in-process bus, SQLite under a data directory):
//! the end-to-end fleet scenario on one port, the dashboard fallback, and data surviving a
//! `kill -9`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use moolai_e2e::client::{connect_and_hello, register, with_token};
use moolai_e2e::scenario::fleet_scenario;
use moolai_e2e::{bin_dir, free_port, wait_until};
use serde_json::{Value, json};

struct Moolai {
    child: Child,
    port: u16,
    log: PathBuf,
    password: String,
}

impl Drop for Moolai {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moolai {
    async fn start(data_dir: &Path, port: u16, extra: &[(&str, &str)]) -> Self {
        let log = data_dir.join(format!("moolai-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).expect("log file");
        let password = "single-binary-test-password".to_owned();
        let mut cmd = Command::new(bin_dir().expect("binaries").join("moolai"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CONTROLLER_HOST", "127.0.0.1")
            .env("CONTROLLER_PORT", port.to_string())
            .env("API_METRICS_PORT", free_port().expect("port").to_string())
            .env("MOOLAI_DATA_DIR", data_dir)
            .env("MOOLAI_DASHBOARD_DIR", data_dir.join("no-dashboard"))
            .env("MOOLAI_ADMIN_USERNAME", "admin")
            .env("MOOLAI_ADMIN_PASSWORD", &password)
            .env("HEARTBEAT_TTL_SEC", "3")
            .env("HEARTBEAT_INTERVAL_SEC", "1")
            .env("HEARTBEAT_FLUSH_INTERVAL_MS", "50")
            .env("SWEEP_INTERVAL_SEC", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start moolai");
        let m = Self {
            child,
            port,
            log,
            password,
        };
        let health = format!("{}/health", m.base());
        let ok = wait_until(Duration::from_secs(30), "moolai to become healthy", || {
            let health = health.clone();
            async move { matches!(reqwest::get(&health).await, Ok(r) if r.status().is_success()) }
        })
        .await;
        if let Err(e) = ok {
            panic!("{e}\n{}", m.log_text());
        }
        m
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn ws(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn login(&self) -> String {
        let body: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/internal/auth/login", self.base()))
            .json(&json!({"username": "admin", "password": self.password}))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("json");
        body["user"]["token"].as_str().expect("token").to_owned()
    }

    fn kill_9(mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("moolai-single-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_scenario_runs_on_embedded_defaults() {
    let dir = temp_dir();
    let m = Moolai::start(&dir, free_port().expect("port"), &[]).await;
    let token = m.login().await;
    let run = tokio::spawn(fleet_scenario(
        m.base(),
        token,
        None,
        [m.ws("/ws"), m.ws("/")],
    ))
    .await;
    if let Err(e) = run {
        panic!("scenario failed: {e}\n{}", m.log_text());
    }
    assert!(
        dir.join("moolai.db").exists(),
        "no SQLite file in the data directory"
    );
    drop(m);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_dashboard_api_and_sockets_and_data_survives_kill_9() {
    let dir = temp_dir();
    let port = free_port().expect("port");
    let m = Moolai::start(&dir, port, &[]).await;

    // Browsers get the dashboard (here: the note that it is not built), the API keeps its
    // JSON 404, orchestrators upgrade on `/`.
    let root = reqwest::get(format!("{}/", m.base())).await.expect("GET /");
    assert!(root.status().is_success());
    assert!(
        root.text()
            .await
            .expect("text")
            .contains("dashboard is not built")
    );
    let spa_route = reqwest::get(format!("{}/orchestrators/x", m.base()))
        .await
        .expect("GET");
    assert!(spa_route.status().is_success());
    let api_404 = reqwest::get(format!("{}/api/v1/nope", m.base()))
        .await
        .expect("GET");
    assert_eq!(api_404.status().as_u16(), 404);
    let body: Value = api_404.json().await.expect("json");
    assert_eq!(body["success"], false);

    // Orchestrator tokens are required by default: enroll with one.
    let token = m.login().await;
    let enrollment = moolai_e2e::scenario::Api {
        base: m.base(),
        token: token.clone(),
        http: reqwest::Client::new(),
    }
    .enrollment_token("org-keep")
    .await;
    let refused = connect_and_hello(
        &m.ws("/"),
        &register("survivor", "org-keep"),
        Duration::from_secs(3),
    )
    .await;
    assert!(refused.is_err(), "a hello without a token was accepted");
    let (socket, provisioning) = connect_and_hello(
        &m.ws("/"),
        &with_token(register("survivor", "org-keep"), &enrollment),
        Duration::from_secs(10),
    )
    .await
    .expect("hello");
    assert_eq!(provisioning["data"]["organization_id"], "org-keep");
    drop(socket);
    let (code, _) = put_independence(&m.base(), &token, "survivor", true).await;
    assert_eq!(code, 200);

    m.kill_9();
    let m = Moolai::start(&dir, port, &[]).await;
    let token = m.login().await;
    let record: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/controller/orchestrators/survivor",
            m.base()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(record["data"]["organization_id"], "org-keep", "{record}");
    assert_eq!(record["data"]["is_independent"], true, "{record}");

    // The container healthcheck subcommand.
    let status = Command::new(bin_dir().expect("bins").join("moolai"))
        .args(["healthcheck", "--url", &format!("{}/health", m.base())])
        .status()
        .expect("healthcheck");
    assert!(status.success());
    drop(m);
    let status = Command::new(bin_dir().expect("bins").join("moolai"))
        .args([
            "healthcheck",
            "--url",
            &format!("http://127.0.0.1:{port}/health"),
        ])
        .stderr(Stdio::null())
        .status()
        .expect("healthcheck");
    assert!(
        !status.success(),
        "healthcheck passed with the controller stopped"
    );
    let _ = std::fs::remove_dir_all(dir);
}

async fn put_independence(base: &str, token: &str, id: &str, on: bool) -> (u16, Value) {
    let r = reqwest::Client::new()
        .put(format!(
            "{base}/api/v1/internal/orchestrators/{id}/independence"
        ))
        .bearer_auth(token)
        .json(&json!({"is_independent": on}))
        .send()
        .await
        .expect("PUT");
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or_default())
}

#[test]
fn bad_database_urls_are_refused_naming_the_variable() {
    let out = Command::new(bin_dir().expect("bins").join("moolai"))
        .env_clear()
        .env("DATABASE_URL", "mysql://root@localhost/x")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("DATABASE_URL"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_brings_up_a_live_fleet() {
    let dir = temp_dir();
    let m = Moolai::start(&dir, free_port().expect("port"), &[]).await;
    let api = moolai_e2e::scenario::Api {
        base: m.base(),
        token: m.login().await,
        http: reqwest::Client::new(),
    };
    let enrollment = api.enrollment_token("default").await;
    let out = tokio::task::spawn_blocking({
        let url = m.ws("/ws");
        move || {
            Command::new(bin_dir().expect("bins").join("moolai"))
                .args([
                    "simulate",
                    "--token",
                    &enrollment,
                    "--url",
                    &url,
                    "--count",
                    "5",
                    "--heartbeat-interval-sec",
                    "0.5",
                    "--duration-sec",
                    "3",
                    "--json",
                ])
                .output()
                .expect("simulate")
        }
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["target"], 5, "{report}");
    assert!(report["handshakes"].as_u64() >= Some(5), "{report}");
    assert!(report["heartbeats_sent"].as_u64() >= Some(10), "{report}");
    let token = m.login().await;
    let list: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/controller/orchestrators?search=sim-",
            m.base()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(list["data"]["total"], 5, "{list}");
    drop(m);
    let _ = std::fs::remove_dir_all(dir);
}

fn generated_password(log: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains("superadmin created on this first start"))
        .and_then(|l| l.split(" / ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

async fn login_status(base: &str, username: &str, password: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{base}/api/v1/internal/auth/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("login")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_start_without_credentials_creates_a_superadmin_and_shows_its_password_once() {
    let dir = temp_dir();
    let port = free_port().expect("port");
    let unset = [("MOOLAI_ADMIN_USERNAME", ""), ("MOOLAI_ADMIN_PASSWORD", "")];
    let m = Moolai::start(&dir, port, &unset).await;
    let log = m.log_text();
    let password = generated_password(&log).unwrap_or_else(|| panic!("no password shown:\n{log}"));
    assert_eq!(password.len(), 24);
    assert_eq!(login_status(&m.base(), "admin", &password).await, 200);
    // Only the one line on stdout: no log record carries it.
    assert_eq!(log.matches(password.as_str()).count(), 1, "{log}");
    drop(m);

    // An account added from the command line while the controller is stopped.
    let mut cli = Command::new(bin_dir().expect("bins").join("moolai"))
        .args([
            "admin",
            "create-user",
            "--username",
            "ops2",
            "--role",
            "viewer",
            "--password-stdin",
        ])
        .env_clear()
        .env("MOOLAI_DATA_DIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("moolai admin");
    {
        use std::io::Write as _;
        let mut stdin = cli.stdin.take().expect("stdin");
        writeln!(stdin, "ops2-password-from-stdin").expect("write");
    }
    let out = cli.wait_with_output().expect("admin output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("created user ops2 (viewer)"), "{stdout}");
    assert!(!stdout.contains("ops2-password-from-stdin"));

    // A later start generates nothing and shows no password; both accounts work.
    let m = Moolai::start(&dir, port, &unset).await;
    let log = m.log_text();
    assert!(generated_password(&log).is_none(), "{log}");
    assert!(
        !log.contains(&password),
        "the password was shown again:\n{log}"
    );
    assert!(log.contains("existing operator accounts"), "{log}");
    assert_eq!(login_status(&m.base(), "admin", &password).await, 200);
    assert_eq!(
        login_status(&m.base(), "ops2", "ops2-password-from-stdin").await,
        200
    );
    drop(m);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_token_from_the_cli_registers_orchestrators_in_its_organization() {
    let dir = temp_dir();
    let out = Command::new(bin_dir().expect("bins").join("moolai"))
        .args([
            "admin",
            "create-enrollment-token",
            "--organization",
            "org-cli",
        ])
        .env_clear()
        .env("MOOLAI_DATA_DIR", &dir)
        .output()
        .expect("admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap_or_else(|| panic!("no token printed: {stdout}"))
        .to_owned();
    assert!(token.starts_with("moo_enr_"), "{token}");

    let m = Moolai::start(&dir, free_port().expect("port"), &[]).await;
    let (socket, provisioning) = moolai_e2e::client::connect_and_hello_with(
        &m.ws("/ws"),
        &moolai_e2e::client::handshake("cli-enrolled"),
        Some(&token),
        Duration::from_secs(10),
    )
    .await
    .expect("hello with the CLI's token");
    assert_eq!(provisioning["data"]["organization_id"], "org-cli");
    drop(socket);
    drop(m);
    let _ = std::fs::remove_dir_all(dir);
}
