//! `SqliteStore`: rusqlite with bundled SQLite, WAL, `busy_timeout`, numbered migrations.

mod group;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use self::group::{GroupCommit, Held};
use super::{
    Applied, Attempt, Change, Claimed, NotificationId, NotificationRecord, OutboxFilter, Signal,
    SourceState, Store, finished_outcome, placement,
};
use crate::alert::{EventKind, Failure, Timestamp, Trigger};
use crate::error::StoreError;
use crate::hold::Silence;
use crate::outbox::{Admission, Gates, Limits, MAX_GROUP};
use crate::policy::{Outcome, ServiceState};

/// The schema migrations, in order; migration `i` brings `user_version` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_outbox.sql"),
    include_str!("../../migrations/0003_pending_index.sql"),
    include_str!("../../migrations/0004_sources.sql"),
    include_str!("../../migrations/0005_signals.sql"),
    include_str!("../../migrations/0006_silences.sql"),
    include_str!("../../migrations/0007_restarts.sql"),
];

/// How long a writer waits for another process's transaction before failing.
///
/// A boot where hundreds of units fail at once queues hundreds of short transactions;
/// waiting is right, failing (and losing the event) is not.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// A [`Store`] in an SQLite file, safe for many processes at once.
///
/// WAL mode lets readers run beside the writer; every read-modify-write runs in a
/// `BEGIN IMMEDIATE` transaction (taking the write lock up front, so a concurrent
/// writer waits in `busy_timeout` instead of failing with `SQLITE_BUSY` on upgrade).
/// A recorded event survives a power cut: `synchronous = FULL`, except that a group
/// transaction (below) syncs its write-ahead log after the commit, outside the lock.
///
/// Events that threads of one process apply at the same time share a transaction and
/// its commit (group commit): each runs in its own savepoint inside the open
/// transaction, and the last one in, when nobody else is waiting for the connection,
/// commits for all; every [`Store::apply`] returns after the commit that made its event
/// durable. One fsync then covers many events, which is what bounds an embedder's rate
/// on a real disk. Writes that need no fsync of their own (a delivery's outcome, a
/// claim's leases) join an open group too, without waiting for its commit, rather than
/// making it commit early.
///
/// A short write-ahead log and its index (`state.db-wal`, `state.db-shm`) stay beside
/// the file when the store is closed (up to 128 frames, some ten events), holding the
/// newest writes until a later close or commit checkpoints them: copy a state file with
/// `sqlite3 state.db ".backup copy.db"`, not `cp` of `state.db` alone.
#[derive(Debug)]
pub struct SqliteStore {
    /// The connection, whose events commit in groups.
    conn: GroupCommit,
    path: Option<PathBuf>,
    /// Frames in the write-ahead log after this connection's last commit.
    frames: Arc<AtomicI32>,
}

/// A store closed with more frames than this in the write-ahead log checkpoints it.
///
/// The last connection to close a database checkpoints its log into the file and deletes
/// it (two fsyncs), and the next opener creates it again (an fsync of its header and
/// one of the directory): over a millisecond of a handler process that writes some ten
/// frames. Left in place, the log costs the next opener instead a read of every frame
/// to rebuild its index (~1.2 µs a frame here). Checkpointing only past this length
/// costs a handler ~0.1 ms of each on average.
const CLOSE_CHECKPOINT_FRAMES: i32 = 128;

/// The commit that leaves the write-ahead log with this many frames checkpoints it
/// (SQLite's default `wal_autocheckpoint`).
const AUTOCHECKPOINT_FRAMES: i32 = 1000;

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if self.frames.load(Ordering::Relaxed) > CLOSE_CHECKPOINT_FRAMES {
            // SQLite's own close: checkpoint and delete the log if this is the last
            // connection, else nothing
            let _ = self
                .conn
                .conn_mut()
                .set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false);
        }
    }
}

/// Prepared statements kept per connection: more than this store has.
const STATEMENT_CACHE: usize = 64;

