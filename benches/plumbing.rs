//! Plumbing load generator: what GoForward's per-request plumbing (request
//! id + tracing span, CORS, security headers, metrics, rate-limit check,
//! `apikey` + bearer JWT verification) costs next to a bare actix-web handler.
//!
//! One process, one run, four targets measured one after the other:
//!
//! 1. a bare actix-web server (1 worker) answering `{"status":"ok"}` — the
//!    baseline of GoForward's `/health`;
//! 2. the same bare server sent the no-op's exact request (its `apikey` and
//!    `Authorization` headers, which the bare handler ignores) — the baseline
//!    of the no-op, so that what actix spends reading the longer request is
//!    not counted as plumbing;
//! 3. GoForward's `/health` (test harness, 1 worker, SQLite in memory, rate limit off);
//! 4. an authenticated no-op route `/bench/noop` behind `ctx.plumbing("bench")`,
//!    called with an anon `apikey` and a user's bearer token.
//!
//! The load generator is a closed loop of keep-alive HTTP/1.1 connections
//! written on raw `tokio::net::TcpStream`s (one request in flight per
//! connection, responses framed by `Content-Length`), so the client spends
//! as little CPU as possible and the figures describe the servers.
//!
//! Figures, never pass/fail: see `benches/README.md` for how to read them.
//! `cargo bench --bench plumbing` runs it; without `--bench` in its arguments
//! (`cargo test --all-targets`) it only checks the wiring in a fraction of a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stdout)]

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use goforward_core::{Context, Plugin, Principal, testing::TestApp};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Thread name of the load generator's runtime (to tell its CPU time apart).
const CLIENT_THREAD: &str = "bench-client";
/// Thread name prefix of actix-server's workers ("actix-server worker N", cut by
/// Linux to 15 bytes; the acceptor is "actix-server ac…").
const SERVER_THREAD: &str = "actix-server wo";
/// The throughput goal of the foundation issue: plumbing costs < 10 %.
const GOAL_COST: f64 = 0.10;

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    let client_core = settings.pin.then_some(core_affinity::CoreId { id: 1 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.client_threads)
        .thread_name(CLIENT_THREAD)
        .on_thread_start(move || {
            if let Some(core) = client_core {
                core_affinity::set_for_current(core);
            }
        })
        .enable_all()
        .build()?;
    runtime.block_on(run(settings))
}

