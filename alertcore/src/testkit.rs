//! Test kit (feature `testkit`): a manual clock, a recording notifier and the store
//! conformance suite every [`Store`] implementation should pass.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::alert::{EventKind, Failure, FailureReport, Severity, Timestamp};
use crate::engine::Clock;
use crate::error::NotifyError;
use crate::notification::Notification;
use crate::notifier::Notifier;
use crate::outbox::Limits;
use crate::policy::{Outcome, RecipientState, ServiceState, Streak};
use crate::store::{Attempt, Change, Claimed, NewNotification, NotificationId, Store};
use crate::template::Context;

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
    /// The notifier that gave the alert up, when it came as a `fallback`.
    pub fallback_for: Option<String>,
    /// The whole notification.
    pub notification: Notification,
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

    fn record(&self, n: &Notification) -> Result<(), NotifyError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call {
                service: n.service.clone(),
                event: n.event,
                failures: n.failures.len(),
                sequence: n.sequence,
                incident: n.incident_id(),
                fallback_for: n.fallback_for.as_ref().map(|f| f.notifier.clone()),
                notification: n.clone(),
            });
        let fail = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(NotifyError::retryable("recording", "simulated failure"));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Notifier for RecordingNotifier {
    fn kind(&self) -> &'static str {
        "recording"
    }
    async fn notify(&self, n: &Notification, _: &Context<'_>) -> Result<(), NotifyError> {
        self.record(n)
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
        host: None,
        trigger: None,
        recipients: Default::default(),
        invocations: Vec::new(),
        ack: None,
        held: None,
        held_for: Vec::new(),
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
        .record_attempt(id, Attempt::Delivered, Timestamp::from_millis(2_500))
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
        .record_attempt(
            applied.notifications[0],
            Attempt::GaveUp {
                error: "connection refused",
            },
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
        .record_attempt(
            applied.notifications[0],
            Attempt::Delivered,
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
    // the next streak of a cleared service gets a new id, after the forgotten ones
    let mut seen = 0;
    store
        .apply("other.service", Timestamp::from_millis(9_000), &mut |s| {
            seen = s.streaks;
            Change::new(s.clone())
        })
        .expect("apply after clear");
    assert_eq!(seen, 1, "the streak counter survives clear");
    assert!(store.clear("other.service").expect("clear again"));
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

    // the compatibility path counted its attempts
    let log = store.notifications(None, 10).expect("log");
    assert!(log.iter().all(|r| r.attempts == 1), "{log:#?}");
    outbox_conformance(store);
    limits_conformance(store, &free_by_contract);
    fallback_conformance(store);
}

/// A service in streak 1 that alerted each of `notifiers` at `at`, outcome pending.
fn alerted_state(notifiers: &[&str], at: Timestamp) -> ServiceState {
    let mut s = streak_state(1, 1, None);
    let streak = s.streak.as_mut().expect("streak");
    for n in notifiers {
        streak.recipients.insert(
            (*n).to_owned(),
            RecipientState {
                first_alert: at,
                last_alert: at,
                last_kind: EventKind::Failure,
                alerts: 1,
                delivered: false,
                outcome: Outcome::Pending,
                rule: None,
            },
        );
    }
    s
}

fn recipient_outcome(store: &dyn Store, service: &str, notifier: &str) -> Outcome {
    let state = store.state(service).expect("state").expect("some state");
    state.streak.expect("streak").recipients[notifier].outcome
}

fn record(store: &dyn Store, id: crate::store::NotificationId) -> crate::store::NotificationRecord {
    store
        .notifications(None, 1_000)
        .expect("log")
        .into_iter()
        .find(|r| r.id == id)
        .expect("row in the log")
}

/// The outbox part of [`store_conformance`]: claims, leases, ordering, attempts, retry
/// and drop. Runs after the rest, on the rows it left (all finished, one failed).
fn outbox_conformance(store: &dyn Store) {
    use crate::store::{Attempt, OutboxFilter};

    let at = Timestamp::from_millis;
    let ids = |c: &[crate::store::Claimed]| c.iter().map(|c| c.record.id).collect::<Vec<_>>();
    let lease = Duration::from_secs(60);
    let old_failed = store.outbox(&OutboxFilter::new()).expect("outbox");
    assert_eq!(
        old_failed.len(),
        1,
        "the earlier failed delivery: {old_failed:#?}"
    );
    assert_eq!(old_failed[0].status, Outcome::Failed);
    assert!(
        store
            .claim_due(at(9_000), lease, 10, None)
            .expect("claim")
            .is_empty(),
        "finished rows are never due"
    );

    // 8. rows are written due now; one claimed at creation, one not
    let web = "web.service";
    let applied = store
        .apply(web, at(10_000), &mut |_| Change {
            next: alerted_state(&["ops", "mail"], at(10_000)),
            failure: Some(failure(10, Severity::Critical)),
            notifications: vec![
                NewNotification::new("ops", EventKind::Failure, 1)
                    .payload(r#"{"to":"ops"}"#)
                    .lease(Duration::from_secs(30)),
                NewNotification::new("mail", EventKind::Failure, 1).payload(r#"{"to":"mail"}"#),
            ],
            ..Change::default()
        })
        .expect("apply web");
    let (ops, mail) = (applied.notifications[0], applied.notifications[1]);
    assert_eq!(
        applied.claimed,
        vec![ops],
        "only the row asked for with a lease"
    );
    let r = record(store, ops);
    assert_eq!(
        (r.status, r.attempts, r.next_attempt, r.leased_until),
        (Outcome::Pending, 0, Some(at(10_000)), Some(at(40_000)))
    );
    assert_eq!(record(store, mail).leased_until, None);

    // a leased row is not due; claiming leases
    let c = store.claim_due(at(10_000), lease, 10, None).expect("claim");
    assert_eq!(ids(&c), vec![mail], "the creator holds ops");
    assert_eq!(c[0].payload, r#"{"to":"mail"}"#);
    assert_eq!(c[0].attempts, 0);
    assert_eq!(c[0].record.leased_until, Some(at(70_000)));
    assert_eq!(record(store, mail).leased_until, Some(at(70_000)));
    assert!(
        store
            .claim_due(at(10_000), lease, 10, None)
            .expect("claim")
            .is_empty(),
        "all leased"
    );
    // the lease runs out: claimed again (the creator died)
    assert!(
        store
            .claim_due(at(40_000), lease, 10, None)
            .expect("claim")
            .is_empty(),
        "lease held until its end"
    );
    let c = store.claim_due(at(40_001), lease, 10, None).expect("claim");
    assert_eq!(ids(&c), vec![ops], "an expired lease is due");
    assert_eq!(c[0].payload, r#"{"to":"ops"}"#);

    // a retryable failure: still pending, due later, recipient still pending
    store
        .record_attempt(
            ops,
            Attempt::Retry {
                error: "timed out",
                next_at: at(100_000),
            },
            at(41_000),
        )
        .expect("retry");
    let r = record(store, ops);
    assert_eq!(
        (
            r.status,
            r.attempts,
            r.next_attempt,
            r.leased_until,
            r.finished
        ),
        (Outcome::Pending, 1, Some(at(100_000)), None, None)
    );
    assert_eq!(r.error.as_deref(), Some("timed out"));
    assert_eq!(recipient_outcome(store, web, "ops"), Outcome::Pending);
    assert!(
        store
            .claim_due(at(99_999), lease, 10, Some(&[("ops", Limits::NONE)]))
            .expect("claim")
            .is_empty(),
        "not due before next_at"
    );

    // notifier filter, limit, oldest first
    let c = store
        .claim_due(
            at(100_000),
            lease,
            10,
            Some(&[("mail", Limits::NONE), ("nobody", Limits::NONE)]),
        )
        .expect("claim");
    assert_eq!(ids(&c), vec![mail], "only the notifiers asked for");
    assert!(
        store
            .claim_due(at(100_000), lease, 10, Some(&[]))
            .expect("claim")
            .is_empty()
    );
    store.retry(Some(mail), at(100_000)).expect("retry mail");
    assert_eq!(
        record(store, mail).leased_until,
        None,
        "retry releases the lease"
    );
    assert!(
        store
            .claim_due(at(100_000), lease, 0, None)
            .expect("claim")
            .is_empty(),
        "limit 0"
    );
    let c = store.claim_due(at(100_000), lease, 1, None).expect("claim");
    assert_eq!(ids(&c), vec![ops], "oldest first, up to the limit");
    assert_eq!(c[0].attempts, 1);
    let c = store.claim_due(at(100_000), lease, 5, None).expect("claim");
    assert_eq!(ids(&c), vec![mail]);

    // delivered and given up: finished, recipients updated
    store
        .record_attempt(mail, Attempt::Delivered, at(100_500))
        .expect("delivered");
    let r = record(store, mail);
    assert_eq!(
        (
            r.status,
            r.attempts,
            r.finished,
            r.next_attempt,
            r.leased_until,
            r.error
        ),
        (Outcome::Delivered, 1, Some(at(100_500)), None, None, None)
    );
    let state = store.state(web).expect("state").expect("some state");
    let m = &state.streak.as_ref().expect("streak").recipients["mail"];
    assert!(m.delivered && m.outcome == Outcome::Delivered, "{m:?}");
    store
        .record_attempt(
            ops,
            Attempt::GaveUp {
                error: "550 no such user",
            },
            at(100_600),
        )
        .expect("gave up");
    let r = record(store, ops);
    assert_eq!(
        (r.status, r.attempts, r.finished, r.next_attempt, r.dropped),
        (Outcome::Failed, 2, Some(at(100_600)), None, false)
    );
    assert_eq!(r.error.as_deref(), Some("550 no such user"));
    assert_eq!(recipient_outcome(store, web, "ops"), Outcome::Failed);
    assert!(
        store
            .claim_due(at(200_000), lease, 10, None)
            .expect("claim")
            .is_empty()
    );
    // a late report for a finished row only counts
    store
        .record_attempt(
            mail,
            Attempt::Retry {
                error: "late",
                next_at: at(1),
            },
            at(100_700),
        )
        .expect("late");
    let r = record(store, mail);
    assert_eq!(
        (r.status, r.attempts, r.error),
        (Outcome::Delivered, 2, None)
    );
    assert!(
        store
            .record_attempt(
                crate::store::NotificationId(999_999),
                Attempt::Delivered,
                at(1)
            )
            .is_err(),
        "unknown id"
    );

    // the outbox lists pending and failed rows, newest first
    let all = store.outbox(&OutboxFilter::new()).expect("outbox");
    assert_eq!(ids_of(&all), vec![ops, old_failed[0].id]);
    let only = |f: OutboxFilter| ids_of(&store.outbox(&f).expect("outbox"));
    assert_eq!(only(OutboxFilter::new().service(web)), vec![ops]);
    assert_eq!(only(OutboxFilter::new().notifier("mail")), vec![]);
    assert_eq!(only(OutboxFilter::new().status(Outcome::Pending)), vec![]);
    assert_eq!(
        only(OutboxFilter::new().status(Outcome::Failed).limit(1)),
        vec![ops]
    );

    // 9. ordering: a recovery waits for the failure alert of its streak
    let db = "db.service";
    let applied = store
        .apply(db, at(200_000), &mut |_| Change {
            next: alerted_state(&["ops", "mail"], at(200_000)),
            notifications: vec![
                NewNotification::new("ops", EventKind::Failure, 1)
                    .payload("f")
                    .lease(lease),
            ],
            ..Change::default()
        })
        .expect("apply db failure");
    let fail = applied.notifications[0];
    assert_eq!(applied.claimed, vec![fail]);
    let applied = store
        .apply(db, at(201_000), &mut |_| Change {
            next: ServiceState::default(),
            end_streak: true,
            notifications: vec![
                NewNotification::new("ops", EventKind::Recovery, 1)
                    .payload("r")
                    .lease(lease),
                NewNotification::new("mail", EventKind::Recovery, 1)
                    .payload("m")
                    .lease(lease),
                NewNotification::new("ops", EventKind::Failure, 2).payload("s2"),
            ],
            ..Change::default()
        })
        .expect("apply db recovery");
    let [recovery, mail_recovery, streak2] = applied.notifications[..] else {
        panic!("three rows: {:?}", applied.notifications);
    };
    assert_eq!(
        applied.claimed,
        vec![mail_recovery],
        "the recovery to ops waits for its failure alert; mail's has none pending"
    );
    let c = store
        .claim_due(at(202_000), lease, 10, None)
        .expect("claim");
    assert_eq!(ids(&c), vec![streak2], "another streak does not wait");
    for id in [mail_recovery, streak2] {
        store
            .record_attempt(id, Attempt::Delivered, at(202_100))
            .expect("delivered");
    }
    store
        .record_attempt(
            fail,
            Attempt::Retry {
                error: "429",
                next_at: at(300_000),
            },
            at(203_000),
        )
        .expect("retry failure");
    assert!(
        store
            .claim_due(at(204_000), lease, 10, None)
            .expect("claim")
            .is_empty(),
        "the recovery waits while the failure alert waits for its retry"
    );
    let c = store
        .claim_due(at(300_000), lease, 10, None)
        .expect("claim");
    assert_eq!(ids(&c), vec![fail], "the failure alert first, alone");
    assert!(
        store
            .claim_due(at(300_001), lease, 10, None)
            .expect("claim")
            .is_empty()
    );
    store
        .record_attempt(fail, Attempt::Delivered, at(300_100))
        .expect("delivered");
    let c = store
        .claim_due(at(300_200), lease, 10, None)
        .expect("claim");
    assert_eq!(ids(&c), vec![recovery], "then the recovery");
    assert_eq!(c[0].payload, "r");
    store
        .record_attempt(recovery, Attempt::Delivered, at(300_300))
        .expect("delivered");

    // 10. an operator's retry and drop
    assert_eq!(
        store.retry(Some(mail), at(400_000)).expect("retry"),
        0,
        "delivered stays"
    );
    assert_eq!(store.retry(Some(ops), at(400_000)).expect("retry"), 1);
    let r = record(store, ops);
    assert_eq!(
        (
            r.status,
            r.attempts,
            r.next_attempt,
            r.finished,
            r.leased_until
        ),
        (Outcome::Pending, 2, Some(at(400_000)), None, None),
        "pending, due now, attempts kept"
    );
    assert_eq!(
        recipient_outcome(store, web, "ops"),
        Outcome::Pending,
        "the outbox owns it again"
    );
    assert_eq!(
        ids(&store.claim_due(at(400_000), lease, 1, None).expect("claim")),
        vec![ops]
    );
    assert!(
        store.drop_notification(ops).expect("drop"),
        "a leased row can be dropped"
    );
    let r = record(store, ops);
    assert!(r.dropped && r.status == Outcome::Failed, "{r:?}");
    assert_eq!((r.next_attempt, r.leased_until), (None, None));
    assert_eq!(
        recipient_outcome(store, web, "ops"),
        Outcome::Failed,
        "the policy may alert again"
    );
    assert!(
        !store.drop_notification(ops).expect("drop"),
        "already dropped"
    );
    assert!(
        !store.drop_notification(mail).expect("drop"),
        "delivered rows stay"
    );
    assert_eq!(
        store.retry(Some(ops), at(400_000)).expect("retry"),
        0,
        "dropped stays"
    );
    assert!(
        store
            .claim_due(at(500_000), lease, 10, None)
            .expect("claim")
            .is_empty()
    );
    assert_eq!(
        ids_of(&store.outbox(&OutboxFilter::new()).expect("outbox")),
        vec![old_failed[0].id],
        "dropped rows leave the outbox"
    );
    // the sender's late retry does not resurrect it
    store
        .record_attempt(
            ops,
            Attempt::Retry {
                error: "late",
                next_at: at(1),
            },
            at(400_100),
        )
        .expect("late");
    let r = record(store, ops);
    assert!(
        r.dropped && r.attempts == 3 && r.next_attempt.is_none(),
        "{r:?}"
    );

    // retry everything: the failed row is due again, with its attempts
    assert_eq!(store.retry(None, at(600_000)).expect("retry all"), 1);
    let c = store
        .claim_due(at(600_000), lease, 10, None)
        .expect("claim");
    assert_eq!(ids(&c), vec![old_failed[0].id]);
    assert_eq!(c[0].attempts, 1);
    store
        .record_attempt(c[0].record.id, Attempt::Delivered, at(600_100))
        .expect("delivered");
    assert!(
        store
            .outbox(&OutboxFilter::new())
            .expect("outbox")
            .is_empty()
    );
    assert_eq!(store.retry(None, at(700_000)).expect("retry all"), 0);
}

fn ids_of(rows: &[crate::store::NotificationRecord]) -> Vec<crate::store::NotificationId> {
    rows.iter().map(|r| r.id).collect()
}

/// How a sender that has delivered row `id` at `at` frees its slot and takes the next
/// row of its notifier, if one waits: [`Store::record_attempt`], then
/// [`Store::claim_due`] of one row (the contract), or a store's shortcut for the two.
pub(crate) type FreeSlot<'a> =
    &'a dyn Fn(&dyn Store, NotificationId, Timestamp, (&str, Limits)) -> Vec<Claimed>;

/// [`FreeSlot`] through the contract.
fn free_by_contract(
    store: &dyn Store,
    id: NotificationId,
    at: Timestamp,
    next: (&str, Limits),
) -> Vec<Claimed> {
    store
        .record_attempt(id, Attempt::Delivered, at)
        .expect("record");
    store
        .claim_due(at, LIMITS_LEASE, 1, Some(&[next]))
        .expect("claim")
}

/// The lease the limits checks claim with.
pub(crate) const LIMITS_LEASE: Duration = Duration::from_secs(60);

/// `max_concurrent` and `max_per_minute` count every caller of the store; `free` is how
/// a sender frees its slot.
pub(crate) fn limits_conformance(store: &dyn Store, free: FreeSlot<'_>) {
    let at = Timestamp::from_millis;
    let lease = LIMITS_LEASE;
    let ids = |c: &[crate::store::Claimed]| c.iter().map(|c| c.record.id).collect::<Vec<_>>();
    let event = |service: &str, notifier: &str, limits: Limits, t: i64| {
        store
            .apply(service, at(t), &mut |_| Change {
                next: alerted_state(&[notifier], at(t)),
                notifications: vec![
                    NewNotification::new(notifier, EventKind::Failure, 1)
                        .lease(lease)
                        .limits(limits),
                ],
                ..Change::default()
            })
            .expect("apply")
    };

    // two in flight at once: the third row is left due for whoever frees a slot
    let two = Limits::NONE.max_concurrent(Some(2));
    let a = event("cap-a.service", "capped", two, 1_000_000);
    let b = event("cap-b.service", "capped", two, 1_000_000);
    let c = event("cap-c.service", "capped", two, 1_000_000);
    assert_eq!((a.claimed.len(), b.claimed.len()), (1, 1));
    assert_eq!((c.claimed.len(), c.deferred.len()), (0, 1), "{c:?}");
    let c = c.deferred[0];
    assert_eq!(record(store, c).next_attempt, Some(at(1_000_000)));
    let only = [("capped", two)];
    assert!(
        store
            .claim_due(at(1_000_001), lease, 10, Some(&only))
            .expect("claim")
            .is_empty(),
        "both slots are taken"
    );
    // the sender that frees a slot takes the waiting row
    let got = free(store, a.claimed[0], at(1_000_002), only[0]);
    assert_eq!(ids(&got), vec![c], "a freed slot goes to the waiting row");
    assert_eq!(record(store, a.claimed[0]).status, Outcome::Delivered);
    let got = free(store, b.claimed[0], at(1_000_003), only[0]);
    assert!(got.is_empty(), "nothing else waits: {got:?}");
    // an expired lease frees its slot too (its sender died)
    let d = event("cap-d.service", "capped", two, 1_000_004);
    assert_eq!(d.claimed.len(), 1, "b freed a slot");
    let e = event("cap-e.service", "capped", two, 1_000_004);
    assert!(e.claimed.is_empty());
    let later = at(1_000_004 + 61_000);
    let got = store
        .claim_due(later, lease, 10, Some(&only))
        .expect("claim");
    assert_eq!(
        got.len(),
        2,
        "c's and d's leases ran out, so two of the three go: {got:?}"
    );

    // two per minute: a burst of two, then one every 30 s
    let rate = Limits::NONE.max_per_minute(Some(2));
    let t = 2_000_000;
    let r1 = event("rate-a.service", "rated", rate, t);
    let r2 = event("rate-b.service", "rated", rate, t);
    let r3 = event("rate-c.service", "rated", rate, t);
    assert_eq!((r1.claimed.len(), r2.claimed.len()), (1, 1));
    let r3 = r3.deferred[0];
    assert_eq!(
        record(store, r3).next_attempt,
        Some(at(t + 30_000)),
        "due when the limit allows it"
    );
    let only = [("rated", rate)];
    assert!(
        store
            .claim_due(at(t + 29_999), lease, 10, Some(&only))
            .expect("claim")
            .is_empty()
    );
    let got = store
        .claim_due(at(t + 30_000), lease, 10, Some(&only))
        .expect("claim");
    assert_eq!(ids(&got), vec![r3]);
}

/// A given-up row handed to a fallback: a new row in the same transaction, and the
/// fallback becomes a recipient of the streak.
fn fallback_conformance(store: &dyn Store) {
    use crate::store::Attempt;

    let at = Timestamp::from_millis;
    let t = 3_000_000;
    let svc = "fb.service";
    let applied = store
        .apply(svc, at(t), &mut |_| Change {
            next: alerted_state(&["primary"], at(t)),
            failure: Some(failure(30, Severity::Critical)),
            notifications: vec![
                NewNotification::new("primary", EventKind::Failure, 1)
                    .payload("p1")
                    .lease(Duration::from_secs(60)),
            ],
            ..Change::default()
        })
        .expect("apply");
    let primary = applied.notifications[0];
    let handover = Attempt::HandedOver {
        error: "550 no such user",
        to: "backup",
        payload: "p2",
    };
    store
        .record_attempt(primary, handover, at(t + 1))
        .expect("hand over");
    // a late second report of the same give-up hands nothing over again
    store
        .record_attempt(primary, handover, at(t + 2))
        .expect("late report");
    let r = record(store, primary);
    assert_eq!(
        (r.status, r.error.as_deref()),
        (Outcome::Failed, Some("550 no such user"))
    );
    let only = [("backup", Limits::NONE)];
    let got = store
        .claim_due(at(t + 3), Duration::from_secs(60), 10, Some(&only))
        .expect("claim");
    assert_eq!(got.len(), 1, "one row for the fallback: {got:?}");
    let row = &got[0];
    assert_eq!(
        (
            row.record.service.as_str(),
            row.record.kind,
            row.record.streak,
            row.record.sequence,
            row.payload.as_str(),
            row.history.len(),
        ),
        (svc, EventKind::Failure, 1, r.sequence, "p2", 1)
    );
    assert_eq!(recipient_outcome(store, svc, "primary"), Outcome::Failed);
    assert_eq!(recipient_outcome(store, svc, "backup"), Outcome::Pending);
    store
        .record_attempt(row.record.id, Attempt::Delivered, at(t + 4))
        .expect("deliver");
    let state = store.state(svc).expect("state").expect("some");
    let backup = &state.streak.expect("streak").recipients["backup"];
    assert!(
        backup.delivered,
        "a recovery follows the alert to the fallback"
    );
}
