//! Group commit: the writes that threads of one process make at the same time share a
//! transaction on one connection, and its commit.
//!
//! Each write runs as a member of the open group transaction (or of a new one), in its
//! own savepoint: a member that fails takes back only its own writes. Whoever lets the
//! connection go while nobody else waits for it commits the group (see [`Held`]); every
//! [`GroupCommit::durable`] returns after the commit, and the sync, that made its writes
//! durable. Writes that need no fsync of their own ([`Held::unsynced`]) join an open
//! group without waiting for its commit, else commit alone, unsynced.
//!
//! The interface: [`GroupCommit::durable`] for a write that must survive a power cut,
//! [`GroupCommit::hold`] then [`Held::unsynced`] for one that need not (after reads
//! under the same hold, if the caller wants), [`GroupCommit::lock`] for everything else
//! (reads, and transactions of the caller's own, with `synchronous = FULL`),
//! [`GroupCommit::idle`], and [`GroupCommit::conn_mut`] for a connection nobody else
//! can hold.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

/// At most this many events share one commit.
const MAX_GROUP: usize = 64;

/// A connection shared by the threads of one process, whose writes commit in groups.
#[derive(Debug)]
pub(in crate::store) struct GroupCommit {
    shared: Mutex<Shared>,
    /// Threads waiting for `shared` (not counting those waiting for a commit).
    wanting: AtomicUsize,
}

/// The connection, and the group transaction open on it.
#[derive(Debug)]
struct Shared {
    conn: Connection,
    /// The open group transaction.
    group: Option<Group>,
    /// The number of group transactions begun.
    groups: u64,
    /// The write-ahead log of a state file (its path, then the file once opened), which
    /// the members of a group sync after its commit (see [`Done`]).
    wal: Option<(PathBuf, Option<Arc<std::fs::File>>)>,
}

/// A group transaction open on the connection.
#[derive(Debug)]
struct Group {
    /// Events in it.
    members: usize,
    /// Where its members wait for its end.
    done: Arc<Done>,
}

/// The end of a group transaction, which its members wait for apart from the
/// connection: a member woken by the commit returns without queueing for the
/// connection behind the next group.
///
/// A group commits with `synchronous = NORMAL`, which writes its pages to the
/// write-ahead log without syncing it, and one member, woken alone by the commit (or the
/// first to look after it), syncs the log with the connection free: the next group, and
/// the senders recording their deliveries, need not wait for the disk, and the other
/// members are woken once, by the sync. Every member returns after it, so an event is as
/// durable when `apply` returns as under `synchronous = FULL` (which syncs the same file
/// at the commit).
#[derive(Debug, Default)]
struct Done {
    state: Mutex<End>,
    changed: Condvar,
}

#[derive(Debug, Default)]
enum End {
    /// The group is open.
    #[default]
    Open,
    /// Committed; the write-ahead log still to be synced.
    Committed(Arc<std::fs::File>),
    /// A member is syncing the log.
    Syncing,
    /// Durable, or failed with this error.
    Finished(Option<rusqlite::Error>),
}

impl Done {
    fn end(&self, end: End) {
        // A commit wakes one member to sync the log; the others sleep on until it has.
        let all = !matches!(end, End::Committed(_));
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = end;
        if all {
            self.changed.notify_all();
        } else {
            self.changed.notify_one();
        }
    }

    /// Waits for the end (syncing the log if no other member does); a copy of the
    /// error for each member of a group that failed.
    fn wait(&self) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &mut *state {
                End::Finished(None) => return Ok(()),
                End::Finished(Some(e)) => return Err(StoreError::Sqlite(copy_error(e))),
                End::Committed(wal) => {
                    let wal = Arc::clone(wal);
                    *state = End::Syncing;
                    drop(state);
                    let synced = wal.sync_data().err().map(|e| {
                        rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC),
                            Some(format!("cannot sync the write-ahead log: {e}")),
                        )
                    });
                    self.end(End::Finished(synced));
                    state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                }
                End::Open | End::Syncing => {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

/// The connection held by one thread. Whoever lets it go while nobody else waits for
/// it commits the open group transaction: its members wait for that, and nobody else is
/// coming to do it (whatever the holder did, an early return and an error included).
pub(in crate::store) struct Held<'a> {
    shared: MutexGuard<'a, Shared>,
    wanting: &'a AtomicUsize,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.wanting.load(Ordering::SeqCst) == 0 {
            self.shared.settle();
        }
    }
}

