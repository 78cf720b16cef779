//! How the floors open and close their database: the way `SqliteStore` does.
//!
//! WAL, `busy_timeout`, `synchronous = FULL`, and the same close: a write-ahead log of at
//! most 128 frames is left in place (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`), a longer one is
//! checkpointed and deleted by the last connection, and a commit that leaves 1000 frames
//! checkpoints (SQLite's `wal_autocheckpoint`, which the store's own WAL hook replaces).
//! Shared by the floor examples with `#[path]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::config::DbConfig;

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
