//! `alertctl status`, `history` and `config dump` output.

use std::collections::BTreeMap;
use std::path::Path;

use alertcore::policy::{Outcome, Policy};
use alertcore::rules::{Router, Rule};
use alertcore::store::{NotificationId, NotificationRecord, OutboxFilter};
use alertcore::transport::plural;
use alertcore::{
    Config, ConfiguredNotifier, Engine, EventKind, Failure, ServiceState, Severity, Store,
    StoreError, Timestamp,
};
use alertcore_checks::CheckState;
use alertcore_checks::heartbeat::{Assessment, Heartbeat, Standing};
use serde::Serialize;

use crate::cli::OutboxCommand;

/// How many log rows `status` looks at for delivery errors.
const LOG_WINDOW: usize = 500;

/// What `alertctl status --json` prints and `GET /api/v1/status` serves.
#[derive(Debug, Serialize)]
pub(crate) struct StatusOut {
    pub(crate) services: Vec<ServiceStatus>,
    pub(crate) checks: Vec<CheckStatus>,
    pub(crate) heartbeats: Vec<HeartbeatStatus>,
    pub(crate) notifiers: Vec<NotifierStatus>,
    /// Pending and failed deliveries, newest first (at most [`OUTBOX_SHOWN`]).
    pub(crate) outbox: Vec<NotificationRecord>,
    /// The silences not ended yet.
    pub(crate) silences: Vec<alertcore::hold::Silence>,
    /// How many deliveries are pending, and how many failed, in all.
    pub(crate) outbox_pending: usize,
    pub(crate) outbox_failed: usize,
}

/// How many outbox rows `status` shows.
const OUTBOX_SHOWN: usize = 200;

/// A heartbeat as its stored signals show it now.
#[derive(Debug, Serialize)]
pub(crate) struct HeartbeatStatus {
    pub(crate) name: String,
    #[serde(flatten)]
    pub(crate) assessment: Assessment,
}

/// A polling check as the daemon last saved it (at a change of state, or a checkpoint).
#[derive(Debug, Serialize)]
pub(crate) struct CheckStatus {
    pub(crate) name: String,
    /// When the daemon saved this (at a change of state, else at a checkpoint); for
    /// the running daemon's own view, when it was read.
    pub(crate) saved: Timestamp,
    #[serde(flatten)]
    pub(crate) state: CheckState,
}

/// The checks the daemon saved, by name (only `unit` when given).
fn check_status(store: &dyn Store, unit: Option<&str>) -> Result<Vec<CheckStatus>, StoreError> {
    let rows = store.sources(alertcore_checks::scheduler::SOURCE_KIND)?;
    Ok(rows
        .into_iter()
        .filter(|r| unit.is_none_or(|u| u == r.name))
        .filter_map(|r| {
            let state = serde_json::from_str(&r.state).ok()?;
            Some(CheckStatus {
                name: r.name,
                saved: r.updated,
                state,
            })
        })
        .collect())
}

fn print_check(c: &CheckStatus) {
    let st = &c.state;
    let Some(last) = &st.last else {
        println!("  {} ({}): not run yet", c.name, st.kind);
        return;
    };
    let since = st
        .status_since
        .map(|t| format!(" since {t}"))
        .unwrap_or_default();
    let counted = if st.is_failing() {
        format!(
            ", FAILING ({})",
            plural(st.failed_in_row as usize, "failed run")
        )
    } else if st.below_threshold() {
        format!(
            ", below threshold ({})",
            plural(st.failed_in_row as usize, "failed run")
        )
    } else {
        String::new()
    };
    println!(
        "  {} ({}): {}{since}{counted}: {}",
        c.name,
        st.kind,
        last.outcome.status.as_str().to_uppercase(),
        last.outcome.message
    );
    let next = st
        .next_run
        .map(|t| format!(", next due {t}"))
        .unwrap_or_default();
    println!(
        "    last run {} ({} ms){next}; saved {}",
        last.at, last.took_ms, c.saved
    );
}