impl SqliteStore {
    /// Opens (creating it and its directory if needed) and migrates the state file.
    ///
    /// # Errors
    /// [`StoreError::SchemaTooNew`] if a newer alertcore wrote it; I/O and SQLite errors.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let open_error = |source| StoreError::Open {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(open_error)?;
        let store = Self::new(conn, Some(path.to_owned()));
        match store.init().map_err(|e| store.explain(e)) {
            Err(StoreError::Sqlite(e)) => Err(open_error(e)),
            other => other.map(|()| store),
        }
    }

    /// An in-memory database (for tests and examples).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let store = Self::new(Connection::open_in_memory()?, None);
        store.init()?;
        Ok(store)
    }

    fn new(conn: Connection, path: Option<PathBuf>) -> Self {
        Self {
            conn: GroupCommit::new(conn, path.is_some()),
            path,
            frames: Arc::default(),
        }
    }

    /// The newest schema version this build knows.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    fn init(&self) -> Result<(), StoreError> {
        let mut conn = self.lock();
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // rusqlite keeps 16 statements by default; the engine's hot path alone uses more,
        // and an evicted statement is compiled again at its next use.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // The bundled SQLite is built with SQLITE_ENABLE_STAT4, under which a statement
        // whose plan may depend on a bound value (the history query: `= ?1 ORDER BY id`)
        // is compiled again at every new binding, statement cache or not. Our plans never
        // depend on the values: pin them.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        // journal_mode is persistent in the file: only the first opener pays for the switch.
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") && self.path.is_some() {
            switch_to_wal(&conn)?;
        }
        if self.path.is_some() {
            // See `Drop`: the log is checkpointed at the close only once it is long.
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
            // What SQLite's own hook does for `wal_autocheckpoint`, which this one
            // replaces, plus counting the frames.
            let frames = Arc::clone(&self.frames);
            conn.wal_hook(Some(move |wal: &mut rusqlite::hooks::Wal, n: i32| {
                frames.store(n, Ordering::Relaxed);
                if n >= AUTOCHECKPOINT_FRAMES {
                    let _ = wal.checkpoint();
                }
                Ok(())
            }))?;
        }
        // Savepoints (one per event of a group transaction) journal the pages they
        // change; in a temporary file that is an open, writes and a close per group.
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY")?;
        self.migrate(&mut conn)
    }

    fn migrate(&self, conn: &mut Connection) -> Result<(), StoreError> {
        let version = user_version(conn)?;
        if version == Self::SCHEMA_VERSION {
            return Ok(());
        }
        if version > Self::SCHEMA_VERSION {
            return Err(self.too_new(version));
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // another process may have migrated while we waited for the lock
        let version = user_version(&tx)?;
        if version > Self::SCHEMA_VERSION {
            return Err(self.too_new(version));
        }
        let start = usize::try_from(version).unwrap_or(0);
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(start) {
            tx.execute_batch(sql)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        }
        tx.commit()?;
        Ok(())
    }

    fn too_new(&self, found: i64) -> StoreError {
        StoreError::SchemaTooNew {
            path: self.display_path(),
            found,
            supported: Self::SCHEMA_VERSION,
        }
    }

    /// Runs `f`, turning an SQLite error about the file itself into one that names the
    /// file and says what is wrong with it.
    fn on_file<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        f().map_err(|e| self.explain(e))
    }

    fn explain(&self, e: StoreError) -> StoreError {
        let StoreError::Sqlite(source) = e else {
            return e;
        };
        match self.problem(&source) {
            Some(problem) => StoreError::File {
                path: self.display_path(),
                problem,
                source,
            },
            None => StoreError::Sqlite(source),
        }
    }

    /// What is wrong with the file, when SQLite's error is about the file.
    fn problem(&self, e: &rusqlite::Error) -> Option<String> {
        use rusqlite::ErrorCode;
        let rusqlite::Error::SqliteFailure(f, _) = e else {
            return None;
        };
        let why = match f.code {
            ErrorCode::DiskFull => "disk full: no space left to record the event",
            ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
                return Some(self.why_not_writable().unwrap_or_else(|| {
                    format!("cannot be opened for writing ({e}); is its directory writable?")
                }));
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                "locked by another process for longer than the busy timeout (60 s)"
            }
            ErrorCode::SystemIoFailure => "I/O error reading or writing it",
            ErrorCode::NotADatabase => "not an alertcore state file (not an SQLite database)",
            ErrorCode::DatabaseCorrupt => "corrupt (SQLite: the disk image is malformed)",
            _ => return None,
        };
        Some(why.to_owned())
    }

    /// Why the state file cannot be written, found by trying to open it for appending.
    fn why_not_writable(&self) -> Option<String> {
        let path = self.path.as_ref()?;
        let e = std::fs::OpenOptions::new().append(true).open(path).err()?;
        Some(match e.kind() {
            std::io::ErrorKind::ReadOnlyFilesystem => {
                "read-only: its file system is mounted read-only".to_owned()
            }
            std::io::ErrorKind::PermissionDenied => {
                "read-only for this user (permission denied)".to_owned()
            }
            std::io::ErrorKind::NotFound => return None,
            _ => format!("cannot be opened for writing: {e}"),
        })
    }

    fn display_path(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string())
    }

    /// The connection, with no group transaction open on it.
    pub(super) fn lock(&self) -> Held<'_> {
        self.conn.lock()
    }

    /// See [`GroupCommit::two_at_once`].
    #[cfg(test)]
    pub(super) fn two_at_once<A: Send, B: Send>(
        &self,
        first: impl FnOnce(&dyn Fn()) -> A + Send,
        second: impl FnOnce() -> B + Send,
    ) -> (std::thread::Result<A>, std::thread::Result<B>) {
        self.conn.two_at_once(first, second)
    }
}

/// `PRAGMA journal_mode = WAL`, waiting for other connections like `busy_timeout` would.
///
/// SQLite answers the switch with "database is locked" at once, without calling the busy
/// handler, while another connection holds a lock; on a new state file that is every
/// handler but the first of a burst, and failing would lose their events.
fn switch_to_wal(conn: &Connection) -> Result<(), StoreError> {
    let start = std::time::Instant::now();
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(fastrand::u64(2..20)));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn user_version(conn: &Connection) -> Result<i64, rusqlite::Error> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn load_state(conn: &Connection, service: &str) -> Result<Option<ServiceState>, StoreError> {
    let json: Option<String> = conn
        .prepare_cached("SELECT state FROM services WHERE name = ?1")?
        .query_row([service], |r| r.get(0))
        .optional()?;
    json.map(|j| decode_state(service, &j)).transpose()
}

fn decode_state(service: &str, json: &str) -> Result<ServiceState, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("state of {service:?}: {e}")))
}

fn save_state(
    conn: &Connection,
    service: &str,
    state: &ServiceState,
    now: Timestamp,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(state)
        .map_err(|e| StoreError::Corrupt(format!("state of {service:?}: {e}")))?;
    conn.prepare_cached(
        "INSERT INTO services (name, state, updated_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_ms = excluded.updated_ms",
    )?
    .execute(params![service, json, now.as_millis()])?;
    Ok(())
}

fn load_history(conn: &Connection, service: &str) -> Result<Vec<Failure>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts_ms, service_result, exit_code, exit_status, invocation_id, severity, host,
                message, notifiers, restarting, started_by
         FROM failures WHERE service = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([service], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, String>(6)?,
            r.get::<_, Option<String>>(7)?,
            r.get::<_, String>(8)?,
            r.get::<_, bool>(9)?,
            r.get::<_, Option<String>>(10)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (ts, result, code, status, inv, severity, host, message, notifiers, restarting, by) =
            row?;
        out.push(Failure {
            service_result: result,
            exit_code: code,
            exit_status: status,
            invocation_id: inv,
            timestamp: Timestamp::from_millis(ts),
            severity: severity.parse().map_err(StoreError::Corrupt)?,
            host,
            message,
            notifiers: serde_json::from_str(&notifiers)
                .map_err(|e| StoreError::Corrupt(format!("notifiers of a failure: {e}")))?,
            restarting,
            trigger: by
                .map(|t| t.parse())
                .transpose()
                .map_err(StoreError::Corrupt)?,
        });
    }
    Ok(out)
}

fn insert_failure(conn: &Connection, service: &str, f: &Failure) -> Result<(), StoreError> {
    let notifiers =
        serde_json::to_string(&f.notifiers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    conn.prepare_cached(
        "INSERT INTO failures (service, ts_ms, service_result, exit_code, exit_status,
                               invocation_id, severity, host, message, notifiers,
                               restarting, started_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        service,
        f.timestamp.as_millis(),
        f.service_result,
        f.exit_code,
        f.exit_status,
        f.invocation_id,
        f.severity.as_str(),
        f.host,
        f.message,
        notifiers,
        f.restarting,
        f.trigger.map(Trigger::as_str)
    ])?;
    Ok(())
}

