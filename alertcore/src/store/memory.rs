//! `MemoryStore`: the store for tests, examples and short-lived embedders.

use std::time::Duration;

use super::{
    Applied, Attempt, Change, Claimed, NotificationId, NotificationRecord, OutboxFilter, Signal,
    SourceState, SqliteStore, Store,
};
use crate::alert::{Failure, Timestamp};
use crate::error::StoreError;
use crate::hold::Silence;
use crate::outbox::Limits;
use crate::policy::ServiceState;

/// A [`Store`] in process memory; gone when dropped.
///
/// It is an in-memory SQLite database behind [`SqliteStore`]: one implementation of the
/// outbox protocol, not a second one to keep in step. That costs speed a map would not:
/// 22 000–29 000 events a second through the engine, against 63 000–94 000 for the map
/// this replaced (`BENCHMARKS.md`, "`MemoryStore`: a map, or an in-memory SQLite
/// database"); far more than a test or an embedder without persistence needs.
#[derive(Debug)]
pub struct MemoryStore(SqliteStore);

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    ///
    /// # Panics
    /// When SQLite cannot allocate an in-memory database (out of memory).
    pub fn new() -> Self {
        // opening `:memory:` fails only when SQLite cannot allocate the connection
        Self(SqliteStore::open_in_memory().expect("an in-memory SQLite database opens"))
    }

    /// The database behind it.
    pub(crate) fn sqlite(&self) -> &SqliteStore {
        &self.0
    }
}

impl Store for MemoryStore {
    fn apply(
        &self,
        service: &str,
        now: Timestamp,
        f: &mut dyn FnMut(&ServiceState) -> Change,
    ) -> Result<Applied, StoreError> {
        self.0.apply(service, now, f)
    }

    fn record_attempt(
        &self,
        id: NotificationId,
        attempt: Attempt<'_>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.0.record_attempt(id, attempt, at)
    }

    fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        notifiers: Option<&[(&str, Limits)]>,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.0.claim_due(now, lease, limit, notifiers)
    }

    fn outbox(&self, filter: &OutboxFilter) -> Result<Vec<NotificationRecord>, StoreError> {
        self.0.outbox(filter)
    }

    fn retry(&self, id: Option<NotificationId>, now: Timestamp) -> Result<usize, StoreError> {
        self.0.retry(id, now)
    }

    fn drop_notification(&self, id: NotificationId) -> Result<bool, StoreError> {
        self.0.drop_notification(id)
    }

    fn state(&self, service: &str) -> Result<Option<ServiceState>, StoreError> {
        self.0.state(service)
    }

    fn states(&self) -> Result<Vec<(String, ServiceState)>, StoreError> {
        self.0.states()
    }

    fn history(&self, service: &str) -> Result<Vec<Failure>, StoreError> {
        self.0.history(service)
    }

    fn notifications(
        &self,
        service: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        self.0.notifications(service, limit)
    }

    fn clear(&self, service: &str) -> Result<bool, StoreError> {
        self.0.clear(service)
    }

    fn save_sources(&self, rows: &[SourceState]) -> Result<(), StoreError> {
        self.0.save_sources(rows)
    }

    fn sources(&self, kind: &str) -> Result<Vec<SourceState>, StoreError> {
        self.0.sources(kind)
    }

    fn forget_sources(&self, kind: &str, keep: &[&str]) -> Result<usize, StoreError> {
        self.0.forget_sources(kind, keep)
    }

    fn record_signal(&self, signal: &Signal, keep: usize) -> Result<i64, StoreError> {
        self.0.record_signal(signal, keep)
    }

    fn signals(&self, source: &str, limit: usize) -> Result<Vec<Signal>, StoreError> {
        self.0.signals(source, limit)
    }

    fn signals_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, String)>, StoreError> {
        self.0.signals_after(after, limit)
    }

    fn last_signal_id(&self) -> Result<i64, StoreError> {
        self.0.last_signal_id()
    }

    fn add_silence(&self, silence: &Silence) -> Result<i64, StoreError> {
        self.0.add_silence(silence)
    }

    fn silences(&self, after: Timestamp) -> Result<Vec<Silence>, StoreError> {
        self.0.silences(after)
    }

    fn expire_silence(&self, id: i64, at: Timestamp) -> Result<bool, StoreError> {
        self.0.expire_silence(id, at)
    }
}
