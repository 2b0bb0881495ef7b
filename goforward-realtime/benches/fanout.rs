//! Realtime fan-out load generator: opens `GF_RT_CONNS` (default 2000) subscribed
//! WebSocket connections to GoForward's realtime plugin, sends `GF_RT_MSGS`
//! (default 20) broadcasts from Rust, and reports deliveries/s, p50/p99
//! delivery latency and process RSS per connection; then the same against a
//! minimal tokio-tungstenite broadcast server, measured in the same run.
//!
//! `cargo bench --workspace --all-features --bench fanout` (numbers, not pass/fail).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use goforward_core::testing::TestApp;
use goforward_realtime::{Realtime, RealtimeConfig};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn micros(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

struct Report {
    name: &'static str,
    conns: usize,
    deliveries: usize,
    seconds: f64,
    latencies: Vec<u64>,
    rss_per_conn_kib: f64,
}

impl Report {
    fn print(&mut self) -> f64 {
        self.latencies.sort_unstable();
        let pct = |p: f64| {
            self.latencies
                .get(((self.latencies.len() as f64 - 1.0) * p) as usize)
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        let rate = self.deliveries as f64 / self.seconds;
        println!(
            "{:<22} conns={:<6} deliveries={:<8} {:>10.0} deliveries/s  p50={:>7.1} ms  p99={:>7.1} ms  rss/conn={:>6.1} KiB (client+server, one process)",
            self.name,
            self.conns,
            self.deliveries,
            rate,
            pct(0.5),
            pct(0.99),
            self.rss_per_conn_kib
        );
        rate
    }
}

/// Reads `msgs` broadcasts on every socket; returns the latencies (µs).
async fn drain<S>(
    sockets: Vec<S>,
    msgs: usize,
    epoch: Instant,
    sent_field: fn(&Value) -> Option<u64>,
) -> Vec<u64>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin
        + Send
        + 'static,
{
    let mut tasks = Vec::new();
    for mut ws in sockets {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(msgs);
            while lat.len() < msgs {
                match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => {
                        let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                        if let Some(sent) = sent_field(&v) {
                            lat.push(micros(epoch).saturating_sub(sent));
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

async fn goforward(conns: usize, msgs: usize) -> Report {
    let cfg = RealtimeConfig {
        max_connections_per_ip: conns + 10,
        idle_timeout_secs: 600,
        ..RealtimeConfig::default()
    };
    let app = TestApp::builder()
        .plugin(Realtime::new().with_config(cfg))
        .postgres(false)
        .start()
        .await
        .expect("app");
    let url = format!(
        "{}/realtime/v1/websocket?apikey={}&vsn=1.0.0",
        app.base_url.replacen("http", "ws", 1),
        app.anon_key()
    );
    let rss0 = rss_kib();
    let mut readers = Vec::with_capacity(conns);
    let mut writers = Vec::with_capacity(conns);
    for chunk in 0..conns.div_ceil(200) {
        let n = 200.min(conns - chunk * 200);
        let joins = (0..n).map(|_| {
            let url = url.clone();
            async move {
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
                let join = json!({"topic": "realtime:bench", "event": "phx_join", "ref": "1", "join_ref": "1",
                    "payload": {"config": {"broadcast": {"self": false}, "presence": {"enabled": false}}}});
                ws.send(Message::text(join.to_string())).await.expect("join");
                loop {
                    if let Some(Ok(Message::Text(t))) = ws.next().await
                        && t.contains("phx_reply")
                    {
                        break;
                    }
                }
                ws.split()
            }
        });
        for (w, r) in futures_util::future::join_all(joins).await {
            writers.push(w);
            readers.push(r);
        }
    }
    let rss1 = rss_kib();
    let handle = Realtime::handle(app.gf.context()).expect("handle");
    let epoch = Instant::now();
    let reader = tokio::spawn(drain(readers, msgs, epoch, |v| {
        v["payload"]["payload"]["t"].as_u64()
    }));
    let start = Instant::now();
    for i in 0..msgs {
        handle
            .broadcast("bench", "tick", json!({"t": micros(epoch), "i": i}))
            .await
            .expect("broadcast");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let latencies = reader.await.unwrap_or_default();
    let seconds = start.elapsed().as_secs_f64();
    drop(writers);
    app.stop().await;
    Report {
        name: "goforward-realtime",
        conns,
        deliveries: latencies.len(),
        seconds,
        latencies,
        rss_per_conn_kib: (rss1.saturating_sub(rss0)) as f64 / conns as f64,
    }
}

async fn baseline(conns: usize, msgs: usize) -> Report {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, _) = broadcast::channel::<Arc<String>>(1024);
    let server_tx = tx.clone();
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let mut rx = server_tx.subscribe();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let (mut w, _r) = ws.split();
                while let Ok(msg) = rx.recv().await {
                    if w.send(Message::text(msg.as_str())).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let rss0 = rss_kib();
    let mut readers = Vec::with_capacity(conns);
    let mut writers = Vec::with_capacity(conns);
    for _ in 0..conns {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}"))
            .await
            .expect("connect");
        let (w, r) = ws.split();
        writers.push(w);
        readers.push(r);
    }
    while tx.receiver_count() < conns {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rss1 = rss_kib();
    let epoch = Instant::now();
    let reader = tokio::spawn(drain(readers, msgs, epoch, |v| v["t"].as_u64()));
    let start = Instant::now();
    for i in 0..msgs {
        let _ = tx.send(Arc::new(json!({"t": micros(epoch), "i": i}).to_string()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let latencies = reader.await.unwrap_or_default();
    let seconds = start.elapsed().as_secs_f64();
    drop(writers);
    server.abort();
    Report {
        name: "tokio-tungstenite base",
        conns,
        deliveries: latencies.len(),
        seconds,
        latencies,
        rss_per_conn_kib: (rss1.saturating_sub(rss0)) as f64 / conns as f64,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let conns = env("GF_RT_CONNS", 2000);
    let msgs = env("GF_RT_MSGS", 20);
    let ours = goforward(conns, msgs).await.print();
    let base = baseline(conns, msgs).await.print();
    println!(
        "ratio deliveries/s goforward/baseline = {:.2}",
        ours / base.max(1.0)
    );
}
