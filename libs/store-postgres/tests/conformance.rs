//! The `Store` conformance checks against PostgreSQL (each in its own database), then the
//! checks only this backend has: the sweep's advisory lock, connection and migration errors,
//! error mapping, concurrent flushes and scale.
//!
//! Needs the PostgreSQL named by `MOOLAI_TEST_DATABASE_URL` (default: local, trust auth).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use futures::FutureExt;
use futures::future::join_all;
use moolai_protocol::Status;
use moolai_store::conformance::{self, LONG_TTL, TTL};
use moolai_store::{
    Actor, HeartbeatWrite, NewOrchestrator, NewOrganization, Store, StoreError, UsageWrite,
};
use moolai_store_postgres::testing::TestDatabase;
use moolai_store_postgres::{PgStore, SWEEP_LOCK_KEY};

/// Runs `body` and drops the database whether or not it panicked.
async fn cleanup_after<F: Future<Output = ()>>(db: TestDatabase, stores: &[&PgStore], body: F) {
    let outcome = AssertUnwindSafe(body).catch_unwind().await;
    for store in stores {
        store.pool().close().await;
    }
    db.drop_database().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// One test per conformance check, on a fresh store with the standard TTL.
macro_rules! conformance_tests {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let db = TestDatabase::create().await;
            let store = db.store(TTL).await;
            cleanup_after(db, &[&store], conformance::$check(&store)).await;
        }
    )*};
}

/// Checks that take a lenient and a strict handle on one database.
macro_rules! conformance_tests_two_ttls {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let db = TestDatabase::create().await;
            let lenient = db.store(LONG_TTL).await;
            let strict = db.store(TTL).await;
            cleanup_after(db, &[&lenient, &strict], conformance::$check(&lenient, &strict)).await;
        }
    )*};
}

conformance_tests!(
    hello_registers_organization_and_orchestrator,
    hello_keeps_the_existing_organization,
    new_session_replaces_old_and_only_current_disconnect_counts,
    heartbeats_keep_the_latest_and_never_move_back,
    heartbeats_skip_independent_orchestrators,
    status_is_derived_from_last_seen,
    orchestrator_listing_pages_filters_and_searches,
    independence_changes_are_audited,
    session_config_updates_bump_the_version,
    operators_register_and_deregister_orchestrators,
    metadata_merges_and_config_snapshots_are_kept,
    messages_are_created_listed_and_decided_once,
    message_ids_are_unique_under_concurrency,
    accepted_messages_are_delivered_once,
    usage_costs_and_overview_add_up,
    organizations_page_with_counts,
    hostile_strings_round_trip,
    audit_log_lists_newest_first_with_filters,
    login_sessions_expire_and_can_be_deleted,
    users_are_created_updated_and_deleted,
    api_tokens_are_found_by_hash_until_revoked,
    orchestrator_credentials_gate_hellos,
    hellos_registered_together_are_decided_one_by_one,
    racing_hello_batches_all_register,
    scopes_restrict_every_listing,
);

conformance_tests_two_ttls!(
    sweep_marks_expired_orchestrators_inactive,
    sweep_refuses_when_the_whole_fleet_is_silent,
);

// ---- PostgreSQL only -------------------------------------------------------------------------

