//! Request throughput of the data API over real HTTP, criterion-free:
//! `cargo bench -p goforward-rest --bench throughput`.
//!
//! Runs on SQLite (in memory, or in a temporary file with
//! `GOFORWARD_BENCH_SQLITE_FILE=1`) and, when
//! `GOFORWARD_TEST_DATABASE_URL` is set, on PostgreSQL. Each workload runs
//! for `GOFORWARD_BENCH_SECS` seconds (default 3) with
//! `GOFORWARD_BENCH_CONCURRENCY` requests in flight (default 32), the load
//! generator in the same process (one actix worker serves, as `TestApp`
//! does). It prints requests per second and p50/p99 latency; it asserts
//! nothing about time (numbers, not pass/fail), only that every request
//! succeeded.
//!
//! Next to the data API it mounts a hand-written baseline (`Baseline`): an
//! actix-web handler doing the same two reads with sea-orm on the same pool
//! (same app, same middleware scope, same token check through the
//! `Principal` extractor, JSON built with serde_json), measured in the same
//! run; the ratio rest/baseline is printed (the goal: ≥ 0.85× the
//! requests/s, p99 ≤ 1.2×).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::{HttpResponse, web};
use goforward_core::{
    Context, Plugin, Principal,
    sea_orm::{ConnectionTrait, DbBackend, QueryResult},
    sea_query::{Alias, Expr, ExprTrait, Order, Query},
    testing::{TestApp, postgres_url_or_skip},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The hand-written baseline: `GET /baseline/items/{id}` and
/// `GET /baseline/items?qty_gte=N` (20 rows ordered by id), the queries
/// `?id=eq.N` and the 20-row list of the data API run.
struct Baseline;

#[async_trait::async_trait]
impl Plugin for Baseline {
    fn name(&self) -> &str {
        "baseline"
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        cfg.service(
            ctx.api_scope("/baseline", "rest", goforward_rest::PostgrestErrorFormat)
                .route("/items/{id}", web::get().to(baseline_by_id))
                .route("/items", web::get().to(baseline_list)),
        );
    }
}

fn item_json(row: &QueryResult, backend: DbBackend, full: bool) -> Value {
    let id: i64 = row.try_get("", "id").unwrap();
    let name: String = row.try_get("", "name").unwrap();
    let qty: Option<i32> = row.try_get("", "qty").unwrap();
    if !full {
        return json!({ "id": id, "name": name, "qty": qty });
    }
    let price: Option<f64> = row.try_get("", "price").unwrap();
    let active: Option<bool> = row.try_get("", "active").unwrap();
    let data: Option<Value> = match backend {
        DbBackend::Postgres => row.try_get("", "data").unwrap(),
        _ => row
            .try_get::<Option<String>>("", "data")
            .unwrap()
            .and_then(|t| serde_json::from_str(&t).ok()),
    };
    json!({ "id": id, "name": name, "qty": qty, "price": price, "active": active, "data": data })
}

async fn baseline_by_id(
    ctx: web::Data<Context>,
    id: web::Path<i64>,
    _who: Principal,
) -> HttpResponse {
    let db = ctx.db();
    let backend = db.get_database_backend();
    let stmt = Query::select()
        .columns(["id", "name", "qty", "price", "active", "data"].map(Alias::new))
        .from(Alias::new("items"))
        .and_where(Expr::col(Alias::new("id")).eq(id.into_inner()))
        .to_owned();
    let rows = db.query_all_raw(backend.build(&stmt)).await.unwrap();
    let body: Vec<Value> = rows.iter().map(|r| item_json(r, backend, true)).collect();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(serde_json::to_string(&body).unwrap())
}

#[derive(serde::Deserialize)]
struct ListArgs {
    qty_gte: i32,
}

async fn baseline_list(
    ctx: web::Data<Context>,
    args: web::Query<ListArgs>,
    _who: Principal,
) -> HttpResponse {
    let db = ctx.db();
    let backend = db.get_database_backend();
    let stmt = Query::select()
        .columns(["id", "name", "qty"].map(Alias::new))
        .from(Alias::new("items"))
        .and_where(Expr::col(Alias::new("qty")).gte(args.qty_gte))
        .order_by(Alias::new("id"), Order::Asc)
        .limit(20)
        .to_owned();
    let rows = db.query_all_raw(backend.build(&stmt)).await.unwrap();
    let body: Vec<Value> = rows.iter().map(|r| item_json(r, backend, false)).collect();
    HttpResponse::Ok()
        .content_type("application/json")
        .body(serde_json::to_string(&body).unwrap())
}

#[derive(Clone, Copy)]
enum Workload {
    /// `GET /items?id=eq.N`
    ById,
    /// A filtered, ordered list of 20 rows.
    List20,
    /// The same with `Prefer: count=exact`.
    List20Count,
    /// `POST /items` of one row.
    Insert,
    /// The baseline's `GET /baseline/items/N`.
    BaselineById,
    /// The baseline's 20-row list.
    BaselineList20,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::ById => "GET /items?id=eq.N",
            Self::List20 => "GET 20 rows (filtered, ordered)",
            Self::List20Count => "GET 20 rows + count=exact",
            Self::Insert => "POST one row",
            Self::BaselineById => "baseline GET by id",
            Self::BaselineList20 => "baseline GET 20 rows",
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `workload`; returns (requests/s, p99).
async fn run(
    app: &Arc<TestApp>,
    workload: Workload,
    secs: u64,
    concurrency: u64,
    rows: u64,
) -> (f64, Duration) {
    let key = app.service_key();
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let app = Arc::clone(app);
        let key = key.clone();
        let counter = Arc::clone(&counter);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = worker;
            while Instant::now() < deadline {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let (method, path, prefer, body) = match workload {
                    Workload::ById => (
                        Method::GET,
                        format!("/rest/v1/items?id=eq.{}", n % rows + 1),
                        None,
                        None,
                    ),
                    Workload::List20 => (
                        Method::GET,
                        format!(
                            "/rest/v1/items?select=id,name,qty&qty=gte.{}&order=id&limit=20",
                            n % 100
                        ),
                        None,
                        None,
                    ),
                    Workload::List20Count => (
                        Method::GET,
                        format!(
                            "/rest/v1/items?select=id,name,qty&qty=gte.{}&order=id&limit=20",
                            n % 100
                        ),
                        Some("count=exact"),
                        None,
                    ),
                    Workload::BaselineById => (
                        Method::GET,
                        format!("/baseline/items/{}", n % rows + 1),
                        None,
                        None,
                    ),
                    Workload::BaselineList20 => (
                        Method::GET,
                        format!("/baseline/items?qty_gte={}", n % 100),
                        None,
                        None,
                    ),
                    Workload::Insert => {
                        let i = counter.fetch_add(1, Ordering::Relaxed);
                        (
                            Method::POST,
                            "/rest/v1/items".to_owned(),
                            None,
                            Some(json!({"name": format!("bench-{worker}-{i}"), "qty": i % 100})),
                        )
                    }
                };
                let mut req = app
                    .client()
                    .request(method, app.url(&path))
                    .header("apikey", &key)
                    .header("authorization", format!("Bearer {key}"));
                if let Some(p) = prefer {
                    req = req.header("prefer", p);
                }
                if let Some(b) = body {
                    req = req.json(&b);
                }
                let started = Instant::now();
                let res = req.send().await.expect("request");
                let status = res.status();
                let _ = res.bytes().await.expect("body");
                latencies.push(started.elapsed());
                assert!(
                    status == StatusCode::OK
                        || status == StatusCode::PARTIAL_CONTENT
                        || status == StatusCode::CREATED,
                    "{} answered {status}",
                    workload.name()
                );
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("worker"));
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "  {:<34} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} requests)",
        workload.name(),
        all.len() as f64 / secs as f64,
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        all.len()
    );
    (all.len() as f64 / secs as f64, pct(0.99))
}

async fn bench(postgres: bool) {
    let label = if postgres { "PostgreSQL" } else { "SQLite" };
    if postgres && postgres_url_or_skip("bench_throughput").is_none() {
        println!("{label}: skipped (GOFORWARD_TEST_DATABASE_URL not set)");
        return;
    }
    // `GOFORWARD_BENCH_REST_TIMEOUT_MS` overrides `rest.statement_timeout_ms`
    // (0: off), `GOFORWARD_BENCH_DB_TIMEOUT_MS` core's
    // `database.statement_timeout_ms` (PostgreSQL reads skip their
    // transaction when it is at or below the REST limit).
    let mut rest = common::rest();
    if let Ok(ms) = std::env::var("GOFORWARD_BENCH_REST_TIMEOUT_MS") {
        let ms: u64 = ms.parse().expect("milliseconds");
        rest = rest.statement_timeout(Some(Duration::from_millis(ms)));
    }
    let db_timeout = std::env::var("GOFORWARD_BENCH_DB_TIMEOUT_MS")
        .ok()
        .map(|ms| ms.parse::<u64>().expect("milliseconds"));
    // `GOFORWARD_BENCH_SQLITE_FILE=1`: SQLite in a temporary file (core's
    // pool of several connections; writes on their own connection) instead
    // of memory (one connection for everything).
    let file = (!postgres && std::env::var("GOFORWARD_BENCH_SQLITE_FILE").is_ok_and(|v| v == "1"))
        .then(|| std::env::temp_dir().join(format!("gf-rest-bench-{}.db", std::process::id())));
    let url = file
        .as_ref()
        .map(|path| format!("sqlite://{}?mode=rwc", path.display()));
    let app = TestApp::builder()
        .postgres(postgres)
        .config(move |c| {
            if let Some(ms) = db_timeout {
                c.database.statement_timeout_ms = ms;
            }
            if let Some(url) = url {
                c.database.url = Some(url);
            }
        })
        .plugin(common::Fixture)
        .plugin(rest)
        .plugin(Baseline)
        .start()
        .await
        .expect("app starts");
    let app = Arc::new(app);
    let rows = 1000u64;
    let batch: Vec<_> = (0..rows)
        .map(|i| json!({"name": format!("seed-{i}"), "qty": i % 100, "price": i as f64 / 4.0}))
        .collect();
    common::seed(&app, "items", json!(batch)).await;
    let secs = env_u64("GOFORWARD_BENCH_SECS", 3);
    let concurrency = env_u64("GOFORWARD_BENCH_CONCURRENCY", 32);
    let label = if file.is_some() {
        "SQLite (file)"
    } else {
        label
    };
    println!("{label} ({concurrency} in flight, {secs} s each, one actix worker):");
    // Same baseline check of the answers: the same rows as the data API.
    let key = app.service_key();
    for (rest, baseline) in [
        ("/rest/v1/items?id=eq.7", "/baseline/items/7"),
        (
            "/rest/v1/items?select=id,name,qty&qty=gte.42&order=id&limit=20",
            "/baseline/items?qty_gte=42",
        ),
    ] {
        let mut answers = Vec::new();
        for path in [rest, baseline] {
            let res = app
                .client()
                .get(app.url(path))
                .header("apikey", &key)
                .header("authorization", format!("Bearer {key}"))
                .send()
                .await
                .unwrap();
            answers.push(res.json::<Value>().await.unwrap());
        }
        assert_eq!(answers[0], answers[1], "baseline answers as the data API");
    }
    // The data API and the baseline alternate in `GOFORWARD_BENCH_ROUNDS`
    // rounds (default 3) so load from other processes on a shared box hits
    // both alike; the ratio quoted is the median of the per-round ratios.
    let rounds = Ord::max(env_u64("GOFORWARD_BENCH_ROUNDS", 3), 1);
    for (rest, baseline) in [
        (Workload::ById, Workload::BaselineById),
        (Workload::List20, Workload::BaselineList20),
    ] {
        let mut rps = Vec::new();
        let mut p99 = Vec::new();
        for _ in 0..rounds {
            let (r, rp) = run(&app, rest, secs, concurrency, rows).await;
            let (b, bp) = run(&app, baseline, secs, concurrency, rows).await;
            rps.push(r / b);
            p99.push(rp.as_secs_f64() / bp.as_secs_f64().max(1e-9));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "  {:<34} {:>9.2}x req/s   {:>6.2}x p99   (median of {rounds} rounds; goal >= 0.85x, <= 1.2x)",
            format!("{} / baseline", rest.name()),
            median(&mut rps),
            median(&mut p99),
        );
    }
    for w in [Workload::List20Count, Workload::Insert] {
        run(&app, w, secs, concurrency, rows).await;
    }
    match Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => println!("(app still referenced; not stopped)"),
    }
    if let Some(path) = file {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it briefly.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    bench(false).await;
    bench(true).await;
}
