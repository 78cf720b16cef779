//! Where state, failure history and the notification outbox live.
//!
//! `Store` is synchronous: SQLite blocks, and `rusqlite::Connection` is not `Sync`.
//! The [`Engine`](crate::Engine) calls it through `spawn_blocking`, so no lock is ever
//! held across an `.await`.

mod memory;
mod sqlite;

use std::any::Any;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;

use crate::alert::{EventKind, Failure, Timestamp};
use crate::error::StoreError;
use crate::hold::Silence;
use crate::outbox::{Admission, Limits};
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
    /// Source rows to save in the same transaction, as [`Store::save_sources`] does: a
    /// source's checkpoint (a journal cursor and what the entries before it did) that
    /// must be durable together with the event, or not at all.
    pub sources: Vec<SourceState>,
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

/// A notification about to be sent: one outbox row.
///
/// `payload` is whatever the sender needs to send the notification again later (the
/// engine keeps the rendered event there as JSON); the store never looks inside it.
/// With a `lease`, [`Store::apply`] inserts the row already claimed by the caller for
/// that long, so the creating process can send it right after the commit without a
/// flusher taking it at the same time (see [`Applied::claimed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewNotification {
    /// The notifier's name.
    pub notifier: String,
    /// What it is about.
    pub kind: EventKind,
    /// The streak it belongs to.
    pub streak: u64,
    /// Opaque data (JSON) needed to send it again; kept as given.
    pub payload: String,
    /// Claim the new row for this long (from `now`), for the caller to send it.
    pub lease: Option<Duration>,
    /// The notifier's limits: the row is claimed only within them.
    pub limits: Limits,
    /// For a recovery: the payload to use when it replaces its failure alert (see
    /// [`NewNotification::collapse`]).
    pub collapse: Option<String>,
    /// Due no sooner than this (a grouped notifier's `group_wait`); without a lease.
    pub due: Option<Timestamp>,
}

impl NewNotification {
    /// A notification of `kind` to `notifier` in streak `streak`, with an empty payload
    /// and no lease.
    pub fn new(notifier: impl Into<String>, kind: EventKind, streak: u64) -> Self {
        Self {
            notifier: notifier.into(),
            kind,
            streak,
            payload: String::new(),
            lease: None,
            limits: Limits::NONE,
            collapse: None,
            due: None,
        }
    }

    /// Makes the row due at `at` rather than at once (it is then not claimed by the
    /// caller: whoever claims due rows at `at` sends it).
    #[must_use]
    pub fn due(mut self, at: Timestamp) -> Self {
        self.due = Some(at);
        self.lease = None;
        self
    }

    /// Sets the payload (opaque JSON the sender needs to send it again).
    #[must_use]
    pub fn payload(mut self, json: impl Into<String>) -> Self {
        self.payload = json.into();
        self
    }

    /// Inserts the row claimed by the caller for `lease` from the event's time.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = Some(lease);
        self
    }

    /// For a recovery: when the older notifications of its incident to this notifier
    /// are all waiting (for a retry or a limit, none being sent), they are dropped in
    /// this transaction and the recovery, with `payload`, takes their place: one
    /// "failed and recovered" notice. See [`Applied::collapsed`].
    #[must_use]
    pub fn collapse(mut self, payload: impl Into<String>) -> Self {
        self.collapse = Some(payload.into());
        self
    }

    /// Claims the row only within the notifier's `limits` (else it is left due, or due
    /// when the per-minute limit allows, for a flush; see [`Applied::deferred`]).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
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
    /// The notifications inserted claimed by the caller (asked for with
    /// [`NewNotification::lease`]), in the order given: the caller sends these and
    /// reports with [`Store::record_attempt`].
    ///
    /// A notification asked for with a lease is *not* claimed when an older row of the
    /// same service, notifier and streak is still pending (say a failure alert waiting
    /// for a retry when its recovery comes): it is left due, unleased, and
    /// [`Store::claim_due`] hands it out after the older one is finished, so the two
    /// are delivered in order.
    pub claimed: Vec<NotificationId>,
    /// The notifications asked for with a lease but not claimed because their notifier
    /// was at a limit ([`NewNotification::limits`]): the sender that frees a slot claims
    /// them in turn ([`Store::record_attempt`], then [`Store::claim_due`] of one row), or
    /// the next flush.
    pub deferred: Vec<NotificationId>,
    /// The recoveries that replaced their waiting failure alerts
    /// ([`NewNotification::collapse`]).
    pub collapsed: Vec<NotificationId>,
    /// The per-host sequence number given to this event (0 if it notified nobody).
    pub sequence: u64,
}

impl Applied {
    /// Records new row `id`: claimed, deferred by a limit, or waiting behind an older
    /// row (`admission` is `None` then); `collapsed` if it replaced its waiting group.
    fn add(&mut self, id: NotificationId, admission: Option<Admission>, collapsed: bool) {
        self.notifications.push(id);
        if collapsed {
            self.collapsed.push(id);
        }
        match admission {
            Some(Admission::Claim(_)) => self.claimed.push(id),
            Some(_) => self.deferred.push(id),
            None => {}
        }
    }
}

