//! The engine: the only part that does I/O. Loads state, runs the policy, saves (with
//! the notifications logged as pending), then dispatches to notifiers concurrently and
//! records each outcome.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use crate::alert::{EventKind, Failure, FailureReport, Timestamp};
use crate::error::{EngineError, NotifyError, StoreError, chain};
use crate::flap::{self, Flapping};
use crate::hold::{self, Active, Dependencies, Holds, Inhibit, Maintenance};
use crate::notification::{FallbackOf, Notification};
use crate::notifier::{ConfiguredNotifier, Notifier};
use crate::outbox::{DeliverySpec, Limits};
use crate::policy::{Ack, Decision, Event, Outcome, Policy, ServiceState};
use crate::rules::{Plan, Router, RuleTrace, Subject};
use crate::store::{
    Applied, Attempt, Change, Claimed, MemoryStore, NewNotification, NotificationId,
    NotificationRecord, SourceState, SqliteStore, Store,
};
use crate::template::{Context, Format};

/// Where "now" comes from. Injected so tests control time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(std::time::SystemTime::now())
    }
}

/// The system's host name, as alerts show it by default.
pub fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    notifier: Arc<dyn Notifier>,
    format: Format,
    delivery: DeliverySpec,
}

/// Processes failure and success events for services.
#[derive(Debug, Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    notifiers: Arc<[Entry]>,
    policy: Policy,
    router: Arc<Router>,
    clock: Arc<dyn Clock>,
    host: String,
    delivery_timeout: Option<Duration>,
    store_inline: bool,
    holding: hold::Sources,
    flapping: Option<Flapping>,
}

/// Builds an [`Engine`].
#[derive(Debug)]
pub struct EngineBuilder {
    store: Arc<dyn Store>,
    notifiers: Vec<Entry>,
    policy: Policy,
    router: Router,
    clock: Arc<dyn Clock>,
    host: Option<String>,
    delivery_timeout: Option<Duration>,
    store_inline: bool,
    maintenance: Vec<Maintenance>,
    dependencies: BTreeMap<String, Vec<String>>,
    inhibits: Vec<Inhibit>,
    flapping: Option<Flapping>,
}

impl EngineBuilder {
    /// Adds a notifier under `name`, with the built-in `full` format and the default
    /// delivery settings.
    pub fn notifier(mut self, name: impl Into<String>, notifier: Arc<dyn Notifier>) -> Self {
        self.notifiers.push(Entry {
            name: name.into(),
            notifier,
            format: Format::full().clone(),
            delivery: DeliverySpec::default(),
        });
        self
    }

    /// Adds notifiers built from a config file.
    pub fn configured(mut self, list: impl IntoIterator<Item = ConfiguredNotifier>) -> Self {
        self.notifiers.extend(list.into_iter().map(|c| Entry {
            name: c.name,
            notifier: c.notifier,
            format: c.format,
            delivery: c.delivery,
        }));
        self
    }

    /// Sets the policy (default: [`Policy::default`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the routing rules (default: none, every notifier gets every event).
    pub fn router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// Sets the clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the host name put in alerts (default: the system's host name).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Gives up on a delivery (as a retryable failure) after `d`, whatever the notifier
    /// does, so one hung transport cannot hold a handler forever. Off by default; needs
    /// a Tokio runtime with the time driver enabled.
    pub fn delivery_timeout(mut self, d: Duration) -> Self {
        self.delivery_timeout = Some(d);
        self
    }

    /// Calls the store on the async thread instead of through `spawn_blocking`.
    ///
    /// A commit then blocks that thread (for a fsync, or up to the store's busy
    /// timeout under contention), so this is only for programs that run nothing else on
    /// the runtime, such as `alertctl`: it saves a thread hand-off per store call (and,
    /// in a short-lived process, starting the blocking pool at all).
    pub fn store_inline(mut self, inline: bool) -> Self {
        self.store_inline = inline;
        self
    }

    /// Sets the maintenance windows (`[[maintenance]]`): alerts they cover are held.
    pub fn maintenance(mut self, list: Vec<Maintenance>) -> Self {
        self.maintenance = list;
        self
    }

    /// Sets what each service depends on (checks' and heartbeats' `depends_on`): its
    /// alerts are held while one of those is failing. Rules' `depends_on` come with the
    /// router.
    pub fn dependencies(mut self, by_service: BTreeMap<String, Vec<String>>) -> Self {
        self.dependencies = by_service;
        self
    }

    /// Sets the `[[inhibit]]` rules: alerts they cover are held while a failing service
    /// matches a rule's source. Each event then reads every service's state.
    pub fn inhibits(mut self, rules: Vec<Inhibit>) -> Self {
        self.inhibits = rules;
        self
    }

    /// Turns flap detection on with these settings (`[flapping]`; default: off).
    pub fn flapping(mut self, settings: impl Into<Option<Flapping>>) -> Self {
        self.flapping = settings.into();
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Engine {
        let rules = self
            .router
            .rules()
            .iter()
            .filter(|r| !r.depends_on.is_empty())
            .map(|r| (r.index, r.depends_on.clone()))
            .collect();
        let holding = hold::Sources {
            maintenance: self.maintenance.into(),
            dependencies: Arc::new(Dependencies {
                services: self.dependencies,
                rules,
            }),
            timezone: self.router.zone().clone(),
            held_recovery: self.policy.held_recovery,
            inhibits: self.inhibits.into(),
        };
        Engine {
            store: self.store,
            notifiers: self.notifiers.into(),
            policy: self.policy,
            router: Arc::new(self.router),
            clock: self.clock,
            host: self.host.unwrap_or_else(host_name),
            delivery_timeout: self.delivery_timeout,
            store_inline: self.store_inline,
            holding,
            flapping: self.flapping,
        }
    }
}

/// What the engine did with one event.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The service.
    pub service: String,
    /// When the event was processed.
    pub at: Timestamp,
    /// Consecutive failures in the streak (for a success: of the streak that ended).
    pub failures: usize,
    /// One decision per notifier, with the reason when suppressed.
    pub decisions: Vec<Decision>,
    /// How the rules routed the event (empty without `[[rules]]`).
    pub rules: Vec<RuleTrace>,
    /// One entry per notification actually attempted: the event's own, and rows of the
    /// outbox its senders took in turn as they finished ([`Delivery::from_outbox`]).
    pub deliveries: Vec<Delivery>,
    /// The event's notifications that were not attempted now: they wait in the outbox
    /// for a later sender or flush.
    pub waiting: Vec<Waiting>,
    /// The per-host sequence number (0 when nothing was sent).
    pub sequence: u64,
    /// The failure carried the invocation id of one already recorded in the streak:
    /// it was neither counted nor sent.
    pub duplicate: bool,
}

