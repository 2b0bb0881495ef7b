//! Storage throughput, memory and small-object rate, next to `cp` on the same disk.
//!
//! One process, one run:
//!
//! 1. a large file (1 GiB by default) is written to a temporary directory, then
//!    copied with `cp` on the same disk: the baseline;
//! 2. the same file is uploaded through a running GoForward (test harness, one
//!    actix worker, storage plugin on the local-filesystem backend in a temporary
//!    directory on the same disk, SQLite database file), then downloaded into a
//!    file; the downloaded bytes are compared with the source (outside the timing);
//!    then the same upload and download through a bare actix-web server in the same
//!    process (one worker, a handler streaming the body into a file with tokio and
//!    one streaming the file back): the framework's own ceiling on this machine;
//! 3. the peak RSS growth of the whole process (server and client) during the
//!    upload and during the download, from `/proc/self/status` (`VmHWM` reset
//!    through `/proc/self/clear_refs` before each, minus the `VmRSS` sampled right
//!    after the reset; a 5 ms `VmRSS` sampler when the reset is not permitted);
//! 4. small-object uploads per second on SQLite over a few keep-alive connections.
//!
//! Figures, never pass/fail: see `benches/README.md` (section `storage`).
//! `cargo bench --bench storage` runs it; without `--bench` in its arguments
//! (`cargo test --all-targets`) it runs a tiny smoke pass and prints no figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stdout)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use goforward_core::testing::TestApp;
use goforward_storage::{Bucket, Storage};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

const MIB: f64 = 1024.0 * 1024.0;
/// Goals of the storage issue (figures are printed next to them, never asserted).
const GOAL_RATIO: f64 = 0.6;
const GOAL_RSS_MB: f64 = 64.0;
const GOAL_SMALL_PER_SEC: f64 = 1000.0;

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    runtime.block_on(run(settings))
}