/// Where a new row starts, by its admission: its lease (claimed for `lease` from `now`)
/// and when it is due (now, or when the per-minute limit allows).
fn placement(
    admission: Option<Admission>,
    lease: Option<Duration>,
    now: Timestamp,
) -> (Option<Timestamp>, Timestamp) {
    match (admission, lease) {
        (Some(Admission::Claim(_)), Some(d)) => (Some(now.saturating_add(d)), now),
        (Some(Admission::Later(at)), _) => (None, Timestamp::from_millis(at)),
        _ => (None, now),
    }
}

/// One row of the notification log (the outbox).
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
    /// Pending (waiting to be sent or retried), delivered or failed (given up). A row
    /// dropped by an operator reads as failed, with [`dropped`](Self::dropped) set.
    pub status: Outcome,
    /// Whether an operator dropped it ([`Store::drop_notification`]).
    #[serde(default)]
    pub dropped: bool,
    /// The error of the latest attempt, unless it was delivered.
    pub error: Option<String>,
    /// When it was delivered or given up.
    pub finished: Option<Timestamp>,
    /// How many delivery attempts were recorded.
    #[serde(default)]
    pub attempts: u32,
    /// When it is due (again), while pending.
    #[serde(default)]
    pub next_attempt: Option<Timestamp>,
    /// Claimed by a sender until then (while it is being sent).
    #[serde(default)]
    pub leased_until: Option<Timestamp>,
}

/// The result of one delivery attempt, for [`Store::record_attempt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt<'a> {
    /// The notifier reported success.
    Delivered,
    /// A transient failure: try again at `next_at`.
    Retry {
        /// What went wrong.
        error: &'a str,
        /// When the row is due again.
        next_at: Timestamp,
    },
    /// A permanent failure, or retries are exhausted: the row is finished as failed.
    GaveUp {
        /// What went wrong.
        error: &'a str,
    },
    /// As [`Attempt::GaveUp`], and in the same transaction the notification is handed
    /// to the notifier `to`: a new pending row, due at once, with the same service,
    /// kind, streak, sequence and history and the given `payload`. For a failure alert,
    /// `to` becomes a recipient of the streak (pending) unless it already is one, so a
    /// recovery follows it there.
    HandedOver {
        /// What went wrong.
        error: &'a str,
        /// The fallback notifier.
        to: &'a str,
        /// The new row's payload.
        payload: &'a str,
    },
}

impl Attempt<'_> {
    /// The error, unless delivered.
    fn error(&self) -> Option<&str> {
        match *self {
            Self::Delivered => None,
            Self::Retry { error, .. } | Self::GaveUp { error } | Self::HandedOver { error, .. } => {
                Some(error).filter(|e| !e.is_empty())
            }
        }
    }
}

/// A due notification claimed by [`Store::claim_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Claimed {
    /// The row (its `leased_until` is the new lease).
    pub record: NotificationRecord,
    /// The payload given when it was created.
    pub payload: String,
    /// The service's failure history as of the event (oldest first), kept with the row
    /// so it can be sent again after the streak ended.
    pub history: Vec<Failure>,
    /// Attempts recorded before this one.
    pub attempts: u32,
}

/// Which rows [`Store::outbox`] lists. The default lists every pending and failed row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutboxFilter {
    /// Only this service.
    pub service: Option<String>,
    /// Only this notifier.
    pub notifier: Option<String>,
    /// Only rows with this status ([`Outcome::Pending`] or [`Outcome::Failed`]).
    pub status: Option<Outcome>,
    /// At most this many rows.
    pub limit: Option<usize>,
}

impl OutboxFilter {
    /// Every pending and failed row.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only rows of `service`.
    #[must_use]
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    /// Only rows for `notifier`.
    #[must_use]
    pub fn notifier(mut self, notifier: impl Into<String>) -> Self {
        self.notifier = Some(notifier.into());
        self
    }

    /// Only pending or only failed rows.
    #[must_use]
    pub fn status(mut self, status: Outcome) -> Self {
        self.status = Some(status);
        self
    }

    /// At most `limit` rows (the newest).
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// Persistent state: per-service state, failure history of the current streak, and the
/// outbox: a log of every notification, written in the same transaction as the state
/// change that caused it and updated after each delivery attempt.
///
/// # The outbox
///
/// A row is `pending` from [`apply`](Store::apply) until it is delivered, given up
/// (`failed`) or dropped by an operator. A pending row is *due* when its next attempt
/// time has come and nobody holds a lease on it. Senders take due rows with
/// [`claim_due`](Store::claim_due) (or get them claimed at creation, see
/// [`NewNotification::lease`]), send, and report with
/// [`record_attempt`](Store::record_attempt). A sender that dies mid-send leaves a
/// lease that simply runs out: the row is sent again, so delivery is at least once.
///
/// Rows of one service, notifier and streak are handed out one at a time, oldest
/// first: a recovery is never sent before the failure alert it answers.
///
/// Implementations must make [`Store::apply`] and [`Store::claim_due`] atomic across
/// processes: two handlers for one service must never both read the same state, and
/// two senders must never claim the same row at once.
///
/// (`Any` lets the engine recognise its own [`SqliteStore`] behind `dyn Store` and take
/// the shortcuts it offers: a delivery recorded and the next row claimed in one
/// transaction, on the calling thread when nobody else holds the connection.)
pub trait Store: Any + Send + Sync + fmt::Debug {
    /// In one transaction: reads the state of `service`, calls `f` with it, and stores
    /// what `f` returns (state, failure record, pending notifications, due at `now`).
    ///
    /// # Errors
    /// A [`StoreError`]; then nothing was written.
    fn apply(
        &self,
        service: &str,
        now: Timestamp,
        f: &mut dyn FnMut(&ServiceState) -> Change,
    ) -> Result<Applied, StoreError>;