impl std::ops::Deref for Held<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.shared.conn
    }
}

impl std::ops::DerefMut for Held<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.shared.conn
    }
}

impl Held<'_> {
    /// Runs `f`, writes whose loss in a power cut does no harm (a delivery's outcome, a
    /// lease), on the held connection: as a member of the open group transaction if
    /// there is one, without waiting for its commit, else in a transaction of its own,
    /// unsynced. So a sender does not make the events waiting in a group commit early
    /// (one fsync each) only to record its delivery. If the group then fails to commit,
    /// `f`'s writes are lost as in a power cut: the row is sent again (at least once).
    pub(in crate::store) fn unsynced<T>(
        mut self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.shared.join().is_some() {
            return self.shared.member(f);
        }
        self.shared.settle();
        exec(&self, "PRAGMA synchronous = NORMAL")?;
        let result = (|| {
            let tx = self.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })();
        exec(&self, "PRAGMA synchronous = FULL")?;
        result
    }
}

impl Shared {
    /// Joins the open group transaction, if there is one with room.
    fn join(&mut self) -> Option<Arc<Done>> {
        let group = self.group.as_mut().filter(|g| g.members < MAX_GROUP)?;
        group.members += 1;
        Some(Arc::clone(&group.done))
    }

    /// `on_file`: the connection is to a state file, with a write-ahead log.
    fn new(conn: Connection, on_file: bool) -> Self {
        // SQLite's own name for the log: the database's full path and `-wal`
        let wal = conn
            .path()
            .filter(|p| on_file && !p.is_empty())
            .map(|p| (PathBuf::from(format!("{p}-wal")), None));
        Self {
            conn,
            group: None,
            groups: 0,
            wal,
        }
    }

    /// Begins a group transaction (see [`Done`] for its `synchronous` setting).
    fn begin(&mut self) -> Result<Arc<Done>, StoreError> {
        if self.wal.is_some() {
            exec(&self.conn, "PRAGMA synchronous = NORMAL")?;
        }
        if let Err(e) = exec(&self.conn, "BEGIN IMMEDIATE") {
            self.synced_again();
            return Err(e.into());
        }
        self.groups += 1;
        let done = Arc::default();
        self.group = Some(Group {
            members: 1,
            done: Arc::clone(&done),
        });
        Ok(done)
    }

    /// Back to `synchronous = FULL` for what is not a group transaction.
    fn synced_again(&mut self) {
        if self.wal.is_some()
            && let Err(e) = exec(&self.conn, "PRAGMA synchronous = FULL")
        {
            tracing::warn!(error = %e, "cannot set synchronous = FULL on the state file");
        }
    }

    /// The write-ahead log, opened at the first need.
    fn wal_file(&mut self) -> std::io::Result<Option<Arc<std::fs::File>>> {
        let Some((path, file)) = &mut self.wal else {
            return Ok(None);
        };
        if file.is_none() {
            *file = Some(Arc::new(std::fs::File::open(path)?));
        }
        Ok(file.clone())
    }