/// Knobs, from the environment (`BENCH_*`); a smoke run ignores them.
#[derive(Debug, Clone)]
struct Settings {
    /// `cargo test` runs a `harness = false` bench without `--bench`: tiny sizes, no figures.
    smoke: bool,
    /// Size of the large file.
    file_bytes: u64,
    /// Rounds of (cp, upload, download) over the large file.
    rounds: usize,
    /// Small objects uploaded in the measured window (after a warm-up of a tenth).
    small_count: usize,
    /// Size of one small object.
    small_bytes: usize,
    /// Concurrent keep-alive connections of the small-object uploads.
    connections: usize,
    /// Where the temporary directories go (`BENCH_DIR`, default the system temp dir).
    dir: Option<PathBuf>,
    output: Option<PathBuf>,
    /// `storage.fsync` of the large-file runs (`BENCH_FSYNC`, default on like the
    /// server); small uploads are measured both with and without.
    fsync: bool,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let smoke = !std::env::args().any(|arg| arg == "--bench");
        let dir = std::env::var_os("BENCH_DIR").map(PathBuf::from);
        if smoke {
            return Ok(Self {
                smoke,
                file_bytes: 10 << 20,
                rounds: 1,
                small_count: 40,
                small_bytes: 1024,
                connections: 2,
                dir,
                output: None,
                fsync: true,
            });
        }
        let output = match std::env::var("BENCH_OUTPUT") {
            Ok(path) if path.is_empty() || path == "-" => None,
            Ok(path) => Some(PathBuf::from(path)),
            Err(_) => {
                Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results/storage.json"))
            }
        };
        Ok(Self {
            smoke,
            file_bytes: env_or("BENCH_FILE_MB", 1024u64)?.max(1) << 20,
            rounds: env_or("BENCH_ROUNDS", 2usize)?.max(1),
            small_count: env_or("BENCH_SMALL_COUNT", 5000usize)?.max(1),
            small_bytes: env_or("BENCH_SMALL_BYTES", 1024usize)?.max(1),
            connections: env_or("BENCH_CONNECTIONS", 4usize)?.max(1),
            dir,
            output,
            fsync: match std::env::var("BENCH_FSYNC").as_deref().map(str::trim) {
                Err(_) | Ok("" | "on" | "1" | "true") => true,
                Ok("off" | "0" | "false") => false,
                Ok(other) => return Err(format!("BENCH_FSYNC={other}: expected on or off").into()),
            },
        })
    }

    fn tempdir(&self) -> Result<tempfile::TempDir> {
        Ok(match &self.dir {
            Some(dir) => tempfile::tempdir_in(dir)?,
            None => tempfile::tempdir()?,
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

/// GoForward with the storage plugin on the local backend under `dir` (SQLite
/// file `dir/bench.db`, root `dir/storage`).
async fn start_app(dir: &Path, max_file_size: u64, fsync: bool) -> Result<TestApp> {
    std::fs::create_dir_all(dir)?;
    let db_url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let storage_root = dir.join("storage");
    Ok(TestApp::builder()
        .postgres(false)
        .config(|c| {
            c.database.url = Some(db_url);
            c.sections.insert(
                "storage".into(),
                json!({
                    "max_file_size": max_file_size,
                    "backend": {"kind": "local", "root": storage_root},
                    "sweep_interval_secs": 0,
                    "fsync": fsync,
                }),
            );
        })
        .plugin(
            Storage::new()
                .bucket(Bucket::private("bench"))
                .bucket(Bucket::private("small")),
        )
        .start()
        .await?)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run(settings: Settings) -> Result<()> {
    let work = settings.tempdir()?;
    let load_before = loadavg();
    let max = settings.file_bytes + (1 << 20);
    let app = start_app(&work.path().join("main"), max, settings.fsync).await?;
    let addr: SocketAddr = app.base_url.trim_start_matches("http://").parse()?;
    let key = app.service_key();
    let bare_dir = work.path().join("bare");
    std::fs::create_dir_all(&bare_dir)?;
    let (bare_addr, bare_server) = start_bare(bare_dir.clone(), settings.fsync)?;

    // The large file: pseudo-random bytes (nothing a filesystem could compress or skip).
    let source = work.path().join("source.bin");
    write_source(&source, settings.file_bytes)?;

    let mut rounds = Vec::new();
    for round in 0..settings.rounds {
        let copy = work.path().join("copy.bin");
        flush_disks()?;
        let cp_cpu_before = cpu_secs()?.1;
        let started = Instant::now();
        let status = std::process::Command::new("cp")
            .arg(&source)
            .arg(&copy)
            .status()?;
        let cp = started.elapsed();
        let cp_cpu = cpu_secs()?.1 - cp_cpu_before;
        if !status.success() {
            return Err(format!("cp failed: {status}").into());
        }
        std::fs::remove_file(&copy)?;
        // A second, informational baseline: a user-space copy (read + write, 1 MiB
        // blocks) where `cp` may copy inside the kernel (`copy_file_range`).
        flush_disks()?;
        let started = Instant::now();
        let status = std::process::Command::new("dd")
            .arg(format!("if={}", source.display()))
            .arg(format!("of={}", copy.display()))
            .arg("bs=1M")
            .arg("status=none")
            .status()?;
        let dd = started.elapsed();
        if !status.success() {
            return Err(format!("dd failed: {status}").into());
        }
        std::fs::remove_file(&copy)?;

        let path = format!("/storage/v1/object/bench/large-{round}.bin");
        flush_disks()?;
        let (upload, upload_rss, upload_cpu) = {
            let (source, key, path) = (source.clone(), key.clone(), path.clone());
            measure_rss(move || upload_file(addr, &path, &key, &source)).await?
        };
        let downloaded = work.path().join("downloaded.bin");
        flush_disks()?;
        let (download, download_rss, download_cpu) = {
            let (target, key, path) = (downloaded.clone(), key.clone(), path.clone());
            measure_rss(move || download_file(addr, &path, &key, &target)).await?
        };
        if !same_bytes(&source, &downloaded)? {
            return Err("the downloaded file differs from the source".into());
        }
        std::fs::remove_file(&downloaded)?;

        // The same upload and download through bare actix-web.
        let bare_path = format!("/bare/large-{round}.bin");
        flush_disks()?;
        let (bare_upload, bare_upload_rss, bare_upload_cpu) = {
            let (source, path) = (source.clone(), bare_path.clone());
            measure_rss(move || upload_file(bare_addr, &path, "-", &source)).await?
        };
        flush_disks()?;
        let (bare_download, _, bare_download_cpu) = {
            let (target, path) = (downloaded.clone(), bare_path.clone());
            measure_rss(move || download_file(bare_addr, &path, "-", &target)).await?
        };
        if !same_bytes(&source, &downloaded)? {
            return Err("the bare actix-web download differs from the source".into());
        }
        std::fs::remove_file(&downloaded)?;
        std::fs::remove_file(bare_dir.join(format!("large-{round}.bin")))?;

        // Free the disk for the next round.
        let removed = app
            .client()
            .delete(app.url(&path))
            .header("apikey", &key)
            .bearer_auth(&key)
            .send()
            .await?;
        if !removed.status().is_success() {
            return Err(format!("delete answered {}", removed.status()).into());
        }
        rounds.push(Round {
            cp,
            dd,
            upload,
            download,
            upload_rss,
            download_rss,
            bare_upload,
            bare_download,
            bare_upload_rss,
            cpu: [
                cp_cpu,
                upload_cpu,
                download_cpu,
                bare_upload_cpu,
                bare_download_cpu,
            ],
        });
    }

    // Small uploads start with no writeback of the large rounds pending (it would
    // slow whichever setting runs first).
    flush_disks()?;
    let small = small_uploads(addr, &key, &settings).await?;
    app.stop().await;
    bare_server.stop(true).await;
    flush_disks()?;
    // The same small uploads with the other `fsync` setting, on a fresh app.
    let other = start_app(&work.path().join("other"), max, !settings.fsync).await?;
    let other_addr: SocketAddr = other.base_url.trim_start_matches("http://").parse()?;
    let small_other = small_uploads(other_addr, &other.service_key(), &settings).await?;
    other.stop().await;
    let (small_synced, small_unsynced) = if settings.fsync {
        (small, small_other)
    } else {
        (small_other, small)
    };
    let load = (load_before, loadavg());

    if settings.smoke {
        println!("storage bench: wiring ok (smoke run; `cargo bench --bench storage` for figures)");
        return Ok(());
    }
    report(&settings, &rounds, &small_synced, &small_unsynced, &load)
}

struct Round {
    cp: Duration,
    dd: Duration,
    upload: Duration,
    download: Duration,
    upload_rss: Rss,
    download_rss: Rss,
    /// The same transfers through bare actix-web.
    bare_upload: Duration,
    bare_download: Duration,
    bare_upload_rss: Rss,
    /// CPU seconds (user + system) of cp (the child), and of this whole process
    /// (server and client) during upload, download, bare upload, bare download.
    cpu: [f64; 5],
}

struct Small {
    count: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

/// A bare actix-web server (one worker, like the test harness) on
/// `127.0.0.1:<ephemeral>`: `POST /bare/{name}` streams the request body into
/// `dir/{name}` with tokio (then `sync_data` when `fsync`), `GET /bare/{name}`
/// streams the file back in 1 MiB reads with a `Content-Length`. The framework's
/// ceiling for the same transfers: what no handler can beat with actix-web here.
fn start_bare(dir: PathBuf, fsync: bool) -> Result<(SocketAddr, actix_web::dev::ServerHandle)> {
    use actix_web::{App, HttpResponse, HttpServer, web};

    async fn upload(
        dir: web::Data<(PathBuf, bool)>,
        name: web::Path<String>,
        mut body: web::Payload,
    ) -> actix_web::Result<HttpResponse> {
        use futures_util::StreamExt;
        let path = dir.0.join(name.as_str());
        let mut file = tokio::fs::File::create(&path).await?;
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        if dir.1 {
            file.sync_data().await?;
        }
        Ok(HttpResponse::Ok().json(json!({"size": size})))
    }

    async fn download(
        dir: web::Data<(PathBuf, bool)>,
        name: web::Path<String>,
    ) -> actix_web::Result<HttpResponse> {
        let file = tokio::fs::File::open(dir.0.join(name.as_str())).await?;
        let len = file.metadata().await?.len();
        let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut buf = web::BytesMut::with_capacity(1 << 20);
            while buf.len() < buf.capacity() {
                if file.read_buf(&mut buf).await? == 0 {
                    break;
                }
            }
            Ok::<_, std::io::Error>((!buf.is_empty()).then(|| (buf.freeze(), file)))
        });
        Ok(HttpResponse::Ok()
            .content_type("application/octet-stream")
            .body(actix_web::body::SizedStream::new(len, chunks)))
    }

    let data = web::Data::new((dir, fsync));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(usize::MAX))
            .route("/bare/{name}", web::post().to(upload))
            .route("/bare/{name}", web::get().to(download))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((addr, handle))
}

/// `sync`: every timed copy starts with no dirty pages left by the one before
/// (otherwise whichever runs second is throttled by the kernel's writeback of the
/// first one's gigabyte, and the order decides the ratios).
fn flush_disks() -> Result<()> {
    let status = std::process::Command::new("sync").status()?;
    if !status.success() {
        return Err(format!("sync failed: {status}").into());
    }
    Ok(())
}

fn write_source(path: &Path, bytes: u64) -> Result<()> {
    let mut file = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            // xorshift64
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n])?;
        left -= n as u64;
    }
    file.flush()?;
    file.get_ref().sync_all()?;
    Ok(())
}

