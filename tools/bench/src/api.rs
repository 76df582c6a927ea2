//! Benchmark 5: the dashboard's reads with a large fleet in the database, under concurrent
//! load: p50/p99 and throughput per endpoint.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::prom::fmt_secs;
use crate::report::{percentile, thousands, usage_table};
use crate::stack::Bench;

#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    #[arg(long, default_value_t = 100_000)]
    pub orchestrators: usize,
    #[arg(long, default_value_t = 100)]
    pub organizations: usize,
    /// Usage rows spread over the current month.
    #[arg(long, default_value_t = 500_000)]
    pub usage_rows: usize,
    /// Pending messages.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// Concurrent HTTP clients; each endpoint is measured at each of these.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub concurrency: Vec<usize>,
    /// Measured seconds per endpoint (after 2 s of warm-up).
    #[arg(long, default_value_t = 20)]
    pub duration_sec: u64,
    /// `DATABASE_MAX_CONNECTIONS` of the api.
    #[arg(long, default_value_t = 10)]
    pub api_pool: usize,
    /// Measure only the endpoints whose name contains one of these (e.g. `status=active`);
    /// all of them when empty.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Fleet churn during the measurements: status events per second published on the
    /// public status subjects, for random orchestrators of random organizations (the api
    /// takes them as real transitions; the rows are left as seeded).
    #[arg(long, default_value_t = 0)]
    pub status_events_per_sec: u32,
    /// `API_REPORT_CACHE_MS` of the api (its default when absent); 0 computes every answer,
    /// which measures what a request waits for after a write.
    #[arg(long)]
    pub report_cache_ms: Option<u64>,
    /// `API_FLEET_VIEW_MS` of the api (its default when absent); 0 reads every listing
    /// page's versions from the database.
    #[arg(long)]
    pub fleet_view_ms: Option<u64>,
    /// Row writes during the measurements: orchestrators per second whose `last_seen` is
    /// moved to now, in ten batches a second, as the state service's heartbeat flushes do
    /// (3,333 is 100,000 orchestrators heartbeating every 30 s). Rows not seeded active are
    /// left alone, so the listings' membership stays as seeded.
    #[arg(long, default_value_t = 0)]
    pub row_writes_per_sec: u32,
}

/// One endpoint's query-string generator.
type Path = Arc<dyn Fn(&mut rand::rngs::ThreadRng) -> String + Send + Sync>;

struct Result_ {
    name: String,
    concurrency: usize,
    example: String,
    latencies: Vec<f64>,
    errors: usize,
    seconds: f64,
    usage: crate::procs::WindowUsage,
    /// The api's listing counters over the run: pages with versions from the fleet view and
    /// from the database, records kept and read in full.
    listing: [f64; 4],
}

/// The api's listing counters (see [`Result_::listing`]), from its metrics.
async fn listing_counters(http: &reqwest::Client, metrics_port: u16) -> [f64; 4] {
    let Ok(m) = crate::prom::scrape(http, metrics_port).await else {
        return [0.0; 4];
    };
    [
        m.sum("api_listing_versions_total", "source=\"view\""),
        m.sum("api_listing_versions_total", "source=\"database\""),
        m.sum("api_orchestrator_records_total", "source=\"kept\""),
        m.sum("api_orchestrator_records_total", "source=\"read\""),
    ]
}

