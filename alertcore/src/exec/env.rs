//! The environment an alert agent gets: `ALERTCORE_*` and Pacemaker's `CRM_alert_*` /
//! `CRM_notify_*` variables.
//!
//! Everything about the alert reaches the agent here, as data: nothing is ever put on its
//! command line or through a shell. A NUL byte cannot be in an environment variable, so
//! one in the data (a service name, a message) is dropped rather than failing the run.

use jiff::tz::TimeZone;

use crate::alert::{EventKind, Failure};
use crate::error::NotifyError;
use crate::notification::Notification;
use crate::template::Context;
use crate::template::timestamp::TimestampFormat;

/// Names the agent's own `env` attributes may not take: ours.
pub(crate) const RESERVED_PREFIXES: [&str; 3] = ["ALERTCORE_", "CRM_alert_", "CRM_notify_"];

/// Pacemaker's op-status codes (`enum pcmk_exec_status`) that we use.
mod op_status {
    /// The operation completed (its `rc` says how).
    pub(super) const DONE: i32 = 0;
    /// The operation timed out.
    pub(super) const TIMEOUT: i32 = 2;
    /// The operation failed for a reason other than its result code.
    pub(super) const ERROR: i32 = 4;
}

/// How a failure looks as the result of a Pacemaker resource operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// `CRM_alert_rc`: the exit status, or 1 (OCF "generic error") when there is none.
    pub(crate) rc: i32,
    /// `CRM_alert_status`: Pacemaker's op-status number.
    pub(crate) status: i32,
    /// `CRM_alert_desc`: a readable outcome.
    pub(crate) desc: String,
}

/// Maps an alert to a Pacemaker resource-operation outcome.
///
/// * recovery: rc 0, status 0 (done), desc `OK`;
/// * `Result=exit-code`: status 0 (done: the service ran and returned `rc`);
/// * `Result=timeout`: status 2 (timed out);
/// * any other result (`signal`, `core-dump`, `watchdog`, `oom-kill`, ...): status 4 (error);
///
/// with `rc` the numeric exit status (1 when it is a signal name or missing) and `desc`
/// the result with its status, e.g. `exit-code, status=1`.
pub(crate) fn outcome(event: EventKind, last: Option<&Failure>) -> Outcome {
    let Some(f) = last.filter(|_| event.is_failure()) else {
        return Outcome {
            rc: 0,
            status: op_status::DONE,
            desc: "OK".to_owned(),
        };
    };
    let rc = f
        .exit_status
        .as_deref()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|rc| *rc != 0)
        .unwrap_or(1);
    let status = match f.service_result.as_str() {
        "exit-code" => op_status::DONE,
        "timeout" => op_status::TIMEOUT,
        _ => op_status::ERROR,
    };
    Outcome {
        rc,
        status,
        desc: f.summary(),
    }
}