fn next_sequence(conn: &Connection) -> Result<u64, StoreError> {
    let v: i64 = conn
        .prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('sequence', 1)
             ON CONFLICT (key) DO UPDATE SET value = value + 1 RETURNING value",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(u64::try_from(v).unwrap_or(0))
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// Reads a row selected with [`NOTIFICATION_COLUMNS`].
fn notification_from_row(r: &Row<'_>) -> rusqlite::Result<NotificationRecord> {
    let kind: String = r.get(3)?;
    let status: String = r.get(7)?;
    let bad = |i: usize, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    // 'dropped' is a store-only status: to the policy a dropped alert failed
    let (status, dropped) = match status.as_str() {
        "dropped" => (Outcome::Failed, true),
        other => (other.parse::<Outcome>().map_err(|e| bad(7, e))?, false),
    };
    Ok(NotificationRecord {
        id: NotificationId(r.get(0)?),
        service: r.get(1)?,
        notifier: r.get(2)?,
        kind: kind.parse::<EventKind>().map_err(|e| bad(3, e))?,
        streak: u64::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
        sequence: u64::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
        created: Timestamp::from_millis(r.get(6)?),
        status,
        dropped,
        error: r.get(8)?,
        finished: r.get::<_, Option<i64>>(9)?.map(Timestamp::from_millis),
        attempts: to_u32(r.get(10)?),
        next_attempt: r.get::<_, Option<i64>>(11)?.map(Timestamp::from_millis),
        leased_until: r.get::<_, Option<i64>>(12)?.map(Timestamp::from_millis),
    })
}

const NOTIFICATION_COLUMNS: &str = "id, service, notifier, kind, streak, sequence, created_ms, \
     status, error, finished_ms, attempts, next_attempt_ms, lease_ms";

/// Whether an older row of this service, notifier and streak is still pending: then a
/// new row must wait for it (an index seek).
fn has_pending(
    conn: &Connection,
    service: &str,
    notifier: &str,
    streak: u64,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM notifications INDEXED BY notifications_pending
                            WHERE status = 'pending' AND notifier = ?2 AND service = ?1
                              AND streak = ?3)",
        )?
        .query_row(params![service, notifier, to_i64(streak)], |r| r.get(0))?)
}

/// Drops the pending rows of this service, notifier and streak for a recovery that
/// replaces them, when there are some and none is being sent (a leased row may be on
/// the wire: then the recovery goes after it). Whether it did.
fn collapse_waiting(
    conn: &Connection,
    service: &str,
    notifier: &str,
    streak: u64,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let group = "status = 'pending' AND notifier = ?2 AND service = ?1 AND streak = ?3";
    let (waiting, sending): (i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*), count(*) FILTER (WHERE lease_ms >= ?4)
             FROM notifications INDEXED BY notifications_pending WHERE {group}"
        ))?
        .query_row(
            params![service, notifier, to_i64(streak), now.as_millis()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
    if waiting == 0 || sending > 0 {
        return Ok(false);
    }
    conn.prepare_cached(&format!(
        "UPDATE notifications SET status = 'dropped', error = 'collapsed into its recovery',
             finished_ms = ?4, next_attempt_ms = NULL, lease_ms = NULL
         WHERE {group}"
    ))?
    .execute(params![service, notifier, to_i64(streak), now.as_millis()])?;
    Ok(true)
}

/// The streak counter a cleared service had (0 if it never was cleared). Read only for
/// a service without state: its first event, or the first after a clear.
fn cleared_streaks(conn: &Connection, service: &str) -> Result<u64, StoreError> {
    let n: Option<i64> = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'streaks:' || ?1")?
        .query_row([service], |r| r.get(0))
        .optional()?;
    Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// Whether any pending row is due at `now` and not leased (a read; the partial index
/// answers it from a few pages).
fn any_due(conn: &Connection, now: Timestamp) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM notifications INDEXED BY notifications_due
                            WHERE status IN ('pending', 'failed') AND status = 'pending'
                              AND next_attempt_ms <= ?1
                              AND (lease_ms IS NULL OR lease_ms < ?1))",
        )?
        .query_row([now.as_millis()], |r| r.get(0))?)
}

/// How many of `notifier`'s rows are in flight (pending, with a lease running at `now`):
/// a walk over just those rows in the index.
fn in_flight(conn: &Connection, notifier: &str, now: Timestamp) -> Result<u32, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM notifications INDEXED BY notifications_queue
             WHERE status = 'pending' AND notifier = ?1 AND lease_ms >= ?2",
        )?
        .query_row(params![notifier, now.as_millis()], |r| r.get(0))?;
    Ok(to_u32(n))
}

/// A number the store keeps per notifier in `meta`, under `KIND:NOTIFIER`: `rate` (the
/// per-minute limit's state, see [`crate::outbox::admit`]), `group` (when its last group
/// was claimed).
fn notifier_meta(conn: &Connection, kind: &str, notifier: &str) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT value FROM meta WHERE key = ?1 || ':' || ?2")?
        .query_row([kind, notifier], |r| r.get(0))
        .optional()?)
}

fn save_notifier_meta(
    conn: &Connection,
    kind: &str,
    notifier: &str,
    value: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1 || ':' || ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![kind, notifier, value])?;
    Ok(())
}

fn rate_state(conn: &Connection, notifier: &str) -> Result<Option<i64>, StoreError> {
    notifier_meta(conn, "rate", notifier)
}

fn save_rate_state(conn: &Connection, notifier: &str, tat: i64) -> Result<(), StoreError> {
    save_notifier_meta(conn, "rate", notifier, tat)
}