/// A notification of the event that waits in the outbox instead of being sent now.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Waiting {
    /// The notifier's name.
    pub notifier: String,
    /// What it is about.
    pub kind: EventKind,
    /// The notification log row.
    pub id: NotificationId,
    /// The service.
    pub service: String,
    /// `true`: its notifier is at a limit (`max_concurrent`, `max_per_minute`), and the
    /// sender that frees a slot or the next flush sends it; `false`: an older
    /// notification of its incident to the same notifier is still pending, and it
    /// follows that one.
    pub at_limit: bool,
    /// Its notifier sends groups (`group_wait`): it waits for others until then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_until: Option<Timestamp>,
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = format_args!(
            "{} {} of {} (#{})",
            self.notifier, self.kind, self.service, self.id
        );
        if let Some(until) = self.group_until {
            return write!(
                f,
                "{what}: waiting in the outbox for others to group with until {until}"
            );
        }
        let why = if self.at_limit {
            "its notifier is at its limit"
        } else {
            "behind an older notification of the incident"
        };
        write!(f, "{what}: waiting in the outbox ({why})")
    }
}

/// The outcome of one notification.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Delivery {
    /// The notifier's name.
    pub notifier: String,
    /// What was sent.
    pub kind: EventKind,
    /// The notification log row.
    pub id: NotificationId,
    /// The error with its causes, when delivery failed.
    pub error: Option<String>,
    /// Whether trying again can help (only meaningful with an error).
    pub retryable: bool,
    /// The service it was about.
    pub service: String,
    /// When the outbox tries again (a retryable failure within `retry_for`); `None`
    /// when delivered or given up.
    pub next_attempt: Option<Timestamp>,
    /// The notifier's `fallback`, when this delivery was given up and the alert handed
    /// to it (then it is not lost).
    pub handed_to: Option<String>,
    /// Sent from the outbox: a retry, or a row that waited for a free slot of its
    /// notifier, not a notification of the event being processed.
    pub from_outbox: bool,
}

impl Report {
    /// `true` when every attempted delivery succeeded.
    pub fn all_delivered(&self) -> bool {
        self.deliveries.iter().all(|d| d.error.is_none())
    }
}

impl Delivery {
    /// Whether the notification was delivered.
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// What became of the delivery, on one line: `pager failure of db.service (#3):
/// delivered`, `...: not delivered, will retry at T: why`, `...: not delivered (not
/// retryable), handed to its fallback mail: why`, or `LOST: ...: not delivered (given
/// up): why`.
impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = format_args!(
            "{} {} of {} (#{})",
            self.notifier, self.kind, self.service, self.id
        );
        let Some(error) = &self.error else {
            let from = if self.from_outbox {
                " from the outbox"
            } else {
                ""
            };
            return write!(f, "{what}: delivered{from}");
        };
        if let Some(next) = self.next_attempt {
            return write!(f, "{what}: not delivered, will retry at {next}: {error}");
        }
        let why = if self.retryable {
            "given up"
        } else {
            "not retryable"
        };
        match &self.handed_to {
            Some(to) => write!(
                f,
                "{what}: not delivered ({why}), handed to its fallback {to}: {error}"
            ),
            None => write!(f, "LOST: {what}: not delivered ({why}): {error}"),
        }
    }
}

