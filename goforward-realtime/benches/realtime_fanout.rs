//! Realtime fan-out load generator: `GF_RT_CONNS` subscribed WebSocket
//! connections (default 2,000), one publisher client sending `GF_RT_MSGS`
//! broadcasts, measured against GoForward's realtime plugin and against a
//! minimal tokio-tungstenite broadcast server, one after the other in the same run;
//! then postgres_changes: `GF_RT_CHANGE_CONNS` (1,000) subscribers under an owner
//! row policy, changes from the bus (as REST writes publish them) and, with
//! `GOFORWARD_TEST_DATABASE_URL`, from PostgreSQL triggers (`GF_RT_PARTS` picks parts).
//!
//! Each server runs in a child process (this same binary, re-executed with
//! `GF_RT_ROLE`), so its RSS is its own (read from `/proc/<pid>/status`
//! before and after the connections are opened) and each side has its own
//! file-descriptor budget. Figures and ratios against the baseline, never
//! pass/fail: see `docs/realtime.md`, section Benchmarks.
//!
//! Knobs (environment): `GF_RT_CONNS`, `GF_RT_MSGS`, `GF_RT_INTERVAL_MS`, `GF_RT_BURST`,
//! `GF_RT_SOURCES`, `GF_RT_BATCH`, `GF_RT_PARTS`, `GF_RT_TARGETS`, `GF_RT_CHANGE_*`,
//! `GF_RT_USERS`, `GF_RT_WRAP`; diagnostics: `GF_RT_DETAIL=1` (per-broadcast latencies),
//! `GF_RT_CLIENT_BUF` (client read buffer, 4096), `GF_RT_LEGACY_CLIENT=1` (the generator
//! before its overhead was cut), `GF_RT_WORKERS=n` (GoForward on n actix workers).
//! Every broadcast run prints each side's CPU seconds per thread over the paced window.
//!
//! `cargo bench -p goforward-realtime --bench realtime_fanout`. Without `--bench`
//! in its arguments (`cargo test --all-targets`) it runs a smoke check of the
//! wiring (20 connections, 3 + 3 broadcasts, 4 + 4 changes) and prints no figures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use goforward_core::access::Policy;
use goforward_core::bus::{ChangeKind, Event, RecordChanged};
use goforward_core::sea_orm::{ConnectionTrait, DbBackend, Statement};
use goforward_core::testing::TestApp;
use goforward_realtime::{Realtime, RealtimeConfig};
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Ws = WebSocketStream<TcpStream>;

const ROLE: &str = "GF_RT_ROLE";

/// How long a subscriber reads in all before giving up (a lost delivery shows as a
/// count below the expected one).
const READ_DEADLINE: Duration = Duration::from_secs(120);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Microseconds since the Unix epoch (one clock for both processes).
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `GF_RT_LEGACY_CLIENT=1`: the broadcast readers as they were before the generator's
/// own overhead was cut (see `measure`).
fn legacy_client() -> bool {
    env("GF_RT_LEGACY_CLIENT", 0) == 1
}

/// `GF_RT_DETAIL=1`: print per-broadcast latencies.
fn detail() -> bool {
    env("GF_RT_DETAIL", 0) == 1
}

/// The `"t":<µs>` stamp of a broadcast or change, whatever wraps it.
fn stamp(text: &str) -> Option<u64> {
    number_after(text, "\"t\":")
}

/// The unsigned integer right after the first `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let at = text.find(key)? + key.len();
    let digits = text.as_bytes()[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit());
    let mut n = 0u64;
    let mut any = false;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

/// CPU seconds (utime + stime) per thread name of process `pid` ("self" for this one),
/// from `/proc/<pid>/task/*/stat` (USER_HZ = 100: 10 ms resolution).
fn thread_cpu(pid: &str) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((left, right)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = left
            .split_once('(')
            .map(|(_, n)| n.to_owned())
            .unwrap_or_default();
        let fields: Vec<&str> = right.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        *by_name.entry(name).or_insert(0.0) += (ticks(11) + ticks(12)) / 100.0;
    }
    by_name
}

/// CPU seconds per thread name.
type ThreadCpu = Vec<(String, f64)>;