async fn create_org(store: &PgStore, id: &str) {
    store
        .create_organization(
            &NewOrganization {
                organization_id: id.into(),
                name: id.into(),
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

/// While another connection holds the sweep lock (another replica sweeping), a sweep does
/// nothing and says so; once released, the same sweep does the work.
#[tokio::test]
async fn sweep_is_skipped_while_another_replica_holds_the_lock() {
    let db = TestDatabase::create().await;
    let lenient = db.store(LONG_TTL).await;
    let strict = db.store(TTL).await;
    cleanup_after(db, &[&lenient, &strict], async {
        create_org(&lenient, "org-a").await;
        lenient
            .register_orchestrator(&NewOrchestrator::new("old", "org-a"), &Actor::system())
            .await
            .expect("register");
        lenient
            .flush_heartbeats(&[HeartbeatWrite {
                orchestrator_id: "old".into(),
                received_at: Utc::now() - TimeDelta::seconds(600),
            }])
            .await
            .expect("flush");

        let mut other_replica = strict.pool().begin().await.expect("begin");
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SWEEP_LOCK_KEY)
            .execute(&mut *other_replica)
            .await
            .expect("take the sweep lock");

        let outcome = strict.sweep_expired().await.expect("sweep");
        assert_eq!(
            outcome.skipped.as_deref(),
            Some("another replica is sweeping")
        );
        assert!(outcome.changes.is_empty());

        other_replica.rollback().await.expect("release");
        let outcome = strict.sweep_expired().await.expect("sweep");
        assert_eq!(outcome.skipped, None);
        assert_eq!(outcome.changes.len(), 1);
        assert_eq!(outcome.changes[0].orchestrator_id, "old");
        assert_eq!(outcome.changes[0].current, Status::Inactive);

        // Two sweeps at once: the work is done once, never twice.
        lenient
            .flush_heartbeats(&[HeartbeatWrite {
                orchestrator_id: "old".into(),
                received_at: Utc::now() - TimeDelta::seconds(300),
            }])
            .await
            .expect("flush");
        let (a, b) = tokio::join!(strict.sweep_expired(), strict.sweep_expired());
        let (a, b) = (a.expect("sweep a"), b.expect("sweep b"));
        assert_eq!(a.changes.len() + b.changes.len(), 1, "{a:?} {b:?}");
    })
    .await;
}

/// A database that cannot be reached fails at start-up with the URL (password masked) and
/// the variable to set; a reachable one connects.
#[tokio::test]
async fn connect_fails_fast_with_a_masked_url() {
    let started = Instant::now();
    let err = PgStore::connect("postgres://moolai:hunter2@127.0.0.1:1/moolai", TTL, 2)
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let StoreError::Unavailable(message) = &err else {
        panic!("expected unavailable, got {err:?}");
    };
    assert!(
        message.contains("postgres://moolai:***@127.0.0.1:1/moolai"),
        "{message}"
    );
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let err = PgStore::connect("definitely not a url", TTL, 2)
        .await
        .expect_err("not a URL");
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("DATABASE_URL")),
        "{err:?}"
    );

    let db = TestDatabase::create().await;
    let store = PgStore::connect(&db.url(), TTL, 2).await.expect("connect");
    cleanup_after(db, &[&store], async {
        store.ping().await.expect("ping");
        assert_eq!(store.heartbeat_ttl(), TTL);
        let missing = format!("{}_missing", store_database_url_base());
        let err = PgStore::connect(&missing, TTL, 1)
            .await
            .expect_err("the database does not exist");
        assert!(err.to_string().contains("does not exist"), "{err}");
    })
    .await;
}

fn store_database_url_base() -> String {
    std::env::var("MOOLAI_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Services refuse to start on an unmigrated database, naming the command to run; after
/// `migrate` (idempotent) they start; a missing migration row is reported.
#[tokio::test]
async fn check_migrations_requires_a_migrated_schema() {
    let db = TestDatabase::create().await;
    let store = PgStore::connect(&db.url(), TTL, 2).await.expect("connect");
    cleanup_after(db, &[&store], async {
        let err = store.check_migrations().await.expect_err("fresh database");
        assert!(
            err.to_string().contains("run `moolai-state migrate`"),
            "{err}"
        );
        store.migrate().await.expect("migrate");
        store.migrate().await.expect("migrate again");
        store.check_migrations().await.expect("migrated");

        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 20261127000001")
            .execute(store.pool())
            .await
            .expect("forget a migration");
        let err = store.check_migrations().await.expect_err("one missing");
        assert!(err.to_string().contains("20261127000001_initial"), "{err}");
    })
    .await;
}

/// Database errors keep their meaning: a broken check constraint or an over-long value is
/// `Invalid`, a duplicate is `Conflict`, a closed pool is `Unavailable`.
#[tokio::test]
async fn database_errors_map_to_store_errors() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        let negative = store
            .record_usage(&[UsageWrite {
                orchestrator_id: "o1".into(),
                organization_id: "org-a".into(),
                model: None,
                requests: -1,
                input_tokens: 0,
                output_tokens: 0,
                cost: 0.0,
                reported_at: Utc::now(),
            }])
            .await;
        assert!(
            matches!(negative, Err(StoreError::Invalid(_))),
            "{negative:?}"
        );
        assert_eq!(
            store
                .overview(None)
                .await
                .expect("overview")
                .requests_this_month,
            0
        );

        create_org(&store, "org-a").await;
        let too_long = store
            .register_orchestrator(
                &NewOrchestrator::new("x".repeat(300), "org-a"),
                &Actor::system(),
            )
            .await;
        assert!(
            matches!(too_long, Err(StoreError::Invalid(_))),
            "{too_long:?}"
        );

        store.pool().close().await;
        let closed = store.ping().await;
        assert!(
            matches!(closed, Err(StoreError::Unavailable(_))),
            "{closed:?}"
        );
    })
    .await;
}

