//! Request throughput of the data API over real HTTP, criterion-free:
//! `cargo bench -p goforward-rest --bench throughput`.
//!
//! Runs on SQLite (file-less, in memory) and, when
//! `GOFORWARD_TEST_DATABASE_URL` is set, on PostgreSQL. Each workload runs
//! for `GOFORWARD_BENCH_SECS` seconds (default 3) with
//! `GOFORWARD_BENCH_CONCURRENCY` requests in flight (default 32), the load
//! generator in the same process (one actix worker serves, as `TestApp`
//! does). It prints requests per second and p50/p99 latency; it asserts
//! nothing about time (numbers, not pass/fail), only that every request
//! succeeded.
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

use goforward_core::testing::TestApp;
use reqwest::{Method, StatusCode};
use serde_json::json;

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
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::ById => "GET /items?id=eq.N",
            Self::List20 => "GET 20 rows (filtered, ordered)",
            Self::List20Count => "GET 20 rows + count=exact",
            Self::Insert => "POST one row",
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(app: &Arc<TestApp>, workload: Workload, secs: u64, concurrency: u64, rows: u64) {
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
}

async fn bench(postgres: bool) {
    let label = if postgres { "PostgreSQL" } else { "SQLite" };
    let Some(app) = common::start(postgres, "bench_throughput").await else {
        println!("{label}: skipped (GOFORWARD_TEST_DATABASE_URL not set)");
        return;
    };
    let app = Arc::new(app);
    let rows = 1000u64;
    let batch: Vec<_> = (0..rows)
        .map(|i| json!({"name": format!("seed-{i}"), "qty": i % 100, "price": i as f64 / 4.0}))
        .collect();
    common::seed(&app, "items", json!(batch)).await;
    let secs = env_u64("GOFORWARD_BENCH_SECS", 3);
    let concurrency = env_u64("GOFORWARD_BENCH_CONCURRENCY", 32);
    println!("{label} ({concurrency} in flight, {secs} s each, one actix worker):");
    for w in [
        Workload::ById,
        Workload::List20,
        Workload::List20Count,
        Workload::Insert,
    ] {
        run(&app, w, secs, concurrency, rows).await;
    }
    match Arc::try_unwrap(app) {
        Ok(app) => app.stop().await,
        Err(_) => println!("(app still referenced; not stopped)"),
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