fn same_bytes(a: &Path, b: &Path) -> Result<bool> {
    let (mut a, mut b) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if a.metadata()?.len() != b.metadata()?.len() {
        return Ok(false);
    }
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut x)?;
        let m = read_full(&mut b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> Result<usize> {
    read_full_from(file, buf)
}

fn read_full_from(file: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Peak RSS growth of the process over one measured operation.
#[derive(Debug, Clone, Copy)]
struct Rss {
    /// Resident set right before the operation (kB).
    baseline_kb: u64,
    /// Highest resident set during the operation (kB).
    peak_kb: u64,
    /// `VmHWM` after a reset (exact), or the 5 ms sampler (may miss short peaks).
    exact: bool,
}

impl Rss {
    fn growth_mb(&self) -> f64 {
        self.peak_kb.saturating_sub(self.baseline_kb) as f64 / 1024.0
    }
}

/// `VmRSS` and `VmHWM` of this process, in kB.
fn proc_status() -> Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("/proc/self/status has no {name}"))?;
        Ok(line
            .trim_start_matches(name)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Runs `op` on a blocking thread and reports its duration and the process's peak RSS growth.
/// CPU seconds (user + system) used so far by this process (all threads) and
/// by its waited-for children, from `/proc/self/stat` (clock ticks of 10 ms:
/// `CLK_TCK` is 100 on Linux). Unlike wall-clock figures these barely move with
/// the load of other processes: they count the work, not the waiting.
fn cpu_secs() -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let after = stat
        .rsplit_once(')')
        .ok_or("/proc/self/stat without ')'")?
        .1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .ok_or("/proc/self/stat too short")?
            .parse::<f64>()?
            / 100.0)
    };
    // Fields 14–17 of proc(5): utime, stime, cutime, cstime (after ')' at 11–14).
    Ok((tick(11)? + tick(12)?, tick(13)? + tick(14)?))
}