/// CPU seconds of a process's threads between two [`thread_cpu`] samples, per name.
fn cpu_delta(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
) -> ThreadCpu {
    after
        .iter()
        .map(|(name, secs)| {
            (
                name.clone(),
                secs - before.get(name).copied().unwrap_or(0.0),
            )
        })
        .filter(|(_, secs)| *secs > 0.0)
        .collect()
}

// ---------------------------------------------------------------------------
// Servers (child processes)
// ---------------------------------------------------------------------------

/// The plugin's defaults with the per-IP and per-user caps, the event rate limit and the
/// idle/lifetime timeouts lifted (every client comes from 127.0.0.x and stays).
fn bench_config() -> RealtimeConfig {
    RealtimeConfig {
        max_connections_per_ip: 1_000_000,
        max_connections_per_user: 1_000_000,
        max_events_per_second: 1_000_000,
        idle_timeout_secs: 3600,
        max_connection_secs: 0,
        ..RealtimeConfig::default()
    }
}

/// GoForward: the realtime plugin on the test harness (one actix worker, SQLite in memory).
async fn serve_goforward() {
    let cfg = bench_config();
    let app = TestApp::builder()
        .plugin(Realtime::new().with_config(cfg))
        .postgres(false)
        .start()
        .await
        .expect("app");
    // `GF_RT_WORKERS=n`: serve the same app from a server of our own with n actix
    // workers (`goforward serve` uses one per core) instead of the harness's one.
    let workers = env("GF_RT_WORKERS", 0);
    let mut base = app.base_url.clone();
    let mut own = None;
    if workers > 0 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        base = format!("http://{}", listener.local_addr().expect("addr"));
        let routes = app.gf.routes();
        let server =
            actix_web::HttpServer::new(move || actix_web::App::new().configure(routes.clone()))
                .workers(workers)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
        own = Some(server.handle());
        tokio::spawn(server);
    }
    println!(
        "READY {}/realtime/v1/websocket?apikey={}&vsn=1.0.0",
        base.replacen("http", "ws", 1),
        app.anon_key()
    );
    wait_for_parent().await;
    if let Some(own) = own {
        own.stop(false).await;
    }
    app.stop().await;
}

/// Table the postgres_changes bench writes to.
const CHANGES_TABLE: &str = "rt_bench";

/// GoForward for postgres_changes: the owner policy `user_id = <caller>` on
/// `rt_bench`, `GF_RT_USERS` user tokens printed after `READY`, then changes made
/// on the parent's orders (stdin lines `PACED <from> <n> <ms>` / `BURST <from> <n>`,
/// each answered `DONE`). SQLite: each change is a `RecordChanged` event on the bus,
/// as a REST write publishes it. `pg`: a plain SQL `INSERT` on PostgreSQL, captured by
/// the plugin's trigger + LISTEN/NOTIFY. Every row carries its index `i`, its owner
/// `user-<i % users>` and `t`, the µs it was produced at.
async fn serve_changes(pg: bool) {
    let app = TestApp::builder()
        .plugin(Realtime::new().with_config(bench_config()))
        .postgres(pg)
        .start()
        .await
        .expect("app");
    if pg {
        app.db()
            .execute_unprepared(
                "CREATE TABLE rt_bench (id bigserial PRIMARY KEY, user_id text NOT NULL, \
                 i bigint NOT NULL, t bigint NOT NULL)",
            )
            .await
            .expect("create table");
    }
    app.gf
        .context()
        .access()
        .policies()
        .set_table(CHANGES_TABLE, Policy::owner("user_id"));
    let users = env("GF_RT_USERS", 2).max(1);
    println!(
        "READY {}/realtime/v1/websocket?apikey={}&vsn=1.0.0",
        app.base_url.replacen("http", "ws", 1),
        app.anon_key()
    );
    for u in 0..users {
        println!("TOKEN {}", app.user_token(&format!("user-{u}")));
    }
    let (tx, mut orders) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let produce = |i: u64| {
        let user = format!("user-{}", i % users as u64);
        let app = &app;
        async move {
            let t = now_us();
            if pg {
                app.db()
                    .execute_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "INSERT INTO rt_bench (user_id, i, t) VALUES ($1, $2, $3)",
                        [user.into(), (i as i64).into(), (t as i64).into()],
                    ))
                    .await
                    .expect("insert");
            } else {
                let change = RecordChanged {
                    schema: "main".into(),
                    table: CHANGES_TABLE.into(),
                    kind: ChangeKind::Insert,
                    record: Some(json!({"id": i + 1, "user_id": user, "i": i, "t": t})),
                    old_record: None,
                    commit_timestamp: chrono::Utc::now(),
                };
                app.gf
                    .context()
                    .bus()
                    .publish(Event::RecordChanged(change))
                    .await
                    .expect("publish");
            }
        }
    };
    while let Some(order) = orders.recv().await {
        let words: Vec<u64> = order
            .split_whitespace()
            .skip(1)
            .filter_map(|w| w.parse().ok())
            .collect();
        match (order.split_whitespace().next(), words.as_slice()) {
            (Some("PACED"), [from, n, ms]) => {
                for i in *from..from + n {
                    produce(i).await;
                    tokio::time::sleep(Duration::from_millis(*ms)).await;
                }
            }
            (Some("BURST"), [from, n]) => {
                for i in *from..from + n {
                    produce(i).await;
                }
            }
            _ => panic!("unknown order {order:?}"),
        }
        println!("DONE");
    }
    app.stop().await;
}