/// The variables describing one alert (all but the recipient), in a fixed order.
///
/// # Errors
/// When the format's subject or body template fails.
pub(crate) fn alert_vars(
    n: &Notification,
    ctx: &Context<'_>,
    format: &TimestampFormat,
    tz: &TimeZone,
) -> Result<Vec<(String, String)>, NotifyError> {
    let last = n.last_failure();
    let field = |f: fn(&Failure) -> Option<&str>| last.and_then(f).unwrap_or_default().to_owned();
    let ms = n.time.as_millis();
    let timestamp = format.format(n.time, tz).unwrap_or_else(|e| {
        // Only a timestamp outside jiff's range gets here; Pacemaker, too, leaves the
        // variable empty when formatting fails.
        tracing::warn!(notifier = ctx.notifier, error = %e, "cannot format the alert timestamp");
        String::new()
    });
    let out = outcome(n.event, last);
    let (subject, body) = ctx.format.subject_and_body(n, ctx)?;

    let mut vars = vec![
        ("ALERTCORE_VERSION", env!("CARGO_PKG_VERSION").to_owned()),
        ("ALERTCORE_EVENT", n.event.as_str().to_owned()),
        ("ALERTCORE_SERVICE", n.service.clone()),
        ("ALERTCORE_HOST", n.host.to_owned()),
        ("ALERTCORE_NOTIFIER", ctx.notifier.to_owned()),
        (
            "ALERTCORE_SEVERITY",
            last.map(|f| f.severity.as_str().to_owned())
                .unwrap_or_default(),
        ),
        ("ALERTCORE_RESULT", field(|f| Some(&f.service_result))),
        ("ALERTCORE_EXIT_CODE", field(|f| f.exit_code.as_deref())),
        ("ALERTCORE_EXIT_STATUS", field(|f| f.exit_status.as_deref())),
        (
            "ALERTCORE_INVOCATION_ID",
            field(|f| f.invocation_id.as_deref()),
        ),
        ("ALERTCORE_MESSAGE", field(|f| f.message.as_deref())),
        ("ALERTCORE_SUBJECT", subject),
        ("ALERTCORE_BODY", body),
        ("ALERTCORE_TIMESTAMP", n.time.to_string()),
        ("ALERTCORE_TIMESTAMP_MS", ms.to_string()),
        ("ALERTCORE_SEQUENCE", n.sequence.to_string()),
        ("ALERTCORE_STREAK_LENGTH", n.failures.len().to_string()),
        ("ALERTCORE_STREAK_START", n.streak_start.to_string()),
        ("ALERTCORE_INCIDENT_ID", n.incident_id()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect::<Vec<_>>();

    let crm = [
        ("kind", "resource".to_owned()),
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("node", n.host.to_owned()),
        ("node_sequence", n.sequence.to_string()),
        ("timestamp", timestamp),
        ("timestamp_epoch", ms.div_euclid(1000).to_string()),
        ("timestamp_usec", (ms.rem_euclid(1000) * 1000).to_string()),
        ("rsc", n.service.clone()),
        ("task", "monitor".to_owned()),
        ("interval", "0".to_owned()),
        ("desc", out.desc),
        ("rc", out.rc.to_string()),
        ("status", out.status.to_string()),
        ("target_rc", "0".to_owned()),
    ];
    for prefix in ["CRM_alert_", "CRM_notify_"] {
        vars.extend(crm.iter().map(|(k, v)| (format!("{prefix}{k}"), v.clone())));
    }
    for (_, v) in &mut vars {
        strip_nul(v);
        if v.len() > MAX_VALUE_BYTES {
            *v = crate::template::cut(v, MAX_VALUE_BYTES);
        }
    }
    Ok(vars)
}

/// The longest value passed: Linux refuses to start a program with one environment
/// string over 128 KiB (`E2BIG`), and all of them together must fit in a quarter of the
/// stack limit; a 64 KiB unit name or message must not make the agent unstartable.
pub(crate) const MAX_VALUE_BYTES: usize = 32 * 1024;

/// The variables naming the recipient of one run.
pub(crate) fn recipient_vars(recipient: &str) -> [(String, String); 3] {
    let mut r = recipient.to_owned();
    strip_nul(&mut r);
    [
        ("ALERTCORE_RECIPIENT".to_owned(), r.clone()),
        ("CRM_alert_recipient".to_owned(), r.clone()),
        ("CRM_notify_recipient".to_owned(), r),
    ]
}

fn strip_nul(s: &mut String) {
    if s.contains('\0') {
        s.retain(|c| c != '\0');
    }
}

/// Whether `name` can be an environment variable name we pass on: a shell-style
/// identifier (`[A-Za-z_][A-Za-z0-9_]*`), so agents written in sh can read it.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` is one of the variables alertcore sets itself.
pub(crate) fn is_reserved(name: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::alert::{FailureReport, Severity, Timestamp};

    const NOW: Timestamp = Timestamp::from_millis(1_234_567_890_123);

    fn failure(result: &str, status: Option<&str>) -> Failure {
        let mut r = FailureReport::new(result)
            .exit_code("exited")
            .invocation_id("abc")
            .severity(Severity::Warning)
            .message("disk full");
        if let Some(s) = status {
            r = r.exit_status(s);
        }
        Failure::from_report(&r, "web1", Timestamp::from_millis(0))
    }

    fn vars(service: &str, failures: &[Failure], event: EventKind) -> BTreeMap<String, String> {
        let ctx = Context::new("agents");
        let n = Notification::new(service, event, "web1")
            .failures(failures)
            .sequence(42)
            .streak(7, Timestamp::from_millis(1000))
            .time(NOW);
        let format = TimestampFormat::parse("%H:%M:%S.%06N").unwrap();
        let list = alert_vars(&n, &ctx, &format, &TimeZone::UTC).unwrap();
        let n = list.len();
        let map: BTreeMap<_, _> = list.into_iter().collect();
        assert_eq!(map.len(), n, "no variable is set twice");
        map
    }

    #[test]
    fn failure_sets_ours_and_pacemakers() {
        let v = vars(
            "backup.service",
            &[failure("exit-code", Some("3"))],
            EventKind::Failure,
        );
        let want = [
            ("ALERTCORE_EVENT", "failure"),
            ("ALERTCORE_SERVICE", "backup.service"),
            ("ALERTCORE_HOST", "web1"),
            ("ALERTCORE_NOTIFIER", "agents"),
            ("ALERTCORE_SEVERITY", "warning"),
            ("ALERTCORE_RESULT", "exit-code"),
            ("ALERTCORE_EXIT_CODE", "exited"),
            ("ALERTCORE_EXIT_STATUS", "3"),
            ("ALERTCORE_INVOCATION_ID", "abc"),
            ("ALERTCORE_MESSAGE", "disk full"),
            (
                "ALERTCORE_SUBJECT",
                "[web1] FAILED: backup.service (exit-code, status=3)",
            ),
            ("ALERTCORE_TIMESTAMP", "2009-02-13T23:31:30Z"),
            ("ALERTCORE_TIMESTAMP_MS", "1234567890123"),
            ("ALERTCORE_SEQUENCE", "42"),
            ("ALERTCORE_STREAK_LENGTH", "1"),
            ("ALERTCORE_STREAK_START", "1970-01-01T00:00:01Z"),
            ("ALERTCORE_INCIDENT_ID", "1000.7.backup_2eservice.web1"),
            ("CRM_alert_kind", "resource"),
            ("CRM_alert_node", "web1"),
            ("CRM_alert_node_sequence", "42"),
            ("CRM_alert_timestamp", "23:31:30.123000"),
            ("CRM_alert_timestamp_epoch", "1234567890"),
            ("CRM_alert_timestamp_usec", "123000"),
            ("CRM_alert_rsc", "backup.service"),
            ("CRM_alert_task", "monitor"),
            ("CRM_alert_interval", "0"),
            ("CRM_alert_desc", "exit-code, status=3"),
            ("CRM_alert_rc", "3"),
            ("CRM_alert_status", "0"),
            ("CRM_alert_target_rc", "0"),
            ("CRM_alert_version", env!("CARGO_PKG_VERSION")),
        ];
        for (k, want) in want {
            assert_eq!(v.get(k).map(String::as_str), Some(want), "{k}");
        }
        // every CRM_alert_ variable has its CRM_notify_ twin
        for (k, val) in v.iter().filter(|(k, _)| k.starts_with("CRM_alert_")) {
            let twin = k.replace("CRM_alert_", "CRM_notify_");
            assert_eq!(v.get(&twin), Some(val), "{twin}");
        }
    }

    #[test]
    fn recovery_is_ok_with_rc_0() {
        let v = vars(
            "db",
            &[failure("timeout", None), failure("signal", Some("KILL"))],
            EventKind::Recovery,
        );
        assert_eq!(v["CRM_alert_desc"], "OK");
        assert_eq!(v["CRM_alert_rc"], "0");
        assert_eq!(v["CRM_alert_status"], "0");
        assert_eq!(v["ALERTCORE_EVENT"], "recovery");
        assert_eq!(v["ALERTCORE_STREAK_LENGTH"], "2");
        assert_eq!(
            v["ALERTCORE_SUBJECT"],
            "[web1] RECOVERED: db (after 2 failures)"
        );
        // the fields of the last failure of the streak that ended
        assert_eq!(v["ALERTCORE_RESULT"], "signal");
    }

    #[test]
    fn outcome_maps_systemd_results() {
        let cases = [
            ("exit-code", Some("2"), 2, 0, "exit-code, status=2"),
            ("exit-code", None, 1, 0, "exit-code"),
            ("exit-code", Some("0"), 1, 0, "exit-code, status=0"),
            ("timeout", None, 1, 2, "timeout"),
            ("signal", Some("TERM"), 1, 4, "signal, status=TERM"),
            ("core-dump", Some("SEGV"), 1, 4, "core-dump, status=SEGV"),
            ("oom-kill", Some("9"), 9, 4, "oom-kill, status=9"),
        ];
        for (result, status, rc, op, desc) in cases {
            let f = failure(result, status);
            let o = outcome(EventKind::Failure, Some(&f));
            assert_eq!(
                o,
                Outcome {
                    rc,
                    status: op,
                    desc: desc.to_owned()
                },
                "{result} {status:?}"
            );
        }
        assert_eq!(outcome(EventKind::Reminder, None).desc, "OK");
    }

    #[test]
    fn hostile_data_is_passed_verbatim_minus_nul() {
        let service = "x; rm -rf / $(touch pwned) `id` \"'\n\0end";
        let v = vars(
            service,
            &[failure("exit-code", Some("1"))],
            EventKind::Failure,
        );
        assert_eq!(
            v["ALERTCORE_SERVICE"],
            "x; rm -rf / $(touch pwned) `id` \"'\nend"
        );
        assert_eq!(v["CRM_alert_rsc"], v["ALERTCORE_SERVICE"]);
        let [(_, a), (_, b), (_, c)] = recipient_vars("a\0b");
        assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("ab", "ab", "ab"));
    }

    #[test]
    fn huge_values_are_cut_to_a_startable_size() {
        let long = "x".repeat(200_000);
        let v = vars(
            &long,
            &[failure("exit-code", Some("1"))],
            EventKind::Failure,
        );
        assert!(
            v.values().all(|x| x.len() <= MAX_VALUE_BYTES),
            "a value is too long"
        );
        assert!(v["ALERTCORE_SERVICE"].starts_with("xxx"));
    }

    #[test]
    fn names() {
        for ok in ["a", "_x", "email_sender", "PATH", "A1"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a=b", "a b", "é", "a\0"] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
        assert!(is_reserved("CRM_alert_kind") && is_reserved("ALERTCORE_X"));
        assert!(!is_reserved("CRM_alertx") && !is_reserved("debug_exec_order"));
    }
}
