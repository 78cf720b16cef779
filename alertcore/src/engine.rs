//! The engine: the only part that does I/O. Loads state, runs the policy, saves (with
//! the notifications logged as pending), then dispatches to notifiers concurrently and
//! records each outcome.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use crate::alert::{EventKind, Failure, FailureReport, Timestamp};
use crate::config::ConfiguredNotifier;
use crate::error::{EngineError, NotifyError, StoreError, chain};
use crate::notifier::{Context, Notifier};
use crate::policy::{Decision, Event, Outcome, Policy, ServiceState};
use crate::rules::{Plan, Router, RuleTrace, Subject};
use crate::store::{Applied, Change, NewNotification, NotificationId, Store};
use crate::template::Format;

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
    config: Arc<toml::Table>,
    format: Format,
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
}

impl EngineBuilder {
    /// Adds a notifier under `name`, with an empty config table.
    pub fn notifier(self, name: impl Into<String>, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier_with_config(name, notifier, toml::Table::new())
    }

    /// Adds a notifier under `name` with its config table (passed in every [`Context`]).
    pub fn notifier_with_config(
        mut self,
        name: impl Into<String>,
        notifier: Arc<dyn Notifier>,
        config: toml::Table,
    ) -> Self {
        self.notifiers.push(Entry {
            name: name.into(),
            notifier,
            config: Arc::new(config),
            format: Format::full().clone(),
        });
        self
    }

