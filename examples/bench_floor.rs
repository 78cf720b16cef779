//! The floor of the process benchmarks in `bench/run.sh`: the least a short-lived process
//! can do to record one event in SQLite the way `alertctl` does. It opens the database
//! with the same settings as `SqliteStore` (WAL, `busy_timeout`, `synchronous = FULL`),
//! then in one `BEGIN IMMEDIATE` transaction reads one row, inserts one row and commits,
//! and closes as the store closes: a short write-ahead log is left in place
//! (`examples/floor/sqlite.rs`).
//! No argument parsing library, no async runtime, no config: whatever `alertctl failure`
//! costs beyond this is ours.
//!
//! ```sh
//! cargo build --release --example bench_floor
//! target/release/examples/bench_floor --init floor.db   # create the table once
//! target/release/examples/bench_floor floor.db KEY      # one event, as one process
//! ```

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, TransactionBehavior, params};

#[path = "floor/sqlite.rs"]
mod sqlite;
use sqlite::Db;

fn init(path: &str) -> rusqlite::Result<()> {
    Db::open(path)?.conn().execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
             id    INTEGER PRIMARY KEY,
             key   TEXT NOT NULL,
             ts_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS events_by_key ON events (key, id);",
    )
}

fn record(path: &str, key: &str) -> rusqlite::Result<()> {
    let mut db = Db::open(path)?;
    let tx = db
        .conn()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