async fn measure_rss<F>(op: F) -> Result<(Duration, Rss, f64)>
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    // Writing 5 to clear_refs resets VmHWM to the current RSS (Linux ≥ 4.0).
    let exact = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let (baseline_kb, _) = proc_status()?;
    let done = Arc::new(AtomicBool::new(false));
    let sampled = Arc::new(AtomicU64::new(baseline_kb));
    let sampler = {
        let (done, sampled) = (done.clone(), sampled.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok((rss, _)) = proc_status() {
                    sampled.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let cpu_before = cpu_secs()?.0;
    let started = Instant::now();
    let outcome = tokio::task::spawn_blocking(op).await;
    let elapsed = started.elapsed();
    let cpu = cpu_secs()?.0 - cpu_before;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    outcome??;
    let (_, hwm) = proc_status()?;
    let peak_kb = if exact {
        hwm
    } else {
        sampled.load(Ordering::Relaxed)
    };
    Ok((
        elapsed,
        Rss {
            baseline_kb,
            peak_kb,
            exact,
        },
        cpu,
    ))
}

/// Reads an HTTP/1.1 response head: status and `Content-Length`.
fn read_head(reader: &mut impl BufRead) -> Result<(u16, u64)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("bad status line {line:?}"))?
        .parse()?;
    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err("connection closed in the response head".into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse()?);
            }
            if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked responses are not expected here".into());
            }
        }
    }
    Ok((status, length.ok_or("response without Content-Length")?))
}