/// The baseline: every text message a connection sends goes to every other connection.
/// `small`: 4 KiB read buffer and no write buffer instead of tungstenite's 128 KiB defaults.
async fn serve_baseline(small: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, _) = broadcast::channel::<Arc<(u64, Utf8Bytes)>>(1024);
    tokio::spawn(async move {
        let mut next_id = 0u64;
        while let Ok((tcp, _)) = listener.accept().await {
            next_id += 1;
            let id = next_id;
            let tx = tx.clone();
            let mut rx = tx.subscribe();
            tokio::spawn(async move {
                let config = small.then(|| {
                    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                        .read_buffer_size(4096)
                        .write_buffer_size(0)
                });
                let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, config).await else {
                    return;
                };
                let (mut w, mut r) = ws.split();
                loop {
                    tokio::select! {
                        msg = rx.recv() => match msg {
                            Ok(m) if m.0 == id => {}
                            Ok(m) => if w.send(Message::Text(m.1.clone())).await.is_err() { break },
                            Err(broadcast::error::RecvError::Lagged(_)) => {}
                            Err(_) => break,
                        },
                        msg = r.next() => match msg {
                            Some(Ok(Message::Text(t))) => { let _ = tx.send(Arc::new((id, t))); }
                            Some(Ok(_)) => {}
                            _ => break,
                        },
                    }
                }
            });
        }
    });
    println!("READY ws://{addr}/");
    wait_for_parent().await;
}

/// Serves until the parent closes our stdin.
async fn wait_for_parent() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
    })
    .await;
}

struct Server {
    child: Child,
    url: String,
    /// The server's stdout, line by line (read by a thread).
    lines: std::sync::mpsc::Receiver<String>,
}

fn spawn_server(role: &str) -> Server {
    let exe = std::env::current_exe().expect("exe");
    // `GF_RT_WRAP=heaptrack` (or `valgrind --tool=massif`, …) runs the servers under a profiler.
    let wrap = std::env::var("GF_RT_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let mut child = command
        .env(ROLE, role)
        .env("RUST_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = lines.recv().expect("ready");
    let url = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("server said {line:?}"))
        .trim()
        .to_owned();
    Server { child, url, lines }
}

impl Server {
    /// The next line the server prints (blocking this runtime thread only).
    fn line(&self) -> String {
        tokio::task::block_in_place(|| self.lines.recv()).expect("server line")
    }

    /// Sends an order on the server's stdin and waits for its `DONE`.
    fn order(&mut self, order: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{order}").expect("order");
        stdin.flush().expect("order");
        let done = self.line();
        assert_eq!(done, "DONE", "server answered {done:?}");
    }

    fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// Load generator
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    GoForward,
    Baseline,
    BaselineSmall,
}

impl Target {
    fn role(self) -> &'static str {
        match self {
            Self::GoForward => "goforward",
            Self::Baseline => "baseline",
            Self::BaselineSmall => "baseline-small",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::GoForward => "goforward-realtime",
            Self::Baseline => "tungstenite (defaults)",
            Self::BaselineSmall => "tungstenite (4 KiB buf)",
        }
    }
}

