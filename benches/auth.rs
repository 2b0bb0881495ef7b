//! Auth load generator: password sign-in throughput against the bcrypt
//! bound, and token refreshes per second on SQLite.
//!
//! One process, one run:
//!
//! 1. **bcrypt bound**: the time of one bcrypt verification at the bench's
//!    cost is measured here (`BENCH_BCRYPT_COST`, default 10, on the blocking
//!    pool like the server does); the bound is `cores ÷ that time`
//!    sign-ins per second, since each sign-in costs one verification.
//! 2. **sign-in**: a closed loop of `BENCH_CONNECTIONS` concurrent
//!    `POST /auth/v1/token?grant_type=password` with the right password
//!    against the test harness (SQLite in memory, rate limits and lockout
//!    off); prints sign-ins/s and the ratio to the bound (goal ≥ 0.9).
//!
//!    Also `cores` parallel bcrypt verifications per second, to tell cores
//!    taken by other processes from server overhead; and the **latency**:
//!    p99 of a token-protected `GET /auth/v1/user`, idle and while a second
//!    sign-in loop saturates the CPU (goal: within 2×), from a probe on a
//!    thread of its own (one request at a time), with the loaded p99.9 and
//!    how many loaded requests took over twice the idle p99.
//! 3. **refresh**: each of `BENCH_REFRESH_CONNECTIONS` (default 64)
//!    connections rotates its own refresh token in a loop
//!    (`grant_type=refresh_token`); prints refreshes/s (goal ≥ 8,000/s) on
//!    each SQLite flavour of `BENCH_SQLITE`. Concurrent refreshes are
//!    rotated in batches by one writer at a time, so the rate grows with
//!    the refreshes in flight (docs/auth.md, *Bench*); 64 clients measure
//!    the server's capacity rather than 32 clients' round trips.
//!
//! `BENCH_SQLITE` (default `file,memory`): `file` is a database file in a
//! temporary directory with core's production settings (WAL,
//! `synchronous=NORMAL`, a pool of connections); `memory` is `sqlite::memory:`
//! (one connection, what the tests use). Phases 1–2 run on the first one,
//! phase 3 on each. `BENCH_PHASES` (default `sign_in,latency,refresh`)
//! picks phases, e.g. `refresh` alone under a profiler.
//!
//! Figures, never pass/fail. `cargo bench --bench auth --no-default-features
//! --features auth,sqlite` runs it (`BENCH_SECONDS`, `BENCH_CONNECTIONS`);
//! without `--bench` in its arguments (`cargo test --all-targets`) it only
//! checks the wiring in a fraction of a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goforward::auth::Auth;
use goforward_core::testing::TestApp;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

struct Settings {
    smoke: bool,
    measure: Duration,
    connections: usize,
    refresh_connections: usize,
    cost: u32,
    sqlite: Vec<String>,
    phases: Vec<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name}: bad value {v:?}").into()),
        Err(_) => Ok(default),
    }
}

impl Settings {
    fn from_env() -> Result<Self> {
        let list = |name: &str, default: &str, allowed: &[&str]| -> Result<Vec<String>> {
            let raw = env_or(name, default.to_owned())?;
            let items: Vec<String> = raw
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            match items.iter().find(|i| !allowed.contains(&i.as_str())) {
                Some(bad) => {
                    Err(format!("{name}: unknown item {bad:?}, expected {allowed:?}").into())
                }
                None if items.is_empty() => Err(format!("{name}: empty").into()),
                None => Ok(items),
            }
        };
        let sqlite = list("BENCH_SQLITE", "file,memory", &["file", "memory"])?;
        if !std::env::args().any(|a| a == "--bench") {
            return Ok(Self {
                smoke: true,
                measure: Duration::from_millis(200),
                connections: 2,
                refresh_connections: 2,
                cost: 4,
                sqlite,
                phases: ["sign_in", "latency", "refresh"]
                    .map(str::to_owned)
                    .to_vec(),
            });
        }
        Ok(Self {
            smoke: false,
            measure: Duration::from_secs_f64(env_or("BENCH_SECONDS", 10.0)?),
            connections: env_or("BENCH_CONNECTIONS", 32usize)?.max(1),
            refresh_connections: env_or("BENCH_REFRESH_CONNECTIONS", 64usize)?.max(1),
            cost: env_or("BENCH_BCRYPT_COST", 10u32)?,
            sqlite,
            phases: list(
                "BENCH_PHASES",
                "sign_in,latency,refresh",
                &["sign_in", "latency", "refresh"],
            )?,
        })
    }
}

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(settings))
}