/// `POST path` with the file as a raw body (the client sends it with `sendfile`).
fn upload_file(addr: SocketAddr, path: &str, key: &str, source: &Path) -> Result<()> {
    let mut file = std::fs::File::open(source)?;
    let len = file.metadata()?.len();
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\napikey: {key}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
    )?;
    let sent = std::io::copy(&mut file, &mut stream)?;
    if sent != len {
        return Err(format!("sent {sent} of {len} bytes").into());
    }
    let mut reader = BufReader::new(stream);
    let (status, length) = read_head(&mut reader)?;
    let mut body = Vec::new();
    reader.take(length).read_to_end(&mut body)?;
    if status != 200 {
        return Err(format!(
            "upload answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok(())
}

/// `GET path` into `target`.
fn download_file(addr: SocketAddr, path: &str, key: &str, target: &Path) -> Result<()> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\napikey: {key}\r\nAuthorization: Bearer {key}\r\n\r\n"
    )?;
    let mut reader = BufReader::with_capacity(256 << 10, stream);
    let (status, length) = read_head(&mut reader)?;
    if status != 200 {
        return Err(format!("download answered {status}").into());
    }
    let mut file = std::fs::File::create(target)?;
    // 1 MiB reads and writes (`io::copy` here went down in 8 KiB writes: 131 072
    // syscalls per GiB on the client's side of the same two CPUs).
    let mut body = reader.take(length);
    let mut block = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    loop {
        let n = read_full_from(&mut body, &mut block)?;
        if n == 0 {
            break;
        }
        file.write_all(&block[..n])?;
        copied += n as u64;
    }
    if copied != length {
        return Err(format!("received {copied} of {length} bytes").into());
    }
    Ok(())
}

/// Small-object uploads over keep-alive connections: a warm-up of a tenth, then
/// `small_count` uploads measured.
async fn small_uploads(addr: SocketAddr, key: &str, settings: &Settings) -> Result<Small> {
    let body: Arc<[u8]> = (0..settings.small_bytes)
        .map(|i| b'a' + (i % 26) as u8)
        .collect::<Vec<_>>()
        .into();
    let warmup = (settings.small_count / 10).max(1);
    let phase = |label: &'static str, count: usize| {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for conn in 0..settings.connections {
            let (next, body, key) = (next.clone(), body.clone(), key.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                let mut latencies = Vec::new();
                let mut buf = Vec::with_capacity(4096);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    let mut request = format!(
                        "POST /storage/v1/object/small/{label}/c{conn}/{i}.txt HTTP/1.1\r\nHost: {addr}\r\n\
                         apikey: {key}\r\nAuthorization: Bearer {key}\r\nContent-Type: text/plain\r\n\
                         Content-Length: {}\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    request.extend_from_slice(&body);
                    let started = Instant::now();
                    stream.write_all(&request).await?;
                    let status = read_response(&mut stream, &mut buf).await?;
                    latencies.push(started.elapsed());
                    if status != 200 {
                        return Err::<_, BoxError>(
                            format!("small upload answered {status}").into(),
                        );
                    }
                }
                Ok(latencies)
            }));
        }
        tasks
    };
    for task in phase("warmup", warmup) {
        task.await??;
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for task in phase("measured", settings.small_count) {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Small {
        count: settings.small_count,
        elapsed,
        p50: at(0.50),
        p99: at(0.99),
    })
}