const JOIN: &str = r#"{"topic":"realtime:bench","event":"phx_join","ref":"1","join_ref":"1","payload":{"config":{"broadcast":{"self":false,"ack":false},"presence":{"enabled":false},"postgres_changes":[],"private":false}}}"#;

/// Opens one subscribed connection from source address 127.0.0.`source` (with one
/// source address, the kernel picks the address and port at connect time).
/// `join`: the `phx_join` to send and whose `ok` reply to wait for (GoForward only).
async fn open(join: Option<&str>, url: &str, source: u8, sources: u8) -> Ws {
    let host = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host");
    let addr: SocketAddr = host.parse().expect("addr");
    let socket = TcpSocket::new_v4().expect("socket");
    if sources > 1 {
        // Ports in TIME_WAIT from an earlier run may be bound again.
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, source)),
                0,
            ))
            .expect("bind source address");
    }
    let tcp = socket.connect(addr).await.expect("connect");
    // The load generator's own read cost is not the server's: tungstenite zero-fills
    // its whole free read buffer (128 KiB by default) before every read.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(env(
            "GF_RT_CLIENT_BUF",
            if legacy_client() { 128 * 1024 } else { 4096 },
        ));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
        .await
        .expect("upgrade");
    if let Some(join) = join {
        ws.send(Message::text(join)).await.expect("join");
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) if t.contains("phx_reply") => {
                    assert!(t.contains("\"ok\""), "join refused: {t}");
                    break;
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended while joining: {other:?}"),
            }
        }
    }
    ws
}

struct Report {
    name: &'static str,
    conns: usize,
    expected: usize,
    deliveries: usize,
    burst_deliveries: usize,
    seconds: f64,
    latencies: Vec<u64>,
    idle_kib: f64,
    busy_kib: f64,
    connect_secs: f64,
    /// CPU seconds per thread name of the server and of this process during the
    /// paced broadcasts (and the settling second after them), and that window's length.
    cpu: (ThreadCpu, ThreadCpu, f64),
}