    /// Records one delivery attempt of notification `id`, made at `at`: counts it,
    /// releases the lease, and
    /// - [`Attempt::Delivered`]: the row is delivered (finished at `at`);
    /// - [`Attempt::Retry`]: the row stays pending, with the error, due at `next_at`;
    /// - [`Attempt::GaveUp`]: the row is failed (finished at `at`), with the error;
    /// - [`Attempt::HandedOver`]: as `GaveUp`, and a row for the fallback is added.
    ///
    /// For failure alerts (failure, reminder, escalation) it also updates the recipient
    /// in the service state, so a recovery follows only delivered alerts: delivered, or
    /// failed when given up; a retry leaves it pending (the outbox still owns it).
    /// Delivering anything else touches only the row.
    ///
    /// A row an operator dropped meanwhile stays dropped, unless it was delivered.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if there is no such row; other [`StoreError`]s.
    fn record_attempt(
        &self,
        id: NotificationId,
        attempt: Attempt<'_>,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// In one transaction: claims up to `limit` due rows (pending, next attempt at or
    /// before `now`, no lease running) for `lease` from `now`, oldest first, only for
    /// `notifiers` if given, each within its [`Limits`]. Of the pending rows of one
    /// service, notifier and streak, only the oldest is ever returned (and only when it
    /// is due).
    ///
    /// Limits count every caller sharing the store: `max_concurrent` the rows whose
    /// lease runs, `max_per_minute` the rows claimed (a row over it is made due when
    /// the limit allows it; one over `max_concurrent` stays due).
    ///
    /// Two callers, in one process or several, never get the same row while its
    /// lease runs.
    ///
    /// # Errors
    /// A [`StoreError`]; then nothing was claimed.
    fn claim_due(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
        notifiers: Option<&[(&str, Limits)]>,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Pending and failed (not dropped) rows, newest first, as `filter` says.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn outbox(&self, filter: &OutboxFilter) -> Result<Vec<NotificationRecord>, StoreError>;

    /// Makes row `id` (or, with `None`, every pending and failed row) pending and due at
    /// `now`, releasing any lease; the attempt count is kept. For failure alerts the
    /// recipient goes back to pending in the service state. Delivered and dropped rows
    /// are left alone. Returns how many rows it changed.
    ///
    /// A row that is being sent right now may then be sent twice.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn retry(&self, id: Option<NotificationId>, now: Timestamp) -> Result<usize, StoreError>;

    /// Drops a pending or failed row: it is never sent (again). For failure alerts the
    /// recipient is marked failed in the service state, so the policy may alert again
    /// on the next event. `false` if there is no such pending or failed row.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn drop_notification(&self, id: NotificationId) -> Result<bool, StoreError>;

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
    /// The streak counter is kept: a later streak must not reuse the id of one whose
    /// notifications may still be in the outbox (they would queue behind each other).
    ///
    /// # Errors
    /// A [`StoreError`].
    fn clear(&self, service: &str) -> Result<bool, StoreError>;

    /// In one durable transaction: stores each row, replacing the row of the same kind
    /// and name; a row with an empty `state` ([`SourceState::removed`]) deletes it.
    ///
    /// # Errors
    /// A [`StoreError`]; then nothing was written.
    fn save_sources(&self, rows: &[SourceState]) -> Result<(), StoreError>;

    /// The rows of `kind`, by name.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn sources(&self, kind: &str) -> Result<Vec<SourceState>, StoreError>;

    /// Deletes the rows of `kind` whose name is not in `keep` (sources no longer
    /// configured); returns how many.
    ///
    /// # Errors
    /// A [`StoreError`]; then nothing was deleted.
    fn forget_sources(&self, kind: &str, keep: &[&str]) -> Result<usize, StoreError>;

    /// In one durable transaction: appends `signal` (its `id` is ignored) and returns
    /// its id, greater than every id before it. The source keeps about its newest
    /// `keep` signals: older ones may be deleted now or at a later call.
    ///
    /// # Errors
    /// A [`StoreError`]; then nothing was written.
    fn record_signal(&self, signal: &Signal, keep: usize) -> Result<i64, StoreError>;

    /// The newest `limit` signals of `source`, oldest first.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn signals(&self, source: &str, limit: usize) -> Result<Vec<Signal>, StoreError>;

    /// The id and source of up to `limit` signals recorded after id `after` (by any
    /// process), oldest first: how a daemon learns of signals others recorded.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn signals_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, String)>, StoreError>;

    /// The id of the newest signal (0 when there is none): where a reader of
    /// [`Store::signals_after`] starts.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn last_signal_id(&self) -> Result<i64, StoreError>;

    /// Adds `silence` (its `id` is ignored); returns its id.
    ///
    /// # Errors
    /// A [`StoreError`]; then nothing was written.
    fn add_silence(&self, silence: &Silence) -> Result<i64, StoreError>;

    /// The silences that end after `after` (active, or not started yet), by id.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn silences(&self, after: Timestamp) -> Result<Vec<Silence>, StoreError>;

    /// Ends silence `id` at `at`, if it had not ended by then; `false` if there is no
    /// such silence or it had.
    ///
    /// # Errors
    /// A [`StoreError`].
    fn expire_silence(&self, id: i64, at: Timestamp) -> Result<bool, StoreError>;
}

/// One signal a watched thing sent, as [`Store::record_signal`] keeps it: a heartbeat's
/// ping. The core gives its fields no meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Signal {
    /// Its id, in the order signals were recorded (0 before that).
    pub id: i64,
    /// The name of the thing that sent it.
    pub source: String,
    /// What it says (`success`, `start`, `fail`, ...).
    pub kind: String,
    /// An exit status it carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i32>,
    /// The run it belongs to, when the sender names runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// When it arrived.
    pub at: Timestamp,
    /// Text it carried (a request body, a log excerpt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl Signal {
    /// A signal of `kind` from `source` at `at`, with no exit status, run id or body.
    pub fn new(source: impl Into<String>, kind: impl Into<String>, at: Timestamp) -> Self {
        Self {
            id: 0,
            source: source.into(),
            kind: kind.into(),
            exit_status: None,
            rid: None,
            at,
            body: None,
        }
    }

    /// With an exit status.
    #[must_use]
    pub fn exit_status(mut self, status: i32) -> Self {
        self.exit_status = Some(status);
        self
    }

    /// With a run id.
    #[must_use]
    pub fn rid(mut self, rid: impl Into<String>) -> Self {
        self.rid = Some(rid.into());
        self
    }

    /// With a body.
    #[must_use]
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// The latest state of one thing the daemon watches (a polling check, say), as its
/// source saves it to read back after a restart: written when something changes and at
/// checkpoints, not at every run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceState {
    /// The source kind (`check`, ...).
    pub kind: String,
    /// The thing's name, unique within its kind.
    pub name: String,
    /// The source's own document, JSON.
    pub state: String,
    /// When it was written.
    pub updated: Timestamp,
}

impl SourceState {
    /// A row of `kind` and `name` holding `state`, written at `updated`.
    pub fn new(
        kind: impl Into<String>,
        name: impl Into<String>,
        state: impl Into<String>,
        updated: Timestamp,
    ) -> Self {
        Self {
            kind: kind.into(),
            name: name.into(),
            state: state.into(),
            updated,
        }
    }