async fn post(client: &reqwest::Client, app: &TestApp, path: &str, body: &Value) -> Result<Value> {
    let res = client
        .post(app.url(&format!("/auth/v1{path}")))
        .header("apikey", app.anon_key())
        .json(body)
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    if !status.is_success() {
        return Err(format!("{path}: {status} {body}").into());
    }
    Ok(body)
}

/// Runs `connections` closed loops of `step` for `measure`; returns ops/s.
async fn closed_loop<S, F>(
    connections: usize,
    measure: Duration,
    states: Vec<S>,
    step: F,
) -> Result<f64>
where
    S: Send + 'static,
    F: Fn(S) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<S>> + Send>>
        + Send
        + Sync
        + 'static,
{
    Ok(counted_loop(connections, measure, states, step).await?.0)
}

/// [`closed_loop`], also returning the number of completed steps.
async fn counted_loop<S, F>(
    connections: usize,
    measure: Duration,
    states: Vec<S>,
    step: F,
) -> Result<(f64, u64)>
where
    S: Send + 'static,
    F: Fn(S) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<S>> + Send>>
        + Send
        + Sync
        + 'static,
{
    let step = Arc::new(step);
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for mut state in states {
        let (step, done, count) = (step.clone(), done.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                state = step(state).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, BoxError>(())
        }));
    }
    tokio::time::sleep(measure).await;
    done.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    for task in tasks {
        task.await??;
    }
    let count = count.load(Ordering::Relaxed);
    Ok((count as f64 / elapsed.as_secs_f64(), count))
}

/// Sequential `GET /auth/v1/user` with `access` for `window`; the
/// latencies in seconds, sorted.
///
/// The probe runs on a thread of its own with a single-threaded runtime and
/// its own connection: on the bench's multi-threaded runtime each request
/// hopped between three client threads, each hop one more thread for the
/// kernel to wake, none of which a remote client would add to the server's
/// latency.
async fn get_latencies(app: &TestApp, access: &str, window: Duration) -> Result<Vec<f64>> {
    let url = app.url("/auth/v1/user");
    let (anon, access) = (app.anon_key().to_owned(), access.to_owned());
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("latency-probe".into())
        .spawn(move || {
            let probe = async {
                let client = reqwest::Client::new();
                let get = || async {
                    let res = client
                        .get(&url)
                        .header("apikey", &anon)
                        .bearer_auth(&access)
                        .send()
                        .await?;
                    let status = res.status();
                    res.bytes().await?;
                    if status.is_success() {
                        Ok(())
                    } else {
                        Err(BoxError::from(format!("GET /user: {status}")))
                    }
                };
                // Open the connection outside the measurement.
                get().await?;
                let mut samples = Vec::new();
                let started = Instant::now();
                while started.elapsed() < window || samples.len() < 10 {
                    let t = Instant::now();
                    get().await?;
                    samples.push(t.elapsed().as_secs_f64());
                }
                samples.sort_by(f64::total_cmp);
                Ok::<_, BoxError>(samples)
            };
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BoxError::from)
                .and_then(|rt| rt.block_on(probe));
            let _ = reply.send(result);
        })?;
    answer.await.map_err(|_| "latency probe died")?
}

/// The `per_mille` quantile of sorted `samples` (nearest rank).
fn quantile(samples: &[f64], per_mille: usize) -> f64 {
    let at = (samples.len() * per_mille).div_ceil(1000).saturating_sub(1);
    samples.get(at).copied().unwrap_or(f64::NAN)
}

/// Starts the app with the auth plugin on SQLite `flavour` (`file` in
/// `dir`, or `memory`), never on PostgreSQL.
async fn start_app(flavour: &str, cost: u32, dir: &std::path::Path) -> Result<Arc<TestApp>> {
    let auth = Auth::new().configure(move |c| {
        c.bcrypt_cost = cost;
        c.mailer_autoconfirm = true;
        c.lockout_max_failed_sign_ins = 0;
        c.rate_limits.sign_in_sign_ups = 0;
        c.rate_limits.token_refresh = 0;
    });
    let url = match flavour {
        "file" => format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
        _ => "sqlite::memory:".to_owned(),
    };
    let app = TestApp::builder()
        .plugin(auth)
        .postgres(false)
        .config(move |c| c.database.url = Some(url))
        .start()
        .await?;
    Ok(Arc::new(app))
}