/// Claims a grouped notifier's group, if one of its rows is due at `now` and its last
/// group was at least `interval` ago: every row of it not being sent that waits for its
/// first attempt or is due, oldest first, up to [`MAX_GROUP`], except those behind an
/// older row of their incident that is being sent or waits for a retry (they would
/// overtake it). Records the time of the group.
fn claim_group(
    tx: &Connection,
    notifier: &str,
    interval: Duration,
    now: Timestamp,
    lease: Duration,
) -> Result<Vec<i64>, StoreError> {
    let last = notifier_meta(tx, "group", notifier)?;
    let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
    if last.is_some_and(|l| now.as_millis() < l.saturating_add(interval_ms)) {
        return Ok(Vec::new());
    }
    let due: Option<i64> = tx
        .prepare_cached(
            "SELECT id FROM notifications INDEXED BY notifications_queue
             WHERE status = 'pending' AND notifier = ?1
               AND (lease_ms IS NULL OR lease_ms < ?2) AND next_attempt_ms <= ?2
             LIMIT 1",
        )?
        .query_row(params![notifier, now.as_millis()], |r| r.get(0))
        .optional()?;
    if due.is_none() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM notifications AS q
             WHERE status = 'pending' AND notifier = ?1
               AND (lease_ms IS NULL OR lease_ms < ?2)
               AND (attempts = 0 OR next_attempt_ms <= ?2)
               AND NOT EXISTS (
                   SELECT 1 FROM notifications AS o INDEXED BY notifications_pending
                   WHERE o.status = 'pending' AND o.notifier = q.notifier
                     AND o.service = q.service AND o.streak = q.streak AND o.id < q.id
                     AND (o.lease_ms >= ?2 OR (o.attempts > 0 AND o.next_attempt_ms > ?2)))
             ORDER BY id LIMIT ?3",
        )?
        .query_map(
            params![notifier, now.as_millis(), to_i64(MAX_GROUP as u64)],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let until = now.saturating_add(lease).as_millis();
    let mut set = tx.prepare_cached("UPDATE notifications SET lease_ms = ?2 WHERE id = ?1")?;
    for id in &ids {
        set.execute(params![id, until])?;
    }
    save_notifier_meta(tx, "group", notifier, now.as_millis())?;
    Ok(ids)
}

/// Whether `notifier` may have one more row claimed at `now` under `limits`; records
/// the claim in the rate state when it may.
fn admit(
    conn: &Connection,
    notifier: &str,
    limits: Limits,
    now: Timestamp,
) -> Result<Admission, StoreError> {
    if limits == Limits::NONE {
        return Ok(Admission::Claim(None));
    }
    let (busy, tat) = gate_state(conn, notifier, limits, now)?;
    let admission = limits.admit(busy, tat, now.as_millis());
    if let Admission::Claim(Some(tat)) = admission {
        save_rate_state(conn, notifier, tat)?;
    }
    Ok(admission)
}

/// What `limits` need to know of `notifier`: its rows in flight at `now` and its rate
/// state (each read only when there is that limit).
fn gate_state(
    conn: &Connection,
    notifier: &str,
    limits: Limits,
    now: Timestamp,
) -> Result<(u32, Option<i64>), StoreError> {
    let busy = match limits.max_concurrent {
        Some(_) => in_flight(conn, notifier, now)?,
        None => 0,
    };
    let tat = match limits.max_per_minute {
        Some(_) => rate_state(conn, notifier)?,
        None => None,
    };
    Ok((busy, tat))
}

/// Whether every notifier of `list` has `max_concurrent` rows in flight at `now`, so a
/// claim for them can take nothing (a read, without the write lock: whoever frees a
/// slot claims after it).
fn all_busy(
    conn: &Connection,
    list: &[(&str, Limits)],
    now: Timestamp,
) -> Result<bool, StoreError> {
    for (notifier, limits) in list {
        match limits.max_concurrent {
            Some(max) if in_flight(conn, notifier, now)? >= max => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// [`Store::apply`]'s reads and writes, in the transaction open on `tx`.
/// Saves source rows (an empty state deletes the row).
fn save_sources_in(tx: &Connection, rows: &[SourceState]) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut upsert = tx.prepare_cached(
        "INSERT INTO sources (kind, name, state, updated_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, name) DO UPDATE
         SET state = excluded.state, updated_ms = excluded.updated_ms",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM sources WHERE kind = ?1 AND name = ?2")?;
    for row in rows {
        if row.is_removal() {
            delete.execute(params![row.kind, row.name])?;
        } else {
            upsert.execute(params![
                row.kind,
                row.name,
                row.state,
                row.updated.as_millis()
            ])?;
        }
    }
    Ok(())
}

fn apply_in(
    tx: &Connection,
    service: &str,
    now: Timestamp,
    f: &mut dyn FnMut(&ServiceState) -> Change,
) -> Result<Applied, StoreError> {
    let state = match load_state(tx, service)? {
        Some(state) => state,
        None => ServiceState::after_clear(cleared_streaks(tx, service)?),
    };
    let change = f(&state);
    save_state(tx, service, &change.next, now)?;
    if let Some(failure) = &change.failure {
        insert_failure(tx, service, failure)?;
    }
    // only the notifiers read the history: skip it for a suppressed event
    let history = if change.notifications.is_empty() {
        Vec::new()
    } else {
        load_history(tx, service)?
    };
    if change.end_streak {
        tx.prepare_cached("DELETE FROM failures WHERE service = ?1")?
            .execute([service])?;
    }
    save_sources_in(tx, &change.sources)?;
    let mut applied = Applied {
        history,
        ..Applied::default()
    };
    if !change.notifications.is_empty() {
        applied.sequence = next_sequence(tx)?;
        let history = serde_json::to_string(&applied.history)
            .map_err(|e| StoreError::Corrupt(format!("history of {service:?}: {e}")))?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO notifications (service, notifier, kind, streak, sequence, created_ms,
                                        status, attempts, next_attempt_ms, lease_ms, payload,
                                        history)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?10, ?7, ?8, ?9)",
        )?;
        for n in &change.notifications {
            let collapsed = match n.collapse {
                Some(_) => collapse_waiting(tx, service, &n.notifier, n.streak, now)?,
                None => false,
            };
            let payload = match &n.collapse {
                Some(p) if collapsed => p,
                _ => &n.payload,
            };
            // an older pending row of the group goes first: this one waits, unclaimed;
            // so does one over its notifier's limits, for a flush
            let admission = match n.lease {
                Some(_) if !has_pending(tx, service, &n.notifier, n.streak)? => {
                    Some(admit(tx, &n.notifier, n.limits, now)?)
                }
                _ => None,
            };
            let (lease, due) = placement(admission, n.lease, now);
            let due = n.due.map_or(due, |at| at.max(due));
            insert.execute(params![
                service,
                n.notifier,
                n.kind.as_str(),
                to_i64(n.streak),
                to_i64(applied.sequence),
                now.as_millis(),
                lease.map(Timestamp::as_millis),
                payload,
                history,
                due.as_millis(),
            ])?;
            let id = NotificationId(tx.last_insert_rowid());
            applied.add(id, admission, collapsed);
        }
    }
    Ok(applied)
}