    /// A row that, saved, deletes the row of `kind` and `name`.
    pub fn removed(kind: impl Into<String>, name: impl Into<String>, at: Timestamp) -> Self {
        Self::new(kind, name, String::new(), at)
    }

    /// Whether saving this row deletes it ([`SourceState::removed`]).
    pub fn is_removal(&self) -> bool {
        self.state.is_empty()
    }
}

/// Runs a store call `f` on tokio's blocking threads (SQLite blocks), for sources that
/// call the store from async code.
///
/// # Errors
/// `f`'s error, or [`StoreError::Task`] when the task panicked or was cancelled.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

/// The recipient outcome a finished row stands for: `None` while it is pending.
fn finished_outcome(r: &NotificationRecord) -> Option<Outcome> {
    match (r.status, r.dropped) {
        (Outcome::Pending, _) => None,
        (_, true) => Some(Outcome::Failed),
        (s, false) => Some(s),
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::store_conformance;

    use super::*;

    #[test]
    fn memory_store_conforms() {
        store_conformance(&MemoryStore::new());
    }

    /// Source rows are replaced by kind and name, read back by kind only, and the ones
    /// no longer configured can be forgotten without touching other kinds.
    fn sources_round_trip(store: &dyn Store) {
        let t = Timestamp::from_millis;
        let row =
            |kind: &str, name: &str, state: &str, at| SourceState::new(kind, name, state, t(at));
        store
            .save_sources(&[
                row("check", "web", "1", 1),
                row("check", "db", "2", 1),
                row("heartbeat", "web", "3", 1),
            ])
            .unwrap();
        store.save_sources(&[row("check", "web", "4", 2)]).unwrap();
        assert_eq!(
            store.sources("check").unwrap(),
            vec![row("check", "db", "2", 1), row("check", "web", "4", 2)]
        );
        assert_eq!(store.forget_sources("check", &["web"]).unwrap(), 1);
        assert_eq!(
            store.sources("check").unwrap(),
            vec![row("check", "web", "4", 2)]
        );
        // any name, as written
        store
            .save_sources(&[row("check", "a \"b\" ü", "5", 3)])
            .unwrap();
        assert_eq!(
            store
                .forget_sources("check", &["web", "a \"b\" ü"])
                .unwrap(),
            0
        );
        assert_eq!(store.forget_sources("check", &["web"]).unwrap(), 1);
        assert_eq!(
            store.sources("heartbeat").unwrap(),
            vec![row("heartbeat", "web", "3", 1)]
        );
        // a removal deletes its row, and only it
        store
            .save_sources(&[SourceState::removed("heartbeat", "web", t(4))])
            .unwrap();
        assert!(store.sources("heartbeat").unwrap().is_empty());
        assert_eq!(store.sources("check").unwrap().len(), 1);
        // rows saved with an event: in its transaction
        let applied = store
            .apply("svc", t(5), &mut |state| Change {
                sources: vec![
                    row("journal", "cursor", "c1", 5),
                    SourceState::removed("check", "web", t(5)),
                ],
                ..Change::new(state.clone())
            })
            .unwrap();
        assert!(applied.notifications.is_empty());
        assert_eq!(
            store.sources("journal").unwrap(),
            vec![row("journal", "cursor", "c1", 5)]
        );
        assert!(store.sources("check").unwrap().is_empty());
    }

    /// Signals come back per source, oldest first, with every field; ids grow across
    /// sources; old ones are pruned to about `keep`.
    fn signals_round_trip(store: &dyn Store) {
        let t = Timestamp::from_millis;
        assert_eq!(store.last_signal_id().unwrap(), 0);
        let a = store
            .record_signal(&Signal::new("backup", "start", t(1)).rid("r1"), 1000)
            .unwrap();
        let b = store
            .record_signal(&Signal::new("other", "success", t(2)), 1000)
            .unwrap();
        let c = store
            .record_signal(
                &Signal::new("backup", "exit", t(3))
                    .exit_status(3)
                    .rid("r1")
                    .body("disk full\n"),
                1000,
            )
            .unwrap();
        assert!(a < b && b < c);
        let got = store.signals("backup", 10).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].id, got[0].kind.as_str()), (a, "start"));
        assert_eq!(got[0].rid.as_deref(), Some("r1"));
        assert_eq!(got[1].exit_status, Some(3));
        assert_eq!(got[1].body.as_deref(), Some("disk full\n"));
        assert_eq!(got[1].at, t(3));
        // the newest `limit`
        assert_eq!(store.signals("backup", 1).unwrap()[0].id, c);
        assert_eq!(
            store.signals_after(a, 10).unwrap(),
            vec![(b, "other".to_owned()), (c, "backup".to_owned())]
        );
        assert!(store.signals_after(c, 10).unwrap().is_empty());
        assert_eq!(store.last_signal_id().unwrap(), c);
        // pruning keeps the newest, never fewer than `keep`
        for i in 0..300 {
            store
                .record_signal(&Signal::new("busy", "success", t(10 + i)), 5)
                .unwrap();
        }
        let busy = store.signals("busy", 1000).unwrap();
        assert!(busy.len() >= 5 && busy.len() < 300, "{}", busy.len());
        assert_eq!(busy.last().unwrap().at, t(309));
        assert_eq!(store.signals("backup", 10).unwrap().len(), 2);
    }