impl Report {
    fn pct(&self, p: f64) -> f64 {
        self.latencies
            .get(((self.latencies.len().saturating_sub(1)) as f64 * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    }

    /// Deliveries per second during the burst.
    fn rate(&self) -> f64 {
        self.burst_deliveries as f64 / self.seconds.max(1e-9)
    }

    fn print(&self) {
        println!(
            "{:<24} {:>6} {:>9}/{:<9} {:>12.0} {:>8.1} {:>8.1} {:>8.1} {:>10.2} {:>10.2} {:>8.1}",
            self.name,
            self.conns,
            self.deliveries,
            self.expected,
            self.rate(),
            self.pct(0.5),
            self.pct(0.99),
            self.pct(1.0),
            self.idle_kib,
            self.busy_kib,
            self.connect_secs,
        );
    }

    /// Where the CPU went during the paced broadcasts.
    fn print_cpu(&self) {
        let (server, client, secs) = &self.cpu;
        let total = |v: &[(String, f64)]| v.iter().map(|(_, s)| s).sum::<f64>();
        let list = |v: &[(String, f64)]| {
            v.iter()
                .map(|(n, s)| format!("{n} {s:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  {}: CPU s over the {secs:.1} s paced window: server {:.2} ({}), load generator {:.2} ({})",
            self.name,
            total(server),
            list(server),
            total(client),
            list(client),
        );
    }
}

#[derive(Debug, Clone)]
struct Settings {
    smoke: bool,
    conns: usize,
    msgs: usize,
    interval: Duration,
    burst: usize,
    sources: u8,
    batch: usize,
    /// Which parts run: `GF_RT_PARTS`, any of `broadcast,changes,changes-pg`.
    parts: String,
    change_conns: usize,
    change_msgs: usize,
    change_interval: Duration,
    change_burst: usize,
}

impl Settings {
    fn runs(&self, part: &str) -> bool {
        self.parts.split(',').any(|p| p.trim() == part)
    }
}

async fn measure(target: Target, s: &Settings) -> Report {
    let server = spawn_server(target.role());
    let pid = server.child.id();
    // The publisher first (source 127.0.0.1), then settle and take the baseline RSS.
    let join = (target == Target::GoForward).then_some(JOIN);
    let mut publisher = open(join, &server.url, 1, s.sources).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kib(pid);
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(s.conns);
    let mut i = 0usize;
    while i < s.conns {
        let n = s.batch.min(s.conns - i);
        let opens = (i..i + n).map(|k| {
            let url = server.url.clone();
            let source = 1 + (k % usize::from(s.sources)) as u8;
            let sources = s.sources;
            async move { open(join, &url, source, sources).await }
        });
        sockets.extend(futures_util::future::join_all(opens).await);
        i += n;
    }
    let connect_secs = started.elapsed().as_secs_f64();

    let (msgs, burst) = (s.msgs, s.burst);
    // Each reader: latencies of the paced broadcasts, then how many burst
    // broadcasts arrived and when the last one did. Spawned before the settling
    // pause, so each is already waiting on its socket when the first broadcast comes;
    // one deadline for the whole read (not a timer per frame).
    // `GF_RT_LEGACY_CLIENT=1`: the generator as it was before (readers spawned as the
    // first broadcast goes out, a 30 s timer per frame, 128 KiB read buffers), for
    // before/after comparisons.
    let legacy = legacy_client();
    let settle = Duration::from_secs(if s.smoke { 0 } else { 2 });
    if legacy {
        tokio::time::sleep(settle).await;
    }
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(msgs);
                let (mut burst_got, mut last) = (0usize, 0u64);
                let read = async {
                    while lat.len() + burst_got < msgs + burst {
                        let next = if legacy {
                            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                                Ok(next) => next,
                                Err(_) => break,
                            }
                        } else {
                            ws.next().await
                        };
                        match next {
                            Some(Ok(Message::Text(t))) => {
                                if let Some(sent) = stamp(&t) {
                                    let now = now_us();
                                    if lat.len() < msgs {
                                        lat.push(now.saturating_sub(sent));
                                    } else {
                                        burst_got += 1;
                                        last = now;
                                    }
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        }
                    }
                };
                let _ = tokio::time::timeout(READ_DEADLINE, read).await;
                (lat, burst_got, last, ws)
            })
        })
        .collect();
    if !legacy {
        tokio::time::sleep(settle).await;
    }
    let rss1 = rss_kib(pid);
    let text = |i: usize| {
        let payload = json!({"t": now_us(), "i": i});
        match target {
            Target::GoForward => json!({"topic": "realtime:bench", "event": "broadcast",
                "ref": null, "join_ref": "1",
                "payload": {"type": "broadcast", "event": "tick", "payload": payload}})
            .to_string(),
            Target::Baseline | Target::BaselineSmall => payload.to_string(),
        }
    };
    // Latency: paced broadcasts.
    let (srv0, cli0, paced_at) = (
        thread_cpu(&pid.to_string()),
        thread_cpu("self"),
        Instant::now(),
    );
    for i in 0..msgs {
        publisher
            .send(Message::text(text(i)))
            .await
            .expect("publish");
        tokio::time::sleep(s.interval).await;
    }
    // Throughput: a burst, as fast as the publisher's socket takes it, once the
    // paced ones have been delivered.
    tokio::time::sleep(Duration::from_millis(if s.smoke { 100 } else { 1000 })).await;
    let paced_secs = paced_at.elapsed().as_secs_f64();
    let (srv1, cli1) = (thread_cpu(&pid.to_string()), thread_cpu("self"));
    let cpu = (cpu_delta(&srv0, &srv1), cpu_delta(&cli0, &cli1), paced_secs);
    let first = now_us();
    for i in msgs..msgs + burst {
        publisher
            .feed(Message::text(text(i)))
            .await
            .expect("publish");
    }
    publisher.flush().await.expect("publish");
    let mut latencies = Vec::with_capacity(s.conns * msgs);
    let (mut burst_deliveries, mut last) = (0usize, first);
    let mut open_sockets = Vec::with_capacity(s.conns);
    let mut per_msg: Vec<Vec<u64>> = vec![Vec::new(); msgs];
    for r in readers {
        let (lat, got, at, ws) = r.await.expect("reader");
        if detail() {
            for (i, l) in lat.iter().enumerate() {
                per_msg[i].push(*l);
            }
        }
        latencies.extend(lat);
        burst_deliveries += got;
        last = last.max(at);
        open_sockets.push(ws);
    }
    let rss2 = rss_kib(pid);
    if detail() {
        let line: Vec<String> = per_msg
            .iter_mut()
            .map(|l| {
                l.sort_unstable();
                let at = |p: f64| {
                    l.get(((l.len().saturating_sub(1)) as f64 * p) as usize)
                        .copied()
                        .unwrap_or(0)
                        / 1000
                };
                format!("{}/{}/{}", at(0.0), at(0.5), at(1.0))
            })
            .collect();
        println!(
            "  {} per broadcast min/p50/max ms: {}",
            target.name(),
            line.join(" ")
        );
    }
    latencies.sort_unstable();
    drop(open_sockets);
    drop(publisher);
    server.stop();
    let per = |kib: u64| kib.saturating_sub(rss0) as f64 / s.conns.max(1) as f64;
    Report {
        name: target.name(),
        conns: s.conns,
        expected: s.conns * (msgs + burst),
        deliveries: latencies.len() + burst_deliveries,
        burst_deliveries,
        seconds: (last.saturating_sub(first)) as f64 / 1e6,
        latencies,
        idle_kib: per(rss1),
        busy_kib: per(rss2),
        connect_secs,
        cpu,
    }
}

/// The `phx_join` of a postgres_changes subscriber of every change of `rt_bench`.
fn changes_join(token: &str) -> String {
    json!({"topic": "realtime:db", "event": "phx_join", "ref": "1", "join_ref": "1",
        "payload": {"config": {"broadcast": {"self": false, "ack": false},
            "presence": {"enabled": false}, "private": false,
            "postgres_changes": [{"event": "*", "schema": "public", "table": CHANGES_TABLE}]},
            "access_token": token}})
    .to_string()
}

struct ChangesReport {
    name: &'static str,
    conns: usize,
    users: usize,
    expected: usize,
    deliveries: usize,
    burst_changes: usize,
    burst_deliveries: usize,
    /// Rows delivered to a subscriber that is not their owner (must be 0).
    leaked: usize,
    seconds: f64,
    latencies: Vec<u64>,
}

impl ChangesReport {
    fn pct(&self, p: f64) -> f64 {
        self.latencies
            .get(((self.latencies.len().saturating_sub(1)) as f64 * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    }

    fn rate(&self) -> f64 {
        self.burst_deliveries as f64 / self.seconds.max(1e-9)
    }

    /// Row-policy evaluations per second during the burst (every change is
    /// checked against every subscriber's binding).
    fn checks(&self) -> f64 {
        (self.burst_changes * self.conns) as f64 / self.seconds.max(1e-9)
    }

    fn print(&self) {
        println!(
            "{:<28} {:>6} {:>5} {:>9}/{:<9} {:>12.0} {:>12.0} {:>8.1} {:>8.1} {:>8.1} {:>6}",
            self.name,
            self.conns,
            self.users,
            self.deliveries,
            self.expected,
            self.rate(),
            self.checks(),
            self.pct(0.5),
            self.pct(0.99),
            self.pct(1.0),
            self.leaked,
        );
    }
}

/// postgres_changes: `change_conns` subscribers of `rt_bench` with the owner
/// policy, subscriber k holding user `k % users`'s token (so each change reaches
/// 1/users of them); paced changes for latency, then a burst for deliveries/s.
async fn measure_changes(pg: bool, s: &Settings) -> ChangesReport {
    let mut server = spawn_server(if pg { "changes-pg" } else { "changes" });
    let users = env("GF_RT_USERS", 2).max(1);
    let tokens: Vec<String> = (0..users)
        .map(|_| {
            let line = server.line();
            line.strip_prefix("TOKEN ")
                .unwrap_or_else(|| panic!("server said {line:?}"))
                .to_owned()
        })
        .collect();
    let conns = s.change_conns;
    let mut sockets = Vec::with_capacity(conns);
    let mut k = 0usize;
    while k < conns {
        let n = s.batch.min(conns - k);
        let opens = (k..k + n).map(|k| {
            let url = server.url.clone();
            let join = changes_join(&tokens[k % users]);
            let source = 1 + (k % usize::from(s.sources)) as u8;
            let sources = s.sources;
            async move { (k, open(Some(&join), &url, source, sources).await) }
        });
        sockets.extend(futures_util::future::join_all(opens).await);
        k += n;
    }
    let (msgs, burst) = (s.change_msgs, s.change_burst);
    let owned =
        |user: usize, range: std::ops::Range<usize>| range.filter(|i| i % users == user).count();
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|(k, mut ws)| {
            let user = k % users;
            let mine = format!("\"user_id\":\"user-{user}\"");
            let (paced, bursted) = (owned(user, 0..msgs), owned(user, msgs..msgs + burst));
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(paced);
                let (mut burst_got, mut last, mut leaked) = (0usize, 0u64, 0usize);
                let read = async {
                    while lat.len() + burst_got < paced + bursted {
                        match ws.next().await {
                            Some(Ok(Message::Text(t))) if t.contains("\"postgres_changes\"") => {
                                let now = now_us();
                                let (Some(i), Some(sent)) = (number_after(&t, "\"i\":"), stamp(&t))
                                else {
                                    continue;
                                };
                                if !t.contains(&mine) {
                                    leaked += 1;
                                }
                                if (i as usize) < msgs {
                                    lat.push(now.saturating_sub(sent));
                                } else {
                                    burst_got += 1;
                                    last = now;
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        }
                    }
                };
                let _ = tokio::time::timeout(READ_DEADLINE, read).await;
                (lat, burst_got, last, leaked, ws)
            })
        })
        .collect();
    // The first subscriber's join installed the trigger (PostgreSQL); settle.
    tokio::time::sleep(Duration::from_millis(if s.smoke { 100 } else { 1000 })).await;
    server.order(&format!("PACED 0 {msgs} {}", s.change_interval.as_millis()));
    tokio::time::sleep(Duration::from_millis(if s.smoke { 100 } else { 1000 })).await;
    let first = now_us();
    server.order(&format!("BURST {msgs} {burst}"));
    let mut latencies = Vec::new();
    let (mut burst_deliveries, mut last, mut leaked) = (0usize, first, 0usize);
    let mut open_sockets = Vec::with_capacity(conns);
    for r in readers {
        let (lat, got, at, bad, ws) = r.await.expect("reader");
        latencies.extend(lat);
        burst_deliveries += got;
        last = last.max(at);
        leaked += bad;
        open_sockets.push(ws);
    }
    latencies.sort_unstable();
    drop(open_sockets);
    server.stop();
    let expected = (0..conns).map(|k| owned(k % users, 0..msgs + burst)).sum();
    ChangesReport {
        name: if pg {
            "changes (PostgreSQL triggers)"
        } else {
            "changes (bus, as REST)"
        },
        conns,
        users,
        expected,
        deliveries: latencies.len() + burst_deliveries,
        burst_changes: burst,
        burst_deliveries,
        leaked,
        seconds: (last.saturating_sub(first)) as f64 / 1e6,
        latencies,
    }
}

fn main() {
    let role = std::env::var(ROLE).unwrap_or_default();
    if !role.is_empty() {
        // A server child: two runtime threads (the host's two cores).
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        match role.as_str() {
            "goforward" => rt.block_on(serve_goforward()),
            "baseline" => rt.block_on(serve_baseline(false)),
            "baseline-small" => rt.block_on(serve_baseline(true)),
            "changes" => rt.block_on(serve_changes(false)),
            "changes-pg" => rt.block_on(serve_changes(true)),
            other => panic!("unknown {ROLE} {other}"),
        }
        return;
    }
    let smoke = !std::env::args().any(|a| a == "--bench");
    let settings = Settings {
        smoke,
        conns: if smoke { 20 } else { env("GF_RT_CONNS", 2000) },
        msgs: if smoke { 3 } else { env("GF_RT_MSGS", 20) },
        interval: Duration::from_millis(env("GF_RT_INTERVAL_MS", 10) as u64),
        burst: if smoke { 3 } else { env("GF_RT_BURST", 50) },
        sources: env("GF_RT_SOURCES", 1).clamp(1, 254) as u8,
        batch: env("GF_RT_BATCH", 200).max(1),
        // PostgreSQL capture only with a test database configured.
        parts: std::env::var("GF_RT_PARTS").unwrap_or_else(|_| {
            if goforward_core::testing::postgres_url().is_some() {
                "broadcast,changes,changes-pg".into()
            } else {
                "broadcast,changes".into()
            }
        }),
        change_conns: if smoke {
            20
        } else {
            env("GF_RT_CHANGE_CONNS", 1000)
        },
        change_msgs: if smoke {
            4
        } else {
            env("GF_RT_CHANGE_MSGS", 40)
        },
        change_interval: Duration::from_millis(env("GF_RT_CHANGE_INTERVAL_MS", 20) as u64),
        change_burst: if smoke {
            4
        } else {
            env("GF_RT_CHANGE_BURST", 400)
        },
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if settings.runs("broadcast") {
            broadcast_part(&settings).await;
        }
        let mut changes = Vec::new();
        for (part, pg) in [("changes", false), ("changes-pg", true)] {
            if settings.runs(part) {
                changes.push(measure_changes(pg, &settings).await);
            }
        }
        if settings.smoke {
            for r in &changes {
                assert_eq!(r.deliveries, r.expected, "{} deliveries", r.name);
                assert_eq!(r.leaked, 0, "{}: rows reached subscribers who do not own them", r.name);
            }
            println!("realtime_fanout: wiring ok (run with `cargo bench` for figures)");
            return;
        }
        if changes.is_empty() {
            return;
        }
        println!(
            "postgres_changes: {} paced changes {} ms apart (latency) then a burst of {} (deliveries/s); owner row policy, subscriber k has user k % users",
            settings.change_msgs,
            settings.change_interval.as_millis(),
            settings.change_burst,
        );
        println!(
            "{:<28} {:>6} {:>5} {:>19} {:>12} {:>12} {:>8} {:>8} {:>8} {:>6}",
            "source", "conns", "users", "delivered/expected", "deliveries/s", "checks/s", "p50 ms", "p99 ms", "max ms", "leaked"
        );
        for r in &changes {
            r.print();
        }
        println!("(checks/s: row-policy evaluations per second during the burst, one per change and subscriber; latency from the change's production to its delivery)");
    });
}

async fn broadcast_part(settings: &Settings) {
    // `GF_RT_TARGETS`: which servers, any of goforward,baseline,baseline-small (all by default).
    let wanted = std::env::var("GF_RT_TARGETS")
        .unwrap_or_else(|_| "goforward,baseline,baseline-small".into());
    let mut reports = Vec::new();
    for target in [Target::GoForward, Target::Baseline, Target::BaselineSmall] {
        if wanted.split(',').any(|t| t.trim() == target.role()) {
            reports.push((target, measure(target, settings).await));
        }
    }
    if settings.smoke {
        for (_, r) in &reports {
            assert_eq!(r.deliveries, r.expected, "{} deliveries", r.name);
        }
        return;
    }
    println!(
        "{} connections, {} broadcasts {} ms apart (latency) then a burst of {} (deliveries/s), {} source address(es); servers in child processes",
        settings.conns,
        settings.msgs,
        settings.interval.as_millis(),
        settings.burst,
        settings.sources
    );
    println!(
        "{:<24} {:>6} {:>19} {:>12} {:>8} {:>8} {:>8} {:>10} {:>10} {:>8}",
        "target",
        "conns",
        "delivered/expected",
        "burst deliv/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "idle KiB",
        "busy KiB",
        "conn s"
    );
    for (_, r) in &reports {
        r.print();
    }
    for (_, r) in &reports {
        r.print_cpu();
    }
    let ours = reports.iter().find(|(t, _)| *t == Target::GoForward);
    for (_, b) in reports.iter().filter(|(t, _)| *t != Target::GoForward) {
        let Some((_, ours)) = ours else { break };
        println!(
            "goforward / {:<24} ×deliveries/s {:.2}  ×p99 {:.2}  ×idle RSS/conn {:.2}",
            b.name,
            ours.rate() / b.rate().max(1e-9),
            ours.pct(0.99) / b.pct(0.99).max(1e-9),
            ours.idle_kib / b.idle_kib.max(1e-9),
        );
    }
    println!(
        "(idle/busy KiB: server RSS growth per connection after connecting + 2 s, and after the broadcasts)"
    );
}
