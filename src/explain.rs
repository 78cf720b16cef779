//! `alertctl test` and `--trace`: the explanation of the rules' and the policy's
//! decisions for an event.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use alertcore::explain::{Plan, explain};
use alertcore::policy::Event;
use alertcore::{Engine, EventKind, Report, Severity};
use serde::Serialize;

use crate::cli::TestArgs;

/// How long the hypothetical streak of `--event reminder|escalation` has lasted when
/// `--duration` is not given: long enough for any usual `repeat` to be due.
const ASSUMED_STREAK: Duration = Duration::from_secs(24 * 3600);

#[derive(Serialize)]
struct TestOutput<'a> {
    service: &'a str,
    host: &'a str,
    event: EventKind,
    severity: Option<Severity>,
    at: String,
    timezone: &'a str,
    failures: u32,
    streak_lasted_s: u64,
    #[serde(flatten)]
    plan: &'a Plan,
}

/// Where a successful run's output goes (`--event output`): the notifiers of the rules
/// with `on_success = "output"`, as `Engine::output` finds them.
#[derive(Serialize)]
struct OutputTest<'a> {
    service: &'a str,
    host: &'a str,
    event: EventKind,
    to: Vec<OutputTarget>,
}

#[derive(Serialize)]
struct OutputTarget {
    notifier: String,
    rule: String,
}

/// `--event output`: where a successful run's output would go.
fn test_output(engine: &Engine, args: &TestArgs, at: alertcore::Timestamp) -> Result<(), String> {
    let router = engine.router();
    let host = args.host.as_deref().unwrap_or(engine.host());
    let to: Vec<OutputTarget> = router
        .output_targets(&args.service, host, at)
        .into_iter()
        .map(|(notifier, rule)| OutputTarget {
            notifier,
            rule: router
                .rule_ref(rule)
                .map(|r| r.to_string())
                .unwrap_or_default(),
        })
        .collect();
    if args.json {
        let out = OutputTest {
            service: &args.service,
            host,
            event: args.event,
            to,
        };
        let text = serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?;
        println!("{text}");
        return Ok(());
    }
    if to.is_empty() {
        println!(
            "{} on {host}: a successful run sends nothing (no rule with on_success = \"output\" matches)",
            args.service
        );
    } else {
        println!(
            "{} on {host}: a successful run's output goes to:",
            args.service
        );
        for t in &to {
            println!("  {}: through {}", t.notifier, t.rule);
        }
    }
    println!("(nothing was sent or written)");
    Ok(())
}

/// Runs the real routing and policy on a hypothetical event and prints the result.
pub(crate) fn test(engine: &Engine, args: &TestArgs) -> Result<(), String> {
    let router = engine.router();
    let at = match &args.at {
        Some(t) => router.parse_time(t)?,
        None => engine.now(),
    };
    if args.event == EventKind::Output {
        return test_output(engine, args, at);
    }
    let mut state = engine
        .store()
        .state(&args.service)
        .map_err(|e| alertcore::chain(&e))?
        .unwrap_or_default();
    let severity = args.severity.unwrap_or(Severity::Critical);
    let event = if args.event == EventKind::Recovery {
        Event::Success
    } else {
        Event::Failure(severity)
    };
    let assumed = matches!(args.event, EventKind::Reminder | EventKind::Escalation);
    let lasted = args.duration.or(assumed.then_some(ASSUMED_STREAK));
    if args.failures.is_some() || lasted.is_some() || assumed {
        let current = state.streak.as_ref();
        let failures = args
            .failures
            .map(|n| n.saturating_sub(1))
            .or(current.map(|s| s.failures))
            .unwrap_or(0)
            .max(u32::from(assumed));
        let started = lasted.map_or_else(
            || current.map_or(at, |s| s.started),
            |d| alertcore::Timestamp::from_millis(at.as_millis().saturating_sub(millis(d))),
        );
        let streak_severity = if args.event == EventKind::Escalation {
            Severity::Warning
        } else {
            current.map_or(severity, |s| s.max_severity)
        };
        state.assume_streak(failures, started, streak_severity);
        if assumed {
            state.assume_alerted(engine.notifier_names(), started);
        }
    }
    let host = args.host.as_deref().unwrap_or(engine.host());
    // the engine's own plan: rules, policy, flap detection, then silences, maintenance
    // windows, dependencies, inhibition and an acknowledgement, as a real event meets them
    let holds = engine
        .holds(Some(&args.service), at)
        .map_err(|e| alertcore::chain(&e))?;
    // what a real report would carry besides the result
    let report = (args.host.is_some() || args.trigger.is_some()).then(|| {
        let mut r = alertcore::FailureReport::new("");
        r.host.clone_from(&args.host);
        r.trigger = args.trigger;
        r
    });
    let plan = engine.plan(&args.service, &state, event, report.as_ref(), at, &holds);
    let streak = state.streak.as_ref();
    let failures = match event {
        Event::Failure(_) => streak.map_or(0, |s| s.failures) + 1,
        Event::Success | Event::Tick => streak.map_or(0, |s| s.failures),
    };
    let lasted_s = streak.map_or(0, |s| at.saturating_duration_since(s.started).as_secs());
    if args.json {
        let out = TestOutput {
            service: &args.service,
            host,
            event: args.event,
            severity: matches!(event, Event::Failure(_)).then_some(severity),
            at: router.local_time(at),
            timezone: router.timezone_name(),
            failures,
            streak_lasted_s: lasted_s,
            plan: &plan,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let what = match event {
        Event::Failure(s) => format!("{} ({s})", args.event),
        Event::Success => "recovery (a successful run)".to_owned(),
        Event::Tick => "no new run (a flush asking what is due)".to_owned(),
    };
    println!(
        "{} on {host}: {what} at {}; failure {failures} of the streak, which has lasted {}",
        args.service,
        router.local_time(at),
        alertcore::duration::format(Duration::from_secs(lasted_s)),
    );
    print!("{}", indent(&plan.explain(router)));
    println!("(nothing was sent or written)");
    Ok(())
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// Appends the explanation of one real event to `path`.
pub(crate) fn append_trace(
    path: &Path,
    engine: &Engine,
    what: &str,
    r: &Report,
) -> std::io::Result<()> {
    let text = format!(
        "{} {}: {what} on {} ({} in streak, sequence {})\n{}",
        engine.router().local_time(r.at),
        r.service,
        engine.host(),
        alertcore::transport::plural(r.failures, "failure"),
        r.sequence,
        indent(&explain(engine.router(), &r.rules, &r.decisions)),
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // one write, so concurrent handlers' entries do not interleave
    f.write_all(text.as_bytes())
}