    /// Adds notifiers built from a config file.
    pub fn configured(mut self, list: impl IntoIterator<Item = ConfiguredNotifier>) -> Self {
        self.notifiers.extend(list.into_iter().map(|c| Entry {
            name: c.name,
            notifier: c.notifier,
            config: c.config,
            format: c.format,
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

    /// Builds the engine.
    pub fn build(self) -> Engine {
        Engine {
            store: self.store,
            notifiers: self.notifiers.into(),
            policy: self.policy,
            router: Arc::new(self.router),
            clock: self.clock,
            host: self.host.unwrap_or_else(host_name),
            delivery_timeout: self.delivery_timeout,
            store_inline: self.store_inline,
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
    /// One entry per notification actually attempted.
    pub deliveries: Vec<Delivery>,
    /// The per-host sequence number (0 when nothing was sent).
    pub sequence: u64,
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
}

impl Report {
    /// `true` when every attempted delivery succeeded.
    pub fn all_delivered(&self) -> bool {
        self.deliveries.iter().all(|d| d.error.is_none())
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
        let severity = report.severity.unwrap_or(crate::alert::Severity::Critical);
        self.process(service, Event::Failure(severity), Some(report))
            .await
    }

    /// Records a successful run of `service`; sends recoveries as the policy says.
    ///
    /// # Errors
    /// As for [`Engine::failure`].
    pub async fn success(&self, service: &str) -> Result<Report, EngineError> {
        self.process(service, Event::Success, None).await
    }

    /// Routes `event` of `service` seen at `at` against `state` and runs the policy,
    /// writing nothing: what [`Engine::failure`] and [`Engine::success`] do inside their
    /// store transaction, and what `alertctl test` shows.
    pub fn plan(
        &self,
        service: &str,
        state: &ServiceState,
        event: Event,
        kind: Option<&str>,
        at: Timestamp,
    ) -> Plan {
        plan(
            &self.router,
            &self.policy,
            &self.notifiers,
            &self.host,
            (service, state, event, kind, at),
        )
    }

    /// [`Engine::plan`] against the stored state of `service`, at the clock's now.
    ///
    /// # Errors
    /// A [`StoreError`] reading the state.
    pub fn preview(
        &self,
        service: &str,
        event: Event,
        kind: Option<&str>,
    ) -> Result<Plan, StoreError> {
        let state = self.store.state(service)?.unwrap_or_default();
        Ok(self.plan(service, &state, event, kind, self.clock.now()))
    }

    async fn process(
        &self,
        service: &str,
        event: Event,
        report: Option<FailureReport>,
    ) -> Result<Report, EngineError> {
        let now = self.clock.now();
        let store = Arc::clone(&self.store);
        let notifiers = Arc::clone(&self.notifiers);
        let policy = self.policy.clone();
        let router = Arc::clone(&self.router);
        let host = self.host.clone();
        let owned_service = service.to_owned();
        let (applied, planned, streak) = self
            .blocking(move || {
                let mut planned = None;
                let mut streak = (0, now, 0);
                let kind = report.as_ref().and_then(|r| r.kind.as_deref());
                let applied = store.apply(&owned_service, now, &mut |state| {
                    let plan = plan(
                        &router,
                        &policy,
                        &notifiers,
                        &host,
                        (&owned_service, state, event, kind, now),
                    );
                    // a success reports on the streak it ends
                    let s = match event {
                        Event::Failure(_) => plan.next.streak.as_ref(),
                        Event::Success => state.streak.as_ref(),
                    };
                    streak = s.map_or((0, now, 0), |s| (s.id, s.started, s.failures));
                    let notifications: Vec<NewNotification> = plan
                        .decisions
                        .iter()
                        .filter_map(|d| {
                            d.send_kind()
                                .map(|k| NewNotification::new(d.notifier.clone(), k, streak.0))
                        })
                        .collect();
                    let failure = report.as_ref().map(|r| {
                        let mut f = Failure::from_report(r, &host, now);
                        f.notifiers = notifications.iter().map(|n| n.notifier.clone()).collect();
                        f
                    });
                    let change = Change {
                        end_streak: event == Event::Success && state.streak.is_some(),
                        next: plan.next.clone(),
                        failure,
                        notifications,
                    };
                    planned = Some(plan);
                    change
                })?;
                Ok((applied, planned, streak))
            })
            .await?;
        let plan =
            planned.ok_or_else(|| StoreError::Task("the store did not run the policy".into()))?;

        let (streak_id, streak_start, failures) = streak;
        let deliveries = self
            .dispatch(
                service,
                &plan.decisions,
                &applied,
                (streak_id, streak_start),
                now,
            )
            .await;
        Ok(Report {
            service: service.to_owned(),
            at: now,
            failures: usize::try_from(failures).unwrap_or(usize::MAX),
            decisions: plan.decisions,
            rules: plan.rules,
            deliveries,
            sequence: applied.sequence,
        })
    }

    async fn dispatch(
        &self,
        service: &str,
        decisions: &[Decision],
        applied: &Applied,
        (streak_id, streak_start): (u64, Timestamp),
        now: Timestamp,
    ) -> Vec<Delivery> {
        let sends = decisions
            .iter()
            .filter_map(|d| d.send_kind().map(|k| (d, k)))
            .zip(&applied.notifications);
        let futures = sends.map(|((d, kind), &id)| async move {
            let entry = self.notifiers.iter().find(|e| e.name == d.notifier)?;
            // a rule's recipient may override the notifier's format
            let format = self
                .router
                .recipient(d.rule, &d.notifier)
                .and_then(|r| r.format.as_ref())
                .unwrap_or(&entry.format);
            let ctx = Context::new(kind, &self.host)
                .notifier(&entry.name)
                .config(&entry.config)
                .format(format)
                .rule(d.rule.and_then(|i| self.router.rule_ref(i)))
                .sequence(applied.sequence)
                .streak(streak_id, streak_start)
                .now(now);
            let history = &applied.history;
            let call = async {
                if kind == EventKind::Recovery {
                    entry.notifier.success(service, history, &ctx).await
                } else {
                    entry.notifier.failure(service, history, &ctx).await
                }
            };
            let result = match self.delivery_timeout {
                Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                    Err(NotifyError::transport(entry.notifier.kind(), true, TimedOut(limit)))
                }),
                None => call.await,
            };
            let (outcome, error, retryable) = match &result {
                Ok(()) => (Outcome::Delivered, None, false),
                Err(e) => {
                    tracing::warn!(notifier = %entry.name, service, error = %chain(e), "delivery failed");
                    (Outcome::Failed, Some(chain(e)), e.is_retryable())
                }
            };
            let store = Arc::clone(&self.store);
            let err = error.clone();
            let at = self.clock.now();
            let recorded =
                self.blocking(move || store.record_outcome(id, outcome, err.as_deref(), at)).await;
            if let Err(e) = recorded {
                tracing::warn!(notifier = %entry.name, service, error = %chain(&e), "cannot record delivery outcome");
            }
            Some(Delivery {
                notifier: entry.name.clone(),
                kind,
                id,
                error,
                retryable,
            })
        });
        join_all(futures).await.into_iter().flatten().collect()
    }
}

/// The routing and policy of one event: (service, state, event, source kind, time).
fn plan(
    router: &Router,
    policy: &Policy,
    notifiers: &[Entry],
    host: &str,
    (service, state, event, kind, at): (&str, &ServiceState, Event, Option<&str>, Timestamp),
) -> Plan {
    let names: Vec<&str> = notifiers.iter().map(|e| e.name.as_str()).collect();
    let subject = Subject::new(service, host, kind, event, at, state);
    router.plan(state, &subject, &names, policy)
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