/// [`Store::claim_due`]'s reads and writes, in the transaction open on `tx`.
fn claim_in(
    tx: &Connection,
    now: Timestamp,
    lease: Duration,
    limit: usize,
    notifiers: Option<&[(&str, Limits)]>,
) -> Result<Vec<Claimed>, StoreError> {
    let mut gates = Gates::new(notifiers);
    // Each notifier's due rows in the order they fell due, up to its free slots; only the
    // oldest pending row of a service, notifier and streak goes: a younger one (a
    // recovery) waits until that one is finished, even while it is leased or waiting
    // for its retry. Both indexes are walked only as far as the rows taken (and the rare
    // rows whose sender died holding the lease), however many wait.
    let queue = |lease: &str| {
        format!(
            "SELECT id, notifier FROM notifications AS q INDEXED BY notifications_queue
             WHERE status = 'pending' AND notifier = ?1 AND {lease} AND next_attempt_ms <= ?2
               AND NOT EXISTS (
                   SELECT 1 FROM notifications AS o INDEXED BY notifications_pending
                   WHERE o.status = 'pending' AND o.notifier = q.notifier
                     AND o.service = q.service AND o.streak = q.streak AND o.id < q.id)
             ORDER BY next_attempt_ms, id LIMIT ?3"
        )
    };
    // grouped notifiers: all at once, apart from the queue
    let mut grouped = Vec::new();
    for (notifier, limits) in notifiers.unwrap_or_default() {
        if let Some(interval) = limits.group_interval {
            grouped.extend(claim_group(tx, notifier, interval, now, lease)?);
        }
    }
    let names: Vec<String> = match notifiers {
        Some(list) => list
            .iter()
            .filter(|(_, l)| l.group_interval.is_none())
            .map(|(n, _)| (*n).to_owned())
            .collect(),
        None => tx
            .prepare_cached(
                "SELECT DISTINCT notifier FROM notifications INDEXED BY notifications_pending
                 WHERE status = 'pending'",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?,
    };
    let mut due: Vec<(i64, String)> = Vec::new();
    for notifier in &names {
        let room = gates.room(notifier, |n, limits| gate_state(tx, n, limits, now))?;
        let room = i64::try_from(room.min(limit)).unwrap_or(i64::MAX);
        if room == 0 {
            continue;
        }
        for lease in ["lease_ms IS NULL", "lease_ms < ?2"] {
            let mut stmt = tx.prepare_cached(&queue(lease))?;
            let rows = stmt.query_map(params![notifier, now.as_millis(), room], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            for r in rows {
                due.push(r?);
            }
        }
    }
    // the oldest first (and each once, should a caller name a notifier twice)
    due.sort_unstable_by_key(|(id, _)| *id);
    due.dedup_by_key(|(id, _)| *id);
    let mut picked = Vec::new();
    for (id, notifier) in due {
        if picked.len() >= limit || gates.all_busy() {
            break;
        }
        let admission = gates.admit(&notifier, now.as_millis(), |n, limits| {
            gate_state(tx, n, limits, now)
        })?;
        match admission {
            None | Some(Admission::Busy) => {}
            Some(Admission::Claim(_)) => {
                tx.prepare_cached("UPDATE notifications SET lease_ms = ?2 WHERE id = ?1")?
                    .execute(params![id, now.saturating_add(lease).as_millis()])?;
                picked.push(id);
            }
            Some(Admission::Later(at)) => {
                tx.prepare_cached("UPDATE notifications SET next_attempt_ms = ?2 WHERE id = ?1")?
                    .execute(params![id, at])?;
            }
        }
    }
    for (notifier, tat) in gates.rates() {
        save_rate_state(tx, notifier, tat)?;
    }
    picked.extend(grouped);
    let mut claimed = Vec::with_capacity(picked.len());
    {
        let mut get = tx.prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS}, payload, history FROM notifications WHERE id = ?1"
        ))?;
        for id in picked {
            claimed.push(get.query_row([id], |r| {
                let record = notification_from_row(r)?;
                let history: Option<String> = r.get(14)?;
                Ok(Claimed {
                    attempts: record.attempts,
                    payload: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
                    history: history
                        .map(|h| serde_json::from_str(&h))
                        .transpose()
                        .map_err(|e| {
                            rusqlite::Error::FromSqlConversionFailure(
                                14,
                                rusqlite::types::Type::Text,
                                e.into(),
                            )
                        })?
                        .unwrap_or_default(),
                    record,
                })
            })?);
        }
    }
    Ok(claimed)
}

/// Sets the recipient of a failure alert `row` to `outcome` in its service's state,
/// keeping the state's `updated_ms` (an operator's action is not an event).
fn set_recipient(
    conn: &Connection,
    row: &NotificationRecord,
    outcome: Outcome,
) -> Result<(), StoreError> {
    if !row.kind.is_alert() {
        return Ok(());
    }
    update_state(conn, &row.service, |state| {
        state.record_outcome(row.streak, &row.notifier, row.created, outcome);
    })
}

/// Changes the stored state of `service` with `f`, keeping its `updated_ms` (this is
/// not an event); writes only if `f` changed it.
fn update_state(
    conn: &Connection,
    service: &str,
    f: impl FnOnce(&mut ServiceState),
) -> Result<(), StoreError> {
    let Some(mut state) = load_state(conn, service)? else {
        return Ok(());
    };
    let before = state.clone();
    f(&mut state);
    if state != before {
        let json = serde_json::to_string(&state)
            .map_err(|e| StoreError::Corrupt(format!("state of {service:?}: {e}")))?;
        conn.prepare_cached("UPDATE services SET state = ?2 WHERE name = ?1")?
            .execute(params![service, json])?;
    }
    Ok(())
}

impl SqliteStore {
    /// [`Store::record_attempt`], then [`Store::claim_due`] of at most one row of the
    /// `next` notifier (with its limits), due at `at`, for `lease`, in one transaction:
    /// a sender that has finished takes the next row waiting for its slot.
    ///
    /// # Errors
    /// A [`StoreError`] from either.
    pub(crate) fn record_attempt_and_claim(
        &self,
        id: NotificationId,
        attempt: Attempt<'_>,
        at: Timestamp,
        lease: Duration,
        next: (&str, Limits),
    ) -> Result<Vec<Claimed>, StoreError> {
        self.on_file(|| {
            // both unsynced, as each is alone: one transaction, one lock, and the pages
            // the two share (the row's, the queue index's) written once
            self.conn.hold().unsynced(|tx| {
                record_attempt_in(tx, id, attempt, at)?;
                // Mostly nothing waits: then the claim's statements (the costliest to
                // compile, which a handler process does for each) are not needed.
                if !any_due(tx, at)? {
                    return Ok(Vec::new());
                }
                claim_in(tx, at, lease, 1, Some(&[next]))
            })
        })
    }