async fn sign_in(client: &reqwest::Client, app: &TestApp) -> Result<Value> {
    post(
        client,
        app,
        "/token?grant_type=password",
        &json!({ "email": EMAIL, "password": PASSWORD }),
    )
    .await
}

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "correct horse battery";

/// `connections` closed loops of password sign-ins for `measure`; sign-ins/s.
async fn sign_in_loop(
    client: &reqwest::Client,
    app: &Arc<TestApp>,
    connections: usize,
    measure: Duration,
) -> Result<f64> {
    let (c2, a2) = (client.clone(), app.clone());
    closed_loop(
        connections,
        measure,
        (0..connections).map(|_| ()).collect(),
        move |()| {
            let (c, a) = (c2.clone(), a2.clone());
            Box::pin(async move {
                sign_in(&c, &a).await?;
                Ok(())
            })
        },
    )
    .await
}

/// Refreshes/s and the number of refreshes: one rotating refresh token per
/// connection.
async fn refresh_loop(
    client: &reqwest::Client,
    app: &Arc<TestApp>,
    connections: usize,
    measure: Duration,
) -> Result<(f64, u64)> {
    let mut tokens = Vec::with_capacity(connections);
    for _ in 0..connections {
        let session = sign_in(client, app).await?;
        tokens.push(
            session["refresh_token"]
                .as_str()
                .ok_or("no refresh token")?
                .to_owned(),
        );
    }
    let (c3, a3) = (client.clone(), app.clone());
    counted_loop(connections, measure, tokens, move |token: String| {
        let (c, a) = (c3.clone(), a3.clone());
        Box::pin(async move {
            let session = post(
                &c,
                &a,
                "/token?grant_type=refresh_token",
                &json!({ "refresh_token": token }),
            )
            .await?;
            Ok(session["refresh_token"]
                .as_str()
                .ok_or("no refresh token")?
                .to_owned())
        })
    })
    .await
}