impl Engine {
    /// Starts building an engine over `store`.
    pub fn builder(store: Arc<dyn Store>) -> EngineBuilder {
        EngineBuilder {
            store,
            notifiers: Vec::new(),
            policy: Policy::default(),
            router: Router::default(),
            clock: Arc::new(SystemClock),
            host: None,
            delivery_timeout: None,
            store_inline: false,
            maintenance: Vec::new(),
            dependencies: BTreeMap::new(),
            inhibits: Vec::new(),
            flapping: None,
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The current time by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The routing rules.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The host name put in alerts.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.notifiers.iter().find(|e| e.name == name)
    }

    /// The names of the notifiers, in order.
    pub fn notifier_names(&self) -> impl Iterator<Item = &str> {
        self.notifiers.iter().map(|e| e.name.as_str())
    }

    /// Records a failed run of `service` and alerts as the policy says.
    ///
    /// # Errors
    /// [`EngineError::Store`] if the event could not be recorded (then nothing was
    /// sent). A failed delivery is not an error: see [`Report::deliveries`].
    pub async fn failure(
        &self,
        service: &str,
        report: FailureReport,
    ) -> Result<Report, EngineError> {
        self.failure_saving(service, report, Vec::new()).await
    }

    /// [`Engine::failure`], saving `sources` in the same store transaction as the
    /// event: a source's checkpoint (say, a journal cursor and the counters of the
    /// entries before it) is durable together with the alert it caused, or neither is.
    /// A duplicate failure (its invocation id already in the streak) saves them too.
    ///
    /// # Errors
    /// As for [`Engine::failure`]; then `sources` were not saved either.
    pub async fn failure_saving(
        &self,
        service: &str,
        report: FailureReport,
        sources: Vec<SourceState>,
    ) -> Result<Report, EngineError> {
        let severity = report.severity.unwrap_or(crate::alert::Severity::Critical);
        self.process(service, Event::Failure(severity), Some(report), sources)
            .await
    }

    /// Records a successful run of `service`; sends recoveries as the policy says.
    ///
    /// # Errors
    /// As for [`Engine::failure`].
    pub async fn success(&self, service: &str) -> Result<Report, EngineError> {
        self.success_saving(service, Vec::new()).await
    }

    /// [`Engine::success`], saving `sources` in the same transaction (see
    /// [`Engine::failure_saving`]).
    ///
    /// # Errors
    /// As for [`Engine::failure`].
    pub async fn success_saving(
        &self,
        service: &str,
        sources: Vec<SourceState>,
    ) -> Result<Report, EngineError> {
        self.process(service, Event::Success, None, sources).await
    }

    /// Routes `event` of `service` (with `report`, a failure's) seen at `at` against
    /// `state`, runs the policy and applies `holds`, writing nothing: what
    /// [`Engine::failure`] and [`Engine::success`] do inside their store transaction, and
    /// what `alertctl test` shows.
    pub fn plan(
        &self,
        service: &str,
        state: &ServiceState,
        event: Event,
        report: Option<&FailureReport>,
        at: Timestamp,
        holds: &Holds,
    ) -> Plan {
        plan(
            (&self.router, &self.policy, self.flapping.as_ref()),
            &self.notifiers,
            (&self.host, holds),
            (service, state, event, report, at),
        )
    }

    /// What may hold alerts of `service` (without one: of any service, with no
    /// dependency looked up) at `at`: the store's silences not ended by then, the
    /// maintenance windows, and which of its dependencies are failing.
    ///
    /// # Errors
    /// A [`StoreError`] reading the silences or a dependency's state.
    pub fn holds(&self, service: Option<&str>, at: Timestamp) -> Result<Holds, StoreError> {
        read_holds(
            &self.holding,
            self.store.as_ref(),
            (service, &self.host),
            at,
        )
    }

    /// Acknowledges the failure streak of `service` on behalf of `by`: no more reminders
    /// of it (an escalation still goes out; the next streak is not acknowledged). With
    /// `notify`, an [`EventKind::Acknowledged`] notice goes to every notifier alerted in
    /// the streak (delivered, or still pending in the outbox), through the outbox.
    /// `None` if the service is not failing; else the notices' deliveries.
    ///
    /// # Errors
    /// [`EngineError::Store`].
    pub async fn ack(
        &self,
        service: &str,
        by: &str,
        comment: Option<String>,
        notify: bool,
    ) -> Result<Option<Vec<Delivery>>, EngineError> {
        // a service that is not failing is left alone (no state row written for a name
        // that has none)
        if !self.store.state(service)?.is_some_and(|s| s.is_failing()) {
            return Ok(None);
        }
        let now = self.clock.now();
        let router = Arc::clone(&self.router);
        let (name, ack) = (service.to_owned(), Ack::new(by, now, comment));
        let sent = self
            .notices(service, now, move |state, host| {
                let mut next = state.clone();
                let streak = next.streak.as_mut()?;
                streak.ack = Some(ack.clone());
                let fresh = if notify {
                    streak
                        .recipients
                        .iter()
                        .filter(|(_, r)| r.delivered || r.outcome == Outcome::Pending)
                        .map(|(notifier, r)| {
                            let n = Notification::new(name.as_str(), EventKind::Acknowledged, host)
                                .streak(streak.id, streak.started)
                                .time(now)
                                .rule(r.rule.and_then(|i| router.rule_ref(i)))
                                .ack(ack.clone());
                            (notifier.clone(), n)
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                Some((next, fresh))
            })
            .await?;
        Ok(Some(sent))
    }

    /// A successful run of `service` (invocation `run_id`, whose journal lines the
    /// transports that read the journal include): an [`EventKind::Output`] notice to
    /// every notifier a rule with `on_success = "output"` names for it, through the
    /// outbox; none when no rule does. A run already sent (reported by the handler
    /// and by the watch) is not sent again. The notices' deliveries.
    ///
    /// # Errors
    /// [`EngineError::Store`].
    pub async fn output(
        &self,
        service: &str,
        run_id: Option<String>,
    ) -> Result<Vec<Delivery>, EngineError> {
        let now = self.clock.now();
        let targets = self.router.output_targets(service, &self.host, now);
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let router = Arc::clone(&self.router);
        let name = service.to_owned();
        self.notices(service, now, move |state, host| {
            if run_id.is_some() && state.last_output == run_id {
                return None;
            }
            let mut next = state.clone();
            next.last_output.clone_from(&run_id);
            let fresh = targets
                .iter()
                .map(|(notifier, rule)| {
                    // its own incident: a mail of it threads to nothing
                    let n = Notification::new(name.as_str(), EventKind::Output, host)
                        .streak(0, now)
                        .time(now)
                        .rule(router.rule_ref(*rule))
                        .run_id(run_id.clone());
                    (notifier.clone(), n)
                })
                .collect();
            Some((next, fresh))
        })
        .await
    }

    /// The notices outside the policy (an acknowledgement, a run's output): `change`
    /// gets the state of `service` and the host its events are about, and gives the
    /// next state and the notices, or `None` to leave both as they are. They are
    /// written in one store transaction and sent through the outbox.
    async fn notices<F>(
        &self,
        service: &str,
        now: Timestamp,
        mut change: F,
    ) -> Result<Vec<Delivery>, EngineError>
    where
        F: FnMut(&ServiceState, &str) -> Option<(ServiceState, Vec<(String, Notification)>)>
            + Send
            + 'static,
    {
        let (store, notifiers) = (Arc::clone(&self.store), Arc::clone(&self.notifiers));
        let (lease, engine_host, service) =
            (self.send_lease(), self.host.clone(), service.to_owned());
        let (applied, fresh) = self
            .blocking(move || {
                let mut fresh = Vec::new();
                let applied = store.apply(&service, now, &mut |state| {
                    let host = event_host(None, state, &engine_host);
                    let Some((next, notices)) = change(state, host) else {
                        fresh.clear();
                        return Change::new(state.clone());
                    };
                    fresh = notices;
                    Change {
                        notifications: rows(&notifiers, &fresh, (now, lease)),
                        ..Change::new(next)
                    }
                })?;
                Ok((applied, fresh))
            })
            .await?;
        Ok(self.dispatch(fresh, &applied, now, true).await)
    }

    /// Everything failing now, for a report: one [`EventKind::Report`] notification per
    /// service with a failure streak (alerted or still below its threshold), with the
    /// streak's history, the longest-failing first.
    ///
    /// # Errors
    /// A [`StoreError`] reading the states or a history.
    pub fn digest(&self) -> Result<Vec<Notification>, StoreError> {
        let now = self.clock.now();
        let mut out = Vec::new();
        for (name, state) in self.store.states()? {
            let Some(streak) = state.streak.as_ref() else {
                continue;
            };
            let host = streak.host.clone().unwrap_or_else(|| self.host.clone());
            let history = self.store.history(&name)?;
            out.push(
                Notification::new(name, EventKind::Report, host)
                    .streak(streak.id, streak.started)
                    .time(now)
                    .failures(history),
            );
        }
        out.sort_by(|a, b| (a.streak_start, &a.service).cmp(&(b.streak_start, &b.service)));
        Ok(out)
    }

    /// Sends `digest` to the notifier `name`: as one message where it can group
    /// ([`Notifier::check_group`]), else one per service. One attempt, not through the
    /// outbox: a report is a snapshot, and the next one says the same or newer.
    ///
    /// # Errors
    /// The notifier's error (the first, when it sends one message per service), or
    /// that there is no notifier of that name.
    pub async fn send_report(&self, name: &str, digest: &[Notification]) -> Result<(), String> {
        let Some(entry) = self.entry(name) else {
            return Err(format!("no notifier named {name:?}"));
        };
        let ctx = Context::new(&entry.name).format(&entry.format);
        let fail = |e: Failed| e.error;
        if digest.len() > 1 && entry.notifier.check_group().is_ok() {
            return self
                .within_timeout(entry, entry.notifier.notify_group(digest, &ctx))
                .await
                .map_err(fail);
        }
        let mut first = Ok(());
        for n in digest {
            let sent = self
                .within_timeout(entry, entry.notifier.notify(n, &ctx))
                .await
                .map_err(fail);
            if first.is_ok() {
                first = sent;
            }
        }
        first
    }

    /// [`Engine::plan`] against the stored state of `service`, at the clock's now.
    ///
    /// # Errors
    /// A [`StoreError`] reading the state.
    pub fn preview(
        &self,
        service: &str,
        event: Event,
        report: Option<&FailureReport>,
    ) -> Result<Plan, StoreError> {
        let state = self.store.state(service)?.unwrap_or_default();
        let now = self.clock.now();
        let holds = self.holds(Some(service), now)?;
        Ok(self.plan(service, &state, event, report, now, &holds))
    }

    async fn process(
        &self,
        service: &str,
        event: Event,
        report: Option<FailureReport>,
        sources: Vec<SourceState>,
    ) -> Result<Report, EngineError> {
        let now = self.clock.now();
        let store = Arc::clone(&self.store);
        let notifiers = Arc::clone(&self.notifiers);
        let policy = self.policy.clone();
        let router = Arc::clone(&self.router);
        let host = self.host.clone();
        let owned_service = service.to_owned();
        let lease = self.send_lease();
        let holding = self.holding.clone();
        let flapping = self.flapping;
        // a failure carrying the invocation id of one already in the streak
        let invocation = match event {
            Event::Failure(_) => report.as_ref().and_then(|r| r.invocation_id.clone()),
            _ => None,
        };
        let (applied, planned, fresh, failures, duplicate) = self
            .blocking(move || {
                let mut planned = None;
                let mut fresh = Vec::new();
                let mut failures = 0;
                let mut duplicate = false;
                let holds =
                    read_holds(&holding, store.as_ref(), (Some(&owned_service), &host), now)?;
                let applied = store.apply(&owned_service, now, &mut |state| {
                    if let (Some(id), Some(streak)) = (&invocation, &state.streak)
                        && streak.invocations.contains(id)
                    {
                        duplicate = true;
                        failures = streak.failures;
                        planned = Some(Plan {
                            next: ServiceState::default(),
                            decisions: Vec::new(),
                            rules: Vec::new(),
                        });
                        return Change {
                            sources: sources.clone(),
                            ..Change::new(state.clone())
                        };
                    }
                    let host = event_host(report.as_ref(), state, &host).to_owned();
                    let mut plan = plan(
                        (&router, &policy, flapping.as_ref()),
                        &notifiers,
                        (&host, &holds),
                        (&owned_service, state, event, report.as_ref(), now),
                    );
                    // a success reports on the streak it ends
                    let streak = match event {
                        Event::Failure(_) | Event::Tick => plan.next.streak.as_ref(),
                        Event::Success => state.streak.as_ref(),
                    };
                    // (a flapping service that settled while ok has no streak: its
                    // notice belongs to the last one)
                    let (streak_id, streak_start) =
                        streak.map_or((plan.next.streaks, now), |s| (s.id, s.started));
                    failures = streak.map_or(0, |s| s.failures);
                    let settled = flap::settled(state, &plan);
                    fresh = plan
                        .decisions
                        .iter()
                        .filter_map(|d| {
                            let event = d.send_kind()?;
                            let n = Notification::new(owned_service.as_str(), event, host.as_str())
                                .streak(streak_id, streak_start)
                                .time(now)
                                .rule(d.rule.and_then(|i| router.rule_ref(i)))
                                // a recovery to a notifier never alerted: a hold kept
                                // its failure alert back (`held_recovery`)
                                .collapsed(
                                    event == EventKind::Recovery
                                        && !settled
                                        && state.streak.as_ref().is_some_and(|s| {
                                            !s.recipients.contains_key(&d.notifier)
                                        }),
                                )
                                .stopped_flapping(
                                    settled
                                        && state
                                            .flap
                                            .as_ref()
                                            .is_some_and(|f| f.notified.contains(&d.notifier)),
                                );
                            Some((d.notifier.clone(), n))
                        })
                        .collect();
                    let notifications = rows(&notifiers, &fresh, (now, lease));
                    let failure = report.as_ref().map(|r| {
                        let mut f = Failure::from_report(r, &host, now);
                        f.notifiers = notifications.iter().map(|n| n.notifier.clone()).collect();
                        f
                    });
                    if let (Some(id), Some(streak)) = (&invocation, plan.next.streak.as_mut()) {
                        streak.remember_invocation(id);
                    }
                    let change = Change {
                        end_streak: event == Event::Success && state.streak.is_some(),
                        // the report needs the decisions and the trace, not the state
                        next: std::mem::take(&mut plan.next),
                        failure,
                        notifications,
                        sources: sources.clone(),
                    };
                    planned = Some(plan);
                    change
                })?;
                Ok((applied, planned, fresh, failures, duplicate))
            })
            .await?;
        let plan =
            planned.ok_or_else(|| StoreError::Task("the store did not run the policy".into()))?;
        if let Some(event) = match event {
            Event::Failure(_) => Some("failure"),
            Event::Success => Some("success"),
            Event::Tick => None,
        } {
            let duplicate = if duplicate { "true" } else { "false" };
            metrics::counter!(crate::telemetry::EVENTS, "event" => event, "duplicate" => duplicate)
                .increment(1);
        }

        // A tick's senders take no further rows: it asks one service after another, and a
        // row sent for one would change what the next is told after `Engine::preview`
        // (`alertctl test`) predicted it. `Engine::flush` sends them right after.
        let take_next = !matches!(event, Event::Tick);
        let waiting = applied
            .notifications
            .iter()
            .zip(&fresh)
            .filter(|(id, _)| !applied.claimed.contains(id))
            .map(|(&id, (notifier, n))| Waiting {
                notifier: notifier.clone(),
                kind: n.event,
                id,
                service: service.to_owned(),
                at_limit: applied.deferred.contains(&id),
                group_until: self
                    .entry(notifier)
                    .and_then(|e| e.delivery.grouping())
                    .map(|(wait, _)| now.saturating_add(wait)),
            })
            .collect();
        let mut deliveries = self.dispatch(fresh, &applied, now, take_next).await;
        // alerts handed to a fallback. (A row left waiting for a free slot of its
        // notifier is not flushed here: each sender that finishes takes the next one
        // in the slot it frees, see `send`.)
        let more: Vec<String> = deliveries
            .iter()
            .filter_map(|d| d.handed_to.clone())
            .collect();
        if !more.is_empty() {
            match self.flush_only(&more).await {
                Ok(sent) => deliveries.extend(sent),
                Err(e) => tracing::warn!(error = %chain(&e), "cannot flush the outbox"),
            }
        }
        Ok(Report {
            service: service.to_owned(),
            at: now,
            failures: usize::try_from(failures).unwrap_or(usize::MAX),
            decisions: plan.decisions,
            rules: plan.rules,
            deliveries,
            waiting,
            sequence: applied.sequence,
            duplicate,
        })
    }

    /// Sends the notifications this event created that the store let us claim (one
    /// queued behind an older pending notification of the same incident waits for it),
    /// completed with what the store gave the rows (sequence, history, collapse): the
    /// value a retry decodes from the row (`stored::decode`), which the test
    /// `a_retry_sends_the_notification_the_first_attempt_sent` holds equal.
    async fn dispatch(
        &self,
        fresh: Vec<(String, Notification)>,
        applied: &Applied,
        now: Timestamp,
        take_next: bool,
    ) -> Vec<Delivery> {
        let outgoing = fresh
            .into_iter()
            .zip(&applied.notifications)
            .filter(|(_, id)| applied.claimed.contains(id))
            .map(|((notifier, n), &id)| Outgoing {
                id,
                notifier,
                created: now,
                attempts: 0,
                notification: {
                    let collapsed = n.collapsed || applied.collapsed.contains(&id);
                    n.sequence(applied.sequence)
                        .failures(applied.history.clone())
                        .collapsed(collapsed)
                },
            });
        join_all(
            outgoing.map(|o| async move { self.and_next(self.send(o, take_next).await).await }),
        )
        .await
        .into_iter()
        .flatten()
        .collect()
    }

    /// Sends what time alone has made due ([`Engine::tick`]: reminders, alerts held
    /// back by `min_duration`), then everything due in the outbox for this engine's
    /// notifiers: retries, notifications whose sender died, and ones that waited for an
    /// older one of their incident. Rows are claimed with a lease, so two flushers never
    /// send one twice.
    ///
    /// # Errors
    /// [`EngineError::Store`] if the state or the outbox cannot be read; failed
    /// deliveries are in the returned list.
    pub async fn flush(&self) -> Result<Vec<Delivery>, EngineError> {
        let mut out: Vec<Delivery> = self
            .tick()
            .await?
            .into_iter()
            .flat_map(|r| r.deliveries)
            .collect();
        let names: Vec<String> = self.notifier_names().map(str::to_owned).collect();
        out.extend(self.flush_only(&names).await?);
        Ok(out)
    }

    /// Asks every failing service whether time alone has made a notification due (an
    /// [`Event::Tick`]): a reminder every `repeat` while it stays failed, the first
    /// alert once its streak has lasted `min_duration`, a rule matching on the streak's
    /// duration. Sends those; returns one report per service that sent something. Rows
    /// of the outbox that wait for a notifier's free slot are left to the flush that
    /// follows in [`Engine::flush`], so each service is told what [`Engine::preview`]
    /// predicted for it.
    ///
    /// # Errors
    /// [`EngineError::Store`] if the state cannot be read or written.
    pub async fn tick(&self) -> Result<Vec<Report>, EngineError> {
        let store = Arc::clone(&self.store);
        let now = self.clock.now();
        let (holding, host) = (self.holding.clone(), self.host.clone());
        let (states, mut holds) = self
            .blocking(move || {
                Ok((
                    store.states()?,
                    read_holds(&holding, store.as_ref(), (None, &host), now)?,
                ))
            })
            .await?;
        // every dependency's state is at hand
        if !holds.sources.inhibits.is_empty() {
            holds.active = Active::of(&states, &self.host);
        }
        holds.failing = states
            .iter()
            .filter(|(_, s)| s.is_failing())
            .map(|(n, _)| n.clone())
            .collect();
        let mut reports = Vec::new();
        // a flapping service that is ok is asked too: time alone may settle it
        for (service, state) in states
            .iter()
            .filter(|(_, s)| s.is_failing() || s.flapping_since().is_some())
        {
            // a read first: most ticks send nothing and should write nothing
            let plan = self.plan(service, state, Event::Tick, None, now, &holds);
            if plan.decisions.iter().any(|d| d.send_kind().is_some()) || flap::settled(state, &plan)
            {
                reports.push(self.process(service, Event::Tick, None, Vec::new()).await?);
            }
        }
        Ok(reports)
    }

    /// [`Engine::flush`] for the named notifiers only, without the tick.
    ///
    /// # Errors
    /// As for [`Engine::flush`].
    pub async fn flush_only(&self, notifiers: &[String]) -> Result<Vec<Delivery>, EngineError> {
        let mut out: Vec<Delivery> = Vec::new();
        let mut names: Vec<(String, Limits)> = Vec::new();
        let add = |names: &mut Vec<(String, Limits)>, name: &str| {
            if let Some(e) = self.notifiers.iter().find(|e| e.name == name)
                && !names.iter().any(|(n, _)| n == name)
            {
                names.push((e.name.clone(), e.delivery.limits()));
            }
        };
        for n in notifiers {
            add(&mut names, n);
        }
        // each round may free the next notification of an incident (a recovery behind
        // its failure alert) or hand one to a fallback; a bound keeps a misbehaving
        // store from spinning forever
        for _ in 0..FLUSH_ROUNDS {
            if names.is_empty() {
                break;
            }
            let store = Arc::clone(&self.store);
            let list = names.clone();
            let now = self.clock.now();
            let lease = self.send_lease();
            let claimed = self
                .blocking(move || {
                    let list: Vec<(&str, Limits)> =
                        list.iter().map(|(n, l)| (n.as_str(), *l)).collect();
                    store.claim_due(now, lease, FLUSH_BATCH, Some(&list))
                })
                .await?;
            if claimed.is_empty() {
                break;
            }
            // a grouped notifier's rows go out together, as one message
            let mut groups: BTreeMap<String, Vec<Outgoing>> = BTreeMap::new();
            let mut singles = Vec::new();
            let mut sent: Vec<Delivery> = Vec::new();
            for c in claimed {
                if self
                    .entry(&c.record.notifier)
                    .is_some_and(|e| e.delivery.grouping().is_some())
                {
                    match self.outgoing(c).await {
                        Ok(o) => groups.entry(o.notifier.clone()).or_default().push(o),
                        Err(d) => sent.extend(d),
                    }
                } else {
                    singles.push(c);
                }
            }
            let sends = singles
                .into_iter()
                .map(|c| async move { self.and_next(self.send_claimed(c, true).await).await });
            let grouped = groups.into_iter().filter_map(|(name, jobs)| {
                let entry = self.entry(&name)?;
                Some(async move {
                    let mut out = self.send_group(entry, jobs).await;
                    for d in &mut out {
                        d.from_outbox = true;
                    }
                    out
                })
            });
            let (singles, grouped) =
                futures_util::future::join(join_all(sends), join_all(grouped)).await;
            sent.extend(singles.into_iter().chain(grouped).flatten());
            for to in sent.iter().filter_map(|d| d.handed_to.as_deref()) {
                add(&mut names, to);
            }
            out.extend(sent);
        }
        Ok(out)
    }

    /// Runs [`Engine::flush`] every `every` until the returned task is aborted: for
    /// programs that embed the engine and live long.
    pub fn spawn_flusher(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = engine.flush().await {
                    tracing::warn!(error = %chain(&e), "cannot flush the outbox");
                }
                tokio::time::sleep(every).await;
            }
        })
    }

    /// How long a sender holds a claimed row: longer than any delivery may take.
    fn send_lease(&self) -> Duration {
        self.delivery_timeout.unwrap_or(DEFAULT_SEND_LEASE) + Duration::from_secs(60)
    }

    /// Sends `first`'s claimed row, and each row claimed after it in turn (see
    /// [`Engine::send`]), up to [`CHAIN`] rows; returns every delivery.
    async fn and_next(&self, first: Sent) -> Vec<Delivery> {
        let (mut out, mut next) = (Vec::from_iter(first.0), first.1);
        let mut left = CHAIN;
        while let Some(claimed) = next.take() {
            left = left.saturating_sub(1);
            let (delivery, claimed_next) = self.send_claimed(claimed, left > 0).await;
            out.extend(delivery);
            next = claimed_next;
        }
        out
    }

    /// The notification a claimed row holds; a row that has none readable is given up
    /// (its delivery is the error).
    async fn outgoing(&self, c: Claimed) -> Result<Outgoing, Option<Delivery>> {
        let Claimed {
            record,
            payload,
            history,
            attempts,
        } = c;
        match stored::decode(&record, &payload, history, &self.router) {
            Ok(n) => Ok(Outgoing {
                id: record.id,
                notifier: record.notifier,
                created: record.created,
                attempts,
                notification: n,
            }),
            Err(e) => {
                let why = format!("the outbox row has no readable payload: {e}");
                Err(self.give_up(&record, &why).await)
            }
        }
    }

    /// Sends a row claimed from the outbox, as [`Engine::send`] does.
    async fn send_claimed(&self, c: Claimed, next: bool) -> Sent {
        let outgoing = match self.outgoing(c).await {
            Ok(o) => o,
            Err(delivery) => return (delivery, None),
        };
        let mut sent = self.send(outgoing, next).await;
        if let Some(d) = &mut sent.0 {
            d.from_outbox = true;
        }
        sent
    }

    /// Sends one notification and records the attempt in the outbox. With `next`, a
    /// delivered notification's sender then claims the next due row of the same
    /// notifier, in the slot it just freed, and returns it to be sent: rows that waited
    /// for a free slot (`max_concurrent`) go out as slots free up, without waiting for a
    /// flush. After a failed delivery the rest waits for the flush and its backoff.
    async fn send(&self, job: Outgoing, next: bool) -> Sent {
        let Some(entry) = self.entry(&job.notifier) else {
            return (None, None);
        };
        let n = &job.notification;
        // a rule's recipient may override the notifier's format
        let format = self
            .router
            .recipient(n.rule.map(|r| r.index), &job.notifier)
            .and_then(|r| r.format.as_ref())
            .unwrap_or(&entry.format);
        let ctx = Context::new(&entry.name).format(format);
        let result = self
            .within_timeout(entry, entry.notifier.notify(n, &ctx))
            .await;
        self.conclude(entry, job, result, next).await
    }

    /// Sends the rows of a grouped notifier claimed together as one message (one row
    /// alone as itself), and records the one result for each.
    async fn send_group(&self, entry: &Entry, mut jobs: Vec<Outgoing>) -> Vec<Delivery> {
        if jobs.len() == 1
            && let Some(job) = jobs.pop()
        {
            return self.send(job, false).await.0.into_iter().collect();
        }
        let group: Vec<Notification> = jobs.iter().map(|j| j.notification.clone()).collect();
        let ctx = Context::new(&entry.name).format(&entry.format);
        let result = self
            .within_timeout(entry, entry.notifier.notify_group(&group, &ctx))
            .await;
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            out.extend(self.conclude(entry, job, result.clone(), false).await.0);
        }
        out
    }