/// Knobs, from the environment (`BENCH_*`); a smoke run ignores them.
#[derive(Debug, Clone)]
struct Settings {
    /// `cargo test` runs a `harness = false` bench without `--bench`: only check the wiring.
    smoke: bool,
    warmup: Duration,
    measure: Duration,
    connections: usize,
    client_threads: usize,
    /// Servers on CPU 0, the load generator on CPU 1 (`BENCH_PIN=0` to let
    /// the scheduler place them): without it, whether the two happen to share
    /// a CPU moves req/s by ±30 % from run to run.
    pin: bool,
    output: Option<PathBuf>,
    /// Measure only targets whose name contains one of these (`BENCH_TARGETS=noop`,
    /// e.g. to profile one path under callgrind); empty measures all.
    only: Vec<String>,
    /// Rounds over all targets (`BENCH_ROUNDS`): measuring bare, GoForward,
    /// bare, GoForward… spreads slow changes in background load over every
    /// target instead of biasing whichever ran during them.
    rounds: usize,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let smoke = !std::env::args().any(|arg| arg == "--bench");
        if smoke {
            return Ok(Self {
                smoke,
                warmup: Duration::from_millis(50),
                measure: Duration::from_millis(200),
                connections: 4,
                client_threads: 1,
                pin: false,
                output: None,
                only: Vec::new(),
                rounds: 1,
            });
        }
        let secs = |name: &str, default: f64| -> Result<Duration> {
            let value = env_or(name, default)?;
            Duration::try_from_secs_f64(value).map_err(|e| format!("{name}: {e}").into())
        };
        let output = match std::env::var("BENCH_OUTPUT") {
            Ok(path) if path.is_empty() || path == "-" => None,
            Ok(path) => Some(PathBuf::from(path)),
            Err(_) => Some(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results/plumbing.json"),
            ),
        };
        Ok(Self {
            smoke,
            warmup: secs("BENCH_WARMUP_SECONDS", 3.0)?,
            measure: secs("BENCH_SECONDS", 10.0)?,
            connections: env_or("BENCH_CONNECTIONS", 32usize)?.max(1),
            client_threads: env_or("BENCH_CLIENT_THREADS", 1usize)?.max(1),
            pin: env_or("BENCH_PIN", 1u8)? != 0 && cpus() >= 2,
            output,
            rounds: env_or("BENCH_ROUNDS", 3usize)?.max(1),
            only: std::env::var("BENCH_TARGETS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse()
            .map_err(|e| format!("{name}={value}: {e}").into()),
        _ => Ok(default),
    }
}

/// The authenticated no-op: a plugin scope with the full plumbing whose
/// handler extracts the [`Principal`] (verifying `apikey` and bearer JWT)
/// and refuses anyone who is not a signed-in user.
struct BenchPlugin;

#[async_trait::async_trait]
impl Plugin for BenchPlugin {
    fn name(&self) -> &str {
        "bench"
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        cfg.service(web::scope("/bench").wrap(ctx.plumbing("bench")).route(
            "/noop",
            web::get().to(|p: Principal| async move {
                match p.user_id {
                    Some(_) => HttpResponse::Ok().json(json!({ "status": "ok" })),
                    None => HttpResponse::Unauthorized()
                        .json(json!({ "code": "bench.unauthenticated" })),
                }
            }),
        ));
    }
}

/// One thing to measure: where, and the exact bytes of its request.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    path: &'static str,
    request: Arc<[u8]>,
    /// Name of the target this one is compared with (its own for a baseline).
    baseline: &'static str,
}

impl Target {
    fn new(
        name: &'static str,
        addr: SocketAddr,
        path: &'static str,
        headers: &[(&str, String)],
        baseline: &'static str,
    ) -> Self {
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: goforward-bench\r\nAccept: */*\r\n"
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        Self {
            name,
            addr,
            path,
            request: request.into_bytes().into(),
            baseline,
        }
    }
}

async fn run(settings: Settings) -> Result<()> {
    // Threads inherit their creator's affinity: every server thread started
    // from here on (acceptors, actix workers) runs on CPU 0.
    if settings.pin && !core_affinity::set_for_current(core_affinity::CoreId { id: 0 }) {
        return Err("BENCH_PIN: could not pin the servers to CPU 0".into());
    }
    // (1) The baseline: bare actix-web, one worker, the same JSON body as `/health`.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let bare_addr = listener.local_addr()?;
    let bare = HttpServer::new(|| {
        App::new().route(
            "/health",
            web::get().to(|| async { HttpResponse::Ok().json(json!({ "status": "ok" })) }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let bare_handle = bare.handle();
    tokio::spawn(bare);

    // (2) GoForward through the test harness, plus the authenticated no-op.
    let app = TestApp::builder().plugin(BenchPlugin).start().await?;
    let gf_addr: SocketAddr = app.base_url.trim_start_matches("http://").parse()?;
    let auth = [
        ("apikey", app.anon_key()),
        (
            "Authorization",
            format!("Bearer {}", app.user_token("bench-user")),
        ),
    ];

    let targets = [
        Target::new("bare actix /health", bare_addr, "/health", &[], BARE),
        Target::new(BARE_WITH_AUTH, bare_addr, "/health", &auth, BARE_WITH_AUTH),
        Target::new("goforward /health", gf_addr, "/health", &[], BARE),
        Target::new(
            "goforward /bench/noop (apikey+JWT)",
            gf_addr,
            "/bench/noop",
            &auth,
            BARE_WITH_AUTH,
        ),
    ];

    // Every target must answer 200 before it is measured (a benchmark of 401s proves nothing),
    // and the no-op must refuse a caller without a user token (it really is authenticated).
    let mut response_bytes = Vec::new();
    for target in &targets {
        let (status, bytes) = probe(target.addr, &target.request).await?;
        if status != 200 {
            return Err(format!("{} answered {status}, expected 200", target.name).into());
        }
        response_bytes.push(bytes);
    }
    let anon_only = Target::new("anon", gf_addr, "/bench/noop", &auth[..1], BARE);
    let (status, _) = probe(anon_only.addr, &anon_only.request).await?;
    if status != 401 {
        return Err(
            format!("/bench/noop with only an anon key answered {status}, expected 401").into(),
        );
    }

    print_header(&settings);
    let selected: Vec<(&Target, usize)> = targets
        .iter()
        .zip(response_bytes)
        .filter(|(target, _)| {
            settings.only.is_empty() || settings.only.iter().any(|n| target.name.contains(n))
        })
        .collect();
    let mut rounds = Vec::with_capacity(settings.rounds);
    for _ in 0..settings.rounds {
        let mut round = Vec::with_capacity(selected.len());
        for (target, bytes) in &selected {
            let result = measure(target, &settings, *bytes).await?;
            if settings.smoke && result.requests == 0 {
                return Err(format!("{}: no request completed", target.name).into());
            }
            round.push(result);
        }
        rounds.push(round);
    }
    let results = merge_rounds(&rounds);

    app.stop().await;
    bare_handle.stop(true).await;

    if settings.smoke {
        println!("smoke run (no `--bench` argument): wiring checked, figures not meaningful.");
        println!("Measure with `cargo bench --bench plumbing` or `benches/run.sh`.");
        return Ok(());
    }
    print_table(&results);
    print_round_ratios(&rounds);
    if let Some(path) = &settings.output {
        let report = report_json(&settings, &results);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
        println!("\nfigures written to {}", path.display());
    }
    Ok(())
}

/// A keep-alive HTTP/1.1 connection that reads `Content-Length`-framed responses.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; 4096],
            filled: 0,
        })
    }

    /// Sends `request` and reads one whole response: `(status, response length in bytes)`.
    async fn call(&mut self, request: &[u8]) -> Result<(u16, usize)> {
        self.stream.write_all(request).await?;
        loop {
            if let Some((status, len)) = parse_response(&self.buf[..self.filled])? {
                while self.filled < len {
                    self.fill().await?;
                }
                self.buf.copy_within(len..self.filled, 0);
                self.filled -= len;
                return Ok((status, len));
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<()> {
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

/// `Some((status, total length))` once the head is complete; the body may still be pending.
fn parse_response(buf: &[u8]) -> Result<Option<(u16, usize)>> {
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
    Ok(Some((status, head_end + 4 + content_length)))
}

/// Each target's rounds as one measurement: requests, errors, seconds and
/// CPU summed, latencies pooled.
fn merge_rounds(rounds: &[Vec<Measured>]) -> Vec<Measured> {
    let Some(first) = rounds.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            let runs: Vec<&Measured> = rounds.iter().filter_map(|round| round.get(i)).collect();
            let mut latencies: Vec<u64> = runs
                .iter()
                .flat_map(|r| r.latencies.iter().copied())
                .collect();
            latencies.sort_unstable();
            let cpu =
                runs.iter()
                    .map(|r| r.cpu.clone())
                    .try_fold(CpuDelta::default(), |sum, cpu| {
                        cpu.map(|c| CpuDelta {
                            server: sum.server + c.server,
                            client: sum.client + c.client,
                            other: sum.other + c.other,
                        })
                    });
            Measured {
                name: runs[0].name,
                baseline: runs[0].baseline,
                path: runs[0].path,
                requests: runs.iter().map(|r| r.requests).sum(),
                errors: runs.iter().map(|r| r.errors).sum(),
                seconds: runs.iter().map(|r| r.seconds).sum(),
                response_bytes: runs[0].response_bytes,
                latencies,
                cpu,
            }
        })
        .collect()
}

/// The throughput ratio of every round, to show how steady the machine was.
fn print_round_ratios(rounds: &[Vec<Measured>]) {
    if rounds.len() < 2 {
        return;
    }
    println!();
    println!("×req/s per round (the spread shows how steady the machine was):");
    let Some(first) = rounds.first() else { return };
    for (i, target) in first.iter().enumerate() {
        if target.name == target.baseline {
            continue;
        }
        let ratios: Vec<String> = rounds
            .iter()
            .filter_map(|round| {
                let measured = round.get(i)?;
                let base = baseline_of(measured, round)?;
                Some(format!("{:.3}", ratio(measured.rps(), base.rps())))
            })
            .collect();
        println!("  {:<36} {}", target.name, ratios.join("  "));
    }
}

/// The measurement `measured` is compared with, when it was measured.
fn baseline_of<'a>(measured: &Measured, results: &'a [Measured]) -> Option<&'a Measured> {
    results.iter().find(|r| r.name == measured.baseline)
}

/// One request on a fresh connection.
async fn probe(addr: SocketAddr, request: &[u8]) -> Result<(u16, usize)> {
    Conn::open(addr).await?.call(request).await
}

/// The bare actix baseline, and the same sent the no-op's headers.
const BARE: &str = "bare actix /health";
const BARE_WITH_AUTH: &str = "bare actix /health (apikey+JWT sent)";

#[derive(Debug)]
struct Measured {
    name: &'static str,
    /// The target this one is compared with.
    baseline: &'static str,
    path: &'static str,
    requests: usize,
    errors: usize,
    seconds: f64,
    response_bytes: usize,
    /// Latencies in nanoseconds, sorted.
    latencies: Vec<u64>,
    /// CPU seconds per thread kind over the measured window (Linux only).
    cpu: Option<CpuDelta>,
}

impl Measured {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    fn percentile_us(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank =
            ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1] as f64 / 1_000.0
    }

    fn mean_us(&self) -> f64 {
        let sum: u64 = self.latencies.iter().sum();
        sum as f64 / self.latencies.len().max(1) as f64 / 1_000.0
    }

    /// Server worker CPU time per request, in microseconds.
    fn server_cpu_us_per_request(&self) -> Option<f64> {
        let cpu = self.cpu.as_ref()?;
        (self.requests > 0).then(|| cpu.server * 1e6 / self.requests as f64)
    }
}

/// Drives `settings.connections` keep-alive connections against `target` for
/// warm-up + measured time; only requests sent inside the measured window count.
async fn measure(target: &Target, settings: &Settings, response_bytes: usize) -> Result<Measured> {
    let start = Instant::now();
    let measure_from = start + settings.warmup;
    let until = measure_from + settings.measure;
    let mut tasks = Vec::with_capacity(settings.connections);
    for _ in 0..settings.connections {
        let request = target.request.clone();
        let addr = target.addr;
        tasks.push(tokio::spawn(async move {
            connection_loop(addr, &request, measure_from, until).await
        }));
    }

    // CPU accounting over exactly the measured window.
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu_before = thread_cpu();
    tokio::time::sleep_until(until.into()).await;
    let cpu_after = thread_cpu();

    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (mut lat, errs) = task.await?;
        latencies.append(&mut lat);
        errors += errs;
    }
    latencies.sort_unstable();
    Ok(Measured {
        name: target.name,
        baseline: target.baseline,
        path: target.path,
        requests: latencies.len(),
        errors,
        seconds: settings.measure.as_secs_f64(),
        response_bytes,
        latencies,
        cpu: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.minus(&before)),
    })
}

/// One closed-loop connection: `(latencies of 200 answers sent in the window, errors)`.
/// A failed connection (or a non-200 answer) counts as an error and is reopened.
async fn connection_loop(
    addr: SocketAddr,
    request: &[u8],
    measure_from: Instant,
    until: Instant,
) -> (Vec<u64>, usize) {
    let mut latencies = Vec::with_capacity(64 * 1024);
    let mut errors = 0;
    let mut conn = None;
    loop {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        let counted = sent >= measure_from;
        if conn.is_none() {
            match Conn::open(addr).await {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    errors += usize::from(counted);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match c.call(request).await {
            Ok((200, _)) if counted => latencies.push(sent.elapsed().as_nanos() as u64),
            Ok((200, _)) => {}
            Ok(_) => errors += usize::from(counted),
            Err(_) => {
                errors += usize::from(counted);
                conn = None;
            }
        }
    }
    (latencies, errors)
}

/// CPU seconds consumed by the threads of this process, grouped by role.
#[derive(Debug, Clone, Default)]
struct CpuDelta {
    server: f64,
    client: f64,
    other: f64,
}

impl CpuDelta {
    fn minus(&self, before: &Self) -> Self {
        Self {
            server: self.server - before.server,
            client: self.client - before.client,
            other: self.other - before.other,
        }
    }
}

/// Per-thread CPU time from `/proc/self/task/*/stat` (utime + stime, USER_HZ = 100):
/// 10 ms resolution, plenty over a window of seconds. `None` off Linux.
fn thread_cpu() -> Option<CpuDelta> {
    const USER_HZ: f64 = 100.0;
    let mut totals = CpuDelta::default();
    let mut by_thread: HashMap<String, f64> = HashMap::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // `pid (comm) state ...`: comm may hold spaces, so split after the last ')'.
        let Some((left, right)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = left
            .split_once('(')
            .map(|(_, n)| n.to_owned())
            .unwrap_or_default();
        let fields: Vec<&str> = right.split_whitespace().collect();
        // After ')' field 0 is `state`; utime and stime are stat fields 14 and 15.
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        *by_thread.entry(name).or_default() += (ticks(11) + ticks(12)) / USER_HZ;
    }
    for (name, secs) in by_thread {
        if name.starts_with(SERVER_THREAD) {
            totals.server += secs;
        } else if name.starts_with(CLIENT_THREAD) {
            totals.client += secs;
        } else {
            totals.other += secs;
        }
    }
    Some(totals)
}

fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn print_header(settings: &Settings) {
    println!("GoForward plumbing bench");
    println!(
        "machine: {} logical CPU(s) shared by the load generator ({} thread(s)) and the servers (1 actix worker each);",
        cpus(),
        settings.client_threads
    );
    println!(
        "         absolute figures depend on that sharing and on whatever else runs: read the ratios."
    );
    if settings.pin {
        println!("pinned: servers on CPU 0, load generator on CPU 1 (BENCH_PIN=0 to unpin)");
    }
    if let Some(load) = loadavg() {
        println!("load average at start: {load}");
    }
    println!(
        "load: {} keep-alive connections, 1 request in flight each; {:.1} s warm-up + {:.1} s measured per target",
        settings.connections,
        settings.warmup.as_secs_f64(),
        settings.measure.as_secs_f64()
    );
    if cfg!(debug_assertions) {
        println!("WARNING: debug build — figures are not representative (use `cargo bench`).");
    }
    println!();
}

fn ratio(value: f64, base: f64) -> f64 {
    if base > 0.0 { value / base } else { f64::NAN }
}

fn print_table(results: &[Measured]) {
    println!(
        "{:<36} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8} {:>11} {:>8} {:>8} {:>6}",
        "target",
        "req/s",
        "p50 µs",
        "p99 µs",
        "max µs",
        "bytes",
        "errors",
        "srv µs/req",
        "×req/s",
        "×p99",
        "×cpu"
    );
    for r in results {
        let cpu = r.server_cpu_us_per_request();
        let (base_rps, base_p99, base_cpu) =
            baseline_of(r, results).map_or((f64::NAN, f64::NAN, None), |base| {
                (
                    base.rps(),
                    base.percentile_us(0.99),
                    base.server_cpu_us_per_request(),
                )
            });
        println!(
            "{:<36} {:>10.0} {:>9.1} {:>9.1} {:>9.0} {:>7} {:>8} {:>11} {:>8.3} {:>8.2} {:>6}",
            r.name,
            r.rps(),
            r.percentile_us(0.50),
            r.percentile_us(0.99),
            r.percentile_us(1.0),
            r.response_bytes,
            r.errors,
            cpu.map_or("n/a".to_owned(), |c| format!("{c:.1}")),
            ratio(r.rps(), base_rps),
            ratio(r.percentile_us(0.99), base_p99),
            cpu.zip(base_cpu)
                .map_or("n/a".to_owned(), |(c, b)| format!("{:.2}", ratio(c, b))),
        );
    }
    println!();
    println!(
        "×req/s = throughput / its bare actix baseline's (goal ≥ {:.2}: plumbing costs < {:.0} %);",
        1.0 - GOAL_COST,
        GOAL_COST * 100.0
    );
    println!(
        "×p99 and ×cpu = this target's p99 and server CPU per request / the bare actix ones (1.00 = same)."
    );
    println!(
        "the no-op's baseline is bare actix sent the same request (headers it ignores); \
         next to the header-less one, the extra request bytes count too."
    );
    for r in results.iter().filter(|r| r.name != r.baseline) {
        let Some(base) = baseline_of(r, results) else {
            continue;
        };
        let cost = 1.0 - ratio(r.rps(), base.rps());
        let verdict = if cost < GOAL_COST { "within" } else { "over" };
        println!(
            "plumbing cost of {:<36} {:>6.1} % of {} ({verdict} the {:.0} % goal)",
            r.name,
            cost * 100.0,
            base.name,
            GOAL_COST * 100.0
        );
        if let Some(bare) = results
            .iter()
            .find(|b| b.name == BARE && b.name != base.name)
        {
            println!(
                "  (next to {}: {:.1} %)",
                bare.name,
                (1.0 - ratio(r.rps(), bare.rps())) * 100.0
            );
        }
    }
    println!();
    println!(
        "CPU seconds over each measured window (server worker / load generator / other threads):"
    );
    for r in results {
        if let Some(cpu) = &r.cpu {
            println!(
                "  {:<36} {:>5.2} / {:>5.2} / {:>5.2}  (server busy {:>3.0} % of one core)",
                r.name,
                cpu.server,
                cpu.client,
                cpu.other,
                cpu.server / r.seconds * 100.0
            );
        }
    }
}

fn report_json(settings: &Settings, results: &[Measured]) -> Value {
    let finite = |x: f64| {
        if x.is_finite() {
            json!((x * 1000.0).round() / 1000.0)
        } else {
            Value::Null
        }
    };
    let targets: Vec<Value> = results
        .iter()
        .map(|r| {
            let cpu = r.server_cpu_us_per_request();
            let base = baseline_of(r, results);
            let base_rps = base.map_or(f64::NAN, Measured::rps);
            let base_p99 = base.map_or(f64::NAN, |b| b.percentile_us(0.99));
            let base_cpu = base.and_then(Measured::server_cpu_us_per_request);
            json!({
                "name": r.name,
                "baseline": r.baseline,
                "path": r.path,
                "requests": r.requests,
                "errors": r.errors,
                "seconds": r.seconds,
                "response_bytes": r.response_bytes,
                "requests_per_second": finite(r.rps()),
                "latency_us": {
                    "mean": finite(r.mean_us()),
                    "p50": finite(r.percentile_us(0.50)),
                    "p90": finite(r.percentile_us(0.90)),
                    "p99": finite(r.percentile_us(0.99)),
                    "max": finite(r.percentile_us(1.0)),
                },
                "cpu_seconds": r.cpu.as_ref().map(|c| json!({
                    "server_worker": finite(c.server),
                    "load_generator": finite(c.client),
                    "other": finite(c.other),
                })),
                "server_cpu_us_per_request": cpu.map(finite),
                "ratio_to_baseline": {
                    "requests_per_second": finite(ratio(r.rps(), base_rps)),
                    "p99": finite(ratio(r.percentile_us(0.99), base_p99)),
                    "server_cpu_per_request": cpu.zip(base_cpu).map(|(c, b)| finite(ratio(c, b))),
                },
                "plumbing_cost": finite(1.0 - ratio(r.rps(), base_rps)),
            })
        })
        .collect();
    json!({
        "bench": "plumbing",
        "recorded_at": chrono::Utc::now().to_rfc3339(),
        "goal": { "max_plumbing_cost": GOAL_COST, "measure": "1 - requests_per_second / bare actix requests_per_second" },
        "machine": {
            "logical_cpus": cpus(),
            "shared": "load generator and servers share these CPUs",
            "load_average_at_end": loadavg(),
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        },
        "settings": {
            "connections": settings.connections,
            "client_threads": settings.client_threads,
            "server_workers": 1,
            "warmup_seconds": settings.warmup.as_secs_f64(),
            "measured_seconds": settings.measure.as_secs_f64(),
            "debug_build": cfg!(debug_assertions),
        },
        "baselines": "each target names its own: bare actix /health, or bare actix sent the same headers",
        "targets": targets,
    })
}
