//! Request throughput of the data API over real HTTP, criterion-free:
//! `cargo bench -p goforward-rest --bench throughput`.
//!
//! Runs on SQLite in memory (`sqlite`: one connection, what the tests
//! use), on SQLite in a temporary file (`sqlite-file`: core's production
//! settings, a pool of connections) and, when
//! `GOFORWARD_TEST_DATABASE_URL` is set, on PostgreSQL. It prints requests
//! per second, p50/p99 latency and the server's CPU time per request; it
//! asserts nothing about time (numbers, not pass/fail), only that every
//! request succeeded.
//!
//! The load generator is the one of `benches/plumbing.rs`: a closed loop
//! of keep-alive HTTP/1.1 connections on raw `tokio::net::TcpStream`s (one
//! request in flight per connection, responses framed by
//! `Content-Length`), so the client spends as little CPU as it can and the
//! figures describe the server. By default the server (one actix worker,
//! as `TestApp` serves, and SQLite's driver threads) runs on CPU 0 and the
//! generator on CPU 1 (`GOFORWARD_BENCH_PIN=0` lets the scheduler place
//! them). Server CPU per request comes from `/proc/self/task/*/stat`.
//!
//! Next to the data API it mounts a hand-written baseline (`Baseline`): an
//! actix-web handler doing the same two reads with sea-orm on the same pool
//! (same app, same middleware scope, same token check through the
//! `Principal` extractor, JSON built with serde_json), measured in the same
//! run through the same generator; the ratio rest/baseline is printed (the
//! issue's goal: ≥ 0.85× the requests/s, p99 ≤ 1.2×).
//!
//! Knobs: `GOFORWARD_BENCH_SECS` (measured seconds per window, default 3),
//! `GOFORWARD_BENCH_WARMUP_SECS` (default 1), `GOFORWARD_BENCH_CONCURRENCY`
//! (connections, default 32), `GOFORWARD_BENCH_ROUNDS` (default 3),
//! `GOFORWARD_BENCH_BACKENDS` (`sqlite,sqlite-file,postgres` by default),
//! `GOFORWARD_BENCH_WORKLOADS` (names containing one of these, e.g. `id`
//! to profile the by-id pair under callgrind), `GOFORWARD_BENCH_REST_TIMEOUT_MS`
//! and `GOFORWARD_BENCH_DB_TIMEOUT_MS`. Without `--bench` in its arguments
//! (`cargo test --benches`) it only checks the wiring briefly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
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
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Thread name of the load generator's runtime (to tell its CPU time apart).
const CLIENT_THREAD: &str = "bench-client";
/// actix-server's workers ("actix-server worker N", cut to 15 bytes).
const SERVER_THREAD: &str = "actix-server wo";
/// sqlx's SQLite driver threads ("sqlx-sqlite-worker-N").
const SQLITE_THREAD: &str = "sqlx-sqlite";

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

#[derive(Clone, Copy, PartialEq, Eq)]
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

    /// The request path of variant `n` (GET workloads).
    fn path(self, n: u64, rows: u64) -> String {
        match self {
            Self::ById => format!("/rest/v1/items?id=eq.{}", n % rows + 1),
            Self::List20 | Self::List20Count => format!(
                "/rest/v1/items?select=id,name,qty&qty=gte.{}&order=id&limit=20",
                n % 100
            ),
            Self::BaselineById => format!("/baseline/items/{}", n % rows + 1),
            Self::BaselineList20 => format!("/baseline/items?qty_gte={}", n % 100),
            Self::Insert => "/rest/v1/items".to_owned(),
        }
    }
}