/// Concurrent flushes over the same orchestrators in opposite orders neither deadlock nor
/// lose the latest heartbeat.
#[tokio::test]
async fn overlapping_heartbeat_flushes_do_not_deadlock() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        create_org(&store, "org-a").await;
        let ids: Vec<String> = (0..50).map(|i| format!("o{i:02}")).collect();
        for id in &ids {
            store
                .register_orchestrator(&NewOrchestrator::new(id, "org-a"), &Actor::system())
                .await
                .expect("register");
        }
        let base = Utc::now() - TimeDelta::seconds(30);
        let flushes = (0..20).map(|round| {
            let mut batch: Vec<HeartbeatWrite> = ids
                .iter()
                .map(|id| HeartbeatWrite {
                    orchestrator_id: id.clone(),
                    received_at: base + TimeDelta::milliseconds(round),
                })
                .collect();
            if round % 2 == 1 {
                batch.reverse();
            }
            let store = &store;
            async move { store.flush_heartbeats(&batch).await }
        });
        let mut transitions = 0;
        for result in join_all(flushes).await {
            transitions += result.expect("flush").len();
        }
        // Each orchestrator became active exactly once, whichever flush got there first.
        assert_eq!(transitions, ids.len());
        let latest = base + TimeDelta::milliseconds(19);
        for id in &ids {
            let record = store
                .get_orchestrator(id)
                .await
                .expect("get")
                .expect("exists");
            let last_seen = record.last_seen.expect("seen");
            assert!(
                (last_seen - latest).num_microseconds() == Some(0),
                "{id}: {last_seen}"
            );
        }
    })
    .await;
}

/// Orchestrator rows whose organization name differs from their organization's (written
/// before reads stopped joining `organizations`) are brought in line by the migration.
#[tokio::test]
async fn the_organization_name_migration_aligns_old_rows() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        create_org(&store, "org-n").await;
        sqlx::query(
            "INSERT INTO orchestrator_instances (orchestrator_id, organization_id, organization_name) \
             VALUES ('n-1', 'org-n', NULL), ('n-2', 'org-n', 'an old name'), ('n-3', 'org-n', 'org-n')",
        )
        .execute(store.pool())
        .await
        .expect("old rows");
        let changed = sqlx::raw_sql(include_str!(
            "../../../migrations/20261130000001_orchestrator_organization_names.sql"
        ))
        .execute(store.pool())
        .await
        .expect("migration");
        assert_eq!(changed.rows_affected(), 2);
        for id in ["n-1", "n-2", "n-3"] {
            let record = store
                .get_orchestrator(id)
                .await
                .expect("get")
                .expect("exists");
            assert_eq!(record.organization_name.as_deref(), Some("org-n"), "{id}");
        }
    })
    .await;
}

/// Row versions come in listing order with the derived status, only for rows that match the
/// filters, and change with every write of the row and no other.
#[tokio::test]
async fn row_versions_follow_every_write() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        create_org(&store, "org-v").await;
        for id in ["v-1", "v-2", "v-3"] {
            store
                .register_orchestrator(&NewOrchestrator::new(id, "org-v"), &Actor::system())
                .await
                .expect("register");
        }
        let ids: Vec<String> = ["v-3", "v-1", "v-2", "v-gone"].map(String::from).to_vec();
        let all = moolai_store::OrchestratorQuery {
            organization_id: Some("org-v".into()),
            ..Default::default()
        };
        let versions = |q: moolai_store::OrchestratorQuery| {
            let (store, ids) = (&store, &ids);
            async move {
                store
                    .orchestrator_versions_in_order(&q, ids)
                    .await
                    .expect("versions")
                    .expect("PostgreSQL has row versions")
            }
        };
        let before = versions(all.clone()).await;
        assert_eq!(
            before
                .iter()
                .map(|v| (v.orchestrator_id.as_str(), v.status))
                .collect::<Vec<_>>(),
            vec![
                ("v-1", Status::Inactive),
                ("v-2", Status::Inactive),
                ("v-3", Status::Inactive)
            ]
        );
        assert_eq!(versions(all.clone()).await, before);

        store
            .flush_heartbeats(&[HeartbeatWrite {
                orchestrator_id: "v-2".into(),
                received_at: Utc::now(),
            }])
            .await
            .expect("heartbeat");
        let after = versions(all.clone()).await;
        assert_eq!(after[0], before[0]);
        assert_eq!(after[2], before[2]);
        assert_ne!(after[1].version, before[1].version);
        assert_eq!(after[1].status, Status::Active);

        let active = versions(moolai_store::OrchestratorQuery {
            status: Some(Status::Active),
            ..all.clone()
        })
        .await;
        assert_eq!(active, vec![after[1].clone()]);
    })
    .await;
}

