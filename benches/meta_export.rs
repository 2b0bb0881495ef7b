//! Meta export memory bench: `GET /meta/v1/tables/{table}/export` of one
//! million rows must stream with flat memory (issue #5: peak RSS growth
//! < 50 MB).
//!
//! One process: GoForward (test harness, 1 worker) on a SQLite *file* in a
//! temporary directory (so the data lives in the page cache, not in the
//! process's anonymous memory), a table made through the meta API and
//! filled with `BENCH_EXPORT_ROWS` rows (default 1 000 000) by one
//! recursive-CTE INSERT. Then, for the baseline (a tenth of the rows, via
//! `limit`) and for the full table, in CSV and JSON: the resident set size
//! is sampled every 5 ms while the client streams the body and throws it
//! away, and the bench prints rows, bytes, seconds, rows/s, the RSS before
//! and the peak growth, and the growth ratio full / baseline (flat ≈ 1).
//!
//! Figures, never pass/fail. Without `--bench` on its command line (as under
//! `cargo test --all-targets`) it only checks the wiring on 2 000 rows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stdout)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use goforward_core::{sea_orm::ConnectionTrait, testing::TestApp};
use goforward_rest::{Rest, meta::Meta};
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// The goal for the one-million-row export.
const GOAL_GROWTH_MB: f64 = 50.0;

/// Resident set size of this process in bytes (Linux `/proc/self/statm`).
fn rss() -> u64 {
    let page = 4096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * page)
}

struct Run {
    label: String,
    rows: u64,
    bytes: u64,
    seconds: f64,
    rss_before: u64,
    peak_growth: u64,
    peak: u64,
}

async fn export(app: &TestApp, label: &str, query: &str, accept: &str, rows: u64) -> Result<Run> {
    let before = rss();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    let res = app
        .client()
        .get(app.url(&format!("/meta/v1/tables/big/export{query}")))
        .header("apikey", app.service_key())
        .header("accept", accept)
        .send()
        .await?;
    if res.status() != 200 {
        return Err(format!("{label}: status {}", res.status()).into());
    }
    let mut bytes = 0u64;
    let mut lines = 0u64;
    let mut res = res;
    while let Some(chunk) = res.chunk().await? {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().map_err(|_| "sampler panicked")?;
    peak.fetch_max(rss(), Ordering::Relaxed);
    if accept == "text/csv" && lines != rows + 1 {
        return Err(format!("{label}: {lines} lines for {rows} rows").into());
    }
    Ok(Run {
        label: label.to_owned(),
        rows,
        bytes,
        seconds,
        rss_before: before,
        peak_growth: peak.load(Ordering::Relaxed).saturating_sub(before),
        peak: peak.load(Ordering::Relaxed),
    })
}

fn mb(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    let rows: u64 = if smoke {
        2_000
    } else {
        std::env::var("BENCH_EXPORT_ROWS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(1_000_000)
    };
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let rest = Rest::new();
    let app = TestApp::builder()
        .postgres(false)
        .config(move |c| c.database.url = Some(url))
        .plugin(Meta::for_rest(&rest))
        .plugin(rest)
        .start()
        .await?;

    let res = app
        .client()
        .post(app.url("/meta/v1/tables"))
        .header("apikey", app.service_key())
        .json(&json!({
            "name": "big",
            "columns": [
                {"name": "id", "type": "integer", "primary_key": true},
                {"name": "name", "type": "text", "nullable": false},
                {"name": "price", "type": "double"},
                {"name": "active", "type": "boolean"},
                {"name": "note", "type": "text"},
            ],
        }))
        .send()
        .await?;
    if !res.status().is_success() {
        return Err(format!("create table: {}", res.text().await?).into());
    }
    let seeded = Instant::now();
    app.db()
        .execute_unprepared(&format!(
            "INSERT INTO big (id, name, price, active, note) \
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT {rows}) \
             SELECT x, 'name-' || x, x * 1.5, x % 2, 'a note, with \"quotes\" ' || x FROM c"
        ))
        .await?;
    let seed_seconds = seeded.elapsed().as_secs_f64();

    // Warm up allocator and connection (not measured).
    export(&app, "warm-up", "?limit=1000", "text/csv", 1000.min(rows)).await?;

    let base_rows = (rows / 10).max(1);
    let mut runs = Vec::new();
    for (accept, kind) in [("text/csv", "csv"), ("application/json", "json")] {
        runs.push(
            export(
                &app,
                &format!("{kind} baseline"),
                &format!("?limit={base_rows}"),
                accept,
                base_rows,
            )
            .await?,
        );
        runs.push(export(&app, &format!("{kind} full"), "", accept, rows).await?);
    }
    app.stop().await;
    if smoke {
        return Ok(());
    }

    println!("meta export: {rows} rows seeded in {seed_seconds:.1} s (SQLite file, 1 worker)");
    println!(
        "{:<14} {:>9} {:>9} {:>7} {:>10} {:>11} {:>14}",
        "target", "rows", "MB sent", "s", "rows/s", "RSS MB", "peak +RSS MB"
    );
    for r in &runs {
        println!(
            "{:<14} {:>9} {:>9.1} {:>7.2} {:>10.0} {:>11.1} {:>14.1}",
            r.label,
            r.rows,
            mb(r.bytes),
            r.seconds,
            r.rows as f64 / r.seconds,
            mb(r.rss_before),
            mb(r.peak_growth),
        );
    }
    if let (Some(first), Some(max)) = (runs.first(), runs.iter().map(|r| r.peak).max()) {
        println!(
            "all four exports: RSS {:.1} MB before the first, {:.1} MB at the highest peak (+{:.1} MB, allocator retention included)",
            mb(first.rss_before),
            mb(max),
            mb(max.saturating_sub(first.rss_before)),
        );
    }
    for pair in runs.chunks(2) {
        if let [base, full] = pair {
            let growth = mb(full.peak_growth);
            println!(
                "{}: peak RSS growth {:.1} MB for {} rows ({:.1}× the baseline's {:.1} MB for {} rows); goal < {GOAL_GROWTH_MB} MB: {}",
                full.label,
                growth,
                full.rows,
                if base.peak_growth > 0 {
                    full.peak_growth as f64 / base.peak_growth as f64
                } else {
                    f64::NAN
                },
                mb(base.peak_growth),
                base.rows,
                if growth < GOAL_GROWTH_MB {
                    "met"
                } else {
                    "NOT met"
                },
            );
        }
    }
    Ok(())
}