    /// `call`'s result, or a retryable failure after the engine's `delivery_timeout`.
    async fn within_timeout(
        &self,
        entry: &Entry,
        call: impl Future<Output = Result<(), NotifyError>>,
    ) -> Result<(), Failed> {
        let result = match self.delivery_timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                Err(NotifyError::retryable(
                    entry.notifier.kind(),
                    TimedOut(limit),
                ))
            }),
            None => call.await,
        };
        result.map_err(|e| Failed {
            error: chain(&e),
            retryable: e.is_retryable(),
            retry_after: e.retry_after(),
        })
    }

    /// Records the `result` of sending `job` (retry, fallback, given up), as
    /// [`Engine::send`] says.
    async fn conclude(
        &self,
        entry: &Entry,
        job: Outgoing,
        result: Result<(), Failed>,
        next: bool,
    ) -> Sent {
        let n = &job.notification;
        let now = self.clock.now();
        let error = result.as_ref().err().map(|e| e.error.clone());
        let retryable = result.as_ref().is_err_and(|e| e.retryable);
        let next_attempt = match &result {
            Err(e) if e.retryable => entry.delivery.next_attempt(
                job.created,
                now,
                job.attempts + 1,
                e.retry_after,
                fastrand::f64(),
            ),
            _ => None,
        };
        let fallback = entry.delivery.fallback.as_deref();
        let (kind, service) = (n.event, n.service.as_str());
        let handover: String;
        let attempt = match (&error, next_attempt, fallback) {
            (None, ..) => Attempt::Delivered,
            (Some(error), Some(next_at), _) => {
                tracing::warn!(notifier = %entry.name, service, %error, "{kind} not delivered, will retry at {next_at}");
                Attempt::Retry { error, next_at }
            }
            (Some(error), None, Some(to)) => {
                tracing::warn!(notifier = %entry.name, service, %error, "{kind} not delivered, handed to its fallback {to}");
                // the history is copied from the given-up row's column, as for any row
                let mut handed = n
                    .clone()
                    .fallback_for(FallbackOf::new(&entry.name, error.as_str()));
                handed.failures.clear();
                handover = stored::encode(&handed);
                Attempt::HandedOver {
                    error,
                    to,
                    payload: &handover,
                }
            }
            // the meta-alert when there is nowhere else to go: the log says what was lost
            // (and `alertctl status`/`outbox` keep showing it)
            (Some(error), None, None) => {
                let why = if retryable {
                    entry.delivery.describe()
                } else {
                    "not retryable".to_owned()
                };
                tracing::error!(notifier = %entry.name, service, id = %job.id, %error, "LOST: {kind} of {service} to {} ({why})", entry.name);
                Attempt::GaveUp { error }
            }
        };
        let outcome = match &attempt {
            Attempt::Delivered => "delivered",
            Attempt::Retry { .. } => "retry",
            Attempt::HandedOver { .. } => "handed_over",
            Attempt::GaveUp { .. } => "lost",
        };
        metrics::counter!(crate::telemetry::NOTIFICATIONS, "notifier" => entry.name.clone(), "outcome" => outcome)
            .increment(1);
        let handed_to = match &attempt {
            Attempt::HandedOver { to, .. } => Some((*to).to_owned()),
            _ => None,
        };
        let next = (next && matches!(attempt, Attempt::Delivered)).then(|| entry.delivery.limits());
        let claimed = self
            .record(job.id, attempt, now, (&entry.name, service), next)
            .await;
        let delivery = Delivery {
            notifier: entry.name.clone(),
            kind,
            id: job.id,
            error,
            retryable,
            service: service.to_owned(),
            next_attempt,
            handed_to,
            from_outbox: false,
        };
        (Some(delivery), claimed)
    }

    /// Marks a claimed row failed without sending it.
    async fn give_up(&self, r: &NotificationRecord, why: &str) -> Option<Delivery> {
        let now = self.clock.now();
        metrics::counter!(crate::telemetry::NOTIFICATIONS, "notifier" => r.notifier.clone(), "outcome" => "lost")
            .increment(1);
        self.record(
            r.id,
            Attempt::GaveUp { error: why },
            now,
            (&r.notifier, &r.service),
            None,
        )
        .await;
        Some(Delivery {
            notifier: r.notifier.clone(),
            kind: r.kind,
            id: r.id,
            error: Some(why.to_owned()),
            retryable: false,
            service: r.service.clone(),
            next_attempt: None,
            handed_to: None,
            from_outbox: true,
        })
    }

    /// Records `attempt`; then, with `next` (the notifier's limits), claims the
    /// notifier's next due row, if any and if its limits allow.
    async fn record(
        &self,
        id: NotificationId,
        attempt: Attempt<'_>,
        at: Timestamp,
        (notifier, service): (&str, &str),
        next: Option<Limits>,
    ) -> Option<Claimed> {
        let store = Arc::clone(&self.store);
        let owned = OwnedAttempt::from(attempt);
        let (name, lease) = (notifier.to_owned(), self.send_lease());
        let call = move || match (next, sqlite(store.as_ref())) {
            // the engine's own store records and claims in one transaction
            (Some(limits), Some(sqlite)) => sqlite
                .record_attempt_and_claim(id, owned.borrow(), at, lease, (&name, limits))
                .map(|mut c| c.pop()),
            (Some(limits), None) => {
                store.record_attempt(id, owned.borrow(), at)?;
                store
                    .claim_due(at, lease, 1, Some(&[(&name, limits)]))
                    .map(|mut c| c.pop())
            }
            (None, _) => store.record_attempt(id, owned.borrow(), at).map(|()| None),
        };
        // Recording waits for no sync: on an idle SQLite store it is quicker done here
        // than handed to a blocking thread and back (two thread switches per delivery).
        let recorded = if sqlite(self.store.as_ref()).is_some_and(SqliteStore::idle) {
            call()
        } else {
            self.blocking(call).await
        };
        // a row not claimed waits for the next sender or flush; an attempt not recorded
        // is sent again when its lease ends
        recorded.unwrap_or_else(|e| {
            tracing::warn!(notifier, service, error = %chain(&e), "cannot record the delivery attempt");
            None
        })
    }
}