/// The fleet's facts carry every orchestrator with the version a page would read and what
/// its status is derived from, and a next transaction id that moves forward with writes.
#[tokio::test]
async fn fleet_facts_match_the_row_versions_and_move_forward() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        create_org(&store, "org-f").await;
        for id in ["f-1", "f-2"] {
            store
                .register_orchestrator(&NewOrchestrator::new(id, "org-f"), &Actor::system())
                .await
                .expect("register");
        }
        let seen = Utc::now();
        store
            .flush_heartbeats(&[HeartbeatWrite {
                orchestrator_id: "f-2".into(),
                received_at: seen,
            }])
            .await
            .expect("heartbeat");
        store
            .set_independence("f-1", true, &Actor::system())
            .await
            .expect("toggle");
        let facts = store
            .orchestrator_facts()
            .await
            .expect("facts")
            .expect("PostgreSQL has row versions");
        let mut rows = facts.orchestrators.clone();
        rows.sort_by(|a, b| a.orchestrator_id.cmp(&b.orchestrator_id));
        let ids: Vec<String> = vec!["f-1".into(), "f-2".into()];
        let versions = store
            .orchestrator_versions_in_order(&moolai_store::OrchestratorQuery::default(), &ids)
            .await
            .expect("versions")
            .expect("versions");
        assert_eq!(
            rows.iter()
                .map(|r| (r.orchestrator_id.as_str(), r.version))
                .collect::<Vec<_>>(),
            versions
                .iter()
                .map(|v| (v.orchestrator_id.as_str(), v.version))
                .collect::<Vec<_>>()
        );
        for (row, v) in rows.iter().zip(&versions) {
            assert_eq!(row.organization_id, "org-f");
            assert_eq!(
                moolai_store::derive_status(
                    row.is_independent,
                    row.last_seen,
                    row.disconnected,
                    Utc::now(),
                    TimeDelta::from_std(TTL).expect("ttl"),
                ),
                v.status,
                "{}",
                row.orchestrator_id
            );
        }
        assert!(rows[0].is_independent);
        let last_seen = rows[1].last_seen.expect("heard from");
        assert!(
            (last_seen - seen).num_milliseconds().abs() < 1,
            "{last_seen} vs {seen}"
        );

        store
            .flush_heartbeats(&[HeartbeatWrite {
                orchestrator_id: "f-2".into(),
                received_at: Utc::now(),
            }])
            .await
            .expect("heartbeat");
        let later = store
            .orchestrator_facts()
            .await
            .expect("facts")
            .expect("facts");
        assert!(later.next_transaction > facts.next_transaction);
    })
    .await;
}