#[allow(clippy::too_many_lines)]
pub async fn run(b: &mut Bench, args: &ApiArgs) -> anyhow::Result<String> {
    b.create_database().await?;
    let pool = b.db()?.pool(2).await?;
    let seeding = Instant::now();
    seed(&pool, args).await?;
    let seed_secs = seeding.elapsed().as_secs_f64();
    eprintln!("seeded in {seed_secs:.1} s");
    // TTL of an hour: the "active" rows (heartbeats in the last 20 s at seeding time) stay
    // active for the whole run instead of expiring half-way through it.
    let mut api_env = vec![
        ("HEARTBEAT_TTL_SEC", "3600".to_owned()),
        ("DATABASE_MAX_CONNECTIONS", args.api_pool.to_string()),
    ];
    if let Some(ms) = args.report_cache_ms {
        api_env.push(("API_REPORT_CACHE_MS", ms.to_string()));
    }
    if let Some(ms) = args.fleet_view_ms {
        api_env.push(("API_FLEET_VIEW_MS", ms.to_string()));
    }
    let (api_port, metrics_port) = b.start_api("api", &api_env).await?;
    b.sampler.add(
        "moolai-bench (HTTP load client)",
        crate::procs::Who::Pid(std::process::id()),
    );
    let token = b.login(api_port).await?;
    let base = format!("http://127.0.0.1:{api_port}/api/v1/controller");
    let orgs = args.organizations.max(1);
    let per_org_active = args.orchestrators / orgs * 6 / 10;
    let pages = (per_org_active / 50).max(1);

    let endpoints: Vec<(&str, Path)> = vec![
        (
            "orchestrators?status=active&organization_id=<random org>&page=<1..n>&page_size=50",
            Arc::new(move |r: &mut rand::rngs::ThreadRng| {
                format!(
                    "/orchestrators?status=active&organization_id=org-{:03}&page={}&page_size=50",
                    r.random_range(0..orgs),
                    r.random_range(1..=pages)
                )
            }),
        ),
        (
            "orchestrators?status=inactive&organization_id=<random org>&page=1&page_size=50",
            Arc::new(move |r: &mut rand::rngs::ThreadRng| {
                format!(
                    "/orchestrators?status=inactive&organization_id=org-{:03}&page=1&page_size=50",
                    r.random_range(0..orgs)
                )
            }),
        ),
        (
            "overview",
            Arc::new(|_: &mut rand::rngs::ThreadRng| "/overview".to_owned()),
        ),
        (
            "costs (this month, by day, whole fleet)",
            Arc::new(|_: &mut rand::rngs::ThreadRng| "/costs".to_owned()),
        ),
        (
            "costs?organization_id=<random org>",
            Arc::new(move |r: &mut rand::rngs::ThreadRng| {
                format!("/costs?organization_id=org-{:03}", r.random_range(0..orgs))
            }),
        ),
    ];

    let churn = if args.status_events_per_sec > 0 {
        Some(churn(&b.common.nats_url, &b.prefix, args).await?)
    } else {
        None
    };
    let writes = if args.row_writes_per_sec > 0 {
        Some(row_writes(pool.clone(), args))
    } else {
        None
    };
    let max_clients = args.concurrency.iter().copied().max().unwrap_or(1);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(max_clients)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut results = Vec::new();
    let wanted =
        |name: &str| args.only.is_empty() || args.only.iter().any(|o| name.contains(o.as_str()));
    for (name, path) in endpoints.into_iter().filter(|(name, _)| wanted(name)) {
        let example = path(&mut rand::rng());
        for &clients in &args.concurrency {
            // Warm-up, then the measured run.
            drive(&http, &base, &token, &path, clients, Duration::from_secs(2)).await;
            b.sampler.sample_now().await;
            let counted = listing_counters(&http, metrics_port).await;
            let t0 = Instant::now();
            let (mut latencies, errors) = drive(
                &http,
                &base,
                &token,
                &path,
                clients,
                Duration::from_secs(args.duration_sec),
            )
            .await;
            b.sampler.sample_now().await;
            let t1 = Instant::now();
            let mut listing = listing_counters(&http, metrics_port).await;
            for (now, before) in listing.iter_mut().zip(counted) {
                *now -= before;
            }
            latencies.sort_by(f64::total_cmp);
            eprintln!(
                "{name} × {clients}: {} requests, p99 {}",
                latencies.len(),
                percentile(&latencies, 0.99).map_or("-".into(), fmt_secs)
            );
            results.push(Result_ {
                name: name.to_owned(),
                concurrency: clients,
                example: example.clone(),
                latencies,
                errors,
                seconds: (t1 - t0).as_secs_f64(),
                usage: b.sampler.window(t0, t1),
                listing,
            });
        }
    }

    let published = stopped(churn).await;
    let written = stopped(writes).await;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "Database: {} orchestrators in {} organizations (60 % active, 30 % inactive, 10 % independent, in every organization), \
         {} usage rows this month, {} pending messages; inserted with SQL in {seed_secs:.1} s, then VACUUM ANALYZE \
         (statistics and visibility map as autovacuum leaves them). \
         The api runs with a pool of {} connections and `HEARTBEAT_TTL_SEC=3600` (so the seeded \
         active rows stay active for the run); {:?} concurrent HTTP clients (reqwest, keep-alive, in the \
         bench process) each loop for {} s per endpoint after 2 s of warm-up; every request carries a \
         login session bearer token.\n",
        thousands(args.orchestrators as f64),
        args.organizations,
        thousands(args.usage_rows as f64),
        thousands(args.messages as f64),
        args.api_pool,
        args.concurrency,
        args.duration_sec
    );
    if args.status_events_per_sec > 0 {
        let _ = writeln!(
            s,
            "Fleet churn: {} status events per second ({} in all) published on the public status \
             subjects (`<prefix>.v1.<org>.<orch>.status`) for random orchestrators of random \
             organizations throughout, from warm-up to the last measurement; the api takes them as \
             transitions (its cached answers about that organization and the fleet-wide ones go \
             stale), the database rows stay as seeded.\n",
            args.status_events_per_sec,
            thousands(published as f64)
        );
    }
    if args.row_writes_per_sec > 0 {
        let _ = writeln!(
            s,
            "Row writes: `last_seen` of {} random active orchestrators per second moved to now \
             ({} in all), in ten `UPDATE … FROM unnest` batches a second like the state \
             service's heartbeat flushes, from warm-up to the last measurement.\n",
            args.row_writes_per_sec,
            thousands(written as f64)
        );
    }
    if let Some(ms) = args.report_cache_ms {
        let _ = writeln!(
            s,
            "Report cache: `API_REPORT_CACHE_MS={ms}`{}.\n",
            if ms == 0 {
                " — every answer is computed for its request, as the first request after a \
                 write is"
            } else {
                ""
            }
        );
    }
    if let Some(ms) = args.fleet_view_ms {
        let _ = writeln!(
            s,
            "Fleet view: `API_FLEET_VIEW_MS={ms}`{}.\n",
            if ms == 0 {
                " — every listing page reads its rows' versions from the database"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        s,
        "| endpoint (`/api/v1/controller/…`) | clients | requests | req/s | p50 | p90 | p99 | max | errors | api CPU % | postgres backends CPU % | load client CPU % |"
    );
    let _ = writeln!(
        s,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for r in &results {
        let q = |x| percentile(&r.latencies, x).map_or("-".into(), fmt_secs);
        let cpu = |n: &str| {
            r.usage
                .groups
                .iter()
                .find(|g| g.name.starts_with(n))
                .map_or("-".into(), |g| format!("{:.0}", g.cpu_pct))
        };
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.concurrency,
            thousands(r.latencies.len() as f64),
            thousands(r.latencies.len() as f64 / r.seconds),
            q(0.5),
            q(0.9),
            q(0.99),
            r.latencies.last().map_or("-".into(), |m| fmt_secs(*m)),
            r.errors,
            cpu("api"),
            cpu("postgres (bench"),
            cpu("moolai-bench"),
        );
    }
    let missed: Vec<String> = results
        .iter()
        .filter(|r| percentile(&r.latencies, 0.99).is_none_or(|p| p > 0.010))
        .map(|r| format!("`{}` × {}", r.name, r.concurrency))
        .collect();
    let _ = writeln!(
        s,
        "\nTarget p99 ≤ 10 ms: {}.",
        if missed.is_empty() {
            "**met** by every endpoint".to_owned()
        } else {
            format!("**missed** by {}", missed.join(", "))
        }
    );
    if results.iter().any(|r| r.listing.iter().any(|n| *n > 0.0)) {
        let _ = writeln!(
            s,
            "\nListing pages by where their rows' versions came from, and records kept or \
             read in full (the api's `api_listing_versions_total` and \
             `api_orchestrator_records_total` over each run):\n\n\
             | endpoint | clients | versions from the fleet view | from the database | records kept | read in full |\n\
             | --- | --- | --- | --- | --- | --- |"
        );
        for r in results
            .iter()
            .filter(|r| r.listing.iter().any(|n| *n > 0.0))
        {
            let [view, database, kept, read] = r.listing.map(thousands);
            let _ = writeln!(
                s,
                "| `{}` | {} | {view} | {database} | {kept} | {read} |",
                r.name, r.concurrency
            );
        }
    }
    let _ = writeln!(s, "\nExample requests:");
    for r in results.iter().filter(|r| r.concurrency == max_clients) {
        let _ = writeln!(s, "- `{}`", r.example);
    }
    for r in &results {
        s.push_str(&usage_table(
            &format!(
                "CPU and memory during `{}` with {} clients",
                r.name, r.concurrency
            ),
            &r.usage,
        ));
    }
    Ok(s)
}

/// A background load at a steady rate: the task, its stop switch and how many it did.
type Paced = (
    tokio::task::JoinHandle<()>,
    tokio_util::sync::CancellationToken,
    Arc<std::sync::atomic::AtomicU64>,
);

/// Calls `step(n)` every `every` until stopped, `n` being how many are due at `rate` per
/// second since the start less those done (ticks can be late: it catches up); `step` does
/// them, or fails and ends the load.
fn paced<F, Fut>(rate: u64, every: Duration, mut step: F) -> Paced
where
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let stop = tokio_util::sync::CancellationToken::new();
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let task = tokio::spawn({
        let (stop, count) = (stop.clone(), count.clone());
        async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let due = u64::try_from(started.elapsed().as_millis() * u128::from(rate) / 1000)
                    .unwrap_or(u64::MAX);
                let n = due.saturating_sub(count.load(std::sync::atomic::Ordering::Relaxed));
                if n > 0 {
                    if let Err(e) = step(n).await {
                        eprintln!("background load stopped: {e:#}");
                        break;
                    }
                    count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    });
    (task, stop, count)
}

/// Stops a background load; how many it did.
async fn stopped(paced: Option<Paced>) -> u64 {
    match paced {
        Some((task, stop, count)) => {
            stop.cancel();
            task.await.ok();
            count.load(std::sync::atomic::Ordering::Relaxed)
        }
        None => 0,
    }
}

/// Publishes `status_events_per_sec` status events per second (random orchestrators of
/// random organizations) until stopped.
async fn churn(nats_url: &str, prefix: &str, args: &ApiArgs) -> anyhow::Result<Paced> {
    use anyhow::Context as _;
    let nats = async_nats::connect(nats_url)
        .await
        .context("connecting to NATS")?;
    let (n, orgs) = (args.orchestrators.max(1), args.organizations.max(1));
    let prefix = prefix.to_owned();
    Ok(paced(
        u64::from(args.status_events_per_sec),
        Duration::from_millis(10),
        move |due| {
            let (nats, prefix) = (nats.clone(), prefix.clone());
            async move {
                for _ in 0..due {
                    let i = rand::rng().random_range(0..n);
                    let (org, orch) = (format!("org-{:03}", i % orgs), format!("orch-{i:06}"));
                    let status = if rand::rng().random_bool(0.5) {
                        "active"
                    } else {
                        "inactive"
                    };
                    let now = chrono::Utc::now();
                    let event = serde_json::json!({
                        "orchestrator_id": orch, "organization_id": org, "status": status,
                        "is_independent": false, "last_seen": now, "reason": "heartbeat", "at": now,
                    });
                    let subject = format!("{prefix}.v1.{org}.{orch}.status");
                    nats.publish(subject, event.to_string().into()).await?;
                }
                nats.flush().await?;
                Ok(())
            }
        },
    ))
}

/// Moves `last_seen` of random active orchestrators to now at `--row-writes-per-sec`, in
/// ten batches a second (one `UPDATE … FROM unnest` each, like a heartbeat flush).
fn row_writes(pool: sqlx::PgPool, args: &ApiArgs) -> Paced {
    let (n, orgs) = (args.orchestrators.max(1), args.organizations.max(1));
    paced(
        u64::from(args.row_writes_per_sec),
        Duration::from_millis(100),
        move |due| {
            // Orchestrator i is seeded active when i ÷ organizations mod 10 < 6.
            let ids: Vec<String> = (0..due)
                .map(|_| {
                    loop {
                        let i = rand::rng().random_range(0..n);
                        if i / orgs % 10 < 6 {
                            break format!("orch-{i:06}");
                        }
                    }
                })
                .collect();
            let pool = pool.clone();
            async move {
                sqlx::query(
                    "UPDATE orchestrator_instances o SET last_seen = now() \
                     FROM unnest($1::text[]) AS b(id) WHERE o.orchestrator_id = b.id",
                )
                .bind(&ids)
                .execute(&pool)
                .await?;
                Ok(())
            }
        },
    )
}

/// `concurrency` clients looping on `path` for `duration`; latencies in seconds and errors.
async fn drive(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &Path,
    concurrency: usize,
    duration: Duration,
) -> (Vec<f64>, usize) {
    let until = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let http = http.clone();
        let base = base.to_owned();
        let token = token.to_owned();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < until {
                let url = format!("{base}{}", path(&mut rand::rng()));
                let started = Instant::now();
                let ok = match http.get(&url).bearer_auth(&token).send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    Ok(_) | Err(_) => false,
                };
                if ok {
                    lat.push(started.elapsed().as_secs_f64());
                } else {
                    errors += 1;
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    (all, errors)
}

/// Organizations, orchestrators (60 % active, 30 % inactive, 10 % independent in every
/// organization: orchestrator i is in organization i mod n, its status follows i ÷ n), usage
/// this month and pending messages, in a few set-based statements; then VACUUM ANALYZE (the
/// state autovacuum leaves a settled database in: statistics and the visibility map).
async fn seed(pool: &sqlx::PgPool, args: &ApiArgs) -> anyhow::Result<()> {
    let n = i64::try_from(args.orchestrators)?;
    let orgs = i64::try_from(args.organizations.max(1))?;
    sqlx::query(
        "INSERT INTO organizations (organization_id, name, location) \
         SELECT 'org-' || lpad(i::text, 3, '0'), 'Organization ' || i, 'region-' || (i % 5) \
         FROM generate_series(0, $1 - 1) i",
    )
    .bind(orgs)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO orchestrator_instances (orchestrator_id, organization_id, organization_name, \
             name, location, status, last_seen, is_independent, metadata, features, session_id, \
             edge_id, last_activity) \
         SELECT 'orch-' || lpad(i::text, 6, '0'), 'org-' || lpad((i % $2)::text, 3, '0'), \
             'Organization ' || (i % $2), 'gateway ' || i, 'region-' || (i % 5), \
             CASE WHEN i / $2 % 10 < 6 THEN 'active' ELSE 'inactive' END, \
             CASE WHEN i / $2 % 10 < 6 THEN now() - random() * interval '20 seconds' \
                  ELSE now() - interval '2 hours' - random() * interval '10 days' END, \
             i / $2 % 10 = 9, \
             jsonb_build_object('version', '1.4.' || (i % 7), 'hostname', 'gw-' || i, \
                 'ip', '10.' || (i % 250) || '.' || (i / 250 % 250) || '.1', 'ssl_enabled', true, \
                 'name', 'gateway ' || i, 'location', 'region-' || (i % 5)), \
             '{\"cache\": true, \"guardrails\": false}'::jsonb, md5(i::text), 'edge-' || (i % 4), now() \
         FROM generate_series(0, $1 - 1) i",
    )
    .bind(n)
    .bind(orgs)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO usage_records (orchestrator_id, organization_id, model, requests, \
             input_tokens, output_tokens, cost, reported_at) \
         SELECT 'orch-' || lpad(o::text, 6, '0'), 'org-' || lpad((o % $3)::text, 3, '0'), \
             (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet', 'llama-3-70b', 'mistral-large'])[1 + i % 5], \
             1 + (i % 20), 100 + (i % 1000), 50 + (i % 500), (i % 100) / 1000.0, \
             date_trunc('month', now(), 'UTC') + random() * (now() - date_trunc('month', now(), 'UTC')) \
         FROM (SELECT i, (i * 7919) % $2 AS o FROM generate_series(0, $1 - 1) i) s",
    )
    .bind(i64::try_from(args.usage_rows)?)
    .bind(n)
    .bind(orgs)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO orchestrator_messages (id, orchestrator_id, organization_id, message_type, content, status) \
         SELECT 'msg-' || i, 'orch-' || lpad(((i * 13) % $2)::text, 6, '0'), \
             'org-' || lpad((((i * 13) % $2) % $3)::text, 3, '0'), \
             CASE WHEN i % 2 = 0 THEN 'recommendation' ELSE 'monitoring' END, \
             'bench message ' || i, 'pending' \
         FROM generate_series(0, $1 - 1) i",
    )
    .bind(i64::try_from(args.messages)?)
    .bind(n)
    .bind(orgs)
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}