async fn run(s: Settings) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let phase = |name: &str| s.phases.iter().any(|p| p == name);
    let mut out = serde_json::Map::new();
    out.insert("smoke".into(), json!(s.smoke));
    out.insert("cores".into(), json!(cores));
    out.insert("connections".into(), json!(s.connections));
    out.insert("refresh_connections".into(), json!(s.refresh_connections));
    out.insert("seconds".into(), json!(s.measure.as_secs_f64()));
    out.insert("sqlite".into(), json!(s.sqlite));

    // 1. One bcrypt verification at this cost, measured in this run.
    if phase("sign_in") {
        let hash = goforward::auth::password::hash(PASSWORD, s.cost).await?;
        let samples = if s.smoke { 1 } else { 10 };
        let t0 = Instant::now();
        for _ in 0..samples {
            assert!(goforward::auth::password::verify(PASSWORD, &hash).await);
        }
        let one = t0.elapsed().as_secs_f64() / f64::from(samples);
        let bound = cores as f64 / one;
        // Diagnostic: `cores` verifications in parallel, as many as fit in a
        // while. Below `bound` when other processes share the cores.
        let parallel_for = if s.smoke {
            Duration::from_millis(50)
        } else {
            Duration::from_secs(2)
        };
        let t0 = Instant::now();
        let mut workers = Vec::with_capacity(cores);
        for _ in 0..cores {
            let hash = hash.clone();
            workers.push(tokio::spawn(async move {
                let mut n = 0u64;
                while t0.elapsed() < parallel_for {
                    assert!(goforward::auth::password::verify(PASSWORD, &hash).await);
                    n += 1;
                }
                n
            }));
        }
        let mut verified = 0u64;
        for w in workers {
            verified += w.await?;
        }
        let parallel_bcrypt = verified as f64 / t0.elapsed().as_secs_f64();
        out.insert("bcrypt_cost".into(), json!(s.cost));
        out.insert("bcrypt_verify_ms".into(), json!(one * 1000.0));
        out.insert("sign_in_bound_per_s".into(), json!(bound));
        out.insert(
            "bcrypt_parallel_verifies_per_s".into(),
            json!(parallel_bcrypt),
        );
    }

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(s.connections.max(s.refresh_connections))
        .build()?;
    let mut refreshes = Vec::new();
    for (i, flavour) in s.sqlite.iter().enumerate() {
        let dir = tempfile::tempdir()?;
        let app = start_app(flavour, s.cost, dir.path()).await?;
        post(
            &client,
            &app,
            "/signup",
            &json!({ "email": EMAIL, "password": PASSWORD }),
        )
        .await?;

        // 2. Sign-in throughput, on the first flavour.
        if i == 0 && phase("sign_in") {
            let sign_ins = sign_in_loop(&client, &app, s.connections, s.measure).await?;
            let bound = out["sign_in_bound_per_s"].as_f64().unwrap_or(f64::NAN);
            let parallel = out["bcrypt_parallel_verifies_per_s"]
                .as_f64()
                .unwrap_or(f64::NAN);
            out.insert("sign_ins_per_s".into(), json!(sign_ins));
            out.insert("sign_in_ratio_to_bound".into(), json!(sign_ins / bound));
            out.insert("sign_in_goal_ratio".into(), json!(0.9));
            out.insert(
                "sign_in_ratio_to_parallel_bcrypt".into(),
                json!(sign_ins / parallel),
            );
            if s.smoke && sign_ins <= 0.0 {
                return Err("smoke run measured no sign-in".into());
            }
        }

        // 2b. p99 of a token-protected GET (`/user`), idle and while a
        // sign-in loop saturates the CPU.
        if i == 0 && phase("latency") {
            let session = sign_in(&client, &app).await?;
            let access = session["access_token"]
                .as_str()
                .ok_or("no access token")?
                .to_owned();
            let idle = get_latencies(&app, &access, s.measure / 2).await?;
            let (c2, a2, n, m) = (client.clone(), app.clone(), s.connections, s.measure / 2);
            let saturating = tokio::spawn(async move { sign_in_loop(&c2, &a2, n, m).await });
            // Let the sign-in loop fill the bcrypt pool before sampling.
            tokio::time::sleep(s.measure / 10).await;
            let loaded = get_latencies(&app, &access, s.measure * 3 / 10).await?;
            saturating.await??;
            let (idle_p99, loaded_p99) = (quantile(&idle, 990), quantile(&loaded, 990));
            // How many loaded requests took over twice the idle p99, and the
            // far tail: what decides whether the p99 ratio holds.
            let slow = loaded.iter().filter(|&&t| t > 2.0 * idle_p99).count();
            out.insert("get_user_samples_idle".into(), json!(idle.len()));
            out.insert(
                "get_user_samples_under_sign_ins".into(),
                json!(loaded.len()),
            );
            out.insert(
                "get_user_over_2x_idle_p99_under_sign_ins".into(),
                json!(slow),
            );
            out.insert(
                "get_user_p999_under_sign_ins_ms".into(),
                json!(quantile(&loaded, 999) * 1000.0),
            );
            out.insert("get_user_p99_idle_ms".into(), json!(idle_p99 * 1000.0));
            out.insert(
                "get_user_p99_under_sign_ins_ms".into(),
                json!(loaded_p99 * 1000.0),
            );
            out.insert("get_user_p99_ratio".into(), json!(loaded_p99 / idle_p99));
            out.insert("get_user_p99_goal_ratio".into(), json!(2.0));
        }

        // 3. Refresh throughput.
        if phase("refresh") {
            let (per_s, n) = refresh_loop(&client, &app, s.refresh_connections, s.measure).await?;
            out.insert(format!("refreshes_per_s_sqlite_{flavour}"), json!(per_s));
            // For instruction counts per refresh (two runs' difference).
            out.insert(format!("refreshes_sqlite_{flavour}"), json!(n));
            refreshes.push(per_s);
        }
        if let Ok(app) = Arc::try_unwrap(app) {
            app.stop().await;
        }
    }
    if phase("refresh") {
        out.insert("refresh_goal_per_s".into(), json!(8000));
    }
    println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
    if s.smoke && refreshes.iter().any(|r| *r <= 0.0) {
        return Err("smoke run measured no refresh".into());
    }
    Ok(())
}