/// Reads one response framed by `Content-Length`; returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<u16> {
    buf.clear();
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .ok_or("bad status line")?
        .parse()?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or("response without Content-Length")?;
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed in the body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(status)
}

fn report(
    settings: &Settings,
    rounds: &[Round],
    small: &Small,
    unsynced: &Small,
    load: &(String, String),
) -> Result<()> {
    let mb = settings.file_bytes as f64 / MIB;
    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "storage bench: {mb:.0} MiB file, {} round(s), local-filesystem backend (fsync {}), SQLite file; load average {} at the start, {} at the end",
        rounds.len(),
        if settings.fsync { "on" } else { "off" },
        load.0,
        load.1,
    );
    println!();
    println!(
        "{:<6} {:>9} {:>9} {:>10} {:>5} {:>5} {:>10} {:>5} {:>5} {:>10} {:>5} {:>10} {:>5} {:>6} {:>6} {:>9} {:>9} {:>9}",
        "round",
        "cp MiB/s",
        "dd MiB/s",
        "up MiB/s",
        "×cp",
        "×dd",
        "down MiB/s",
        "×cp",
        "×dd",
        "bare up",
        "×cp",
        "bare down",
        "×cp",
        "up×bare",
        "dn×bare",
        "up RSS MB",
        "down MB",
        "bare up MB",
    );
    let mut json_rounds = Vec::new();
    for (i, r) in rounds.iter().enumerate() {
        let up = r.cp.as_secs_f64() / r.upload.as_secs_f64();
        let down = r.cp.as_secs_f64() / r.download.as_secs_f64();
        let bare_up = r.cp.as_secs_f64() / r.bare_upload.as_secs_f64();
        let bare_down = r.cp.as_secs_f64() / r.bare_download.as_secs_f64();
        let up_bare = r.bare_upload.as_secs_f64() / r.upload.as_secs_f64();
        let down_bare = r.bare_download.as_secs_f64() / r.download.as_secs_f64();
        println!(
            "{:<6} {:>9.0} {:>9.0} {:>10.0} {:>5.2} {:>5.2} {:>10.0} {:>5.2} {:>5.2} {:>10.0} {:>5.2} {:>10.0} {:>5.2} {:>6.2} {:>6.2} {:>9.1} {:>9.1} {:>9.1}",
            i + 1,
            rate(r.cp),
            rate(r.dd),
            rate(r.upload),
            up,
            r.dd.as_secs_f64() / r.upload.as_secs_f64(),
            rate(r.download),
            down,
            r.dd.as_secs_f64() / r.download.as_secs_f64(),
            rate(r.bare_upload),
            bare_up,
            rate(r.bare_download),
            bare_down,
            up_bare,
            down_bare,
            r.upload_rss.growth_mb(),
            r.download_rss.growth_mb(),
            r.bare_upload_rss.growth_mb(),
        );
        json_rounds.push(json!({
            "cp_secs": r.cp.as_secs_f64(),
            "dd_secs": r.dd.as_secs_f64(),
            "upload_secs": r.upload.as_secs_f64(),
            "download_secs": r.download.as_secs_f64(),
            "upload_ratio": up,
            "download_ratio": down,
            "bare_upload_secs": r.bare_upload.as_secs_f64(),
            "bare_download_secs": r.bare_download.as_secs_f64(),
            "bare_upload_ratio": bare_up,
            "bare_download_ratio": bare_down,
            "upload_ratio_to_bare": up_bare,
            "download_ratio_to_bare": down_bare,
            "upload_rss_growth_mb": r.upload_rss.growth_mb(),
            "download_rss_growth_mb": r.download_rss.growth_mb(),
            "bare_upload_rss_growth_mb": r.bare_upload_rss.growth_mb(),
            "upload_rss_baseline_kb": r.upload_rss.baseline_kb,
            "download_rss_baseline_kb": r.download_rss.baseline_kb,
            "rss_exact": r.upload_rss.exact && r.download_rss.exact,
        }));
    }
    println!();
    println!(
        "CPU seconds per GiB (user + system; cp: the child; the others: this whole process, server and client):"
    );
    println!(
        "{:<6} {:>8} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "round", "cp", "upload", "download", "bare up", "bare down", "up×bare", "dn×bare"
    );
    let gib = settings.file_bytes as f64 / (1024.0 * MIB);
    for (i, r) in rounds.iter().enumerate() {
        let [cp, up, down, bare_up, bare_down] = r.cpu.map(|c| c / gib);
        println!(
            "{:<6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10.2} {:>8.2} {:>8.2}",
            i + 1,
            cp,
            up,
            down,
            bare_up,
            bare_down,
            up / bare_up,
            down / bare_down
        );
        if let Some(round) = json_rounds.get_mut(i) {
            round["cpu_secs_per_gib"] = json!({
                "cp": cp, "upload": up, "download": down,
                "bare_upload": bare_up, "bare_download": bare_down,
            });
        }
    }
    let worst = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).fold(f64::INFINITY, f64::min);
    let most = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).fold(0.0, f64::max);
    let up = worst(&|r| r.cp.as_secs_f64() / r.upload.as_secs_f64());
    let down = worst(&|r| r.cp.as_secs_f64() / r.download.as_secs_f64());
    let up_rss = most(&|r| r.upload_rss.growth_mb());
    let down_rss = most(&|r| r.download_rss.growth_mb());
    println!();
    println!("lowest ratio to cp: upload {up:.2}×, download {down:.2}× (goal ≥ {GOAL_RATIO}×)");
    let bare_up = most(&|r| r.cp.as_secs_f64() / r.bare_upload.as_secs_f64());
    let bare_down = most(&|r| r.cp.as_secs_f64() / r.bare_download.as_secs_f64());
    println!(
        "bare actix-web (same client, same worker count): best ratio to cp upload {bare_up:.2}×, download {bare_down:.2}×; \
         GoForward / bare: upload {:.2}–{:.2}×, download {:.2}–{:.2}×",
        worst(&|r| r.bare_upload.as_secs_f64() / r.upload.as_secs_f64()),
        most(&|r| r.bare_upload.as_secs_f64() / r.upload.as_secs_f64()),
        worst(&|r| r.bare_download.as_secs_f64() / r.download.as_secs_f64()),
        most(&|r| r.bare_download.as_secs_f64() / r.download.as_secs_f64()),
    );
    println!(
        "highest peak RSS growth: upload {up_rss:.1} MB, download {down_rss:.1} MB (goal < {GOAL_RSS_MB} MB; {})",
        if rounds.iter().all(|r| r.upload_rss.exact) {
            "VmHWM after a reset"
        } else {
            "sampled every 5 ms: short peaks may be missed"
        }
    );
    let per_sec = small.count as f64 / small.elapsed.as_secs_f64();
    let unsynced_per_sec = unsynced.count as f64 / unsynced.elapsed.as_secs_f64();
    for (label, s, rate) in [
        ("fsync on", small, per_sec),
        ("fsync off", unsynced, unsynced_per_sec),
    ] {
        println!(
            "small objects ({label}): {} uploads of {} B over {} connections: {rate:.0}/s (goal {GOAL_SMALL_PER_SEC}/s), p50 {} µs, p99 {} µs",
            s.count,
            settings.small_bytes,
            settings.connections,
            s.p50.as_micros(),
            s.p99.as_micros()
        );
    }
    if let Some(path) = &settings.output {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let out: Value = json!({
            "file_bytes": settings.file_bytes,
            "rounds": json_rounds,
            "small": {
                "count": small.count,
                "bytes": settings.small_bytes,
                "connections": settings.connections,
                "per_sec": per_sec,
                "p50_us": small.p50.as_micros() as u64,
                "p99_us": small.p99.as_micros() as u64,
                "fsync": true,
            },
            "small_fsync_off": {
                "per_sec": unsynced_per_sec,
                "p50_us": unsynced.p50.as_micros() as u64,
                "p99_us": unsynced.p99.as_micros() as u64,
            },
            "fsync": settings.fsync,
            "loadavg_start": load.0,
            "loadavg_end": load.1,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)?;
        println!("\nwritten to {}", path.display());
    }
    Ok(())
}
