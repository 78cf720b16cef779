//! `alertctl report [--json] [--send NOTIFIER]...` and the daemon's `[report]`: a digest
//! of everything failing now.

use alertcore::{Engine, Notification, Severity, StoreError, Timestamp};
use serde::Serialize;

use crate::Fail;

/// One failing service in the report.
#[derive(Debug, Serialize)]
struct Failing {
    service: String,
    host: String,
    since: Timestamp,
    failures: usize,
    severity: Severity,
    last_message: Option<String>,
    /// The notifiers alerted in this streak; empty: below its threshold, or held.
    alerted: Vec<String>,
    /// What held its alert back, if something did.
    held: Option<String>,
    acknowledged_by: Option<String>,
    flapping_since: Option<Timestamp>,
}

/// The report: what `digest` holds, with what the state says of each.
fn failing(engine: &Engine, digest: &[Notification]) -> Result<Vec<Failing>, StoreError> {
    digest
        .iter()
        .map(|n| {
            let state = engine.store().state(&n.service)?.unwrap_or_default();
            let streak = state.streak.as_ref();
            Ok(Failing {
                service: n.service.clone(),
                host: n.host.clone(),
                since: n.streak_start,
                failures: n.failures.len(),
                severity: streak.map_or(n.severity(), |s| s.max_severity),
                last_message: n.last_failure().map(|f| f.summary()),
                alerted: streak
                    .map(|s| {
                        s.recipients
                            .iter()
                            .filter(|(_, r)| r.delivered)
                            .map(|(name, _)| name.clone())
                            .collect()
                    })
                    .unwrap_or_default(),
                held: streak.and_then(|s| s.held.clone()),
                acknowledged_by: streak.and_then(|s| s.ack.as_ref().map(|a| a.by.clone())),
                flapping_since: state.flapping_since(),
            })
        })
        .collect()
}

/// A usage error when `--send` names a notifier the engine does not have.
pub(crate) fn check_send(engine: &Engine, send: &[String]) -> Result<(), Fail> {
    match send
        .iter()
        .find(|n| !engine.notifier_names().any(|m| m == n.as_str()))
    {
        Some(bad) => {
            let names: Vec<&str> = engine.notifier_names().collect();
            Err(Fail::usage(format!(
                "--send {bad}: no notifier named {bad:?} (configured: {})",
                names.join(", ")
            )))
        }
        None => Ok(()),
    }
}

/// Prints the report (and sends it through `send`): 0, or 3 when a send failed.
pub(crate) async fn report(engine: &Engine, json: bool, send: &[String]) -> Result<u8, Fail> {
    check_send(engine, send)?;
    let digest = engine.digest().map_err(|e| Fail::other(&e))?;
    let list = failing(engine, &digest).map_err(|e| Fail::other(&e))?;
    if json {
        let out = serde_json::json!({ "at": engine.now(), "failing": list });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| Fail::other(&e))?
        );
    } else {
        print!("{}", text(engine.now(), &list));
    }
    let mut code = 0;
    for name in send {
        if digest.is_empty() {
            eprintln!("alertctl: nothing is failing: no report sent to {name}");
            continue;
        }
        match engine.send_report(name, &digest).await {
            Ok(()) => eprintln!("report to {name}: delivered"),
            Err(e) => {
                code = 3;
                eprintln!("alertctl: report to {name}: not delivered: {e}");
            }
        }
    }
    Ok(code)
}

fn text(now: Timestamp, list: &[Failing]) -> String {
    if list.is_empty() {
        return format!("nothing is failing at {now}\n");
    }
    let mut out = format!(
        "{} failing at {now}:\n",
        alertcore::transport::plural(list.len(), "service")
    );
    for f in list {
        let lasted = alertcore::duration::format(std::time::Duration::from_millis(
            u64::try_from(now.as_millis().saturating_sub(f.since.as_millis())).unwrap_or(0),
        ));
        out.push_str(&format!(
            "  {} on {}: {} since {} ({lasted}), {}",
            f.service,
            f.host,
            f.severity,
            f.since,
            alertcore::transport::plural(f.failures, "failure")
        ));
        if let Some(m) = &f.last_message {
            out.push_str(&format!(": {}", alertcore::transport::one_line(m)));
        }
        out.push('\n');
        let alerted = if f.alerted.is_empty() {
            match &f.held {
                Some(h) => format!("not alerted: held by {h}"),
                None => "not alerted (below its threshold or min_duration)".to_owned(),
            }
        } else {
            format!("alerted: {}", f.alerted.join(", "))
        };
        out.push_str(&format!("    {alerted}"));
        if let Some(by) = &f.acknowledged_by {
            out.push_str(&format!("; acknowledged by {by}"));
        }
        if let Some(t) = f.flapping_since {
            out.push_str(&format!("; flapping since {t}"));
        }
        out.push('\n');
    }
    out
}

/// The daemon's `[report]` round: when `every` has passed since the last one (kept in
/// the store, so a restart does not reset it), sends the digest to `to` if something is
/// failing, and records the round. The first round after the first start only records.
pub(crate) async fn periodic(engine: &Engine, every: std::time::Duration, to: &[String]) {
    const KIND: &str = "report";
    let now = engine.now();
    let store = engine.store();
    let last = match store.sources(KIND) {
        Ok(rows) => rows.into_iter().map(|r| r.updated).max(),
        Err(e) => {
            tracing::error!("report: {}", alertcore::chain(&e));
            return;
        }
    };
    if last.is_some_and(|l| now < l.saturating_add(every)) {
        return;
    }
    if last.is_some() {
        match engine.digest() {
            Ok(digest) if digest.is_empty() => tracing::info!("report: nothing is failing"),
            Ok(digest) => {
                for name in to {
                    match engine.send_report(name, &digest).await {
                        Ok(()) => tracing::info!(
                            "report of {} sent to {name}",
                            alertcore::transport::plural(digest.len(), "failing service")
                        ),
                        Err(e) => tracing::warn!("report to {name}: not delivered: {e}"),
                    }
                }
            }
            Err(e) => tracing::error!("report: {}", alertcore::chain(&e)),
        }
    }
    let row = alertcore::SourceState::new(KIND, KIND, "{}", now);
    if let Err(e) = store.save_sources(&[row]) {
        tracing::error!("report: {}", alertcore::chain(&e));
    }
}
