//! Where state, failure history and the notification log live.
//!
//! `Store` is synchronous: SQLite blocks, and `rusqlite::Connection` is not `Sync`.
//! The [`Engine`](crate::Engine) calls it through `spawn_blocking`, so no lock is ever
//! held across an `.await`.

mod memory;
mod sqlite;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

use crate::alert::{EventKind, Failure, Timestamp};
use crate::error::StoreError;
use crate::policy::{Outcome, ServiceState};

/// The id of a notification log row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NotificationId(pub i64);

impl fmt::Display for NotificationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What one event changes, computed from the state read inside the store's transaction.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Change {
    /// The new service state.
    pub next: ServiceState,
    /// A failure to append to the history.
    pub failure: Option<Failure>,
    /// Delete the history after reading it (the streak ended).
    pub end_streak: bool,
    /// Notifications to log as pending before anything is sent.
    pub notifications: Vec<NewNotification>,
}

impl Change {
    /// A change that only replaces the state.
    pub fn new(next: ServiceState) -> Self {
        Self {
            next,
            ..Self::default()
        }
    }
}

/// A notification about to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewNotification {
    /// The notifier's name.
    pub notifier: String,
    /// What it is about.
    pub kind: EventKind,
    /// The streak it belongs to.
    pub streak: u64,
}

impl NewNotification {
    /// A notification of `kind` to `notifier` in streak `streak`.
    pub fn new(notifier: impl Into<String>, kind: EventKind, streak: u64) -> Self {
        Self {
            notifier: notifier.into(),
            kind,
            streak,
        }
    }
}

/// What [`Store::apply`] did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Applied {
    /// The service's failure history as of this event (oldest first): including the
    /// appended failure, and read before an ended streak was deleted. Only read when
    /// there are notifications to send (the notifiers are its readers); empty otherwise.
    pub history: Vec<Failure>,
    /// The ids of the logged notifications, in the order given.
    pub notifications: Vec<NotificationId>,
    /// The per-host sequence number given to this event (0 if it notified nobody).
    pub sequence: u64,
}

/// One row of the notification log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NotificationRecord {
    /// Row id.
    pub id: NotificationId,
    /// The service.
    pub service: String,
    /// The notifier's name.
    pub notifier: String,
    /// What it was about.
    pub kind: EventKind,
    /// The streak it belonged to.
    pub streak: u64,
    /// The event's sequence number.
    pub sequence: u64,
    /// When it was logged (just before sending).
    pub created: Timestamp,
    /// Pending, delivered or failed.
    pub status: Outcome,
    /// The error, when failed.
    pub error: Option<String>,
    /// When the outcome was recorded.
    pub finished: Option<Timestamp>,
}

/// Persistent state: per-service state, failure history of the current streak, and a
/// log of every notification (written before it is sent, updated after).
///
/// Implementations must make [`Store::apply`] atomic across processes: two handlers
/// for one service must never both read the same state.
pub trait Store: Send + Sync + fmt::Debug {
    /// In one transaction: reads the state of `service`, calls `f` with it, and stores
    /// what `f` returns (state, failure record, pending notifications).
    ///
    /// # Errors
    /// A [`StoreError`]; then nothing was written.
    fn apply(
        &self,
        service: &str,
        now: Timestamp,
        f: &mut dyn FnMut(&ServiceState) -> Change,
    ) -> Result<Applied, StoreError>;

    /// Records the outcome of a logged notification, and for failure alerts updates
    /// the recipient in the service state (so a recovery follows only delivered alerts).
    ///
    /// # Errors
    /// A [`StoreError`].
    fn record_outcome(
        &self,
        id: NotificationId,
        outcome: Outcome,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// The state of one service, if it has any.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn state(&self, service: &str) -> Result<Option<ServiceState>, StoreError>;

    /// Every service with state, by name.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn states(&self) -> Result<Vec<(String, ServiceState)>, StoreError>;

    /// The failure history of the current streak, oldest first.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn history(&self, service: &str) -> Result<Vec<Failure>, StoreError>;

    /// The newest `limit` notification log rows, newest first, for one service or all.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn notifications(
        &self,
        service: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError>;

    /// Forgets the state and history of `service` (the log stays). `true` if it had any.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn clear(&self, service: &str) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use crate::testkit::store_conformance;

    use super::*;

    #[test]
    fn memory_store_conforms() {
        store_conformance(&MemoryStore::new());
    }

    #[test]
    fn sqlite_in_memory_conforms() {
        store_conformance(&SqliteStore::open_in_memory().unwrap());
    }

    #[test]
    fn sqlite_file_conforms_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.db");
        store_conformance(&SqliteStore::open(&path).unwrap());
        // reopening sees the same data
        let again = SqliteStore::open(&path).unwrap();
        assert!(!again.notifications(None, 10).unwrap().is_empty());
    }

    #[test]
    fn sqlite_refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
        drop(conn);
        let e = SqliteStore::open(&path).unwrap_err();
        assert!(
            matches!(e, StoreError::SchemaTooNew { found: 99, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("newer than this alertcore supports"));
        // untouched
        let conn = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 99);
    }
}
