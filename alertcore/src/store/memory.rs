//! `MemoryStore`: the store for tests, examples and short-lived embedders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{
    Applied, Attempt, Change, Claimed, NotificationId, NotificationRecord, OutboxFilter, Store,
    finished_outcome,
};
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
    /// The outbox; row `i` has id `i + 1`.
    log: Vec<Row>,
    sequence: u64,
    /// The streak counters of cleared services.
    cleared: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct Row {
    /// `leased_until` is the lease.
    record: NotificationRecord,
    payload: String,
    history: Vec<Failure>,
}

impl Row {
    fn is_pending(&self) -> bool {
        self.record.status == Outcome::Pending
    }

    /// Pending or failed: what the outbox lists and an operator may retry or drop.
    fn is_open(&self) -> bool {
        !self.record.dropped && self.record.status != Outcome::Delivered
    }

    fn group(&self) -> (&str, &str, u64) {
        let r = &self.record;
        (&r.service, &r.notifier, r.streak)
    }
}

impl Inner {
    fn row_mut(&mut self, id: NotificationId) -> Option<&mut Row> {
        usize::try_from(id.0 - 1)
            .ok()
            .and_then(|i| self.log.get_mut(i))
    }

    /// Sets the recipient of a failure alert in its service's state.
    fn set_recipient(&mut self, id: NotificationId, outcome: Outcome) {
        let Some(row) = self.row_mut(id) else {
            return;
        };
        let r = row.record.clone();
        if r.kind.is_failure()
            && let Some(state) = self.states.get_mut(&r.service)
        {
            state.record_outcome(r.streak, &r.notifier, r.created, outcome);
        }
    }
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
        let state = inner.states.get(service).cloned().unwrap_or_else(|| {
            ServiceState::after_clear(inner.cleared.get(service).copied().unwrap_or(0))
        });
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
                // an older pending row of the group goes first: this one waits, unclaimed
                let lease = n
                    .lease
                    .filter(|_| {
                        !inner.log.iter().any(|r| {
                            r.is_pending() && r.group() == (service, &n.notifier, n.streak)
                        })
                    })
                    .map(|d| now.saturating_add(d));
                inner.log.push(Row {
                    record: NotificationRecord {
                        id,
                        service: service.to_owned(),
                        notifier: n.notifier,
                        kind: n.kind,
                        streak: n.streak,
                        sequence: applied.sequence,
                        created: now,
                        status: Outcome::Pending,
                        dropped: false,
                        error: None,
                        finished: None,
                        attempts: 0,
                        next_attempt: Some(now),
                        leased_until: lease,
                    },
                    payload: n.payload,
                    history: applied.history.clone(),
                });
                applied.notifications.push(id);
                if lease.is_some() {
                    applied.claimed.push(id);
                }
            }
        }
        Ok(applied)
    }

    fn record_attempt(
        &self,
        id: NotificationId,
        attempt: Attempt<'_>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let row = inner
            .row_mut(id)
            .ok_or_else(|| StoreError::Corrupt(format!("no notification with id {id}")))?;
        let r = &mut row.record;
        r.attempts = r.attempts.saturating_add(1);
        r.leased_until = None;
        // as in SqliteStore: only a pending row changes, or any row to delivered
        let changes = r.status == Outcome::Pending
            || (attempt == Attempt::Delivered && r.status != Outcome::Delivered);
        if changes {
            let (status, error, next_at, finished) = match attempt {
                Attempt::Delivered => (Outcome::Delivered, None, None, Some(at)),
                Attempt::Retry { error, next_at } => {
                    (Outcome::Pending, Some(error), Some(next_at), None)
                }
                Attempt::GaveUp { error } => (Outcome::Failed, Some(error), None, Some(at)),
            };
            r.status = status;
            r.dropped = false;
            r.error = error.filter(|e| !e.is_empty()).map(str::to_owned);
            r.next_attempt = next_at;
            r.finished = finished;
        }
        if let Some(outcome) = finished_outcome(r) {
            inner.set_recipient(id, outcome);
        }
        Ok(())
    }

    fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        notifiers: Option<&[&str]>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut inner = self.lock();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for row in &mut inner.log {
            if out.len() >= limit {
                break;
            }
            // only the oldest pending row of each group, due or not
            if !row.is_pending() {
                continue;
            }
            let (service, notifier, streak) = row.group();
            if !seen.insert((service.to_owned(), notifier.to_owned(), streak)) {
                continue;
            }
            let r = &mut row.record;
            let due = r.next_attempt.is_some_and(|t| t <= now)
                && r.leased_until.is_none_or(|l| l < now)
                && notifiers.is_none_or(|ns| ns.contains(&r.notifier.as_str()));
            if due {
                r.leased_until = Some(now.saturating_add(lease));
                out.push(Claimed {
                    record: r.clone(),
                    payload: row.payload.clone(),
                    history: row.history.clone(),
                    attempts: r.attempts,
                });
            }
        }
        Ok(out)
    }

    fn outbox(&self, filter: &OutboxFilter) -> Result<Vec<NotificationRecord>, StoreError> {
        Ok(self
            .lock()
            .log
            .iter()
            .rev()
            .filter(|r| filter.matches(&r.record))
            .take(filter.limit.unwrap_or(usize::MAX))
            .map(|r| r.record.clone())
            .collect())
    }

    fn retry(&self, id: Option<NotificationId>, now: Timestamp) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let ids: Vec<NotificationId> = inner
            .log
            .iter()
            .filter(|r| r.is_open() && id.is_none_or(|id| r.record.id == id))
            .map(|r| r.record.id)
            .collect();
        for &id in &ids {
            if let Some(row) = inner.row_mut(id) {
                let r = &mut row.record;
                r.status = Outcome::Pending;
                r.next_attempt = Some(now);
                r.leased_until = None;
                r.finished = None;
            }
            // the outbox owns the alert again
            inner.set_recipient(id, Outcome::Pending);
        }
        Ok(ids.len())
    }

    fn drop_notification(&self, id: NotificationId) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let Some(row) = inner.row_mut(id).filter(|r| r.is_open()) else {
            return Ok(false);
        };
        let r = &mut row.record;
        r.status = Outcome::Failed;
        r.dropped = true;
        r.next_attempt = None;
        r.leased_until = None;
        inner.set_recipient(id, Outcome::Failed);
        Ok(true)
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
            .filter(|r| service.is_none_or(|s| r.record.service == s))
            .take(limit)
            .map(|r| r.record.clone())
            .collect())
    }

    fn clear(&self, service: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let a = match inner.states.remove(service) {
            Some(old) => {
                inner.cleared.insert(service.to_owned(), old.streaks);
                true
            }
            None => false,
        };
        let b = inner.history.remove(service).is_some_and(|h| !h.is_empty());
        Ok(a || b)
    }
}