/// The [`SqliteStore`] behind `store`, if it is one (or a [`MemoryStore`]): the engine
/// then takes the shortcuts it offers beside the [`Store`] contract.
fn sqlite(store: &dyn Store) -> Option<&SqliteStore> {
    let any: &dyn Any = store;
    any.downcast_ref::<SqliteStore>()
        .or_else(|| any.downcast_ref::<MemoryStore>().map(MemoryStore::sqlite))
}

/// A failed attempt, as the outbox records it (shared by every row of a group).
#[derive(Debug, Clone)]
struct Failed {
    error: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

/// What [`Engine::send`] returns: the delivery, and the row it claimed next.
type Sent = (Option<Delivery>, Option<Claimed>);

/// At most this many rows are sent one after another by one sender (see
/// [`Engine::send`]), so a call to the engine returns in bounded time in a flood.
const CHAIN: usize = 64;

/// Rounds of claiming per flush; each round sends up to [`FLUSH_BATCH`] rows.
const FLUSH_ROUNDS: usize = 64;
const FLUSH_BATCH: usize = 64;

/// The send lease when the engine has no `delivery_timeout`.
const DEFAULT_SEND_LEASE: Duration = Duration::from_secs(300);

/// One notification to send, with its outbox row: just created, or claimed.
struct Outgoing {
    id: NotificationId,
    notifier: String,
    /// When the row was created (`retry_for` counts from here).
    created: Timestamp,
    /// Attempts made before this one.
    attempts: u32,
    notification: Notification,
}

/// An [`Attempt`] that can cross into the blocking pool.
enum OwnedAttempt {
    Delivered,
    Retry(String, Timestamp),
    GaveUp(String),
    HandedOver(String, String, String),
}

impl From<Attempt<'_>> for OwnedAttempt {
    fn from(a: Attempt<'_>) -> Self {
        match a {
            Attempt::Delivered => Self::Delivered,
            Attempt::Retry { error, next_at } => Self::Retry(error.to_owned(), next_at),
            Attempt::GaveUp { error } => Self::GaveUp(error.to_owned()),
            Attempt::HandedOver { error, to, payload } => {
                Self::HandedOver(error.to_owned(), to.to_owned(), payload.to_owned())
            }
        }
    }
}

