//! How the floors open and close their database: the way `SqliteStore` does.
//!
//! WAL, `busy_timeout`, `synchronous = FULL`, and the same close: a write-ahead log of at
//! most 128 frames is left in place (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`), a longer one is
//! checkpointed and deleted by the last connection, and a commit that leaves 1000 frames
//! checkpoints (SQLite's `wal_autocheckpoint`, which the store's own WAL hook replaces).
//! Shared by the floor examples with `#[path]`, with the one event they all record
//! ([`record`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// As `SqliteStore`: a writer waits for the others rather than failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);
/// As `SqliteStore`: a longer log is checkpointed at the close.
const CLOSE_CHECKPOINT_FRAMES: i32 = 128;
/// As `SqliteStore`: SQLite's default `wal_autocheckpoint`.
const AUTOCHECKPOINT_FRAMES: i32 = 1000;

/// A connection opened as `SqliteStore` opens one, closed as it closes one.
pub(crate) struct Db {
    conn: Connection,
    frames: Arc<AtomicI32>,
}

impl Db {
    pub(crate) fn open(path: &str) -> rusqlite::Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        }
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        let frames = Arc::new(AtomicI32::new(0));
        let counted = Arc::clone(&frames);
        conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, n: i32| {
            counted.store(n, Ordering::Relaxed);
            if n >= AUTOCHECKPOINT_FRAMES {
                let _ = wal.checkpoint();
            }
            Ok(())
        }))?;
        conn.execute_batch("PRAGMA synchronous = FULL")?;
        Ok(Self { conn, frames })
    }

    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if self.frames.load(Ordering::Relaxed) > CLOSE_CHECKPOINT_FRAMES {
            let _ = self
                .conn
                .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false);
        }
    }
}

/// Creates the floors' table once.
pub(crate) fn init(path: &str) -> rusqlite::Result<()> {
    Db::open(path)?.conn().execute_batch(
        "CREATE TABLE IF NOT EXISTS events (
             id    INTEGER PRIMARY KEY,
             key   TEXT NOT NULL,
             ts_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS events_by_key ON events (key, id);",
    )
}

/// One event of `key`, as one process records it: open, in one `BEGIN IMMEDIATE`
/// transaction read one row (as alertctl reads a service's state) and insert one,
/// commit, close. Returns the event's time (Unix milliseconds).
pub(crate) fn record(path: &str, key: &str) -> rusqlite::Result<i64> {
    let mut db = Db::open(path)?;
    let tx = db
        .conn()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
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
    tx.commit()?;
    Ok(now)
}