/// Knobs, from the environment; a smoke run (no `--bench`) ignores them.
#[derive(Debug, Clone)]
struct Settings {
    smoke: bool,
    warmup: Duration,
    measure: Duration,
    connections: usize,
    rounds: usize,
    pin: bool,
    backends: Vec<String>,
    workloads: Vec<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Settings {
    fn from_env() -> Self {
        let smoke = !std::env::args().any(|a| a == "--bench");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if smoke {
            return Self {
                smoke,
                warmup: Duration::from_millis(50),
                measure: Duration::from_millis(200),
                connections: 4,
                rounds: 1,
                pin: false,
                backends: vec!["sqlite".into(), "sqlite-file".into(), "postgres".into()],
                workloads: Vec::new(),
            };
        }
        Self {
            smoke,
            warmup: Duration::from_secs_f64(env_or("GOFORWARD_BENCH_WARMUP_SECS", 1.0)),
            measure: Duration::from_secs_f64(env_or("GOFORWARD_BENCH_SECS", 3.0)),
            connections: env_or("GOFORWARD_BENCH_CONCURRENCY", 32usize).max(1),
            rounds: env_or("GOFORWARD_BENCH_ROUNDS", 3usize).max(1),
            pin: env_or("GOFORWARD_BENCH_PIN", 1u8) != 0 && cpus >= 2,
            backends: env_list("GOFORWARD_BENCH_BACKENDS", "sqlite,sqlite-file,postgres"),
            workloads: env_list("GOFORWARD_BENCH_WORKLOADS", ""),
        }
    }

    fn wants(&self, w: Workload) -> bool {
        self.workloads.is_empty()
            || self
                .workloads
                .iter()
                .any(|n| w.name().to_lowercase().contains(&n.to_lowercase()))
    }
}

/// What drives one workload: the server, the auth headers, and the
/// pre-built GET requests (one per id / threshold, cycled through).
struct Driver {
    addr: SocketAddr,
    key: String,
    rows: u64,
    gets: HashMap<&'static str, Arc<Vec<Vec<u8>>>>,
    inserted: Arc<AtomicU64>,
}

impl Driver {
    fn head(&self, method: &str, path: &str) -> String {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: goforward-bench\r\nAccept: */*\r\n\
             apikey: {key}\r\nAuthorization: Bearer {key}\r\n",
            self.addr,
            key = self.key
        )
    }

    fn get_requests(&mut self, w: Workload) -> Arc<Vec<Vec<u8>>> {
        let variants = match w {
            Workload::ById | Workload::BaselineById => self.rows,
            _ => 100,
        };
        let built: Vec<Vec<u8>> = (0..variants)
            .map(|n| {
                let mut r = self.head("GET", &w.path(n, self.rows));
                if w == Workload::List20Count {
                    r.push_str("Prefer: count=exact\r\n");
                }
                r.push_str("\r\n");
                r.into_bytes()
            })
            .collect();
        Arc::clone(self.gets.entry(w.name()).or_insert_with(|| Arc::new(built)))
    }

    fn insert_request(head: &str, i: u64) -> Vec<u8> {
        let body = format!(r#"{{"name":"bench-{i}","qty":{}}}"#, i % 100);
        format!(
            "{head}Content-Type: application/json\r\nPrefer: return=minimal\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// A keep-alive HTTP/1.1 connection that reads `Content-Length`-framed responses.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Self, BoxError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; 8192],
            filled: 0,
        })
    }

    /// Sends `request` and reads one whole response: `(status, body)`.
    async fn call(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>), BoxError> {
        self.stream.write_all(request).await?;
        loop {
            if let Some((status, head, len)) = parse_response(&self.buf[..self.filled])? {
                while self.filled < len {
                    self.fill().await?;
                }
                let body = self.buf[head..len].to_vec();
                self.buf.copy_within(len..self.filled, 0);
                self.filled -= len;
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    /// As [`Conn::call`] without keeping the body.
    async fn call_status(&mut self, request: &[u8]) -> Result<u16, BoxError> {
        self.stream.write_all(request).await?;
        loop {
            if let Some((status, _, len)) = parse_response(&self.buf[..self.filled])? {
                while self.filled < len {
                    self.fill().await?;
                }
                self.buf.copy_within(len..self.filled, 0);
                self.filled -= len;
                return Ok(status);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), BoxError> {
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        match self.stream.read(&mut self.buf[self.filled..]).await? {
            0 => Err("connection closed by the server".into()),
            n => {
                self.filled += n;
                Ok(())
            }
        }
    }
}

/// `Some((status, head length, total length))` once the head is complete.
fn parse_response(buf: &[u8]) -> Result<Option<(u16, usize, usize)>, BoxError> {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
    let mut content_length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.trim().parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked responses are not supported by this load generator".into());
            }
        }
    }
    let content_length = content_length.ok_or("response without content-length")?;
    Ok(Some((status, head_end + 4, head_end + 4 + content_length)))
}

/// CPU seconds of this process's threads: (actix workers, SQLite driver
/// threads, load generator). `None` off Linux. 10 ms resolution.
fn thread_cpu() -> Option<(f64, f64, f64)> {
    const USER_HZ: f64 = 100.0;
    let mut out = (0.0, 0.0, 0.0);
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((left, right)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = left.split_once('(').map(|(_, n)| n).unwrap_or_default();
        let fields: Vec<&str> = right.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let secs = (ticks(11) + ticks(12)) / USER_HZ;
        if name.starts_with(SERVER_THREAD) {
            out.0 += secs;
        } else if name.starts_with(SQLITE_THREAD) {
            out.1 += secs;
        } else if name.starts_with(CLIENT_THREAD) {
            out.2 += secs;
        }
    }
    Some(out)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// One measured window.
struct Measured {
    rps: f64,
    p50: Duration,
    p99: Duration,
    requests: usize,
    /// Server CPU per request in µs: (actix worker, SQLite threads).
    cpu_us: Option<(f64, f64)>,
}

/// Drives `settings.connections` keep-alive connections with `workload`
/// for warm-up + measured time; only requests sent inside the measured
/// window count. Panics on any failed request.
async fn measure(driver: &mut Driver, workload: Workload, settings: &Settings) -> Measured {
    let gets = (workload != Workload::Insert).then(|| driver.get_requests(workload));
    let insert_head = driver.head("POST", &workload.path(0, driver.rows));
    let start = Instant::now();
    let measure_from = start + settings.warmup;
    let until = measure_from + settings.measure;
    let mut tasks = Vec::with_capacity(settings.connections);
    for worker in 0..settings.connections as u64 {
        let gets = gets.clone();
        let insert_head = insert_head.clone();
        let inserted = Arc::clone(&driver.inserted);
        let addr = driver.addr;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await.expect("connect");
            let mut latencies = Vec::with_capacity(64 * 1024);
            let mut n = worker;
            loop {
                let sent = Instant::now();
                if sent >= until {
                    break;
                }
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let owned;
                let request: &[u8] = match &gets {
                    Some(gets) => &gets[((n >> 33) % gets.len() as u64) as usize],
                    None => {
                        let i = inserted.fetch_add(1, Ordering::Relaxed);
                        owned = Driver::insert_request(&insert_head, i);
                        &owned
                    }
                };
                let status = conn.call_status(request).await.expect("request");
                assert!(
                    matches!(status, 200 | 201 | 206),
                    "{} answered {status}",
                    workload.name()
                );
                if sent >= measure_from {
                    latencies.push(sent.elapsed());
                }
            }
            latencies
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let before = thread_cpu();
    tokio::time::sleep_until(until.into()).await;
    let after = thread_cpu();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("connection task"));
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let requests = all.len();
    let cpu_us = before.zip(after).and_then(|(b, a)| {
        (requests > 0).then(|| {
            (
                (a.0 - b.0) * 1e6 / requests as f64,
                (a.1 - b.1) * 1e6 / requests as f64,
            )
        })
    });
    let m = Measured {
        rps: requests as f64 / settings.measure.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        requests,
        cpu_us,
    };
    let cpu = m.cpu_us.map_or(String::new(), |(server, sqlite)| {
        if sqlite > 0.0 {
            format!("   cpu/req {server:>5.0} µs + sqlite {sqlite:>4.0} µs")
        } else {
            format!("   cpu/req {server:>5.0} µs")
        }
    });
    println!(
        "  {:<34} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms{cpu}   ({} requests)",
        workload.name(),
        m.rps,
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3,
        m.requests
    );
    m
}

async fn bench(backend: &str, settings: &Settings) {
    if !["sqlite", "sqlite-file", "postgres"].contains(&backend) {
        println!("{backend}: unknown backend (sqlite, sqlite-file or postgres)");
        return;
    }
    let postgres = backend == "postgres";
    let mut label = if postgres { "PostgreSQL" } else { "SQLite" };
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
    // `sqlite-file`: SQLite in a temporary file (core's pool of several
    // connections; writes on their own connection) instead of memory (one
    // connection for everything).
    let file = (backend == "sqlite-file")
        .then(|| std::env::temp_dir().join(format!("gf-rest-bench-{}.db", std::process::id())));
    let url = file
        .as_ref()
        .map(|path| format!("sqlite://{}?mode=rwc", path.display()));
    if file.is_some() {
        label = "SQLite (file)";
    }
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
    let rows = 1000u64;
    let batch: Vec<_> = (0..rows)
        .map(|i| json!({"name": format!("seed-{i}"), "qty": i % 100, "price": i as f64 / 4.0}))
        .collect();
    common::seed(&app, "items", json!(batch)).await;
    let mut driver = Driver {
        addr: app.base_url.trim_start_matches("http://").parse().unwrap(),
        key: app.service_key(),
        rows,
        gets: HashMap::new(),
        inserted: Arc::new(AtomicU64::new(0)),
    };
    println!(
        "{label} ({} connections, {:.1} s warm-up + {:.1} s per window, one actix worker; load average {}):",
        settings.connections,
        settings.warmup.as_secs_f64(),
        settings.measure.as_secs_f64(),
        loadavg()
    );
    // The baseline answers the same JSON as the data API (through the
    // generator's own connection, as measured).
    let mut conn = Conn::open(driver.addr).await.unwrap();
    for (rest, baseline) in [
        (Workload::ById, Workload::BaselineById),
        (Workload::List20, Workload::BaselineList20),
    ] {
        let mut answers = Vec::new();
        for w in [rest, baseline] {
            let request = driver.get_requests(w)[7].clone();
            let (status, body) = conn.call(&request).await.unwrap();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            answers.push(serde_json::from_slice::<Value>(&body).unwrap());
        }
        assert_eq!(answers[0], answers[1], "baseline answers as the data API");
    }
    drop(conn);
    // The data API and the baseline alternate in rounds so load from other
    // processes on a shared box hits both alike; the ratio quoted is the
    // median of the per-round ratios.
    let rounds = settings.rounds;
    for (rest, baseline) in [
        (Workload::ById, Workload::BaselineById),
        (Workload::List20, Workload::BaselineList20),
    ] {
        if !settings.wants(rest) && !settings.wants(baseline) {
            continue;
        }
        let mut rps = Vec::new();
        let mut p99 = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..rounds {
            let r = match settings.wants(rest) {
                true => Some(measure(&mut driver, rest, settings).await),
                false => None,
            };
            let b = match settings.wants(baseline) {
                true => Some(measure(&mut driver, baseline, settings).await),
                false => None,
            };
            if let (Some(r), Some(b)) = (r, b) {
                rps.push(r.rps / b.rps.max(1e-9));
                p99.push(r.p99.as_secs_f64() / b.p99.as_secs_f64().max(1e-9));
                if let (Some(rc), Some(bc)) = (r.cpu_us, b.cpu_us) {
                    cpu.push((rc.0 + rc.1) / (bc.0 + bc.1).max(1e-9));
                }
            }
        }
        if rps.is_empty() {
            continue;
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let cpu_text = if cpu.is_empty() {
            String::new()
        } else {
            format!("   {:>5.2}x server cpu/req", median(&mut cpu))
        };
        println!(
            "  {:<34} {:>9.2}x req/s   {:>6.2}x p99{cpu_text}   (median of {rounds} rounds; goal >= 0.85x, <= 1.2x)",
            format!("{} / baseline", rest.name()),
            median(&mut rps),
            median(&mut p99),
        );
    }
    for w in [Workload::List20Count, Workload::Insert] {
        if settings.wants(w) {
            measure(&mut driver, w, settings).await;
        }
    }
    app.stop().await;
    if let Some(path) = file {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

fn main() {
    // `cargo test --benches` lists and runs harness-free benches: `--list` ends it.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let settings = Settings::from_env();
    let client_core = settings.pin.then_some(core_affinity::CoreId { id: 1 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(CLIENT_THREAD)
        .on_thread_start(move || {
            if let Some(core) = client_core {
                core_affinity::set_for_current(core);
            }
        })
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // Threads inherit their creator's affinity: the actix worker and
        // SQLite's driver threads, started from here, run on CPU 0.
        if settings.pin {
            assert!(
                core_affinity::set_for_current(core_affinity::CoreId { id: 0 }),
                "could not pin the server to CPU 0"
            );
            println!(
                "pinned: server on CPU 0, load generator on CPU 1 (GOFORWARD_BENCH_PIN=0 to unpin)"
            );
        }
        if cfg!(debug_assertions) {
            println!("WARNING: debug build — figures are not representative (use `cargo bench`).");
        }
        for backend in &settings.backends {
            bench(backend, &settings).await;
        }
        if settings.smoke {
            println!("smoke run (no `--bench` argument): wiring checked, figures not meaningful.");
        }
    });
}