/// Each organization's usage per day, summed from the usage rows (`usage_organization_days`
/// must always say the same).
async fn usage_days_from_rows(store: &PgStore) -> Vec<(String, String, i64, i64, i64, f64)> {
    sqlx::query_as(
        "SELECT organization_id, to_char(date_trunc('day', reported_at, 'UTC') AT TIME ZONE 'UTC', \
             'YYYY-MM-DD'), sum(requests)::int8, sum(input_tokens)::int8, \
             sum(output_tokens)::int8, sum(cost) \
         FROM usage_records GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(store.pool())
    .await
    .expect("usage rows by day")
}

async fn usage_days_kept(store: &PgStore) -> Vec<(String, String, i64, i64, i64, f64)> {
    sqlx::query_as(
        "SELECT organization_id, to_char(day AT TIME ZONE 'UTC', 'YYYY-MM-DD'), requests, \
             input_tokens, output_tokens, cost \
         FROM usage_organization_days ORDER BY 1, 2",
    )
    .fetch_all(store.pool())
    .await
    .expect("usage day totals")
}

/// Usage batches recorded at once (several state replicas) touching the same organizations'
/// days, in opposite orders, all land in the day totals: none deadlocks, none is lost.
#[tokio::test]
async fn concurrent_usage_batches_keep_the_day_totals() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        // Around midnight UTC, so every batch spans two days of three organizations.
        let midnight = chrono::DateTime::parse_from_rfc3339("2026-01-31T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let batches = (0..20_i64).map(|round| {
            let mut batch: Vec<UsageWrite> = (0..30_i64)
                .map(|i| UsageWrite {
                    orchestrator_id: format!("o{i:02}"),
                    organization_id: format!("org-{}", i % 3),
                    model: (i % 2 == 0).then(|| "gpt-4o".to_owned()),
                    requests: 1 + i,
                    input_tokens: 10 * round,
                    output_tokens: i,
                    cost: 0.25,
                    reported_at: midnight + TimeDelta::seconds(i - 15),
                })
                .collect();
            if round % 2 == 1 {
                batch.reverse();
            }
            let store = &store;
            async move { store.record_usage(&batch).await }
        });
        for result in join_all(batches).await {
            result.expect("record usage");
        }
        let kept = usage_days_kept(&store).await;
        assert_eq!(kept.len(), 6, "{kept:?}");
        assert_eq!(kept, usage_days_from_rows(&store).await);
        assert!((kept.iter().map(|d| d.5).sum::<f64>() - 20.0 * 30.0 * 0.25).abs() < 1e-9);
    })
    .await;
}

/// Usage counters near the largest bigint (orchestrators send them; they are clamped to it)
/// saturate the day totals instead of failing the batch, which would fail again on every
/// retry; the overview saturates too.
#[tokio::test]
async fn huge_usage_saturates_the_day_totals() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        let huge = |orchestrator_id: &str| UsageWrite {
            orchestrator_id: orchestrator_id.into(),
            organization_id: "org-h".into(),
            model: None,
            requests: i64::MAX,
            input_tokens: i64::MAX,
            output_tokens: i64::MAX,
            cost: 1.0,
            reported_at: Utc::now(),
        };
        store
            .record_usage(&[huge("h-1"), huge("h-2")])
            .await
            .expect("one batch");
        store
            .record_usage(&[huge("h-3")])
            .await
            .expect("a second batch");
        let kept = usage_days_kept(&store).await;
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (kept[0].2, kept[0].3, kept[0].4, kept[0].5),
            (i64::MAX, i64::MAX, i64::MAX, 3.0)
        );
        let overview = store.overview(None).await.expect("overview");
        assert_eq!(
            (overview.requests_this_month, overview.tokens_this_month),
            (i64::MAX, i64::MAX)
        );
    })
    .await;
}

/// Usage rows written without the trigger (a writer from before it, during a rolling
/// deploy) are counted when the trigger's migration runs, and rows after it by the trigger.
#[tokio::test]
async fn the_usage_day_totals_trigger_migration_recounts_every_row() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        let row = |orchestrator_id: &str, requests: i64| UsageWrite {
            orchestrator_id: orchestrator_id.into(),
            organization_id: "org-t".into(),
            model: Some("m".into()),
            requests,
            input_tokens: 1,
            output_tokens: 2,
            cost: 0.5,
            reported_at: Utc::now(),
        };
        store.record_usage(&[row("t-1", 1)]).await.expect("usage");
        sqlx::query("DROP TRIGGER usage_organization_days_add ON usage_records")
            .execute(store.pool())
            .await
            .expect("as before the trigger");
        store.record_usage(&[row("t-2", 2)]).await.expect("usage");
        assert_eq!(usage_days_kept(&store).await[0].2, 1);
        sqlx::raw_sql(include_str!(
            "../../../migrations/20261201000003_usage_organization_days_trigger.sql"
        ))
        .execute(store.pool())
        .await
        .expect("migration");
        assert_eq!(usage_days_kept(&store).await[0].2, 3);
        store.record_usage(&[row("t-3", 4)]).await.expect("usage");
        let kept = usage_days_kept(&store).await;
        assert_eq!(kept[0].2, 7);
        assert_eq!(kept, usage_days_from_rows(&store).await);
    })
    .await;
}