    /// Silences come back with every field while they have not ended, and expiring
    /// one ends it then.
    fn silences_round_trip(store: &dyn Store) {
        use crate::alert::Severity;
        use crate::hold::Matchers;
        use crate::rules::Patterns;
        let t = Timestamp::from_millis;
        let m = Matchers::new(
            Patterns::parse(["db-*", "re:^cache"]).unwrap(),
            Patterns::default(),
            Some(Severity::Warning),
        );
        let a = store
            .add_silence(&Silence::new(
                m.clone(),
                (t(10), t(100)),
                "patching",
                "ann",
                t(5),
            ))
            .unwrap();
        let b = store
            .add_silence(&Silence::new(
                Matchers::default(),
                (t(50), t(60)),
                "x",
                "bob",
                t(6),
            ))
            .unwrap();
        assert!(a < b);
        let list = store.silences(t(0)).unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].id, &list[0].matchers), (a, &m));
        assert_eq!((list[0].starts, list[0].ends), (t(10), t(100)));
        assert_eq!(
            (list[0].comment.as_str(), list[0].created_by.as_str()),
            ("patching", "ann")
        );
        assert_eq!(list[0].created, t(5));
        // ended ones are left out
        assert_eq!(store.silences(t(60)).unwrap().len(), 1);
        assert!(store.expire_silence(a, t(20)).unwrap());
        assert!(!store.expire_silence(a, t(30)).unwrap(), "already ended");
        assert!(!store.expire_silence(999, t(30)).unwrap());
        assert_eq!(
            store
                .silences(t(20))
                .unwrap()
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>(),
            [b]
        );
    }

    #[test]
    fn silences_round_trip_in_every_store() {
        silences_round_trip(&MemoryStore::new());
        let dir = tempfile::tempdir().unwrap();
        silences_round_trip(&SqliteStore::open(dir.path().join("state.db")).unwrap());
    }

    #[test]
    fn signals_round_trip_in_every_store() {
        signals_round_trip(&MemoryStore::new());
        let dir = tempfile::tempdir().unwrap();
        signals_round_trip(&SqliteStore::open(dir.path().join("state.db")).unwrap());
    }

    #[test]
    fn sources_round_trip_in_every_store() {
        sources_round_trip(&MemoryStore::new());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        sources_round_trip(&SqliteStore::open(&path).unwrap());
        // and they outlive the process that wrote them
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.sources("journal").unwrap().len(), 1);
    }

    /// A row keeps the history as of its event, so a recovery retried after the streak
    /// ended (and its failures were deleted) still tells what failed.
    fn claimed_rows_keep_their_history(store: &dyn Store) {
        use crate::alert::{FailureReport, Severity};
        let t = Timestamp::from_millis;
        let failure = Failure::from_report(
            &FailureReport::new("exit-code").severity(Severity::Critical),
            "h",
            t(1),
        );
        store
            .apply("s", t(1), &mut |_| Change {
                failure: Some(failure.clone()),
                ..Change::default()
            })
            .unwrap();
        store
            .apply("s", t(2), &mut |_| Change {
                end_streak: true,
                notifications: vec![NewNotification::new("ops", EventKind::Recovery, 1)],
                ..Change::default()
            })
            .unwrap();
        assert!(store.history("s").unwrap().is_empty());
        let claimed = store
            .claim_due(t(3), std::time::Duration::from_secs(60), 10, None)
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].history, [failure]);
    }

    #[test]
    fn claimed_rows_keep_their_history_in_every_store() {
        claimed_rows_keep_their_history(&MemoryStore::new());
        claimed_rows_keep_their_history(&SqliteStore::open_in_memory().unwrap());
    }

    #[test]
    fn sqlite_in_memory_conforms() {
        store_conformance(&SqliteStore::open_in_memory().unwrap());
    }

    /// The engine's shortcut (record and claim in one transaction) frees a slot as
    /// `record_attempt` and then `claim_due` do.
    #[test]
    fn sqlite_records_and_claims_the_next_row_in_one_call() {
        let sqlite = SqliteStore::open_in_memory().unwrap();
        crate::testkit::limits_conformance(&sqlite, &|_, id, at, next| {
            sqlite
                .record_attempt_and_claim(
                    id,
                    Attempt::Delivered,
                    at,
                    crate::testkit::LIMITS_LEASE,
                    next,
                )
                .expect("record and claim")
        });
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

    /// A version 1 state file with one alert of each outcome; the pending one is an
    /// alert whose sender died.
    fn v1_file(path: &std::path::Path) {
        use crate::alert::Severity;
        use crate::policy::{RecipientState, Streak};

        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(include_str!("../migrations/0001_init.sql"))
            .unwrap();
        conn.execute_batch("PRAGMA user_version = 1").unwrap();
        let state = |outcome| {
            let mut streak = Streak {
                id: 1,
                started: Timestamp::from_millis(1_000),
                last_failure: Timestamp::from_millis(1_000),
                failures: 1,
                max_severity: Severity::Critical,
                escalated: false,
                kind: None,
                host: None,
                trigger: None,
                recipients: Default::default(),
                invocations: Vec::new(),
                ack: None,
                held: None,
                held_for: Vec::new(),
            };
            streak.recipients.insert(
                "ops".to_owned(),
                RecipientState {
                    first_alert: Timestamp::from_millis(1_000),
                    last_alert: Timestamp::from_millis(1_000),
                    last_kind: EventKind::Failure,
                    alerts: 1,
                    delivered: outcome == Outcome::Delivered,
                    outcome,
                    rule: None,
                },
            );
            serde_json::to_string(&ServiceState {
                streak: Some(streak),
                streaks: 1,
                ..ServiceState::default()
            })
            .unwrap()
        };
        for (i, (service, outcome)) in [
            ("a.service", Outcome::Delivered),
            ("b.service", Outcome::Failed),
            ("c.service", Outcome::Pending),
        ]
        .into_iter()
        .enumerate()
        {
            conn.execute(
                "INSERT INTO services (name, state, updated_ms) VALUES (?1, ?2, 1000)",
                rusqlite::params![service, state(outcome)],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO notifications (service, notifier, kind, streak, sequence, created_ms,
                                            status, error, finished_ms)
                 VALUES (?1, 'ops', 'failure', 1, ?2, 1000, ?3, ?4, ?5)",
                rusqlite::params![
                    service,
                    i64::try_from(i).unwrap() + 1,
                    outcome.as_str(),
                    (outcome == Outcome::Failed).then_some("refused"),
                    (outcome != Outcome::Pending).then_some(1_100)
                ],
            )
            .unwrap();
        }
    }

    #[test]
    fn sqlite_migrates_a_v1_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        v1_file(&path);
        assert!(
            std::fs::read(&path)
                .unwrap()
                .windows(19)
                .any(|w| w == br#""outcome":"pending""#),
            "the v1 file has a pending recipient in compact JSON"
        );
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(SqliteStore::SCHEMA_VERSION, 7);
        let log = store.notifications(None, 10).unwrap();
        let by = |s: &str| log.iter().find(|r| r.service == s).unwrap();
        let (a, b, c) = (by("a.service"), by("b.service"), by("c.service"));
        assert_eq!(
            (a.status, a.attempts, a.error.as_deref()),
            (Outcome::Delivered, 1, None)
        );
        assert_eq!(
            (b.status, b.attempts, b.error.as_deref(), b.finished),
            (
                Outcome::Failed,
                1,
                Some("refused"),
                Some(Timestamp::from_millis(1_100))
            )
        );
        assert_eq!(
            (c.status, c.attempts, c.error.as_deref(), c.next_attempt),
            (
                Outcome::Failed,
                0,
                Some("interrupted before alertcore had an outbox"),
                None
            )
        );
        assert!(c.finished.is_some());
        let outcome =
            |s: &str| store.state(s).unwrap().unwrap().streak.unwrap().recipients["ops"].outcome;
        assert_eq!(outcome("a.service"), Outcome::Delivered);
        assert_eq!(outcome("b.service"), Outcome::Failed);
        assert_eq!(outcome("c.service"), Outcome::Failed, "no longer waited on");
        let far = Timestamp::from_millis(i64::MAX / 2);
        assert!(
            store
                .claim_due(far, Duration::from_secs(1), 10, None)
                .unwrap()
                .is_empty(),
            "nothing from v1 can be sent again"
        );
        assert_eq!(store.outbox(&OutboxFilter::new()).unwrap().len(), 2);
        drop(store);
        // and the migrated file is a good v2 file
        let store = SqliteStore::open(&path).unwrap();
        store_conformance_after_v1(&store);
        // whose failures, old and new, keep restarting and trigger (version 7)
        let report = crate::alert::FailureReport::new("exit-code")
            .restarting(true)
            .trigger(crate::alert::Trigger::Timer);
        let failure = Failure::from_report(&report, "h", Timestamp::from_millis(9_000));
        store
            .apply("e.service", failure.timestamp, &mut |_| {
                let mut c = Change::new(ServiceState::default());
                c.failure = Some(failure.clone());
                c
            })
            .unwrap();
        assert_eq!(store.history("e.service").unwrap(), vec![failure]);
    }

    /// The outbox works on a migrated file: a new alert is claimed and delivered.
    fn store_conformance_after_v1(store: &SqliteStore) {
        let now = Timestamp::from_millis(5_000);
        let applied = store
            .apply("d.service", now, &mut |_| {
                let mut c = Change::new(ServiceState::default());
                c.notifications =
                    vec![NewNotification::new("ops", EventKind::Recovery, 1).payload("{}")];
                c
            })
            .unwrap();
        let claimed = store
            .claim_due(now, Duration::from_secs(60), 10, None)
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].record.id, applied.notifications[0]);
        assert_eq!(claimed[0].payload, "{}");
        store
            .record_attempt(claimed[0].record.id, Attempt::Delivered, now)
            .unwrap();
    }

    #[test]
    fn two_processes_never_claim_one_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let a = SqliteStore::open(&path).unwrap();
        let b = SqliteStore::open(&path).unwrap();
        let now = Timestamp::from_millis(1_000);
        let mut expected = Vec::new();
        for i in 0..60 {
            let applied = a
                .apply(&format!("unit-{i}.service"), now, &mut |_| {
                    let mut c = Change::new(ServiceState::default());
                    c.notifications = ["ops", "mail", "hook"]
                        .iter()
                        .map(|n| {
                            NewNotification::new(*n, EventKind::Failure, 1).payload(i.to_string())
                        })
                        .collect();
                    c
                })
                .unwrap();
            expected.extend(applied.notifications);
        }
        let claimed = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..8 {
                let (store, claimed) = (if t % 2 == 0 { &a } else { &b }, &claimed);
                s.spawn(move || {
                    loop {
                        let got = store
                            .claim_due(now, Duration::from_secs(3600), 3, None)
                            .unwrap();
                        if got.is_empty() {
                            break;
                        }
                        for c in &got {
                            // half are finished at once, half stay leased
                            if c.record.id.0 % 2 == 0 {
                                store
                                    .record_attempt(c.record.id, Attempt::Delivered, now)
                                    .unwrap();
                            }
                        }
                        claimed
                            .lock()
                            .unwrap()
                            .extend(got.into_iter().map(|c| c.record.id));
                    }
                });
            }
        });
        let mut claimed = claimed.into_inner().unwrap();
        let n = claimed.len();
        claimed.sort();
        claimed.dedup();
        assert_eq!(n, claimed.len(), "a row was claimed twice");
        assert_eq!(claimed, expected, "every row was claimed");
    }

    #[test]
    fn delivering_a_recovery_does_not_touch_the_services_table() {
        let store = SqliteStore::open_in_memory().unwrap();
        let now = Timestamp::from_millis(1_000);
        let applied = store
            .apply("x.service", now, &mut |_| {
                let mut c = Change::new(ServiceState::default());
                c.notifications = vec![
                    NewNotification::new("ops", EventKind::Recovery, 1),
                    NewNotification::new("ops", EventKind::Reminder, 2),
                ];
                c
            })
            .unwrap();
        // a state that cannot even be read: touching it would fail
        store
            .lock()
            .execute("UPDATE services SET state = 'not json'", [])
            .unwrap();
        store
            .record_attempt(applied.notifications[0], Attempt::Delivered, now)
            .unwrap();
        assert!(
            store
                .record_attempt(applied.notifications[1], Attempt::Delivered, now)
                .is_err(),
            "a failure kind updates the state"
        );
    }

    /// SQLite VM steps of one `claim_due` for `list` while `hook` has its
    /// `max_concurrent` (2) rows in flight and `waiting` rows wait behind it; how many
    /// rows the claim must take.
    fn steps_of_a_claim_behind_hook(waiting: usize, list: &[(&str, Limits)], takes: usize) -> u64 {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let store = SqliteStore::open_in_memory().unwrap();
        let limits = Limits::NONE.max_concurrent(Some(2));
        let now = Timestamp::from_millis(1_000);
        for i in 0..waiting + 2 {
            store
                .apply(&format!("svc-{i}"), now, &mut |state| {
                    let mut change = Change::new(state.clone());
                    change.notifications = vec![
                        NewNotification::new("hook", EventKind::Failure, 1)
                            .lease(Duration::from_secs(60))
                            .limits(limits),
                    ];
                    change
                })
                .unwrap();
        }
        let steps = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&steps);
        store
            .lock()
            .progress_handler(
                1,
                Some(move || {
                    counter.fetch_add(1, Ordering::Relaxed);
                    false
                }),
            )
            .unwrap();
        let claimed = store
            .claim_due(now, Duration::from_secs(60), 64, Some(list))
            .unwrap();
        assert_eq!(claimed.len(), takes, "{claimed:?}");
        steps.load(Ordering::Relaxed)
    }

    /// A burst leaves hundreds of rows behind a notifier at its `max_concurrent`, and
    /// every handler claims. A claim that counted the rows in flight once per waiting row
    /// held the write lock for O(P²) and made a burst of 1000 handlers time out on the
    /// lock; one that read every waiting row made a default-limited notifier 3x slower.
    /// Now a claim reads only what it takes: about as much work for 1600 rows waiting as
    /// for 400.
    #[test]
    fn a_claim_behind_a_busy_notifier_reads_only_what_it_takes() {
        let busy = Limits::NONE.max_concurrent(Some(2));
        type Case<'a> = (&'a str, &'a [(&'a str, Limits)], usize);
        let cases: [Case<'_>; 3] = [
            ("busy", &[("hook", busy)], 0),
            (
                "busy, and one with nothing due",
                &[("hook", busy), ("idle", Limits::NONE)],
                0,
            ),
            (
                "one slot free",
                &[("hook", busy.max_concurrent(Some(3)))],
                1,
            ),
        ];
        for (what, list, takes) in cases {
            let small = steps_of_a_claim_behind_hook(400, list, takes);
            let large = steps_of_a_claim_behind_hook(1600, list, takes);
            // constant or logarithmic: well under 2x; linear: 4x; quadratic: 16x
            assert!(
                large <= 2 * small.max(1),
                "{what}: {small} then {large} steps for 4x the rows"
            );
        }
    }

    /// Applies an event of `service` that stores its state as it is, running `inside`
    /// within the policy callback.
    fn apply_with(store: &SqliteStore, service: &str, inside: impl Fn()) -> Applied {
        store
            .apply(service, Timestamp::from_millis(1), &mut |state| {
                inside();
                Change::new(state.clone())
            })
            .unwrap()
    }

    /// A group transaction left open for a thread waiting for the connection is
    /// committed by that thread even when it only reads and returns early (a claim that
    /// finds nothing due): else the group's members wait for a commit nobody makes.
    #[test]
    fn a_claim_that_finds_nothing_still_commits_the_group_it_found() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let store = SqliteStore::open_in_memory().unwrap();
            let (a, claimed) = store.two_at_once(
                |inside| apply_with(&store, "a", inside),
                || store.claim_due(Timestamp::from_millis(1), Duration::from_secs(60), 10, None),
            );
            let _ = tx.send((a.is_ok(), claimed.map(|c| c.unwrap().len()).ok()));
        });
        let got = rx.recv_timeout(Duration::from_secs(20));
        assert_eq!(got, Ok((true, Some(0))), "the event waited for its commit");
    }

    #[test]
    fn outbox_queries_use_the_due_index() {
        let store = SqliteStore::open_in_memory().unwrap();
        let conn = store.lock();
        let plan: Vec<String> = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT id FROM notifications
                 WHERE status IN ('pending', 'failed') AND status = 'pending'
                   AND next_attempt_ms <= 5",
            )
            .unwrap()
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("notifications_due")),
            "{plan:?}"
        );
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