impl OwnedAttempt {
    fn borrow(&self) -> Attempt<'_> {
        match self {
            Self::Delivered => Attempt::Delivered,
            Self::Retry(error, next_at) => Attempt::Retry {
                error,
                next_at: *next_at,
            },
            Self::GaveUp(error) => Attempt::GaveUp { error },
            Self::HandedOver(error, to, payload) => Attempt::HandedOver { error, to, payload },
        }
    }
}

/// The outbox rows of `fresh` notifications created at `now`, claimed for `lease`; a
/// grouped notifier's are due after its `group_wait` instead, for a flush to send.
fn rows(
    notifiers: &[Entry],
    fresh: &[(String, Notification)],
    (now, lease): (Timestamp, Duration),
) -> Vec<NewNotification> {
    fresh
        .iter()
        .map(|(name, n)| {
            let entry = notifiers.iter().find(|e| &e.name == name);
            let limits = entry.map_or(Limits::NONE, |e| e.delivery.limits());
            let row = NewNotification::new(name.clone(), n.event, n.streak_id)
                .payload(stored::encode(n))
                .limits(limits);
            let mut row = match entry.and_then(|e| e.delivery.grouping()) {
                Some((wait, _)) => row.due(now.saturating_add(wait)),
                None => row.lease(lease),
            };
            if n.event == EventKind::Recovery && entry.is_some_and(|e| e.delivery.collapse) {
                row = row.collapse(stored::encode(&n.clone().collapsed(true)));
            }
            row
        })
        .collect()
}