/// The day totals' migration fills them from the usage rows already recorded.
#[tokio::test]
async fn the_usage_day_totals_migration_counts_earlier_rows() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        sqlx::query(
            "INSERT INTO usage_records (orchestrator_id, organization_id, model, requests, \
                 input_tokens, output_tokens, cost, reported_at) VALUES \
             ('o1', 'org-a', 'm', 1, 10, 5, 0.5, '2026-03-01T23:59:59Z'), \
             ('o2', 'org-a', NULL, 2, 20, 6, 0.25, '2026-03-01T00:00:00Z'), \
             ('o1', 'org-a', 'm', 3, 30, 7, 1.0, '2026-03-02T00:00:00Z'), \
             ('o3', 'org-b', 'm', 4, 40, 8, 2.0, '2026-03-02T12:00:00Z')",
        )
        .execute(store.pool())
        .await
        .expect("earlier rows");
        sqlx::query("DROP TABLE usage_organization_days")
            .execute(store.pool())
            .await
            .expect("as before the migration");
        sqlx::raw_sql(include_str!(
            "../../../migrations/20261201000001_usage_organization_days.sql"
        ))
        .execute(store.pool())
        .await
        .expect("migration");
        let kept = usage_days_kept(&store).await;
        assert_eq!(
            kept,
            vec![
                ("org-a".into(), "2026-03-01".into(), 3, 30, 11, 0.75),
                ("org-a".into(), "2026-03-02".into(), 3, 30, 7, 1.0),
                ("org-b".into(), "2026-03-02".into(), 4, 40, 8, 2.0),
            ]
        );
        assert_eq!(kept, usage_days_from_rows(&store).await);
    })
    .await;
}

/// Organization counts and the overview stay correct and quick with a large fleet (rows
/// inserted directly to keep set-up short).
#[tokio::test]
async fn organization_counts_scale_to_a_large_fleet() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        sqlx::query(
            "INSERT INTO organizations (organization_id, name) \
             SELECT format('org-%s', lpad(g::text, 4, '0')), 'org' FROM generate_series(1, 200) g",
        )
        .execute(store.pool())
        .await
        .expect("organizations");
        // 20 000 orchestrators, 100 per organization: every 4th alive, every 10th independent.
        sqlx::query(
            "INSERT INTO orchestrator_instances (orchestrator_id, organization_id, last_seen, \
                 is_independent, status) \
             SELECT format('orch-%s', g), format('org-%s', lpad((g % 200 + 1)::text, 4, '0')), \
                 CASE WHEN g % 4 = 0 THEN now() ELSE now() - interval '1 day' END, \
                 g % 10 = 5, CASE WHEN g % 10 = 5 THEN 'independent' ELSE 'inactive' END \
             FROM generate_series(1, 20000) g",
        )
        .execute(store.pool())
        .await
        .expect("orchestrators");
        sqlx::query("ANALYZE")
            .execute(store.pool())
            .await
            .expect("analyze");

        let started = Instant::now();
        let page = store
            .list_organizations(1, 50, None)
            .await
            .expect("organizations");
        let overview = store.overview(None).await.expect("overview");
        let elapsed = started.elapsed();

        assert_eq!(page.total, 200);
        assert_eq!(page.items.len(), 50);
        assert!(page.items.iter().all(|o| o.orchestrator_count == 100));
        // Organization k (1-based) holds the g with g % 200 == k - 1, so all of its
        // orchestrators are alive when (k - 1) % 4 == 0: 13 of the first 50, 100 each.
        let active: Vec<i64> = page.items.iter().map(|o| o.active_orchestrators).collect();
        assert_eq!(active.iter().sum::<i64>(), 13 * 100);
        assert_eq!((active[0], active[1], active[4]), (100, 0, 100));
        assert_eq!(page.items[0].status, "active");
        assert_eq!(page.items[1].status, "inactive");
        assert_eq!(overview.total_orchestrators, 20_000);
        assert_eq!(overview.active_orchestrators, 5_000);
        assert_eq!(overview.independent_orchestrators, 2_000);
        assert_eq!(overview.inactive_orchestrators, 13_000);
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    })
    .await;
}