#[derive(Debug, Serialize)]
pub(crate) struct ServiceStatus {
    pub(crate) service: String,
    pub(crate) failing: bool,
    pub(crate) failing_since: Option<Timestamp>,
    pub(crate) consecutive_failures: u32,
    pub(crate) severity: Option<Severity>,
    pub(crate) last_failure: Option<Timestamp>,
    /// The latest failure's message, while failing.
    pub(crate) last_message: Option<String>,
    /// The silence or maintenance window that holds its alerts now.
    pub(crate) held_by: Option<alertcore::hold::Hold>,
    /// What kept the streak's latest alert back, until one is sent.
    pub(crate) held: Option<String>,
    /// The streak's acknowledgement.
    pub(crate) acknowledged: Option<alertcore::policy::Ack>,
    /// Flap detection's view (`[flapping]`), when it is on.
    pub(crate) flapping: Option<FlapStatus>,
    pub(crate) last_success: Option<Timestamp>,
    pub(crate) notifiers: Vec<RecipientStatus>,
    pub(crate) pending_deliveries: usize,
    pub(crate) last_delivery_error: Option<ErrorStatus>,
}

#[derive(Debug, Serialize)]
pub(crate) struct FlapStatus {
    /// Flapping since then, if it is.
    since: Option<Timestamp>,
    /// The weighted percentage of state changes in the last 20 events.
    percent: f64,
    /// Who was told it is flapping.
    notified: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RecipientStatus {
    pub(crate) notifier: String,
    pub(crate) last_alert: Timestamp,
    pub(crate) last_kind: EventKind,
    pub(crate) alerts: u32,
    pub(crate) delivered: bool,
    pub(crate) outcome: Outcome,
    pub(crate) next_reminder: Option<Timestamp>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ErrorStatus {
    pub(crate) notifier: String,
    pub(crate) kind: EventKind,
    pub(crate) at: Timestamp,
    pub(crate) error: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct NotifierStatus {
    pub(crate) name: String,
    pub(crate) last_outcome: Option<Outcome>,
    pub(crate) last_at: Option<Timestamp>,
    pub(crate) last_error: Option<String>,
}

fn service_status(
    engine: &Engine,
    name: String,
    state: &ServiceState,
    log: &[NotificationRecord],
) -> ServiceStatus {
    let repeat = engine.policy().repeat;
    let mine: Vec<&NotificationRecord> = log.iter().filter(|r| r.service == name).collect();
    let streak = state.streak.as_ref();
    ServiceStatus {
        failing: streak.is_some(),
        failing_since: streak.map(|s| s.started),
        consecutive_failures: streak.map_or(0, |s| s.failures),
        severity: streak.map(|s| s.max_severity),
        last_failure: streak.map(|s| s.last_failure),
        last_message: None,
        held_by: None,
        held: streak.and_then(|s| s.held.clone()),
        acknowledged: streak.and_then(|s| s.ack.clone()),
        flapping: state.flap.as_ref().map(|f| FlapStatus {
            since: f.since,
            percent: (f.percent() * 10.0).round() / 10.0,
            notified: f.notified.clone(),
        }),
        last_success: state.last_success,
        notifiers: streak
            .map(|s| {
                s.recipients
                    .iter()
                    .map(|(n, r)| RecipientStatus {
                        notifier: n.clone(),
                        last_alert: r.last_alert,
                        last_kind: r.last_kind,
                        alerts: r.alerts,
                        delivered: r.delivered,
                        outcome: r.outcome,
                        // an acknowledged streak has none
                        next_reminder: (!repeat.is_zero() && s.ack.is_none())
                            .then(|| r.last_alert.saturating_add(repeat)),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        pending_deliveries: mine.iter().filter(|r| r.status == Outcome::Pending).count(),
        last_delivery_error: mine.iter().find(|r| r.status == Outcome::Failed).map(|r| {
            ErrorStatus {
                notifier: r.notifier.clone(),
                kind: r.kind,
                at: r.finished.unwrap_or(r.created),
                error: r.error.clone().unwrap_or_default(),
            }
        }),
        service: name,
    }
}

/// `alertctl status [UNIT] [--json]`.
pub(crate) fn status(
    engine: &Engine,
    heartbeats: &[Heartbeat],
    unit: Option<&str>,
    json: bool,
) -> Result<(), StoreError> {
    let wanted: Vec<Heartbeat> = heartbeats
        .iter()
        .filter(|h| unit.is_none_or(|u| u == h.name))
        .cloned()
        .collect();
    let heartbeats =
        alertcore_checks::heartbeat::assess_stored(engine.store().as_ref(), &wanted, engine.now())?
            .into_iter()
            .zip(&wanted)
            .map(|(assessment, hb)| HeartbeatStatus {
                name: hb.name.clone(),
                assessment,
            })
            .collect();
    let out = collect(engine, heartbeats, None, unit)?;
    if json {
        println!("{}", to_json(&out));
        return Ok(());
    }
    if out.services.is_empty() && out.checks.is_empty() && out.heartbeats.is_empty() {
        println!(
            "{}",
            unit.map_or_else(
                || "no services recorded".to_owned(),
                |u| format!("{u}: no state")
            )
        );
    }
    for s in &out.services {
        print_service(s);
    }
    if !out.checks.is_empty() {
        println!("checks:");
        for c in &out.checks {
            print_check(c);
        }
    }
    if !out.heartbeats.is_empty() {
        println!("heartbeats:");
        for h in &out.heartbeats {
            print_heartbeat(h);
        }
    }
    println!("notifiers:");
    for n in &out.notifiers {
        match (n.last_outcome, n.last_at) {
            (Some(o), Some(at)) => {
                let err = n
                    .last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                println!("  {}: last delivery {} at {at}{err}", n.name, o.as_str());
            }
            _ => println!("  {}: nothing sent yet", n.name),
        }
    }
    Ok(())
}

fn print_heartbeat(h: &HeartbeatStatus) {
    let a = &h.assessment;
    let what = match &a.standing {
        Standing::New => "NEW: no run yet".to_owned(),
        Standing::Up => "UP".to_owned(),
        Standing::Down(p) => format!("DOWN ({}) since {}: {}", p.result, p.since, p.message),
    };
    println!("  {}: {what}", h.name);
    let opt = |t: Option<Timestamp>| t.map_or_else(|| "never".to_owned(), |t| t.to_string());
    let running = a
        .running_since
        .map(|t| format!("; running since {t}"))
        .unwrap_or_default();
    println!(
        "    last success {}, last signal {}{running}; late after {}",
        opt(a.last_success),
        opt(a.last_signal),
        opt(a.deadline)
    );
}

/// Everything `status` shows (only `unit`'s, when given).
///
/// `heartbeats` are judged by the caller; `checks`, when given, are the running
/// scheduler's (else the ones the daemon last saved are read from the store).
pub(crate) fn collect(
    engine: &Engine,
    mut heartbeats: Vec<HeartbeatStatus>,
    checks: Option<Vec<CheckStatus>>,
    unit: Option<&str>,
) -> Result<StatusOut, StoreError> {
    let store = engine.store();
    let log = store.notifications(unit, LOG_WINDOW)?;
    let states = match unit {
        Some(u) => store
            .state(u)?
            .map(|s| (u.to_owned(), s))
            .into_iter()
            .collect(),
        None => store.states()?,
    };
    let mut services: Vec<ServiceStatus> = states
        .iter()
        .map(|(n, s)| service_status(engine, n.clone(), s, &log))
        .collect();
    // what the failing ones last said, and what holds their alerts now
    let now = engine.now();
    let holds = engine.holds(None, now)?;
    for s in services.iter_mut().filter(|s| s.failing) {
        let last = store.history(&s.service)?.pop();
        if let (Some(f), Some(severity)) = (&last, s.severity) {
            s.held_by = holds.find(&s.service, &f.host, severity, now);
        }
        s.last_message = last.and_then(|f| f.message);
    }
    services.sort_by_key(|s| !s.failing);
    let mut latest: BTreeMap<&str, &NotificationRecord> = BTreeMap::new();
    for r in &log {
        latest.entry(r.notifier.as_str()).or_insert(r);
    }
    let notifiers = engine
        .notifier_names()
        .map(|n| {
            let last = latest.get(n);
            NotifierStatus {
                name: n.to_owned(),
                last_outcome: last.map(|r| r.status),
                last_at: last.map(|r| r.finished.unwrap_or(r.created)),
                last_error: last.and_then(|r| r.error.clone()),
            }
        })
        .collect();
    let mut checks = match checks {
        Some(live) => live,
        None => check_status(store.as_ref(), unit)?,
    };
    checks.sort_by_key(|c| (!c.state.last_failed(), c.name.clone()));
    heartbeats.sort_by_key(|h| {
        (
            !matches!(h.assessment.standing, Standing::Down(_)),
            h.name.clone(),
        )
    });
    let mut filter = OutboxFilter::new();
    if let Some(u) = unit {
        filter = filter.service(u);
    }
    let mut outbox = store.outbox(&filter)?;
    let outbox_pending = outbox
        .iter()
        .filter(|r| r.status == Outcome::Pending)
        .count();
    let outbox_failed = outbox.len() - outbox_pending;
    outbox.truncate(OUTBOX_SHOWN);
    Ok(StatusOut {
        services,
        checks,
        heartbeats,
        notifiers,
        outbox,
        silences: holds.silences,
        outbox_pending,
        outbox_failed,
    })
}

fn print_service(s: &ServiceStatus) {
    match s.failing_since {
        Some(since) => println!(
            "{}: FAILING since {since} ({}, {})",
            s.service,
            alertcore::transport::plural(
                usize::try_from(s.consecutive_failures).unwrap_or(0),
                "consecutive failure"
            ),
            s.severity.map_or("?", Severity::as_str)
        ),
        None => println!(
            "{}: ok{}",
            s.service,
            s.last_success
                .map(|t| format!(" (last success {t})"))
                .unwrap_or_default()
        ),
    }
    if let Some(h) = &s.held_by {
        println!("  held by {h}");
    } else if let Some(h) = &s.held {
        println!("  its alert was held by {h}; it goes out at the next flush");
    }
    if let Some(f) = &s.flapping
        && let Some(since) = f.since
    {
        println!(
            "  flapping since {since} ({}% state changes): no alert per change until it settles",
            f.percent
        );
    }
    if let Some(a) = &s.acknowledged {
        let comment = a
            .comment
            .as_deref()
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        println!(
            "  acknowledged by {} at {}{comment}: no reminders",
            a.by, a.at
        );
    }
    for r in &s.notifiers {
        let next = r
            .next_reminder
            .map(|t| format!("; next reminder due {t}"))
            .unwrap_or_default();
        println!(
            "  {}: {} sent {} ({}){next}",
            r.notifier,
            r.last_kind,
            r.last_alert,
            r.outcome.as_str()
        );
    }
    if s.pending_deliveries > 0 {
        println!("  pending deliveries: {}", s.pending_deliveries);
    }
    if let Some(e) = &s.last_delivery_error {
        println!(
            "  last delivery error: {} ({}) at {}: {}",
            e.notifier, e.kind, e.at, e.error
        );
    }
}

#[derive(Debug, Serialize)]
struct HistoryOut {
    service: String,
    failures: Vec<Failure>,
    notifications: Vec<NotificationRecord>,
    /// What kept the streak's latest alert back (a silence, a maintenance window).
    held: Option<String>,
    /// The streak's acknowledgement.
    acknowledged: Option<alertcore::policy::Ack>,
}

/// `alertctl outbox [--json]`, `outbox retry ID|--all`, `outbox drop ID`.
pub(crate) fn outbox(
    store: &dyn Store,
    action: Option<&OutboxCommand>,
    json: bool,
    now: Timestamp,
) -> Result<u8, StoreError> {
    match action {
        Some(OutboxCommand::Retry { id, all: _ }) => {
            let n = store.retry(id.map(NotificationId), now)?;
            if let (Some(id), 0) = (id, n) {
                eprintln!("alertctl: no pending or failed delivery #{id}");
                return Ok(1);
            }
            let what = if n == 1 {
                "1 delivery".to_owned()
            } else {
                format!("{n} deliveries")
            };
            println!("{what} due now (`alertctl flush` sends them)");
            Ok(0)
        }
        Some(OutboxCommand::Drop { id }) => {
            if store.drop_notification(NotificationId(*id))? {
                println!("#{id} dropped: it will not be sent");
                Ok(0)
            } else {
                eprintln!("alertctl: no pending or failed delivery #{id}");
                Ok(1)
            }
        }
        None => {
            let rows = store.outbox(&OutboxFilter::new())?;
            if json {
                println!("{}", to_json(&rows));
                return Ok(0);
            }
            if rows.is_empty() {
                println!("the outbox is empty: nothing pending or failed");
            }
            for r in &rows {
                let state = match (r.status, r.next_attempt, r.leased_until) {
                    (Outcome::Pending, _, Some(l)) if l > now => "sending".to_owned(),
                    (Outcome::Pending, Some(t), _) if t > now => format!("retry at {t}"),
                    (Outcome::Pending, _, _) => "due".to_owned(),
                    (s, _, _) => s.as_str().to_owned(),
                };
                println!(
                    "#{} {} {} of {} (created {}, {}): {state}{}",
                    r.id,
                    r.notifier,
                    r.kind,
                    r.service,
                    r.created,
                    plural(r.attempts as usize, "attempt"),
                    r.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
            Ok(0)
        }
    }
}

/// `alertctl history UNIT [--json]`.
pub(crate) fn history(store: &dyn Store, unit: &str, json: bool) -> Result<(), StoreError> {
    let streak = store.state(unit)?.and_then(|s| s.streak);
    let out = HistoryOut {
        service: unit.to_owned(),
        failures: store.history(unit)?,
        notifications: store.notifications(Some(unit), 20)?,
        held: streak.as_ref().and_then(|s| s.held.clone()),
        acknowledged: streak.and_then(|s| s.ack),
    };
    if json {
        println!("{}", to_json(&out));
        return Ok(());
    }
    println!(
        "{unit}: {} in the current streak",
        alertcore::transport::plural(out.failures.len(), "failure")
    );
    if let Some(h) = &out.held {
        println!("  its latest alert was held by {h}");
    }
    if let Some(a) = &out.acknowledged {
        println!("  acknowledged by {} at {}", a.by, a.at);
    }
    for (i, f) in out.failures.iter().enumerate() {
        println!(
            "  {:>3}  {}  {:<8}  {}{}",
            i + 1,
            f.timestamp,
            f.severity,
            alertcore::transport::one_line(&f.summary()),
            if f.notifiers.is_empty() {
                String::new()
            } else {
                format!("  -> {}", f.notifiers.join(", "))
            }
        );
    }
    println!("recent notifications:");
    for n in &out.notifications {
        let err = n
            .error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        println!(
            "  #{} {} {} to {} ({}){err}",
            n.id,
            n.created,
            n.kind,
            n.notifier,
            n.status.as_str()
        );
    }
    Ok(())
}

/// `alertctl config dump`: the resolved config as TOML, secrets redacted.
pub(crate) fn dump(
    config: &Config,
    notifiers: &[ConfiguredNotifier],
    router: &Router,
    checks: &[alertcore_checks::Check],
    heartbeats: &[Heartbeat],
    state: &Path,
) -> String {
    let mut doc = toml::Table::new();
    doc.insert(
        "host".to_owned(),
        toml::Value::String(config.host.clone().unwrap_or_else(alertcore::host_name)),
    );
    let mut st = toml::Table::new();
    st.insert(
        "path".to_owned(),
        toml::Value::String(state.display().to_string()),
    );
    doc.insert("state".to_owned(), toml::Value::Table(st));
    if let Ok(toml::Value::Table(p)) = toml::Value::try_from(&config.policy) {
        doc.insert("policy".to_owned(), toml::Value::Table(p));
    }
    let ns: toml::Table = notifiers
        .iter()
        .map(|n| {
            let mut t = match toml::Value::try_from(n.config.redacted()) {
                Ok(toml::Value::Table(t)) => t,
                _ => toml::Table::new(),
            };
            t.entry("type")
                .or_insert_with(|| toml::Value::String(n.notifier.kind().to_owned()));
            (n.name.clone(), toml::Value::Table(t))
        })
        .collect();
    doc.insert("notifiers".to_owned(), toml::Value::Table(ns));
    if !config.formats.is_empty() {
        let formats: toml::Table = config
            .formats
            .iter()
            .map(|(name, t)| (name.clone(), toml::Value::Table(t.get_ref().clone())))
            .collect();
        doc.insert("formats".to_owned(), toml::Value::Table(formats));
    }
    doc.insert(
        "timezone".to_owned(),
        toml::Value::String(router.timezone_name().to_owned()),
    );
    let rules: Vec<toml::Value> = router
        .rules()
        .iter()
        .filter_map(|r| resolved_rule(r, &config.policy))
        .collect();
    if !rules.is_empty() {
        doc.insert("rules".to_owned(), toml::Value::Array(rules));
    }
    if let Ok(toml::Value::Table(d)) = toml::Value::try_from(&config.daemon) {
        doc.insert("daemon".to_owned(), toml::Value::Table(d));
    }
    if !checks.is_empty() {
        let checks = checks.iter().map(|c| resolved_check(config, c)).collect();
        doc.insert("checks".to_owned(), toml::Value::Array(checks));
    }
    if !heartbeats.is_empty() {
        let list = heartbeats.iter().map(resolved_heartbeat).collect();
        doc.insert("heartbeats".to_owned(), toml::Value::Array(list));
    }
    toml::to_string(&doc).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
}

/// A heartbeat with every key filled in.
fn resolved_heartbeat(hb: &Heartbeat) -> toml::Value {
    use alertcore_checks::heartbeat::Expect;
    let text = |s: &str| toml::Value::String(s.to_owned());
    let duration = |d| text(&alertcore::duration::format(d));
    let mut t = toml::Table::new();
    t.insert("name".to_owned(), text(&hb.name));
    match &hb.expect {
        Expect::Period(p) => {
            t.insert("period".to_owned(), duration(*p));
        }
        Expect::Schedule(cron) => {
            t.insert("schedule".to_owned(), text(cron.as_str()));
            t.insert("timezone".to_owned(), text(cron.zone_name()));
        }
    }
    t.insert("grace".to_owned(), duration(hb.grace));
    for (key, d) in [
        ("max_runtime", hb.max_runtime),
        ("min_runtime", hb.min_runtime),
        ("min_interval", hb.min_interval),
    ] {
        if let Some(d) = d {
            t.insert(key.to_owned(), duration(d));
        }
    }
    let failures = match hb.failures.within {
        Some(w) => text(&format!(
            "{} in {}",
            hb.failures.count,
            alertcore::duration::format(w)
        )),
        None => toml::Value::Integer(hb.failures.count.into()),
    };
    t.insert("failures".to_owned(), failures);
    t.insert("severity".to_owned(), text(hb.severity.as_str()));
    if let Some(host) = &hb.host {
        t.insert("host".to_owned(), text(host));
    }
    toml::Value::Table(t)
}

/// A check as written (secrets redacted), with the keys every check has filled in.
fn resolved_check(config: &Config, check: &alertcore_checks::Check) -> toml::Value {
    let written = config
        .checks
        .iter()
        .map(|t| t.get_ref())
        .find(|t| t.get("name").and_then(toml::Value::as_str) == Some(check.name.as_str()));
    let mut t = match written
        .map(|w| toml::Value::try_from(alertcore::Table::from(w.clone()).redacted()))
    {
        Some(Ok(toml::Value::Table(t))) => t,
        _ => toml::Table::new(),
    };
    let text = |s: &str| toml::Value::String(s.to_owned());
    let duration = |d| text(&alertcore::duration::format(d));
    match &check.cron {
        Some(cron) => {
            t.insert("schedule".to_owned(), text(cron.as_str()));
            t.insert("timezone".to_owned(), text(cron.zone_name()));
        }
        None => {
            t.insert("interval".to_owned(), duration(check.interval));
        }
    }
    // a failed scheduled check without one waits for the schedule
    if let Some(retry) = check
        .retry_interval
        .or(check.cron.is_none().then_some(check.interval))
    {
        t.insert("retry_interval".to_owned(), duration(retry));
    }
    t.insert("timeout".to_owned(), duration(check.timeout));
    t.insert(
        "threshold".to_owned(),
        toml::Value::Integer(check.threshold.into()),
    );
    if let Some(within) = check.within {
        t.insert("within".to_owned(), toml::Value::Integer(within.into()));
    }
    t.insert(
        "recover_after".to_owned(),
        toml::Value::Integer(check.recover_after.into()),
    );
    t.insert("unknown".to_owned(), text(check.unknown.as_str()));
    toml::Value::Table(t)
}

/// A rule with each recipient's effective threshold, repeat and recovery filled in.
fn resolved_rule(rule: &Rule, global: &Policy) -> Option<toml::Value> {
    let toml::Value::Table(fields) = toml::Value::try_from(rule).ok()? else {
        return None;
    };
    let mut t = toml::Table::new();
    t.insert("id".to_owned(), toml::Value::String(rule.name()));
    t.extend(fields);
    let notify: Vec<toml::Value> = rule
        .notify
        .iter()
        .map(|r| {
            let p = rule.policy_for(r, global);
            let mut e = toml::Table::new();
            e.insert("to".to_owned(), toml::Value::String(r.notifier.clone()));
            if let Ok(toml::Value::Table(p)) = toml::Value::try_from(&p) {
                e.extend(p);
            }
            if let Ok(toml::Value::Table(f)) = toml::Value::try_from(&r.format_spec) {
                e.extend(f);
            }
            toml::Value::Table(e)
        })
        .collect();
    t.insert("notify".to_owned(), toml::Value::Array(notify));
    Some(toml::Value::Table(t))
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