/// The host an event is about: the failure's own (`FailureReport::host`), else its
/// streak's (a reminder or recovery of such a failure), else the engine's.
fn event_host<'a>(
    report: Option<&'a FailureReport>,
    state: &'a ServiceState,
    engine_host: &'a str,
) -> &'a str {
    report
        .and_then(|r| r.host.as_deref())
        .or_else(|| state.streak.as_ref().and_then(|s| s.host.as_deref()))
        .unwrap_or(engine_host)
}

/// The routing and policy of one event: (service, state, event, its failure report,
/// time). A streak that a failure about another host starts keeps that host.
fn plan(
    (router, policy, flapping): (&Router, &Policy, Option<&Flapping>),
    notifiers: &[Entry],
    (engine_host, holds): (&str, &Holds),
    (service, state, event, report, at): (
        &str,
        &ServiceState,
        Event,
        Option<&FailureReport>,
        Timestamp,
    ),
) -> Plan {
    let names: Vec<&str> = notifiers.iter().map(|e| e.name.as_str()).collect();
    let kind = report.and_then(|r| r.kind.as_deref());
    let host = event_host(report, state, engine_host);
    let mut subject = Subject::new(service, host, kind, event, at, state);
    if let Some(r) = report {
        subject = subject.trigger(r.trigger);
    }
    let mut plan = router.plan(state, &subject, &names, policy);
    if let (Event::Failure(_), Some(streak)) = (event, plan.next.streak.as_mut())
        && streak.host.is_none()
    {
        streak.host = report.and_then(|r| r.host.clone());
    }
    flap::apply(flapping, (event, at), state, &mut plan, |rule, kind| {
        router.sends(rule, kind)
    });
    crate::hold::apply(holds, (service, host, event, at), state, &mut plan);
    flap::remember_told(state, &mut plan);
    plan
}

