//! `MemoryStore`: the store for tests, examples and short-lived embedders.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use super::{Applied, Change, NotificationId, NotificationRecord, Store};
use crate::alert::{Failure, Timestamp};
use crate::error::StoreError;
use crate::policy::{Outcome, ServiceState};

/// A [`Store`] in process memory; gone when dropped.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    states: BTreeMap<String, ServiceState>,
    history: BTreeMap<String, Vec<Failure>>,
    log: Vec<NotificationRecord>,
    sequence: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below is completed before anything can panic, so the data
        // behind a poisoned lock is consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn apply(
        &self,
        service: &str,
        now: Timestamp,
        f: &mut dyn FnMut(&ServiceState) -> Change,
    ) -> Result<Applied, StoreError> {
        let mut inner = self.lock();
        let state = inner.states.get(service).cloned().unwrap_or_default();
        let change = f(&state);
        inner.states.insert(service.to_owned(), change.next);
        let history = inner.history.entry(service.to_owned()).or_default();
        if let Some(failure) = change.failure {
            history.push(failure);
        }
        let ended = if change.end_streak {
            std::mem::take(history)
        } else {
            Vec::new()
        };
        let mut applied = Applied {
            history: match (change.notifications.is_empty(), change.end_streak) {
                (true, _) => Vec::new(),
                (false, true) => ended,
                (false, false) => history.clone(),
            },
            ..Applied::default()
        };
        if !change.notifications.is_empty() {
            inner.sequence += 1;
            applied.sequence = inner.sequence;
            for n in change.notifications {
                let id = NotificationId(i64::try_from(inner.log.len()).unwrap_or(i64::MAX) + 1);
                inner.log.push(NotificationRecord {
                    id,
                    service: service.to_owned(),
                    notifier: n.notifier,
                    kind: n.kind,
                    streak: n.streak,
                    sequence: applied.sequence,
                    created: now,
                    status: Outcome::Pending,
                    error: None,
                    finished: None,
                });
                applied.notifications.push(id);
            }
        }
        Ok(applied)
    }

    fn record_outcome(
        &self,
        id: NotificationId,
        outcome: Outcome,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let Inner { states, log, .. } = &mut *inner;
        let row = usize::try_from(id.0 - 1)
            .ok()
            .and_then(|i| log.get_mut(i))
            .ok_or_else(|| StoreError::Corrupt(format!("no notification with id {id}")))?;
        row.status = outcome;
        row.error = error.map(str::to_owned);
        row.finished = Some(at);
        if row.kind.is_failure()
            && let Some(state) = states.get_mut(&row.service)
        {
            state.record_outcome(row.streak, &row.notifier, row.created, outcome);
        }
        Ok(())
    }

    fn state(&self, service: &str) -> Result<Option<ServiceState>, StoreError> {
        Ok(self.lock().states.get(service).cloned())
    }

    fn states(&self) -> Result<Vec<(String, ServiceState)>, StoreError> {
        Ok(self
            .lock()
            .states
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn history(&self, service: &str) -> Result<Vec<Failure>, StoreError> {
        Ok(self
            .lock()
            .history
            .get(service)
            .cloned()
            .unwrap_or_default())
    }

    fn notifications(
        &self,
        service: Option<&str>,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        Ok(self
            .lock()
            .log
            .iter()
            .rev()
            .filter(|r| service.is_none_or(|s| r.service == s))
            .take(limit)
            .cloned()
            .collect())
    }

    fn clear(&self, service: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let a = inner.states.remove(service).is_some();
        let b = inner.history.remove(service).is_some_and(|h| !h.is_empty());
        Ok(a || b)
    }
}
