//! The floor of the ping benchmark (`bench/pings.sh`): N durable one-row commits of a
//! signal row, the way `SqliteStore` opens its database (WAL, `synchronous = FULL`,
//! `busy_timeout`) into a table shaped like its `signals` table, one `BEGIN IMMEDIATE`
//! transaction per row, from C threads with a connection each (C = 1: one after the
//! other). No HTTP, no judging, no grouping of commits: what one durable commit per
//! ping costs on this disk.
//!
//! ```sh
//! cargo build --release --example bench_ping_floor
//! target/release/examples/bench_ping_floor floor.db 20000 1    # N rows, C threads
//! ```
//! Prints `floor rows=N threads=C secs=S commits_per_s=R p99_ms=L`.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior, params};

fn open(path: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    }
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    Ok(conn)
}

fn commit_one(conn: &mut Connection) -> rusqlite::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(
        "INSERT INTO signals (source, kind, exit_status, rid, at_ms, body)
         VALUES (?1, 'success', NULL, NULL, ?2, NULL)",
    )?
    .execute(params!["bench", now])?;
    tx.commit()
}

fn run(path: &str, rows: u64, threads: u64) -> rusqlite::Result<(Duration, Vec<Duration>)> {
    open(path)?.execute_batch(
        "CREATE TABLE IF NOT EXISTS signals (
             id INTEGER PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL,
             exit_status INTEGER, rid TEXT, at_ms INTEGER NOT NULL, body TEXT);
         CREATE INDEX IF NOT EXISTS signals_by_source ON signals (source, id);",
    )?;
    let start = Instant::now();
    let per = rows / threads.max(1);
    let results: Vec<rusqlite::Result<Vec<Duration>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(move || {
                    let mut conn = open(path)?;
                    let mut lat = Vec::with_capacity(usize::try_from(per).unwrap_or(0));
                    for _ in 0..per {
                        let one = Instant::now();
                        commit_one(&mut conn)?;
                        lat.push(one.elapsed());
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Ok(Vec::new())))
            .collect()
    });
    let took = start.elapsed();
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok((took, all))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(path), Some(rows), Some(threads)) = (
        args.get(1),
        args.get(2).and_then(|v| v.parse::<u64>().ok()),
        args.get(3).and_then(|v| v.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: bench_ping_floor DB ROWS THREADS");
        return ExitCode::from(2);
    };
    match run(path, rows, threads) {
        Ok((took, mut lat)) => {
            lat.sort_unstable();
            let p99 = lat
                .get(lat.len().saturating_sub(1) * 99 / 100)
                .copied()
                .unwrap_or_default();
            #[allow(clippy::cast_precision_loss)]
            let rate = lat.len() as f64 / took.as_secs_f64();
            println!(
                "floor rows={} threads={threads} secs={:.2} commits_per_s={rate:.0} p99_ms={:.2}",
                lat.len(),
                took.as_secs_f64(),
                p99.as_secs_f64() * 1000.0
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_ping_floor: {e}");
            ExitCode::from(1)
        }
    }
}
