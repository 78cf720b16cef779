//! Test kit (feature `testkit`): a manual clock, a recording notifier and the store
//! conformance suite every [`Store`] implementation should pass.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::alert::{EventKind, Failure, FailureReport, Severity, Timestamp};
use crate::engine::Clock;
use crate::error::NotifyError;
use crate::notifier::{Context, Notifier};
use crate::policy::{Outcome, RecipientState, ServiceState, Streak};
use crate::store::{Change, NewNotification, Store};

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `t`.
    pub fn new(t: Timestamp) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(t.as_millis())))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// One call a [`RecordingNotifier`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Call {
    /// The service.
    pub service: String,
    /// The event kind from the context.
    pub event: EventKind,
    /// How many failures the history had.
    pub failures: usize,
    /// The context's sequence number.
    pub sequence: u64,
    /// The context's incident id.
    pub incident: String,
}

/// Records every call; fails the first `fail_first` of them.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    calls: Mutex<Vec<Call>>,
    fail_first: AtomicUsize,
}

impl RecordingNotifier {
    /// A notifier that always succeeds.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A notifier whose first `n` calls fail (retryably).
    pub fn failing(n: usize) -> Arc<Self> {
        Arc::new(Self {
            calls: Mutex::default(),
            fail_first: AtomicUsize::new(n),
        })
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The event kinds received so far.
    pub fn events(&self) -> Vec<EventKind> {
        self.calls().into_iter().map(|c| c.event).collect()
    }

    fn record(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call {
                service: service.to_owned(),
                event: ctx.event,
                failures: failures.len(),
                sequence: ctx.sequence,
                incident: ctx.incident_id(service),
            });
        let fail = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(NotifyError::transport(
                "recording",
                true,
                "simulated failure",
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Notifier for RecordingNotifier {
    fn kind(&self) -> &'static str {
        "recording"
    }
    async fn failure(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        self.record(service, failures, ctx)
    }
}

fn failure(n: i64, severity: Severity) -> Failure {
    Failure::from_report(
        &FailureReport::new("exit-code")
            .exit_code("exited")
            .exit_status(n.to_string())
            .invocation_id(format!("{n:032x}"))
            .severity(severity)
            .message(format!("run {n} — ünïcode\nsecond line")),
        "host-a",
        Timestamp::from_millis(1_000 * n),
    )
}

fn streak_state(id: u64, failures: u32, notifier: Option<&str>) -> ServiceState {
    let mut s = ServiceState {
        streaks: id,
        ..ServiceState::default()
    };
    let mut streak = Streak {
        id,
        started: Timestamp::from_millis(1_000),
        last_failure: Timestamp::from_millis(1_000),
        failures,
        max_severity: Severity::Warning,
        escalated: false,
        kind: None,
        recipients: Default::default(),
    };
    if let Some(n) = notifier {
        streak.recipients.insert(
            n.to_owned(),
            RecipientState {
                first_alert: Timestamp::from_millis(2_000),
                last_alert: Timestamp::from_millis(2_000),
                last_kind: EventKind::Failure,
                alerts: 1,
                delivered: false,
                outcome: Outcome::Pending,
                rule: None,
            },
        );
    }
    s.streak = Some(streak);
    s
}

/// Checks the behaviour every [`Store`] must have. Panics with a message on the first
/// violation. Run it on a fresh, empty store.
pub fn store_conformance(store: &dyn Store) {
    let svc = "backup.service";
    assert_eq!(
        store.state(svc).expect("state"),
        None,
        "fresh store has no state"
    );
    assert!(store.history(svc).expect("history").is_empty());

    // 1. a failure with no notification: state and history saved, no sequence used
    let s1 = streak_state(1, 1, None);
    let applied = store
        .apply(svc, Timestamp::from_millis(1_000), &mut |prev| {
            assert_eq!(
                prev,
                &ServiceState::default(),
                "apply sees the stored (default) state"
            );
            Change {
                next: s1.clone(),
                failure: Some(failure(1, Severity::Warning)),
                ..Change::default()
            }
        })
        .expect("apply 1");
    assert!(
        applied.history.is_empty(),
        "history is read only for notifications"
    );
    assert_eq!(
        store.history(svc).expect("history"),
        vec![failure(1, Severity::Warning)]
    );
    assert_eq!(applied.sequence, 0);
    assert!(applied.notifications.is_empty());
    assert_eq!(store.state(svc).expect("state").as_ref(), Some(&s1));

    // 2. a failure that notifies: logged pending, sequence 1, history in order
    let s2 = streak_state(1, 2, Some("ops"));
    let mut f2 = failure(2, Severity::Critical);
    f2.notifiers = vec!["ops".to_owned()];
    let applied = store
        .apply(svc, Timestamp::from_millis(2_000), &mut |prev| {
            assert_eq!(prev, &s1, "apply sees the state stored before");
            Change {
                next: s2.clone(),
                failure: Some(f2.clone()),
                notifications: vec![NewNotification::new("ops", EventKind::Failure, 1)],
                ..Change::default()
            }
        })
        .expect("apply 2");
    assert_eq!(
        applied.history,
        vec![failure(1, Severity::Warning), f2.clone()]
    );
    assert_eq!(applied.sequence, 1);
    assert_eq!(applied.notifications.len(), 1);
    let id = applied.notifications[0];
    let log = store.notifications(Some(svc), 10).expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, Outcome::Pending, "logged before it is sent");
    assert_eq!(log[0].kind, EventKind::Failure);
    assert_eq!(log[0].sequence, 1);

    // 3. the outcome updates the log row and the recipient state
    store
        .record_outcome(id, Outcome::Delivered, None, Timestamp::from_millis(2_500))
        .expect("record outcome");
    let log = store.notifications(Some(svc), 10).expect("log");
    assert_eq!(log[0].status, Outcome::Delivered);
    assert_eq!(log[0].finished, Some(Timestamp::from_millis(2_500)));
    let st = store.state(svc).expect("state").expect("some state");
    let r = &st.streak.as_ref().expect("streak").recipients["ops"];
    assert!(
        r.delivered && r.outcome == Outcome::Delivered,
        "recipient marked delivered"
    );

    // 4. a failed delivery keeps its error
    let applied = store
        .apply("other.service", Timestamp::from_millis(3_000), &mut |_| {
            Change {
                next: streak_state(1, 1, Some("ops")),
                failure: Some(failure(3, Severity::Critical)),
                notifications: vec![NewNotification::new("ops", EventKind::Failure, 1)],
                ..Change::default()
            }
        })
        .expect("apply other");
    assert_eq!(applied.sequence, 2, "sequence is per host, across services");
    store
        .record_outcome(
            applied.notifications[0],
            Outcome::Failed,
            Some("connection refused"),
            Timestamp::from_millis(3_100),
        )
        .expect("record failed");
    let log = store.notifications(None, 10).expect("log");
    assert_eq!(log.len(), 2, "log across services");
    assert_eq!(log[0].service, "other.service", "newest first");
    assert_eq!(log[0].error.as_deref(), Some("connection refused"));
    assert_eq!(store.notifications(None, 1).expect("log").len(), 1, "limit");

    // 5. ending the streak returns the history once, then deletes it
    let applied = store
        .apply(svc, Timestamp::from_millis(4_000), &mut |_| Change {
            next: ServiceState::default(),
            end_streak: true,
            notifications: vec![NewNotification::new("ops", EventKind::Recovery, 1)],
            ..Change::default()
        })
        .expect("apply success");
    assert_eq!(
        applied.history.len(),
        2,
        "recovery sees the streak's history"
    );
    assert!(
        store.history(svc).expect("history").is_empty(),
        "history cleared"
    );
    // a recovery outcome does not resurrect a streak
    store
        .record_outcome(
            applied.notifications[0],
            Outcome::Delivered,
            None,
            Timestamp::from_millis(4_100),
        )
        .expect("record recovery");
    assert_eq!(
        store.state(svc).expect("state"),
        Some(ServiceState::default())
    );

    // 6. states, clear
    let names: Vec<String> = store
        .states()
        .expect("states")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        vec!["backup.service".to_owned(), "other.service".to_owned()]
    );
    assert!(store.clear("other.service").expect("clear"));
    assert!(!store.clear("never.service").expect("clear unknown"));
    assert_eq!(store.state("other.service").expect("state"), None);
    assert!(store.history("other.service").expect("history").is_empty());
    assert_eq!(
        store.notifications(None, 10).expect("log").len(),
        3,
        "the log survives clear"
    );

    // 7. odd service names are data, not syntax
    let odd = "we'ird\"; DROP TABLE services;--\u{0}\n.service";
    store
        .apply(odd, Timestamp::from_millis(5_000), &mut |_| Change {
            next: streak_state(1, 1, None),
            failure: Some(failure(5, Severity::Critical)),
            ..Change::default()
        })
        .expect("odd name");
    assert_eq!(store.history(odd).expect("history").len(), 1);
}