/// `drop_database` removes the database.
#[tokio::test]
async fn test_databases_are_dropped() {
    let db = TestDatabase::create().await;
    let name = db.name().to_owned();
    assert!(name.starts_with("moolai_test_"));
    assert!(db.url().ends_with(&name));
    let store = db.store(TTL).await;
    store.ping().await.expect("ping");
    db.drop_database().await;
    assert!(store.ping().await.is_err(), "connections are terminated");

    let admin = PgStore::connect(&store_database_url_base(), TTL, 1)
        .await
        .expect("admin connection");
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(admin.pool())
            .await
            .expect("query");
    assert!(!exists, "{name} still exists");
}

/// A registration storm fills a fresh table faster than autovacuum analyzes it; without
/// statistics the heartbeat flush is planned as a quadratic nested loop. The sweep refreshes
/// them.
#[tokio::test]
async fn sweep_refreshes_planner_statistics_after_a_bulk_registration() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        sqlx::query("INSERT INTO organizations (organization_id, name) VALUES ('org-s', 'org')")
            .execute(store.pool())
            .await
            .expect("organization");
        sqlx::query(
            "INSERT INTO orchestrator_instances (orchestrator_id, organization_id, last_seen, status) \
             SELECT format('orch-%s', g), 'org-s', now(), 'active' FROM generate_series(1, 20000) g",
        )
        .execute(store.pool())
        .await
        .expect("orchestrators");
        let planned = || async {
            sqlx::query_scalar::<_, f32>(
                "SELECT reltuples FROM pg_class WHERE oid = 'orchestrator_instances'::regclass",
            )
            .fetch_one(store.pool())
            .await
            .expect("reltuples")
        };
        assert!(planned().await < 1000.0, "statistics already fresh: the test proves nothing");
        // The cumulative statistics reach pg_stat_user_tables shortly after the commit.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            store.sweep_expired().await.expect("sweep");
            if planned().await >= 18_000.0 {
                break;
            }
            assert!(Instant::now() < deadline, "the sweep never refreshed the statistics");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let beats: Vec<HeartbeatWrite> = (1..=20_000)
            .map(|g| HeartbeatWrite {
                orchestrator_id: format!("orch-{g}"),
                received_at: Utc::now(),
            })
            .collect();
        store.flush_heartbeats(&beats).await.expect("flush");
        let fresh: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM orchestrator_instances WHERE last_seen > now() - interval '1 minute'",
        )
        .fetch_one(store.pool())
        .await
        .expect("count");
        assert_eq!(fresh, 20_000);
    })
    .await;
}

/// The batch path really is one transaction for the batch: the conformance scenario's
/// batch commits together (nothing falls back to one by one), and a storm-sized batch of
/// new and known orchestrators is one batch.
#[tokio::test]
async fn hello_batches_commit_together() {
    let db = TestDatabase::create().await;
    let store = db.store(TTL).await;
    cleanup_after(db, &[&store], async {
        conformance::hellos_registered_together_are_decided_one_by_one(&store).await;
        assert_eq!(store.hello_batches(), (1, 0));

        let storm = |round: usize| -> Vec<moolai_store::HelloRegistration> {
            (0..400)
                .map(|i| moolai_store::HelloRegistration {
                    orchestrator_id: format!("storm-{i:03}"),
                    organization_id: Some(format!("org-{}", i % 7)),
                    default_organization_id: "default".into(),
                    credential_id: None,
                    name: Some(format!("storm {i}")),
                    location: None,
                    features: (i % 2 == 0).then(|| serde_json::json!({ "n": i })),
                    metadata: serde_json::Map::new(),
                    session_id: format!("storm-{i:03}-{round}"),
                    edge_id: "edge-1".into(),
                    remote_addr: None,
                    dialect: moolai_protocol::Dialect::Deployed,
                })
                .collect()
        };
        for round in 0..2 {
            let outcomes = store.register_hellos(&storm(round)).await;
            assert!(outcomes.iter().all(Result::is_ok), "round {round}");
            let previous = if round == 0 {
                None
            } else {
                Some(Status::Active)
            };
            assert!(
                outcomes
                    .iter()
                    .all(|o| o.as_ref().is_ok_and(|r| r.previous_status == previous)),
                "round {round}"
            );
        }
        assert_eq!(store.hello_batches(), (3, 0));
        let record = store
            .get_orchestrator("storm-398")
            .await
            .expect("get")
            .expect("registered");
        assert_eq!(record.session_id.as_deref(), Some("storm-398-1"));
        assert_eq!(record.organization_id, "org-6");
        assert_eq!(record.features, serde_json::json!({ "n": 398 }));
    })
    .await;
}
