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

#[path = "floor/sqlite.rs"]
mod sqlite;
use sqlite::{init, record};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, path] if flag == "--init" => init(path),
        [path, key] => record(path, key).map(drop),
        [path] => record(path, "floor").map(drop),
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
