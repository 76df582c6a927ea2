//! `/api/v1/controller/*` reads and organization creation, with data seeded through the
//! store the way the state service writes it.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use moolai_store::{Actor, NewMessage, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app};

fn ids(page: &Value) -> Vec<String> {
    page["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            o.get("orchestrator_id")
                .or_else(|| o.get("organization_id"))
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

async fn create_organization(app: &TestApp, id: &str, name: &str) {
    let response = app
        .post("/api/v1/controller/organizations")
        .json(&json!({ "organization_id": id, "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn register(app: &TestApp, organization_id: &str, orchestrator_id: &str) {
    let response = app
        .post("/api/v1/internal/orchestrators/register")
        .json(&json!({ "orchestrator_id": orchestrator_id, "organization_id": organization_id }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap()
    );
}

async fn set_independent(app: &TestApp, orchestrator_id: &str) {
    let response = app
        .put(&format!(
            "/api/v1/internal/orchestrators/{orchestrator_id}/independence"
        ))
        .json(&json!({ "is_independent": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn message(app: &TestApp, orchestrator_id: &str) {
    app.store
        .create_message(&NewMessage {
            orchestrator_id: orchestrator_id.into(),
            message_type: "monitoring".into(),
            content: "latency above threshold".into(),
            metadata: json!({}),
            source: "orchestrator".into(),
            actor: Actor::system(),
        })
        .await
        .unwrap();
}

/// orch-1 active (hello), orch-2 independent, orch-3 pre-registered and never connected.
async fn seed_fleet(app: &TestApp) {
    app.hello("org-a", "orch-1").await;
    app.hello("org-a", "orch-2").await;
    set_independent(app, "orch-2").await;
    create_organization(app, "org-b", "Organization B").await;
    register(app, "org-b", "orch-3").await;
}

#[tokio::test]
async fn overview_counts_the_fleet_messages_and_this_months_usage() {
    let app = spawn_app().await;
    seed_fleet(&app).await;
    message(&app, "orch-1").await;
    // Hidden: its orchestrator is independent.
    message(&app, "orch-2").await;
    let now = Utc::now();
    app.usage("org-a", "orch-1", Some("gpt-4o"), 3, (100, 50), 1.5, now)
        .await;
    app.usage("org-b", "orch-3", None, 1, (10, 5), 0.25, now)
        .await;

    let body = app.get_ok("/api/v1/controller/overview").await;
    assert_eq!(body["success"], true);
    assert_eq!(
        body["data"],
        json!({
            "total_organizations": 2,
            "total_orchestrators": 3,
            "active_orchestrators": 1,
            "inactive_orchestrators": 1,
            "independent_orchestrators": 1,
            "total_users": 1,
            "pending_messages": 1,
            "cost_this_month": 1.75,
            "requests_this_month": 4,
            "tokens_this_month": 165,
        })
    );
    app.stop().await;
}

#[tokio::test]
async fn organizations_are_paginated_created_and_read() {
    let app = spawn_app().await;
    for i in 0..12 {
        create_organization(&app, &format!("org-{i:02}"), &format!("Org {i}")).await;
    }
    let first = app.get_ok("/api/v1/controller/organizations").await;
    assert_eq!(first["data"]["total"], 12);
    assert_eq!(first["data"]["page"], 1);
    assert_eq!(first["data"]["page_size"], 10);
    assert_eq!(ids(&first).len(), 10);
    let second = app.get_ok("/api/v1/controller/organizations?page=2").await;
    assert_eq!(ids(&second).len(), 2);
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    let expected: Vec<String> = (0..12).map(|i| format!("org-{i:02}")).collect();
    assert_eq!(all, expected);
    let third = app
        .get_ok("/api/v1/controller/organizations?page=3&page_size=5")
        .await;
    assert_eq!(ids(&third).len(), 2);
    assert_eq!(third["data"]["page_size"], 5);
    let beyond = app.get_ok("/api/v1/controller/organizations?page=9").await;
    assert_eq!(ids(&beyond).len(), 0);
    assert_eq!(beyond["data"]["total"], 12);

    for bad in [
        "page=0",
        "page=-1",
        "page_size=0",
        "page_size=101",
        "page=abc",
        "page_size=1.5",
    ] {
        let response = app
            .get(&format!("/api/v1/controller/organizations?{bad}"))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }

    let response = app
        .post("/api/v1/controller/organizations")
        .json(&json!({
            "organization_id": "org-new",
            "name": "New Org",
            "location": "Lisbon",
            "metadata": {"tier": "gold"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["data"]["organization_id"], "org-new");
    assert_eq!(created["data"]["name"], "New Org");
    assert_eq!(created["data"]["location"], "Lisbon");
    assert_eq!(created["data"]["metadata"], json!({"tier": "gold"}));
    assert_eq!(created["data"]["orchestrator_count"], 0);

    let response = app
        .post("/api/v1/controller/organizations")
        .json(&json!({ "organization_id": "org-new", "name": "Again" }))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::CONFLICT, "conflict").await;
    for bad in [
        json!({ "organization_id": "bad id", "name": "x" }),
        json!({ "organization_id": "org-x", "name": "  " }),
        json!({ "organization_id": "org-x", "name": "n".repeat(256) }),
        json!({ "organization_id": "org-x", "name": "x", "metadata": [1, 2] }),
        json!({ "organization_id": "org-x" }),
    ] {
        let response = app
            .post("/api/v1/controller/organizations")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid").await;
    }

    app.hello("org-new", "orch-n").await;
    let one = app.get_ok("/api/v1/controller/organizations/org-new").await;
    assert_eq!(one["data"]["name"], "New Org");
    assert_eq!(one["data"]["orchestrator_count"], 1);
    assert_eq!(one["data"]["active_orchestrators"], 1);
    assert_eq!(one["data"]["status"], "active");
    let response = app
        .get("/api/v1/controller/organizations/org-missing")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn orchestrators_are_listed_filtered_and_read_with_derived_status() {
    let app = spawn_app().await;
    seed_fleet(&app).await;

    let all = app.get_ok("/api/v1/controller/orchestrators").await;
    assert_eq!(all["data"]["total"], 3);
    assert_eq!(all["data"]["page_size"], 50);
    assert_eq!(ids(&all), ["orch-1", "orch-2", "orch-3"]);
    let statuses: Vec<&str> = all["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "independent", "inactive"]);
    let instances = app
        .get_ok("/api/v1/controller/orchestrator-instances")
        .await;
    assert_eq!(instances["data"], all["data"]);

    for (query, expected) in [
        ("status=active", vec!["orch-1"]),
        ("status=independent", vec!["orch-2"]),
        ("status=inactive", vec!["orch-3"]),
        ("organization_id=org-b", vec!["orch-3"]),
        ("organization_id=org-a&status=independent", vec!["orch-2"]),
        ("search=ORCH-3", vec!["orch-3"]),
        ("search=orch-1%20name", vec!["orch-1"]),
        ("search=org-a", vec!["orch-1", "orch-2"]),
        ("search=%25", vec![]),
        ("page_size=2", vec!["orch-1", "orch-2"]),
        ("page_size=2&page=2", vec!["orch-3"]),
    ] {
        let page = app
            .get_ok(&format!("/api/v1/controller/orchestrators?{query}"))
            .await;
        assert_eq!(ids(&page), expected, "{query}");
    }
    for bad in [
        "status=bogus".to_owned(),
        format!("search={}", "s".repeat(129)),
        "organization_id=bad%20id".to_owned(),
        "page_size=500".to_owned(),
    ] {
        let response = app
            .get(&format!("/api/v1/controller/orchestrators?{bad}"))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }

    let live = app.get_ok("/api/v1/controller/orchestrators/live").await;
    assert_eq!(ids(&live), ["orch-1"]);
    assert_eq!(live["data"]["total"], 1);

    let one = app.get_ok("/api/v1/controller/orchestrators/orch-1").await;
    let o = &one["data"];
    assert_eq!(o["organization_id"], "org-a");
    assert_eq!(o["name"], "orch-1 name");
    assert_eq!(o["location"], "eu-west");
    assert_eq!(o["status"], "active");
    assert_eq!(o["connected"], true);
    assert_eq!(o["is_independent"], false);
    assert_eq!(o["version"], "1.4.2");
    assert_eq!(o["edge_id"], "edge-test");
    assert_eq!(o["features"], json!({"cache": true}));

    let response = app
        .get("/api/v1/controller/orchestrators/orch-missing")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn heartbeats_move_last_seen_except_for_independent_orchestrators() {
    let app = spawn_app().await;
    seed_fleet(&app).await;
    let before = app.get_ok("/api/v1/controller/orchestrators/orch-2").await;
    // PostgreSQL keeps microseconds.
    let beat = Utc
        .timestamp_micros(Utc::now().timestamp_micros() + 1_000_000)
        .unwrap();
    app.heartbeats(&["orch-1", "orch-2"], beat).await;
    let one = app.get_ok("/api/v1/controller/orchestrators/orch-1").await;
    let seen: DateTime<Utc> = serde_json::from_value(one["data"]["last_seen"].clone()).unwrap();
    assert_eq!(seen, beat);
    assert_eq!(one["data"]["status"], "active");
    let two = app.get_ok("/api/v1/controller/orchestrators/orch-2").await;
    assert_eq!(two["data"]["last_seen"], before["data"]["last_seen"]);
    assert_eq!(two["data"]["status"], "independent");
    app.stop().await;
}

#[tokio::test]
async fn connection_history_is_listed_newest_first() {
    let app = spawn_app().await;
    app.hello("org-a", "orch-1").await;
    app.hello("org-a", "orch-1").await;
    let body = app
        .get_ok("/api/v1/controller/orchestrators/orch-1/connections")
        .await;
    let items = body["data"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|c| c["orchestrator_id"] == "orch-1"));
    assert!(items.iter().all(|c| c["edge_id"] == "edge-test"));
    assert!(items.iter().all(|c| c["remote_addr"] == "192.0.2.10"));
    let newest: DateTime<Utc> = serde_json::from_value(items[0]["connected_at"].clone()).unwrap();
    let oldest: DateTime<Utc> = serde_json::from_value(items[1]["connected_at"].clone()).unwrap();
    assert!(newest >= oldest);
    let limited = app
        .get_ok("/api/v1/controller/orchestrators/orch-1/connections?limit=1")
        .await;
    assert_eq!(limited["data"].as_array().unwrap().len(), 1);
    assert_eq!(limited["data"][0], items[0]);
    for bad in ["limit=0", "limit=201", "limit=x"] {
        let response = app
            .get(&format!(
                "/api/v1/controller/orchestrators/orch-1/connections?{bad}"
            ))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    let response = app
        .get("/api/v1/controller/orchestrators/orch-missing/connections")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::NOT_FOUND, "not_found").await;
    app.stop().await;
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn costs_are_aggregated_exactly_over_the_requested_range() {
    let app = spawn_app().await;
    app.hello("org-a", "orch-1").await;
    app.hello("org-a", "orch-2").await;
    app.hello("org-b", "orch-3").await;
    // Binary-exact costs, so sums compare exactly.
    app.usage(
        "org-a",
        "orch-1",
        Some("gpt-4o"),
        10,
        (1000, 500),
        1.5,
        at("2026-03-02T10:00:00Z"),
    )
    .await;
    app.usage(
        "org-a",
        "orch-1",
        None,
        2,
        (100, 50),
        0.25,
        at("2026-03-02T23:00:00Z"),
    )
    .await;
    app.usage(
        "org-a",
        "orch-2",
        Some("gpt-4o"),
        5,
        (400, 100),
        0.75,
        at("2026-03-10T00:00:00Z"),
    )
    .await;
    app.usage(
        "org-b",
        "orch-3",
        Some("claude"),
        1,
        (10, 10),
        2.0,
        at("2026-03-31T12:00:00Z"),
    )
    .await;
    // Outside the range on both sides.
    app.usage(
        "org-b",
        "orch-3",
        Some("claude"),
        7,
        (7, 7),
        100.0,
        at("2026-04-01T00:00:00Z"),
    )
    .await;
    app.usage(
        "org-b",
        "orch-3",
        Some("claude"),
        7,
        (7, 7),
        50.0,
        at("2026-02-28T23:59:59Z"),
    )
    .await;

    let body = app
        .get_ok("/api/v1/controller/costs?from=2026-03-01&to=2026-03-31&granularity=day")
        .await;
    let r = &body["data"];
    assert_eq!(r["from"], "2026-03-01T00:00:00Z");
    assert_eq!(r["to"], "2026-04-01T00:00:00Z");
    assert_eq!(r["granularity"], "day");
    assert_eq!(
        r["totals"],
        json!({"requests": 18, "input_tokens": 1510, "output_tokens": 660, "total_tokens": 2170, "cost": 4.5})
    );
    assert_eq!(
        r["by_organization"],
        json!([
            {"key": "org-a", "requests": 17, "input_tokens": 1500, "output_tokens": 650, "total_tokens": 2150, "cost": 2.5},
            {"key": "org-b", "requests": 1, "input_tokens": 10, "output_tokens": 10, "total_tokens": 20, "cost": 2.0},
        ])
    );
    let keyed = |v: &Value| -> Vec<(String, f64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["key"].as_str().unwrap().to_owned(),
                    b["cost"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        keyed(&r["by_orchestrator"]),
        [
            ("orch-3".into(), 2.0),
            ("orch-1".into(), 1.75),
            ("orch-2".into(), 0.75)
        ]
    );
    assert_eq!(
        keyed(&r["by_model"]),
        [
            ("gpt-4o".into(), 2.25),
            ("claude".into(), 2.0),
            ("unknown".into(), 0.25)
        ]
    );
    let series: Vec<(String, i64, f64)> = r["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["period_start"].as_str().unwrap().to_owned(),
                p["requests"].as_i64().unwrap(),
                p["cost"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        series,
        [
            ("2026-03-02T00:00:00Z".into(), 12, 1.75),
            ("2026-03-10T00:00:00Z".into(), 5, 0.75),
            ("2026-03-31T00:00:00Z".into(), 1, 2.0),
        ]
    );

    let weekly = app
        .get_ok("/api/v1/controller/costs?from=2026-03-01&to=2026-03-31&granularity=week")
        .await;
    let starts: Vec<&str> = weekly["data"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["period_start"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2026-03-02T00:00:00Z",
            "2026-03-09T00:00:00Z",
            "2026-03-30T00:00:00Z"
        ]
    );
    let monthly = app
        .get_ok("/api/v1/controller/costs?from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z&granularity=month")
        .await;
    assert_eq!(monthly["data"]["series"].as_array().unwrap().len(), 1);
    assert_eq!(monthly["data"]["series"][0]["cost"], 4.5);

    let org_a = app
        .get_ok("/api/v1/controller/costs?from=2026-03-01&to=2026-03-31&organization_id=org-a")
        .await;
    assert_eq!(org_a["data"]["totals"]["cost"], 2.5);
    assert_eq!(org_a["data"]["granularity"], "day");
    let orch_2 = app
        .get_ok("/api/v1/controller/costs?from=2026-03-01&to=2026-03-31&orchestrator_id=orch-2")
        .await;
    assert_eq!(orch_2["data"]["totals"]["requests"], 5);
    assert_eq!(orch_2["data"]["totals"]["cost"], 0.75);

    // Default range: the current month so far, which holds none of the rows above.
    let now = Utc::now();
    let current = app.get_ok("/api/v1/controller/costs").await;
    let from: DateTime<Utc> = serde_json::from_value(current["data"]["from"].clone()).unwrap();
    assert_eq!(
        from,
        Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
            .unwrap()
    );
    assert_eq!(current["data"]["totals"]["cost"], 0.0);
    assert_eq!(current["data"]["series"], json!([]));

    for bad in [
        "from=yesterday",
        "from=2026-03-31&to=2026-03-01",
        "from=2025-01-01&to=2026-03-01",
        "granularity=hour",
        "organization_id=bad%20id",
        "to=2026-02-30",
    ] {
        let response = app
            .get(&format!("/api/v1/controller/costs?{bad}"))
            .send()
            .await
            .unwrap();
        assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_audit_log_is_paginated_and_filtered() {
    let app = spawn_app().await;
    seed_fleet(&app).await;
    let response = app
        .put("/api/v1/internal/orchestrators/orch-1/independence")
        .json(&json!({ "is_independent": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let actor = format!("user:{}", app.admin_username);
    let body = app
        .get_ok("/api/v1/controller/logs?action=orchestrator.independence")
        .await;
    assert_eq!(body["data"]["total"], 2);
    let targets: Vec<&str> = body["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["orchestrator:orch-1", "orchestrator:orch-2"]);
    assert!(
        body["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == actor.as_str())
    );
    assert_eq!(body["data"]["items"][0]["organization_id"], "org-a");

    let page = app
        .get_ok("/api/v1/controller/logs?action=orchestrator.independence&page_size=1&page=2")
        .await;
    assert_eq!(page["data"]["items"][0]["target"], "orchestrator:orch-2");
    let by_target = app
        .get_ok("/api/v1/controller/logs?target=orchestrator:orch-3")
        .await;
    let actions: Vec<&str> = by_target["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    // One entry, naming the operator.
    assert_eq!(actions, ["orchestrator.register"]);
    assert_eq!(by_target["data"]["items"][0]["actor"], actor.as_str());
    let by_org = app
        .get_ok(&format!(
            "/api/v1/controller/logs?organization_id=org-b&actor={actor}"
        ))
        .await;
    assert_eq!(by_org["data"]["total"], 2);
    let response = app
        .get("/api/v1/controller/logs?page_size=1000")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST, "bad_request").await;
    app.stop().await;
}

/// Overview and costs are cached (here for a minute): usage written behind the api's back
/// does not show until a write goes through the api; a status event makes the overview
/// stale, not the cost report (it counts usage only).
#[tokio::test]
async fn reports_are_reused_until_a_write_or_for_the_overview_a_status_event() {
    let app = crate::helpers::spawn_app_with(|s| s.api_report_cache_ms = 60_000, |s| s).await;
    create_organization(&app, "org-c", "Org C").await;
    let now = Utc::now();
    app.usage("org-c", "orch-c", None, 1, (1, 1), 1.0, now)
        .await;
    let requests = |body: &Value| body["data"]["requests_this_month"].clone();
    let cost_requests = |body: &Value| body["data"]["totals"]["requests"].clone();
    let overview = "/api/v1/controller/overview";
    let costs = "/api/v1/controller/costs";
    assert_eq!(requests(&app.get_ok(overview).await), 1);
    assert_eq!(cost_requests(&app.get_ok(costs).await), 1);

    // Behind the api's back: the cached answers stand.
    app.usage("org-c", "orch-c", None, 10, (1, 1), 1.0, now)
        .await;
    assert_eq!(requests(&app.get_ok(overview).await), 1);
    assert_eq!(cost_requests(&app.get_ok(costs).await), 1);

    // A status event (from any replica, through NATS) makes the overview stale; the cost
    // report counts usage only, which a status event does not change: it stands.
    publish_status_event(&app, "org-c", "orch-c").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while requests(&app.get_ok(overview).await) != 11 {
        assert!(
            std::time::Instant::now() < deadline,
            "the status event did not make the overview stale"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(cost_requests(&app.get_ok(costs).await), 1);

    // A write through the api does too, at once.
    app.usage("org-c", "orch-c", None, 100, (1, 1), 1.0, now)
        .await;
    assert_eq!(requests(&app.get_ok(overview).await), 11);
    create_organization(&app, "org-d", "Org D").await;
    let body = app.get_ok(overview).await;
    assert_eq!(requests(&body), 111);
    assert_eq!(body["data"]["total_organizations"], 2);
    assert_eq!(cost_requests(&app.get_ok(costs).await), 111);
    app.stop().await;
}

/// Publishes a status event (`active`, registered) as the state service of any replica would.
async fn publish_status_event(app: &TestApp, org: &str, id: &str) {
    let now = Utc::now();
    let event = moolai_bus::events::StatusEvent {
        orchestrator_id: id.into(),
        organization_id: org.into(),
        status: moolai_protocol::Status::Active,
        previous_status: None,
        is_independent: false,
        last_seen: Some(now),
        reason: "registered".into(),
        at: now,
    };
    app.bus
        .publish(
            app.bus
                .subjects()
                .orchestrator(moolai_bus::Kind::Status, org, id),
            &event,
        )
        .await
        .unwrap();
    app.bus.flush().await.unwrap();
}

/// Registers an orchestrator in `org` straight in the store, behind the api's back.
async fn register_behind_the_back(app: &TestApp, org: &str, id: &str) {
    app.store
        .register_orchestrator(
            &moolai_store::NewOrchestrator::new(id, org),
            &Actor::system(),
        )
        .await
        .unwrap();
}

/// A listing page's total and its item ids.
fn listed(body: &Value) -> (i64, Vec<String>) {
    (body["data"]["total"].as_i64().unwrap(), ids(body))
}

fn named(list: &[&str]) -> Vec<String> {
    list.iter().map(|&s| s.to_owned()).collect()
}

/// A small listing is kept whole (its total and order) like the reports: orchestrators added
/// behind the api's back do not show until a write through the api makes it stale, while
/// every row shown is read now and one deleted since is left out.
#[tokio::test]
async fn small_listings_keep_their_order_and_read_their_rows_fresh() {
    let app = crate::helpers::spawn_app_with(
        |s| {
            s.api_report_cache_ms = 60_000;
            s.api_fleet_view_ms = 0;
        },
        |s| s,
    )
    .await;
    create_organization(&app, "org-e", "Org E").await;
    register_behind_the_back(&app, "org-e", "e-1").await;
    register_behind_the_back(&app, "org-e", "e-2").await;
    let list = "/api/v1/controller/orchestrators?organization_id=org-e&page_size=10";
    assert_eq!(listed(&app.get_ok(list).await), (2, named(&["e-1", "e-2"])));

    register_behind_the_back(&app, "org-e", "e-0").await;
    assert_eq!(listed(&app.get_ok(list).await), (2, named(&["e-1", "e-2"])));
    // A row's own fields are read now.
    app.store
        .update_metadata("e-2", json!({"version": "9.9.9"}).as_object().unwrap())
        .await
        .unwrap();
    let body = app.get_ok(list).await;
    assert_eq!(body["data"]["items"][1]["version"], "9.9.9");
    // A deleted row is left out; the page is short.
    app.store
        .deregister_orchestrator("e-1", &Actor::system())
        .await
        .unwrap();
    assert_eq!(listed(&app.get_ok(list).await), (2, named(&["e-2"])));
    let second = "/api/v1/controller/orchestrators?organization_id=org-e&page=2&page_size=1";
    assert_eq!(listed(&app.get_ok(second).await), (2, named(&["e-2"])));
    let third = "/api/v1/controller/orchestrators?organization_id=org-e&page=3&page_size=1";
    assert_eq!(listed(&app.get_ok(third).await), (2, named(&[])));

    // A write through the api makes it stale.
    create_organization(&app, "org-f", "Org F").await;
    assert_eq!(listed(&app.get_ok(list).await), (2, named(&["e-0", "e-2"])));
    app.stop().await;
}

/// Listing pages keep records by row version: a page read again reads no record in full, a
/// row written since (behind the api's back, as the state service writes) is read again
/// alone, and so is one whose status changed with time alone. (Versions from the database
/// for every page: the fleet view is off.)
#[tokio::test]
async fn listing_pages_read_in_full_only_the_records_that_changed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    let read = Arc::new(AtomicUsize::new(0));
    let counter = read.clone();
    let app = crate::helpers::spawn_app_with(
        |s| {
            s.api_report_cache_ms = 60_000;
            s.api_fleet_view_ms = 0;
        },
        move |inner| {
            Arc::new(crate::wrapped_store::WrappedStore {
                records_read: counter,
                ..crate::wrapped_store::WrappedStore::new(inner)
            })
        },
    )
    .await;
    create_organization(&app, "org-r", "Org R").await;
    for id in ["r-1", "r-2", "r-3"] {
        register_behind_the_back(&app, "org-r", id).await;
    }
    let list = "/api/v1/controller/orchestrators?organization_id=org-r";
    let first = app.get_ok(list).await;
    assert_eq!(listed(&first), (3, named(&["r-1", "r-2", "r-3"])));
    assert_eq!(read.swap(0, SeqCst), 3);
    assert_eq!(app.get_ok(list).await, first);
    assert_eq!(read.swap(0, SeqCst), 0);

    sqlx::query("UPDATE orchestrator_instances SET name = 'renamed' WHERE orchestrator_id = 'r-2'")
        .execute(app.store.pool())
        .await
        .unwrap();
    let body = app.get_ok(list).await;
    assert_eq!(body["data"]["items"][1]["name"], "renamed");
    assert_eq!(body["data"]["items"][0], first["data"]["items"][0]);
    assert_eq!(read.swap(0, SeqCst), 1);

    // Heard from two seconds inside the TTL: active now, inactive two seconds later without
    // another write.
    sqlx::query(
        "UPDATE orchestrator_instances SET last_seen = now() - make_interval(secs => $1 - 2.0) \
         WHERE orchestrator_id = 'r-3'",
    )
    .bind(crate::helpers::HEARTBEAT_TTL.as_secs_f64())
    .execute(app.store.pool())
    .await
    .unwrap();
    let body = app.get_ok(list).await;
    assert_eq!(body["data"]["items"][2]["status"], "active");
    assert_eq!(read.swap(0, SeqCst), 1);
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    let body = app.get_ok(list).await;
    assert_eq!(body["data"]["items"][2]["status"], "inactive");
    assert_eq!(read.swap(0, SeqCst), 1);
    app.stop().await;
}

/// What the store of a [`counting_app`] counts.
struct Counts {
    records: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    versions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    facts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// An app whose store counts records, version pages and fleet facts read, with a fleet view
/// read every `view_ms`.
async fn counting_app(view_ms: u64) -> (TestApp, Counts) {
    let counts = Counts {
        records: std::sync::Arc::default(),
        versions: std::sync::Arc::default(),
        facts: std::sync::Arc::default(),
    };
    let (r, v, f) = (
        counts.records.clone(),
        counts.versions.clone(),
        counts.facts.clone(),
    );
    let app = crate::helpers::spawn_app_with(
        |s| {
            s.api_report_cache_ms = 60_000;
            s.api_fleet_view_ms = view_ms;
        },
        move |inner| {
            std::sync::Arc::new(crate::wrapped_store::WrappedStore {
                records_read: r,
                version_reads: v,
                facts_reads: f,
                ..crate::wrapped_store::WrappedStore::new(inner)
            })
        },
    )
    .await;
    (app, counts)
}

/// Requests `list` until a page is answered without reading versions from the database (the
/// fleet view, read in the background after the first page, answers), each page equal to
/// `expected`.
async fn until_the_view_answers(
    app: &TestApp,
    list: &str,
    expected: &Value,
    versions: &std::sync::atomic::AtomicUsize,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let before = versions.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(&app.get_ok(list).await, expected);
        if versions.load(std::sync::atomic::Ordering::SeqCst) == before {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the fleet view never answered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// With the fleet view, pages ask the database neither for versions nor for the records they
/// keep. A row written behind the api's back without a status event shows when the view is
/// read again (here: not within the test); one with a status event shows at once, read from
/// the database; after a write through the api, pages read versions from the database until
/// the view is read again.
#[tokio::test]
async fn the_fleet_view_answers_pages_and_yields_to_status_events_and_writes() {
    use std::sync::atomic::Ordering::SeqCst;

    let (app, counts) = counting_app(60_000).await;
    let (records, versions) = (counts.records, counts.versions);
    create_organization(&app, "org-v", "Org V").await;
    for id in ["v-1", "v-2", "v-3"] {
        register_behind_the_back(&app, "org-v", id).await;
    }
    let list = "/api/v1/controller/orchestrators?organization_id=org-v";
    let first = app.get_ok(list).await;
    assert_eq!(listed(&first), (3, named(&["v-1", "v-2", "v-3"])));
    until_the_view_answers(&app, list, &first, &versions).await;
    records.store(0, SeqCst);
    let asked = versions.load(SeqCst);
    for _ in 0..3 {
        assert_eq!(app.get_ok(list).await, first);
    }
    assert_eq!(
        (versions.load(SeqCst) - asked, records.load(SeqCst)),
        (0, 0)
    );

    // Written behind the api's back, no status event: the view does not know yet.
    for id in ["v-2", "v-3"] {
        sqlx::query(
            "UPDATE orchestrator_instances SET name = 'renamed' WHERE orchestrator_id = $1",
        )
        .bind(id)
        .execute(app.store.pool())
        .await
        .unwrap();
    }
    assert_eq!(app.get_ok(list).await, first);

    // A status event for v-3: read from the database from now on, v-2 still from the view.
    publish_status_event(&app, "org-v", "v-3").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let body = loop {
        let body = app.get_ok(list).await;
        if body["data"]["items"][2]["name"] == "renamed" {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event was not heard"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(body["data"]["items"][1], first["data"]["items"][1]);
    assert_eq!(versions.load(SeqCst) - asked, 0);

    // A write through the api: the next page asks the database and shows every change.
    set_independent(&app, "v-1").await;
    let body = app.get_ok(list).await;
    assert_eq!(body["data"]["items"][0]["status"], "independent");
    assert_eq!(body["data"]["items"][1]["name"], "renamed");
    assert!(versions.load(SeqCst) > asked);
    app.stop().await;
}

/// Written behind the api's back without a status event (a hello's metadata): shows once the
/// fleet view is read again, within about its interval, on a page the view answers.
#[tokio::test]
async fn the_fleet_view_shows_other_writes_once_read_again() {
    use std::sync::atomic::Ordering::SeqCst;

    let (app, counts) = counting_app(300).await;
    create_organization(&app, "org-w", "Org W").await;
    register_behind_the_back(&app, "org-w", "w-1").await;
    let list = "/api/v1/controller/orchestrators?organization_id=org-w";
    let first = app.get_ok(list).await;
    until_the_view_answers(&app, list, &first, &counts.versions).await;
    let reads = counts.facts.load(SeqCst);
    app.store
        .update_metadata("w-1", json!({"version": "9.9.9"}).as_object().unwrap())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let asked = counts.versions.load(SeqCst);
        let body = app.get_ok(list).await;
        if body["data"]["items"][0]["version"] == "9.9.9" && counts.versions.load(SeqCst) == asked {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no page answered by the view showed the write"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(counts.facts.load(SeqCst) > reads, "the view was read again");
    app.stop().await;
}

/// A status event makes stale what can count its orchestrator: its organization's listings
/// and the unfiltered one, not another organization's.
#[tokio::test]
async fn a_status_event_makes_its_organization_s_listings_stale_not_others() {
    let app = crate::helpers::spawn_app_with(|s| s.api_report_cache_ms = 60_000, |s| s).await;
    create_organization(&app, "org-h", "Org H").await;
    create_organization(&app, "org-i", "Org I").await;
    register_behind_the_back(&app, "org-h", "h-1").await;
    register_behind_the_back(&app, "org-i", "i-1").await;
    async fn totals(app: &TestApp) -> (i64, i64, i64) {
        let of = |org: &str| format!("/api/v1/controller/orchestrators?organization_id={org}");
        (
            listed(&app.get_ok(&of("org-h")).await).0,
            listed(&app.get_ok(&of("org-i")).await).0,
            listed(&app.get_ok("/api/v1/controller/orchestrators").await).0,
        )
    }
    assert_eq!(totals(&app).await, (1, 1, 2));
    register_behind_the_back(&app, "org-h", "h-2").await;
    register_behind_the_back(&app, "org-i", "i-2").await;
    assert_eq!(totals(&app).await, (1, 1, 2));

    publish_status_event(&app, "org-h", "h-2").await;
    // The event is seen within a request or two (its delivery through NATS takes a moment).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while totals(&app).await != (2, 1, 4) {
        assert!(
            std::time::Instant::now() < deadline,
            "the status event did not make org-h's listing and the unfiltered one stale: {:?}",
            totals(&app).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // org-i's listing was kept (its new orchestrator shows after a write).
    assert_eq!(totals(&app).await, (2, 1, 4));
    create_organization(&app, "org-j", "Org J").await;
    assert_eq!(totals(&app).await, (2, 2, 4));
    app.stop().await;
}

/// A listing of more than `KEPT_ORDER_IDS` keeps only its total: its pages are walked, so
/// rows added behind the api's back show on them, and the total never falls below the page.
#[tokio::test]
async fn large_listings_keep_only_their_total() {
    let app = crate::helpers::spawn_app_with(|s| s.api_report_cache_ms = 60_000, |s| s).await;
    create_organization(&app, "org-g", "Org G").await;
    let many = i64::try_from(moolai_api::listings::KEPT_ORDER_IDS).unwrap() + 1;
    sqlx::query(
        "INSERT INTO orchestrator_instances (orchestrator_id, organization_id) \
         SELECT 'g-' || lpad(i::text, 5, '0'), 'org-g' FROM generate_series(1, $1) i",
    )
    .bind(many)
    .execute(app.store.pool())
    .await
    .unwrap();
    let page = |n: i64, size: i64| {
        format!("/api/v1/controller/orchestrators?organization_id=org-g&page={n}&page_size={size}")
    };
    let (total, first) = listed(&app.get_ok(&page(1, 2)).await);
    assert_eq!((total, first), (many, named(&["g-00001", "g-00002"])));

    register_behind_the_back(&app, "org-g", "g-00000").await;
    register_behind_the_back(&app, "org-g", "g-99999").await;
    // The page is walked: the new first row shows, under the kept total.
    assert_eq!(
        listed(&app.get_ok(&page(1, 2)).await),
        (many, named(&["g-00000", "g-00001"]))
    );
    // The last page starts before the kept total and shows rows past it: raised to them.
    assert_eq!(
        listed(&app.get_ok(&page(many / 4 + 1, 4)).await),
        (many + 2, named(&["g-02000", "g-02001", "g-99999"]))
    );
    // A page wholly past the kept total is answered from it.
    assert_eq!(
        listed(&app.get_ok(&page(many + 5, 1)).await),
        (many, named(&[]))
    );
    app.stop().await;
}