    /// Nobody holds or waits for the connection. A delivery recorded now takes no lock
    /// but the connection's (it rides in an open group, or commits unsynced), unless
    /// another process holds the file's write lock.
    pub(crate) fn idle(&self) -> bool {
        self.conn.idle()
    }
}

impl Store for SqliteStore {
    fn apply(
        &self,
        service: &str,
        now: Timestamp,
        f: &mut dyn FnMut(&ServiceState) -> Change,
    ) -> Result<Applied, StoreError> {
        self.on_file(|| self.conn.durable(|tx| apply_in(tx, service, now, f)))
    }

    fn record_attempt(
        &self,
        id: NotificationId,
        attempt: Attempt<'_>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.on_file(|| {
            // The outcome need not survive a power cut on its own: the next event's commit
            // (or the checkpoint when the last connection closes) syncs it, and a lost
            // outcome only leaves the row pending and leased until its lease ends, when it
            // is sent again (at least once).
            self.conn
                .hold()
                .unsynced(|tx| record_attempt_in(tx, id, attempt, at))
        })
    }

    fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        notifiers: Option<&[(&str, Limits)]>,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.on_file(|| {
            if limit == 0 {
                return Ok(Vec::new());
            }
            let conn = self.conn.hold();
            // Most calls (every `alertctl failure` asks for its notifiers) find nothing due,
            // or, in a burst, their notifiers busy: say so from reads, without queueing for
            // the write lock.
            if !any_due(&conn, now)? {
                return Ok(Vec::new());
            }
            if let Some(list) = notifiers
                && all_busy(&conn, list, now)?
            {
                return Ok(Vec::new());
            }
            // A claim need not survive a power cut: no sender survives it either, and a
            // lost lease only makes the row due again (sent at least once).
            conn.unsynced(|tx| claim_in(tx, now, lease, limit, notifiers))
        })
    }

    fn outbox(&self, filter: &OutboxFilter) -> Result<Vec<NotificationRecord>, StoreError> {
        self.on_file(|| {
            let conn = self.lock();
            let limit = filter
                .limit
                .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {NOTIFICATION_COLUMNS} FROM notifications
                 WHERE status IN ('pending', 'failed') AND (?1 IS NULL OR service = ?1)
                   AND (?2 IS NULL OR notifier = ?2) AND (?3 IS NULL OR status = ?3)
                 ORDER BY id DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.service,
                    filter.notifier,
                    filter.status.map(Outcome::as_str),
                    limit
                ],
                notification_from_row,
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn retry(&self, id: Option<NotificationId>, now: Timestamp) -> Result<usize, StoreError> {
        self.on_file(|| {
            let mut conn = self.lock();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let set = "UPDATE notifications
                       SET status = 'pending', next_attempt_ms = ?1, lease_ms = NULL, finished_ms = NULL
                       WHERE status IN ('pending', 'failed')";
            let rows = {
                let mut stmt = match id {
                    Some(_) => tx.prepare(&format!(
                        "{set} AND id = ?2 RETURNING {NOTIFICATION_COLUMNS}"
                    ))?,
                    None => tx.prepare(&format!("{set} RETURNING {NOTIFICATION_COLUMNS}"))?,
                };
                let rows = match id {
                    Some(id) => {
                        stmt.query_map(params![now.as_millis(), id.0], notification_from_row)?
                    }
                    None => stmt.query_map(params![now.as_millis()], notification_from_row)?,
                };
                rows.collect::<Result<Vec<_>, _>>()?
            };
            for row in &rows {
                // the outbox owns the alert again
                set_recipient(&tx, row, Outcome::Pending)?;
            }
            tx.commit()?;
            Ok(rows.len())
        })
    }

    fn drop_notification(&self, id: NotificationId) -> Result<bool, StoreError> {
        self.on_file(|| {
            let mut conn = self.lock();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let row = tx
                .prepare_cached(&format!(
                    "UPDATE notifications
                     SET status = 'dropped', next_attempt_ms = NULL, lease_ms = NULL
                     WHERE id = ?1 AND status IN ('pending', 'failed')
                     RETURNING {NOTIFICATION_COLUMNS}"
                ))?
                .query_row([id.0], notification_from_row)
                .optional()?;
            if let Some(row) = &row {
                set_recipient(&tx, row, Outcome::Failed)?;
            }
            tx.commit()?;
            Ok(row.is_some())
        })
    }

    fn state(&self, service: &str) -> Result<Option<ServiceState>, StoreError> {
        self.on_file(|| load_state(&self.lock(), service))
    }

    fn states(&self) -> Result<Vec<(String, ServiceState)>, StoreError> {
        self.on_file(|| {
            let conn = self.lock();
            let mut stmt = conn.prepare("SELECT name, state FROM services ORDER BY name")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            let mut out = Vec::new();
            for row in rows {
                let (name, json) = row?;
                let state = decode_state(&name, &json)?;
                out.push((name, state));
            }
            Ok(out)
        })
    }

    fn history(&self, service: &str) -> Result<Vec<Failure>, StoreError> {
        self.on_file(|| load_history(&self.lock(), service))
    }

    fn notifications(
        &self,
        service: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        self.on_file(|| {
            let conn = self.lock();
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut stmt = conn.prepare(&log_query(service.is_some()))?;
            let rows = match service {
                Some(s) => stmt.query_map(params![limit, s], notification_from_row)?,
                None => stmt.query_map(params![limit], notification_from_row)?,
            };
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    fn clear(&self, service: &str) -> Result<bool, StoreError> {
        self.on_file(|| {
            let mut conn = self.lock();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // keep the streak counter: see Store::clear
            if let Some(old) = load_state(&tx, service)? {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('streaks:' || ?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                    params![service, to_i64(old.streaks)],
                )?;
            }
            let n = tx.execute("DELETE FROM services WHERE name = ?1", [service])?;
            let m = tx.execute("DELETE FROM failures WHERE service = ?1", [service])?;
            tx.commit()?;
            Ok(n + m > 0)
        })
    }

    fn save_sources(&self, rows: &[SourceState]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        // in the open group, if there is one: one commit (and fsync) with its events
        self.on_file(|| self.conn.durable(|tx| save_sources_in(tx, rows)))
    }

    fn sources(&self, kind: &str) -> Result<Vec<SourceState>, StoreError> {
        self.on_file(|| {
            let conn = self.lock();
            let mut stmt = conn.prepare_cached(
                "SELECT name, state, updated_ms FROM sources WHERE kind = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([kind], |r| {
                Ok(SourceState {
                    kind: kind.to_owned(),
                    name: r.get(0)?,
                    state: r.get(1)?,
                    updated: Timestamp::from_millis(r.get(2)?),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn forget_sources(&self, kind: &str, keep: &[&str]) -> Result<usize, StoreError> {
        // one statement, the names to keep as a JSON array: no query per name, and no
        // name compared with every other (10,000 checks at a daemon's start)
        let keep = serde_json::Value::from(keep.to_vec()).to_string();
        self.on_file(|| {
            self.conn.durable(|tx| {
                Ok(tx.execute(
                    "DELETE FROM sources WHERE kind = ?1
                     AND name NOT IN (SELECT value FROM json_each(?2))",
                    params![kind, keep],
                )?)
            })
        })
    }

    fn record_signal(&self, signal: &Signal, keep: usize) -> Result<i64, StoreError> {
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        self.on_file(|| {
            self.conn.durable(|tx| {
                tx.prepare_cached(
                    "INSERT INTO signals (source, kind, exit_status, rid, at_ms, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    signal.source,
                    signal.kind,
                    signal.exit_status,
                    signal.rid,
                    signal.at.as_millis(),
                    signal.body
                ])?;
                let id = tx.last_insert_rowid();
                // pruning walks `keep` index entries: one insert in 64 does it, so a
                // source holds fewer than `keep` + 64 · (sources) rows, and a ping
                // costs one insert
                if id % 64 == 0 {
                    tx.prepare_cached(
                        "DELETE FROM signals WHERE source = ?1 AND id < (
                             SELECT id FROM signals WHERE source = ?1
                             ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                    )?
                    .execute(params![signal.source, keep - 1])?;
                }
                Ok(id)
            })
        })
    }

    fn signals(&self, source: &str, limit: usize) -> Result<Vec<Signal>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.on_file(|| {
            let conn = self.lock();
            let mut stmt = conn.prepare_cached(
                "SELECT id, kind, exit_status, rid, at_ms, body FROM signals
                 WHERE source = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![source, limit], |r| {
                Ok(Signal {
                    id: r.get(0)?,
                    source: source.to_owned(),
                    kind: r.get(1)?,
                    exit_status: r.get(2)?,
                    rid: r.get(3)?,
                    at: Timestamp::from_millis(r.get(4)?),
                    body: r.get(5)?,
                })
            })?;
            let mut list = rows.collect::<Result<Vec<_>, _>>()?;
            list.reverse();
            Ok(list)
        })
    }

    fn signals_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, String)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.on_file(|| {
            let conn = self.lock();
            let mut stmt = conn.prepare_cached(
                "SELECT id, source FROM signals WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn add_silence(&self, silence: &Silence) -> Result<i64, StoreError> {
        let matchers = serde_json::to_string(&silence.matchers)
            .map_err(|e| StoreError::Task(format!("encoding a silence: {e}")))?;
        self.on_file(|| {
            self.conn.durable(|tx| {
                tx.execute(
                    "INSERT INTO silences (matchers, starts_ms, ends_ms, comment, created_by, created_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        matchers,
                        silence.starts.as_millis(),
                        silence.ends.as_millis(),
                        silence.comment,
                        silence.created_by,
                        silence.created.as_millis()
                    ],
                )?;
                Ok(tx.last_insert_rowid())
            })
        })
    }

    fn silences(&self, after: Timestamp) -> Result<Vec<Silence>, StoreError> {
        self.on_file(|| {
            let conn = self.lock();
            let mut stmt = conn.prepare_cached(
                "SELECT id, matchers, starts_ms, ends_ms, comment, created_by, created_ms
                 FROM silences WHERE ends_ms > ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map([after.as_millis()], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, matchers, starts, ends, comment, created_by, created) = row?;
                let matchers = serde_json::from_str(&matchers).map_err(|e| {
                    StoreError::Corrupt(format!("silence {id}: unreadable matchers: {e}"))
                })?;
                let mut s = Silence::new(
                    matchers,
                    (Timestamp::from_millis(starts), Timestamp::from_millis(ends)),
                    comment,
                    created_by,
                    Timestamp::from_millis(created),
                );
                s.id = id;
                out.push(s);
            }
            Ok(out)
        })
    }

    fn expire_silence(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        self.on_file(|| {
            self.conn.durable(|tx| {
                Ok(tx.execute(
                    "UPDATE silences SET ends_ms = ?2 WHERE id = ?1 AND ends_ms > ?2",
                    params![id, at.as_millis()],
                )? > 0)
            })
        })
    }

    fn last_signal_id(&self) -> Result<i64, StoreError> {
        self.on_file(|| {
            let conn = self.lock();
            Ok(conn.query_row("SELECT coalesce(max(id), 0) FROM signals", [], |r| r.get(0))?)
        })
    }
}

/// [`Store::record_attempt`]'s reads and writes, in the transaction open on `tx`.
fn record_attempt_in(
    tx: &Connection,
    id: NotificationId,
    attempt: Attempt<'_>,
    at: Timestamp,
) -> Result<(), StoreError> {
    let (status, next_at, finished) = match attempt {
        Attempt::Delivered => ("delivered", None, Some(at)),
        Attempt::Retry { next_at, .. } => ("pending", Some(next_at), None),
        Attempt::GaveUp { .. } | Attempt::HandedOver { .. } => ("failed", None, Some(at)),
    };
    let error = attempt.error();
    // The row changes only while pending, or to delivered (a fact even after a drop); a
    // late report for a finished row only counts the attempt. No RETURNING: SQLite runs
    // it as a trigger, and compiling that costs a handler process more than the read.
    let changed = tx
        .prepare_cached(
            "UPDATE notifications SET attempts = attempts + 1, lease_ms = NULL, status = ?2,
                 error = ?3, next_attempt_ms = ?4, finished_ms = ?5
             WHERE id = ?1 AND (status = 'pending' OR (?2 = 'delivered' AND status <> 'delivered'))",
        )?
        .execute(params![
            id.0,
            status,
            error,
            next_at.map(Timestamp::as_millis),
            finished.map(Timestamp::as_millis)
        ])?
        > 0;
    if !changed
        && tx
            .prepare_cached(
                "UPDATE notifications SET attempts = attempts + 1, lease_ms = NULL WHERE id = ?1",
            )?
            .execute([id.0])?
            == 0
    {
        return Err(StoreError::Corrupt(format!("no notification with id {id}")));
    }
    let row = tx
        .prepare_cached(&format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE id = ?1"
        ))?
        .query_row([id.0], notification_from_row)?;
    if changed && let Attempt::HandedOver { to, payload, .. } = attempt {
        hand_over(tx, &row, to, payload, at)?;
    }
    if let Some(outcome) = finished_outcome(&row) {
        set_recipient(tx, &row, outcome)?;
    }
    Ok(())
}

/// The newest rows of the notification log, at most `?1`, of service `?2` if
/// `of_service`: then a walk of `notifications_by_service` back from the service's
/// newest row (an `?2 IS NULL OR` in one query would scan the whole log instead).
fn log_query(of_service: bool) -> String {
    let filter = if of_service { "WHERE service = ?2" } else { "" };
    format!("SELECT {NOTIFICATION_COLUMNS} FROM notifications {filter} ORDER BY id DESC LIMIT ?1")
}

/// Adds the fallback's row for the given-up `row` (same service, kind, streak, sequence
/// and history), due at `at`, and makes the fallback a recipient of the streak.
fn hand_over(
    conn: &Connection,
    row: &NotificationRecord,
    to: &str,
    payload: &str,
    at: Timestamp,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO notifications (service, notifier, kind, streak, sequence, created_ms,
                                    status, attempts, next_attempt_ms, payload, history)
         SELECT service, ?2, kind, streak, sequence, ?3, 'pending', 0, ?3, ?4, history
         FROM notifications WHERE id = ?1",
    )?
    .execute(params![row.id.0, to, at.as_millis(), payload])?;
    if !row.kind.is_alert() {
        return Ok(());
    }
    update_state(conn, &row.service, |state| {
        state.hand_over(row.streak, &row.notifier, to, row.kind, at);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listing one service's notifications walks that service's entries in
    /// `notifications_by_service`, however long the log: it does not scan the log.
    /// A grouped notifier's rows: due after `group_wait`, claimed all at once when one
    /// is due (rows of other notifiers untouched), then no group again before
    /// `group_interval`.
    #[test]
    fn a_group_is_claimed_whole_and_not_again_within_its_interval() {
        let store = SqliteStore::open_in_memory().unwrap();
        let t = Timestamp::from_millis;
        let grouped = Limits::NONE.group_interval(Some(Duration::from_secs(300)));
        let lease = Duration::from_secs(60);
        let add = |service: &str, notifier: &str, at: i64, due: Option<i64>| {
            store
                .apply(service, t(at), &mut |state| {
                    let mut row =
                        crate::store::NewNotification::new(notifier, EventKind::Failure, 1)
                            .payload("{}")
                            .lease(lease);
                    if let Some(due) = due {
                        row = row.due(t(due));
                    }
                    Change {
                        notifications: vec![row],
                        ..Change::new(state.clone())
                    }
                })
                .unwrap()
        };
        // 30 s of group_wait: due at 31 s, 32 s, 33 s; another notifier's row at once
        for i in 1..=3 {
            let applied = add(
                &format!("s{i}"),
                "mail",
                i * 1_000,
                Some(i * 1_000 + 30_000),
            );
            assert!(
                applied.claimed.is_empty(),
                "a grouped row is not the caller's"
            );
        }
        add("s4", "pager", 4_000, None);
        let list = [("mail", grouped)];
        let ids =
            |c: Vec<Claimed>| -> Vec<String> { c.into_iter().map(|c| c.record.service).collect() };
        assert!(
            store
                .claim_due(t(30_000), lease, 10, Some(&list))
                .unwrap()
                .is_empty()
        );
        // the first is due: the three go together (the limit of 1 does not cut a group)
        assert_eq!(
            ids(store.claim_due(t(31_000), lease, 1, Some(&list)).unwrap()),
            ["s1", "s2", "s3"]
        );
        for c in 1..=3 {
            store
                .record_attempt(NotificationId(c), Attempt::Delivered, t(31_500))
                .unwrap();
        }
        // a new one after the group: its wait ends at 70 s, the interval at 331 s
        add("s5", "mail", 40_000, Some(70_000));
        assert!(
            store
                .claim_due(t(300_000), lease, 10, Some(&list))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            ids(store.claim_due(t(331_000), lease, 10, Some(&list)).unwrap()),
            ["s5"]
        );
        // the other notifier's row was never part of it
        assert_eq!(
            ids(store
                .claim_due(t(331_000), lease, 10, Some(&[("pager", Limits::NONE)]))
                .unwrap()),
            ["s4"]
        );
    }

    #[test]
    fn a_service_log_is_read_through_its_index() {
        let store = SqliteStore::open_in_memory().unwrap();
        let plan = |of_service: bool| -> String {
            let conn = store.lock();
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", log_query(of_service)))
                .unwrap();
            let unbound = vec![rusqlite::types::Null; stmt.parameter_count()];
            let rows = stmt
                .query_map(rusqlite::params_from_iter(unbound), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let one = plan(true);
        assert!(
            one.contains("USING INDEX notifications_by_service"),
            "{one}"
        );
        assert!(!one.contains("TEMP B-TREE"), "sorted by the index: {one}");
        let all = plan(false);
        assert!(
            all.starts_with("SCAN notifications") && !all.contains("TEMP B-TREE"),
            "{all}"
        );
    }

    /// Closing a store leaves a short write-ahead log in place (no fsyncs at the end of
    /// a handler process), which the next opener reads; a long one is checkpointed into
    /// the file and deleted, as SQLite's own close does.
    #[test]
    fn a_closed_store_keeps_a_short_log_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let wal = dir.path().join("state.db-wal");
        let insert = |store: &SqliteStore, key: &str, value: &[u8]| {
            store
                .conn
                .durable(|c| {
                    c.execute(
                        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                        params![key, value],
                    )?;
                    Ok(())
                })
                .unwrap();
        };
        let store = SqliteStore::open(&path).unwrap();
        insert(&store, "short", b"1");
        drop(store);
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        let store = SqliteStore::open(&path).unwrap();
        let count = |store: &SqliteStore| -> i64 {
            store
                .lock()
                .query_row("SELECT count(*) FROM meta", [], |r| r.get(0))
                .unwrap()
        };
        let before = count(&store);
        // some 4 frames each
        let blob = vec![7_u8; 4 * 4096];
        for i in 0..CLOSE_CHECKPOINT_FRAMES / 4 + 1 {
            insert(&store, &format!("long{i}"), &blob);
        }
        drop(store);
        assert!(!wal.exists(), "the log was checkpointed and deleted");
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            count(&store),
            before + i64::from(CLOSE_CHECKPOINT_FRAMES / 4 + 1)
        );
    }
}
