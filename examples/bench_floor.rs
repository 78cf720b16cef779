//! The floor of the process benchmarks in `bench/run.sh`: the least a short-lived process
//! can do to record one event in SQLite the way `alertctl` does. It opens the database
//! with the same settings as `SqliteStore` (WAL, `busy_timeout`, `synchronous = FULL`),
//! then in one `BEGIN IMMEDIATE` transaction reads one row, inserts one row and commits.
//! No argument parsing library, no async runtime, no config: whatever `alertctl failure`
//! costs beyond this is ours.
//!
//! ```sh
//! cargo build --release --example bench_floor
//! target/release/examples/bench_floor --init floor.db   # create the table once
//! target/release/examples/bench_floor floor.db KEY      # one event, as one process
//! ```

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// As `SqliteStore`: a writer waits for the others rather than failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

fn open(path: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    }
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    Ok(conn)
}

fn init(path: &str) -> rusqlite::Result<()> {
    open(path)?.execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
             id    INTEGER PRIMARY KEY,
             key   TEXT NOT NULL,
             ts_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS events_by_key ON events (key, id);",
    )
}

fn record(path: &str, key: &str) -> rusqlite::Result<()> {
    let mut conn = open(path)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // read one row (the newest event of this key), as alertctl reads a service's state
    let _last: Option<i64> = tx
        .query_row(
            "SELECT ts_ms FROM events WHERE key = ?1 ORDER BY id DESC LIMIT 1",
            [key],
            |r| r.get(0),
        )
        .optional()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    tx.execute(
        "INSERT INTO events (key, ts_ms) VALUES (?1, ?2)",
        params![key, now],
    )?;
    tx.commit()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, path] if flag == "--init" => init(path),
        [path, key] => record(path, key),
        [path] => record(path, "floor"),
        _ => {
            eprintln!("usage: bench_floor --init DB | bench_floor DB [KEY]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_floor: {e}");
            ExitCode::FAILURE
        }
    }
}