    /// Commits the open group transaction, if any (rolling it back if the commit
    /// fails, or finding it already rolled back by an error), and wakes its members.
    fn settle(&mut self) {
        let Some(Group { done, .. }) = self.group.take() else {
            return;
        };
        let result = if self.conn.is_autocommit() {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back by an error".to_owned()),
            ))
        } else {
            exec(&self.conn, "COMMIT")
        };
        if result.is_err() && !self.conn.is_autocommit() {
            let _ = exec(&self.conn, "ROLLBACK");
        }
        self.synced_again();
        let end = match result {
            Err(e) => End::Finished(Some(e)),
            Ok(()) => match self.wal_file() {
                Ok(None) => End::Finished(None),
                Ok(Some(wal)) => End::Committed(wal),
                Err(e) => End::Finished(Some(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC),
                    Some(format!("cannot open the write-ahead log to sync it: {e}")),
                ))),
            },
        };
        done.end(end);
    }

    /// Runs `f` in a savepoint of the group transaction this connection's holder has
    /// joined; then commits the group if it is full (or if nobody else waits for the
    /// connection, as the holder lets it go: see [`Held`]).
    fn member<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Not rusqlite's `Savepoint`: these statements are prepared once, not parsed
        // for every event.
        exec(&self.conn, "SAVEPOINT member")?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&self.conn)));
        let result = match result {
            Ok(Ok(out)) => exec(&self.conn, "RELEASE member")
                .map(|()| out)
                .map_err(StoreError::from),
            Ok(Err(e)) => Err(e),
            Err(panic) => {
                // the others' events are still good: commit them before unwinding
                take_back(&self.conn);
                self.settle();
                std::panic::resume_unwind(panic);
            }
        };
        if result.is_err() {
            take_back(&self.conn);
        }
        if self.group.as_ref().is_some_and(|g| g.members >= MAX_GROUP) || self.conn.is_autocommit()
        {
            self.settle();
        }
        result
    }
}

/// Runs `sql`, one statement without results (a transaction's or a pragma's), prepared
/// once per connection.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Takes back what a member wrote since its savepoint. (An error that rolled back the
/// whole transaction took the savepoint with it: then there is nothing to do here, and
/// the group ends with that error.)
fn take_back(conn: &Connection) {
    let _ = exec(conn, "ROLLBACK TO member");
    let _ = exec(conn, "RELEASE member");
}

/// A copy of an SQLite error, for every member of a group transaction that failed.
fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, m) => rusqlite::Error::SqliteFailure(*f, m.clone()),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}

impl GroupCommit {
    /// Group commit on `conn`; `on_file`: it is to a state file, with a write-ahead log
    /// (which the members of a group then sync after its commit; else the commit is all).
    pub(in crate::store) fn new(conn: Connection, on_file: bool) -> Self {
        Self {
            shared: Mutex::new(Shared::new(conn, on_file)),
            wanting: AtomicUsize::new(0),
        }
    }

