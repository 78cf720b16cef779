//! `MemoryStore`: the store for tests, examples and short-lived embedders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{
    Applied, Attempt, Change, Claimed, NotificationId, NotificationRecord, OutboxFilter, Store,
    finished_outcome, placement,
};
use crate::alert::{Failure, Timestamp};
use crate::error::StoreError;
use crate::outbox::{Admission, Gates, Limits};
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
    /// Per-minute limit state per notifier (see [`crate::outbox::admit`]).
    rates: BTreeMap<String, i64>,
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

    /// As `SqliteStore`'s: whether `notifier` may have one more row claimed at `now`.
    fn admit(&mut self, notifier: &str, limits: Limits, now: Timestamp) -> Admission {
        let admission = limits.admit(
            self.in_flight(notifier, now),
            self.rates.get(notifier).copied(),
            now.as_millis(),
        );
        if let Admission::Claim(Some(tat)) = admission {
            self.rates.insert(notifier.to_owned(), tat);
        }
        admission
    }

    /// `notifier`'s rows in flight (pending and leased) at `now`.
    fn in_flight(&self, notifier: &str, now: Timestamp) -> u32 {
        let n = self
            .log
            .iter()
            .filter(|r| {
                r.is_pending()
                    && r.record.notifier == notifier
                    && r.record.leased_until.is_some_and(|l| l >= now)
            })
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// As `SqliteStore`'s: the fallback's row for given-up row `id`, and its place in
    /// the streak.
    fn hand_over(&mut self, id: NotificationId, to: &str, payload: &str, at: Timestamp) {
        let Some(row) = self.row_mut(id) else {
            return;
        };
        let mut record = row.record.clone();
        let history = row.history.clone();
        if record.kind.is_failure()
            && let Some(state) = self.states.get_mut(&record.service)
        {
            state.hand_over(record.streak, &record.notifier, to, record.kind, at);
        }
        record.id = NotificationId(i64::try_from(self.log.len()).unwrap_or(i64::MAX) + 1);
        record.notifier = to.to_owned();
        record.created = at;
        record.status = Outcome::Pending;
        record.dropped = false;
        record.error = None;
        record.finished = None;
        record.attempts = 0;
        record.next_attempt = Some(at);
        record.leased_until = None;
        self.log.push(Row {
            record,
            payload: payload.to_owned(),
            history,
        });
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
                // a collapsing recovery replaces its waiting group (as in SqliteStore)
                let group: Vec<usize> = (0..inner.log.len())
                    .filter(|&i| {
                        let r = &inner.log[i];
                        r.is_pending() && r.group() == (service, &n.notifier, n.streak)
                    })
                    .collect();
                let collapsed = n.collapse.is_some()
                    && !group.is_empty()
                    && group
                        .iter()
                        .all(|&i| inner.log[i].record.leased_until.is_none_or(|l| l < now));
                if collapsed {
                    for &i in &group {
                        let r = &mut inner.log[i].record;
                        r.status = Outcome::Failed;
                        r.dropped = true;
                        r.error = Some("collapsed into its recovery".to_owned());
                        r.finished = Some(now);
                        r.next_attempt = None;
                        r.leased_until = None;
                    }
                }
                let payload = match n.collapse {
                    Some(p) if collapsed => p,
                    _ => n.payload,
                };
                // an older pending row of the group goes first: this one waits, unclaimed;
                // so does one over its notifier's limits, for a flush
                let first = n.lease.is_some()
                    && !inner
                        .log
                        .iter()
                        .any(|r| r.is_pending() && r.group() == (service, &n.notifier, n.streak));
                let admission = first.then(|| inner.admit(&n.notifier, n.limits, now));
                let (lease, due) = placement(admission, n.lease, now);
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
                        next_attempt: Some(due),
                        leased_until: lease,
                    },
                    payload,
                    history: applied.history.clone(),
                });
                applied.add(id, admission, collapsed);
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
            let (status, next_at, finished) = match attempt {
                Attempt::Delivered => (Outcome::Delivered, None, Some(at)),
                Attempt::Retry { next_at, .. } => (Outcome::Pending, Some(next_at), None),
                Attempt::GaveUp { .. } | Attempt::HandedOver { .. } => {
                    (Outcome::Failed, None, Some(at))
                }
            };
            r.status = status;
            r.dropped = false;
            r.error = attempt.error().map(str::to_owned);
            r.next_attempt = next_at;
            r.finished = finished;
        }
        let handed = match attempt {
            Attempt::HandedOver { to, payload, .. } if changes => Some((to, payload)),
            _ => None,
        };
        if let Some(outcome) = finished_outcome(r) {
            inner.set_recipient(id, outcome);
        }
        if let Some((to, payload)) = handed {
            inner.hand_over(id, to, payload, at);
        }
        Ok(())
    }

    fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        notifiers: Option<&[(&str, Limits)]>,
    ) -> Result<Vec<Claimed>, StoreError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut gates = Gates::new(notifiers);
        let mut seen = BTreeSet::new();
        let mut due = Vec::new();
        for row in &inner.log {
            // only the oldest pending row of each group, due or not
            if !row.is_pending() {
                continue;
            }
            let (service, notifier, streak) = row.group();
            if !seen.insert((service.to_owned(), notifier.to_owned(), streak)) {
                continue;
            }
            let r = &row.record;
            if r.next_attempt.is_some_and(|t| t <= now) && r.leased_until.is_none_or(|l| l < now) {
                due.push(r.id);
            }
        }
        let mut out = Vec::new();
        for id in due {
            if out.len() >= limit || gates.all_busy() {
                break;
            }
            let Some(notifier) = inner.row_mut(id).map(|r| r.record.notifier.clone()) else {
                continue;
            };
            let admission = gates.admit(&notifier, now.as_millis(), |n, _| {
                Ok::<_, StoreError>((inner.in_flight(n, now), inner.rates.get(n).copied()))
            })?;
            let Some(row) = inner.row_mut(id) else {
                continue;
            };
            match admission {
                None | Some(Admission::Busy) => {}
                Some(Admission::Claim(_)) => {
                    row.record.leased_until = Some(now.saturating_add(lease));
                    out.push(Claimed {
                        record: row.record.clone(),
                        payload: row.payload.clone(),
                        history: row.history.clone(),
                        attempts: row.record.attempts,
                    });
                }
                Some(Admission::Later(at)) => {
                    row.record.next_attempt = Some(Timestamp::from_millis(at));
                }
            }
        }
        for (notifier, tat) in gates.rates() {
            inner.rates.insert(notifier.to_owned(), tat);
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
