//! What operators script against: `--help`, clear failures on bad configuration or an
//! unreachable dependency, and a clean stop on SIGTERM.

use std::process::{Command, Output};
use std::time::Duration;

use moolai_e2e::{Stack, StackOptions, bin_dir};

const BINARIES: [&str; 3] = ["moolai-ws-edge", "moolai-state", "moolai-api"];

fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin_dir().expect("binaries built").join(bin));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run binary")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn help_lists_the_environment() {
    for bin in BINARIES {
        let o = run(bin, &["--help"], &[]);
        assert!(o.status.success(), "{bin} --help failed: {}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("NATS_URL"),
            "{bin} --help does not mention NATS_URL: {t}"
        );
    }
    for bin in ["moolai-state", "moolai-api"] {
        let t = text(&run(bin, &["--help"], &[]));
        assert!(
            t.contains("DATABASE_URL") && t.contains("migrate"),
            "{bin}: {t}"
        );
    }
}

#[test]
fn bad_configuration_exits_non_zero_naming_the_variable() {
    // (binary, environment, the variable the error must name)
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static str,
    );
    let cases: [Case; 6] = [
        (
            "moolai-ws-edge",
            &[("WS_EDGE_PORT", "not-a-port")],
            "WS_EDGE_PORT",
        ),
        (
            "moolai-ws-edge",
            &[("WS_MAX_FRAME_BYTES", "10")],
            "WS_MAX_FRAME_BYTES",
        ),
        (
            "moolai-state",
            &[("HEARTBEAT_TTL_SEC", "5"), ("HEARTBEAT_INTERVAL_SEC", "30")],
            "HEARTBEAT_TTL_SEC",
        ),
        (
            "moolai-state",
            &[("DATABASE_URL", "mysql://x@y/z")],
            "DATABASE_URL",
        ),
        (
            "moolai-api",
            &[("CONTROLLER_PORT", "99999")],
            "CONTROLLER_PORT",
        ),
        (
            "moolai-ws-edge",
            &[("NATS_SUBJECT_PREFIX", "a.*")],
            "NATS_SUBJECT_PREFIX",
        ),
    ];
    for (bin, env, var) in cases {
        let o = run(bin, &[], env);
        assert!(!o.status.success(), "{bin} with {env:?} started");
        let t = text(&o);
        assert!(
            t.to_lowercase().contains(&var.to_lowercase()),
            "{bin} with {env:?} did not name {var}: {t}"
        );
    }
}

#[test]
fn unreachable_dependencies_fail_fast_with_the_url() {
    let o = run("moolai-ws-edge", &[], &[("NATS_URL", "nats://127.0.0.1:1")]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("nats://127.0.0.1:1") && t.contains("NATS_URL"),
        "{t}"
    );

    let o = run(
        "moolai-state",
        &[],
        &[("DATABASE_URL", "postgres://moolai:secret@127.0.0.1:1/x")],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("127.0.0.1:1") && t.contains("DATABASE_URL"),
        "{t}"
    );
    assert!(
        !t.contains("secret"),
        "the password leaked into the error: {t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_stops_cleanly_on_sigterm() {
    let mut stack = Stack::start(StackOptions {
        edges: 1,
        states: 1,
        // About shutdown, not authentication: a legacy client without a token.
        extra: vec![("ORCHESTRATOR_AUTH".into(), "open".into())],
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let (mut socket, _) = moolai_e2e::client::connect_and_hello(
        &stack.edge_url(0, "/ws"),
        &moolai_e2e::client::register("sig-1", "org"),
        Duration::from_secs(10),
    )
    .await
    .expect("hello");
    let mut results = Vec::new();
    for (service, _) in &mut stack.edges {
        results.push((
            service.name.clone(),
            service.terminate(Duration::from_secs(15)),
        ));
    }
    // The edge closed the orchestrator's socket with 1001 on its way out.
    let closed = socket
        .expect_close(Duration::from_secs(5))
        .await
        .expect("closed");
    assert_eq!(closed.code, 1001);
    for service in &mut stack.states {
        results.push((
            service.name.clone(),
            service.terminate(Duration::from_secs(20)),
        ));
    }
    if let Some((api, _)) = stack.api.as_mut() {
        results.push((api.name.clone(), api.terminate(Duration::from_secs(15))));
    }
    let logs = stack.logs();
    stack.shutdown().await;
    for (name, r) in results {
        let status = r.unwrap_or_else(|e| panic!("{name}: {e}\n{logs}"));
        assert!(
            status.success(),
            "{name} exited with {status} on SIGTERM\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_commands_create_users_and_api_tokens_in_the_database() {
    let stack = Stack::start(StackOptions {
        edges: 1,
        states: 1,
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd =
            std::process::Command::new(moolai_e2e::bin_dir().expect("bins").join("moolai-api"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &stack.env.database_url)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("moolai-api admin");
        {
            use std::io::Write as _;
            let mut input = child.stdin.take().expect("stdin");
            if let Some(line) = stdin {
                writeln!(input, "{line}").expect("write");
            }
        }
        let out = child.wait_with_output().expect("output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(
        &[
            "admin",
            "create-user",
            "--username",
            "ops-cli",
            "--role",
            "superadmin",
            "--password-stdin",
        ],
        Some("cli-password-1234"),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("created user ops-cli (superadmin)"), "{out}");
    // A generated password is printed once.
    let (ok, out, err) = run(
        &[
            "admin",
            "create-user",
            "--username",
            "gen",
            "--role",
            "viewer",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("generated password")
        .to_owned();
    // Refusals name the problem and exit non-zero.
    let (ok, _, err) = run(
        &[
            "admin",
            "create-user",
            "--username",
            "ops-cli",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some("another-password-1"),
    );
    assert!(!ok);
    assert!(err.contains("already exists"), "{err}");
    let (ok, _, err) = run(
        &["admin", "create-user", "--username", "x", "--role", "root"],
        None,
    );
    assert!(!ok);
    assert!(err.contains("not a role"), "{err}");
    let (ok, out, err) = run(
        &[
            "admin",
            "create-api-token",
            "--name",
            "ci",
            "--role",
            "viewer",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("token")
        .to_owned();
    let (ok, out, _) = run(&["admin", "list-users"], None);
    assert!(ok);
    assert!(
        out.contains("ops-cli\tsuperadmin") && out.contains("gen\tviewer"),
        "{out}"
    );
    assert!(!out.contains("argon2"));

    let http = reqwest::Client::new();
    for (user, password) in [
        ("ops-cli", "cli-password-1234"),
        ("gen", generated.as_str()),
    ] {
        let response = http
            .post(format!("{}/api/v1/internal/auth/login", stack.api_url()))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 200, "{user}");
    }
    let response = http
        .get(format!("{}/api/v1/internal/auth/me", stack.api_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(response.status(), 200);
    let logs = stack.logs();
    stack.shutdown().await;
    assert!(
        !logs.contains("cli-password-1234") && !logs.contains(&token),
        "{logs}"
    );
}
