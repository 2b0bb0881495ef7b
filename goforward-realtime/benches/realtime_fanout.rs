//! Realtime fan-out load generator: `GF_RT_CONNS` subscribed WebSocket
//! connections (default 2,000), one publisher client sending `GF_RT_MSGS`
//! broadcasts, measured against GoForward's realtime plugin and against a
//! minimal tokio-tungstenite broadcast server, one after the other in the same run.
//!
//! Each server runs in a child process (this same binary, re-executed with
//! `GF_RT_ROLE`), so its RSS is its own (read from `/proc/<pid>/status`
//! before and after the connections are opened) and each side has its own
//! file-descriptor budget. Figures and ratios against the baseline, never
//! pass/fail: see `docs/realtime.md`, section Benchmarks.
//!
//! `cargo bench -p goforward-realtime --bench realtime_fanout`. Without `--bench`
//! in its arguments (`cargo test --all-targets`) it runs a smoke check of the
//! wiring (20 connections, 3 messages) and prints no figures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    missing_docs
)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use goforward_core::testing::TestApp;
use goforward_realtime::{Realtime, RealtimeConfig};
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Ws = WebSocketStream<TcpStream>;

const ROLE: &str = "GF_RT_ROLE";

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

/// The `"t":<µs>` stamp of a broadcast, whatever wraps it.
fn stamp(text: &str) -> Option<u64> {
    let at = text.find("\"t\":")? + 4;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------
// Servers (child processes)
// ---------------------------------------------------------------------------

/// GoForward: the realtime plugin on the test harness (one actix worker, SQLite in memory).
async fn serve_goforward() {
    let cfg = RealtimeConfig {
        max_connections_per_ip: 1_000_000,
        max_events_per_second: 1_000_000,
        idle_timeout_secs: 3600,
        max_connection_secs: 0,
        ..RealtimeConfig::default()
    };
    let app = TestApp::builder()
        .plugin(Realtime::new().with_config(cfg))
        .postgres(false)
        .start()
        .await
        .expect("app");
    println!(
        "READY {}/realtime/v1/websocket?apikey={}&vsn=1.0.0",
        app.base_url.replacen("http", "ws", 1),
        app.anon_key()
    );
    wait_for_parent().await;
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
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("ready");
    let url = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("server said {line:?}"))
        .trim()
        .to_owned();
    Server { child, url }
}

impl Server {
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
async fn open(target: Target, url: &str, source: u8, sources: u8) -> Ws {
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
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("upgrade");
    if target == Target::GoForward {
        ws.send(Message::text(JOIN)).await.expect("join");
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
}

async fn measure(target: Target, s: &Settings) -> Report {
    let server = spawn_server(target.role());
    let pid = server.child.id();
    // The publisher first (source 127.0.0.1), then settle and take the baseline RSS.
    let mut publisher = open(target, &server.url, 1, s.sources).await;
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
            async move { open(target, &url, source, sources).await }
        });
        sockets.extend(futures_util::future::join_all(opens).await);
        i += n;
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(if s.smoke { 0 } else { 2 })).await;
    let rss1 = rss_kib(pid);

    let (msgs, burst) = (s.msgs, s.burst);
    // Each reader: latencies of the paced broadcasts, then how many burst
    // broadcasts arrived and when the last one did.
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(msgs);
                let (mut burst_got, mut last) = (0usize, 0u64);
                while lat.len() + burst_got < msgs + burst {
                    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
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
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                (lat, burst_got, last, ws)
            })
        })
        .collect();
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
    for r in readers {
        let (lat, got, at, ws) = r.await.expect("reader");
        latencies.extend(lat);
        burst_deliveries += got;
        last = last.max(at);
        open_sockets.push(ws);
    }
    let rss2 = rss_kib(pid);
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
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ours = measure(Target::GoForward, &settings).await;
        let base = measure(Target::Baseline, &settings).await;
        let small = measure(Target::BaselineSmall, &settings).await;
        if settings.smoke {
            for r in [&ours, &base, &small] {
                assert_eq!(r.deliveries, r.expected, "{} deliveries", r.name);
            }
            println!("realtime_fanout: wiring ok (run with `cargo bench` for figures)");
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
        ours.print();
        base.print();
        small.print();
        for b in [&base, &small] {
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
    });
}