/// The holds for an event of `service` at `at`: the silences not ended by then, which
/// of the services it may depend on are failing (none are looked up without a
/// service), and with `[[inhibit]]` rules, every failing service (hosts defaulting to
/// `engine_host`). Here rather than in `hold`, which the store depends on for `Silence`.
fn read_holds(
    sources: &hold::Sources,
    store: &dyn Store,
    (service, engine_host): (Option<&str>, &str),
    at: Timestamp,
) -> Result<Holds, StoreError> {
    let mut failing = std::collections::BTreeSet::new();
    if let Some(service) = service {
        for d in sources.dependencies.of(service) {
            if store.state(d)?.is_some_and(|s| s.is_failing()) {
                failing.insert(d.to_owned());
            }
        }
    }
    Ok(Holds {
        sources: sources.clone(),
        silences: store.silences(at)?,
        failing,
        active: if sources.inhibits.is_empty() || service.is_none() {
            Vec::new()
        } else {
            Active::of(&store.states()?, engine_host)
        },
    })
}

/// A delivery took longer than the engine's `delivery_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("no answer within {}", humantime::format_duration(*.0))]
struct TimedOut(Duration);

impl Engine {
    /// Runs store work off the async threads, or inline when so configured.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if self.store_inline {
            return f();
        }
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// How a [`Notification`] is kept in its outbox row: as its JSON payload, with the
/// fields the store keeps in columns of their own (service, event, streak, sequence,
/// history) read back from those columns.
mod stored {
    use serde::Deserialize;

    use crate::alert::{Ack, Failure, Timestamp};
    use crate::notification::{FallbackOf, Notification, RuleRef};
    use crate::rules::Router;
    use crate::store::NotificationRecord;

    /// The payload of a new row: the notification as JSON (its sequence and history
    /// are the store's to fill in the row's columns; whatever the payload says of them
    /// is not read back).
    pub(super) fn encode(n: &Notification) -> String {
        // strings, numbers and the core's own serialisable types always serialise
        serde_json::to_string(n).unwrap_or_default()
    }

    /// What a payload holds beyond the row's columns: written as a whole [`Notification`]
    /// since the payload became one, and as the older `Payload` before (`at` for the
    /// event time, `rule` as the rule's index), which this still reads.
    #[derive(Deserialize)]
    struct Payload {
        host: String,
        streak_start: Timestamp,
        #[serde(alias = "at")]
        time: Timestamp,
        #[serde(default)]
        rule: Option<Rule>,
        #[serde(default)]
        fallback_for: Option<FallbackOf>,
        #[serde(default)]
        collapsed: bool,
        #[serde(default)]
        stopped_flapping: bool,
        #[serde(default)]
        ack: Option<Ack>,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Rule {
        Ref(RuleRef),
        /// Rows written before the payload was a notification.
        Index(usize),
    }

    /// The notification a claimed row holds: its `payload`, and its `history` column.
    ///
    /// # Errors
    /// When the payload is not one this or an earlier version wrote.
    pub(super) fn decode(
        r: &NotificationRecord,
        payload: &str,
        history: Vec<Failure>,
        router: &Router,
    ) -> Result<Notification, serde_json::Error> {
        let p: Payload = serde_json::from_str(payload)?;
        let rule = p.rule.map(|rule| match rule {
            Rule::Ref(r) => r,
            Rule::Index(index) => router.rule_ref(index).unwrap_or(RuleRef { index, line: 0 }),
        });
        Ok(Notification::new(r.service.as_str(), r.kind, p.host)
            .sequence(r.sequence)
            .streak(r.streak, p.streak_start)
            .time(p.time)
            .rule(rule)
            .failures(history)
            .fallback_for(p.fallback_for)
            .collapsed(p.collapsed)
            .stopped_flapping(p.stopped_flapping)
            .ack(p.ack))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    /// Building an engine looks no time zone up (the first lookup of the system's
    /// indexes the whole zoneinfo tree, in every handler process); the holds and the
    /// rules share one zone, so a lookup by either is made once; a configured one
    /// reaches the holds.
    #[test]
    fn building_an_engine_looks_up_no_time_zone() {
        let engine = Engine::builder(Arc::new(MemoryStore::new())).build();
        assert!(engine.holding.timezone.known().is_none());
        assert!(engine.router().zone().known().is_none());
        let _ = engine.holding.timezone.get();
        assert!(
            engine.router().zone().known().is_some(),
            "one lookup for both"
        );
        let fixed = jiff::tz::TimeZone::fixed(jiff::tz::offset(2));
        let engine = Engine::builder(Arc::new(MemoryStore::new()))
            .router(Router::new(Vec::new(), Some(fixed), "UTC+2"))
            .build();
        let held = engine
            .holding
            .timezone
            .known()
            .expect("the configured zone");
        assert_eq!(
            held.to_offset(jiff::Timestamp::UNIX_EPOCH),
            jiff::tz::offset(2)
        );
    }
}