    /// The connection, with no group transaction open on it.
    pub(in crate::store) fn lock(&self) -> Held<'_> {
        let mut held = self.hold();
        held.shared.settle();
        held
    }

    /// The connection, maybe with a group transaction open on it: for reads, then
    /// [`Held::unsynced`] writes.
    pub(in crate::store) fn hold(&self) -> Held<'_> {
        self.wanting.fetch_add(1, Ordering::SeqCst);
        // A panic while holding the lock left at most an open transaction or savepoint,
        // which was rolled back when it was dropped: the connection is still good.
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        self.wanting.fetch_sub(1, Ordering::SeqCst);
        Held {
            shared,
            wanting: &self.wanting,
        }
    }

    /// The connection, when nobody else can hold it.
    pub(in crate::store) fn conn_mut(&mut self) -> &mut Connection {
        &mut self
            .shared
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .conn
    }

    /// Runs `f` (an event's reads and writes) as a member of the open group transaction
    /// (or of a new one), in a savepoint of its own: a member that fails takes back only
    /// its own writes. Commits the group when nobody else waits for the connection (or
    /// it is full), else leaves that to whoever comes next; returns once the group is
    /// committed, with the group's error if it was not.
    pub(in crate::store) fn durable<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut held = self.hold();
        let done = match held.shared.join() {
            Some(done) => done,
            None => {
                held.shared.settle();
                held.shared.begin()?
            }
        };
        let out = held.shared.member(f);
        drop(held);
        let out = out?;
        done.wait()?;
        Ok(out)
    }

    /// Nobody holds or waits for the connection.
    pub(in crate::store) fn idle(&self) -> bool {
        self.wanting.load(Ordering::SeqCst) == 0
            && !matches!(self.shared.try_lock(), Err(TryLockError::WouldBlock))
    }

    /// Runs `first` and `second` on two threads so that they meet in one group
    /// transaction: `first` gets a hook to call inside its transaction, which returns once
    /// `second` has started and waits for the connection. The threads' results, panics
    /// included.
    #[cfg(test)]
    pub(in crate::store) fn two_at_once<A: Send, B: Send>(
        &self,
        first: impl FnOnce(&dyn Fn()) -> A + Send,
        second: impl FnOnce() -> B + Send,
    ) -> (std::thread::Result<A>, std::thread::Result<B>) {
        let (started, wait) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let first = s.spawn(move || {
                first(&|| {
                    started.send(()).unwrap();
                    while self.wanting.load(Ordering::SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                })
            });
            wait.recv().unwrap();
            let second = s.spawn(second);
            (first.join(), second.join())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use super::*;

    /// Group commit on a state file at `path` with one table, `t`, its connection set up
    /// as `SqliteStore` sets up its own (WAL, `synchronous = FULL`).
    fn on_file(path: &Path) -> GroupCommit {
        let conn = Connection::open(path).unwrap();
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        conn.execute_batch(
            "PRAGMA synchronous = FULL; CREATE TABLE IF NOT EXISTS t (key TEXT NOT NULL)",
        )
        .unwrap();
        GroupCommit::new(conn, true)
    }

    /// Writes one row of `t`, as a member's work.
    fn write(c: &Connection, key: &str) -> Result<(), StoreError> {
        c.execute("INSERT INTO t (key) VALUES (?1)", [key])?;
        Ok(())
    }

    /// The rows of `t` with `key` that `c` sees.
    fn count(c: &Connection, key: &str) -> i64 {
        c.query_row("SELECT count(*) FROM t WHERE key = ?1", [key], |r| r.get(0))
            .unwrap()
    }

    /// The rows of `t` with `key` committed to the file at `path` (as another
    /// connection sees them).
    fn committed(path: &Path, key: &str) -> i64 {
        count(&Connection::open(path).unwrap(), key)
    }

    /// Two members at once share one group transaction and its commit: the first,
    /// finding the second waiting for the connection, leaves the transaction open for
    /// it; the second commits both. Both return only then.
    #[test]
    fn concurrent_members_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let commit = on_file(&path);
        let (a, b) = commit.two_at_once(
            |inside| {
                commit.durable(|c| {
                    inside();
                    write(c, "a")?;
                    Ok(committed(&path, "a"))
                })
            },
            || commit.durable(|c| write(c, "b")),
        );
        assert_eq!(
            a.unwrap().unwrap(),
            0,
            "not committed before the second came"
        );
        b.unwrap().unwrap();
        assert_eq!(
            commit.shared.lock().unwrap().groups,
            1,
            "one group transaction"
        );
        assert_eq!((committed(&path, "a"), committed(&path, "b")), (1, 1));
    }

    /// A write that needs no sync, made while a group is open, rides along in that
    /// group instead of making it commit first: one commit for both, and both stored.
    #[test]
    fn a_write_that_needs_no_sync_rides_in_an_open_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let commit = on_file(&path);
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        commit
            .lock()
            .commit_hook(Some(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                false
            }))
            .unwrap();
        let (a, b) = commit.two_at_once(
            |inside| {
                commit.durable(|c| {
                    inside();
                    write(c, "event")
                })
            },
            || commit.hold().unsynced(|c| write(c, "delivery")),
        );
        a.unwrap().unwrap();
        b.unwrap().unwrap();
        assert_eq!(commits.load(Ordering::Relaxed), 1, "one commit");
        assert_eq!(
            (committed(&path, "event"), committed(&path, "delivery")),
            (1, 1)
        );
    }

    /// A group, and an unsynced write alone, commit with `synchronous = NORMAL` (a
    /// group's members sync the log themselves); whatever else writes on the connection
    /// still commits with `synchronous = FULL`.
    #[test]
    fn only_group_transactions_commit_unsynced() {
        let dir = tempfile::tempdir().unwrap();
        let commit = on_file(&dir.path().join("state.db"));
        let synchronous = |c: &Connection| -> i64 {
            c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap()
        };
        assert_eq!(synchronous(&commit.lock()), 2, "FULL");
        assert_eq!(commit.durable(|c| Ok(synchronous(c))).unwrap(), 1, "NORMAL");
        assert_eq!(synchronous(&commit.lock()), 2, "FULL again after the group");
        let alone = commit.hold().unsynced(|c| Ok(synchronous(c))).unwrap();
        assert_eq!(alone, 1, "NORMAL");
        let mut conn = commit.lock();
        assert_eq!(synchronous(&conn), 2, "FULL again after the unsynced write");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .unwrap();
        write(&tx, "own").unwrap();
        assert_eq!(synchronous(&tx), 2);
        tx.commit().unwrap();
    }

    /// A member that panics takes back its own writes only: the member it shares a
    /// transaction with is committed, and the connection goes on working.
    #[test]
    fn a_panicking_member_does_not_take_its_group_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let commit = on_file(&path);
        let (good, bad) = commit.two_at_once(
            |inside| {
                commit.durable(|c| {
                    inside();
                    write(c, "good")
                })
            },
            || {
                commit.durable(|c| -> Result<(), StoreError> {
                    write(c, "bad")?;
                    panic!("policy bug")
                })
            },
        );
        good.unwrap().unwrap();
        assert!(bad.is_err());
        assert_eq!((committed(&path, "good"), committed(&path, "bad")), (1, 0));
        commit.durable(|c| write(c, "bad")).unwrap();
        assert_eq!(committed(&path, "bad"), 1);
    }

    /// A member of a group transaction that is rolled back (here by another member that
    /// broke it) gets an error, not a success: its writes are gone.
    #[test]
    fn a_member_of_a_group_that_was_rolled_back_gets_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let commit = on_file(&path);
        let (first, second) = commit.two_at_once(
            |inside| {
                commit.durable(|c| {
                    inside();
                    write(c, "first")
                })
            },
            || {
                commit.durable(|c| {
                    write(c, "second")?;
                    c.execute_batch("ROLLBACK")?;
                    Ok(())
                })
            },
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        let first = crate::error::chain(&first.unwrap_err());
        assert!(first.contains("rolled back"), "{first}");
        assert!(second.is_err());
        assert_eq!(
            (committed(&path, "first"), committed(&path, "second")),
            (0, 0)
        );
        // the connection is good for the next member
        commit.durable(|c| write(c, "third")).unwrap();
        assert_eq!(committed(&path, "third"), 1);
    }

    /// A member whose work fails after it wrote takes back its own writes only (its
    /// savepoint), and the member beside it in the group is committed.
    #[test]
    fn a_failing_member_takes_back_only_its_own_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let commit = on_file(&path);
        let (kept, failed) = commit.two_at_once(
            |inside| {
                commit.durable(|c| {
                    inside();
                    write(c, "kept")
                })
            },
            || {
                commit.durable(|c| {
                    write(c, "failed")?;
                    Err::<(), _>(StoreError::Corrupt("the policy failed".into()))
                })
            },
        );
        kept.unwrap().unwrap();
        assert!(failed.unwrap().is_err());
        assert_eq!(
            (committed(&path, "kept"), committed(&path, "failed")),
            (1, 0)
        );
    }

    /// A group transaction left open for a thread waiting for the connection is
    /// committed by that thread even when it only reads and lets the connection go:
    /// else the group's members wait for a commit nobody makes.
    #[test]
    fn a_holder_that_only_reads_still_commits_the_group_it_found() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let dir = tempfile::tempdir().unwrap();
            let commit = on_file(&dir.path().join("state.db"));
            let (a, read) = commit.two_at_once(
                |inside| {
                    commit.durable(|c| {
                        inside();
                        write(c, "a")
                    })
                },
                || count(&commit.hold(), "a"),
            );
            let _ = tx.send((a.map(|a| a.is_ok()).ok(), read.ok()));
        });
        let got = rx.recv_timeout(Duration::from_secs(20));
        assert_eq!(
            got,
            Ok((Some(true), Some(1))),
            "the member waited for its commit"
        );
    }

    /// The connection is idle only while nobody holds it.
    #[test]
    fn idle_only_while_nobody_holds_the_connection() {
        let commit = GroupCommit::new(Connection::open_in_memory().unwrap(), false);
        assert!(commit.idle());
        let mut inside = None;
        commit
            .durable(|_| {
                inside = Some(commit.idle());
                Ok(())
            })
            .unwrap();
        assert_eq!(inside, Some(false));
        assert!(commit.idle());
        let held = commit.hold();
        assert!(!commit.idle());
        drop(held);
        assert!(commit.idle());
    }
}
