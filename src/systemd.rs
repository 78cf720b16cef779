//! What systemd tells a failure handler about the run that failed.
//!
//! systemd ≥ 251 sets `MONITOR_SERVICE_RESULT`, `MONITOR_EXIT_CODE`,
//! `MONITOR_EXIT_STATUS`, `MONITOR_INVOCATION_ID` and `MONITOR_UNIT` in the handler;
//! v250 set one `MONITOR_METADATA` variable instead. Neither is set when several units
//! trigger the same handler instance, nor on older systemd: then `systemctl show` is
//! asked, which may already describe a newer run under `Restart=`.

use std::process::{Command, Stdio};

use alertcore::FailureReport;

use crate::cli::FailureArgs;

/// What is known about the failed run: flags over MONITOR_* over `systemctl show`.
pub(crate) fn failure_report(
    args: &FailureArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> FailureReport {
    // an empty value is one the caller did not have (systemd leaves EXIT_STATUS unset
    // for some results, and a unit's ExecStopPost= passes "$EXIT_STATUS" as it is)
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let mut info = RunInfo {
        result: given(&args.result),
        exit_code: given(&args.exit_code),
        exit_status: given(&args.exit_status),
        invocation_id: given(&args.invocation_id),
    };
    if !info.is_complete() {
        info.fill(&from_monitor(&args.unit, env));
    }
    if info.result.is_none() {
        // Only when systemd told us nothing: it costs a process.
        info.fill(&from_systemctl(&args.unit));
    }
    let mut report = info.into_report();
    report.severity = args.severity;
    report.message = args.message.clone();
    report
}

/// The failure hidden in a success: systemd ≤ 253 starts the `OnSuccess=` handler on
/// every automatic restart of a failing unit, passing the failed run's result
/// (`MONITOR_SERVICE_RESULT=exit-code`). That run failed, and is recorded as such: as
/// one of a restart loop.
pub(crate) fn failure_in_success(
    unit: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<FailureReport> {
    let info = from_monitor(unit, env);
    match info.result.as_deref() {
        Some(result) if result != "success" => Some(info.into_report().restarting(true)),
        _ => None,
    }
}

/// The invocation id of the run the `OnSuccess=` handler was started for: systemd's
/// variables, else what `systemctl show` says of the unit's latest run.
pub(crate) fn run_id(unit: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    from_monitor(unit, env)
        .invocation_id
        .or_else(|| from_systemctl(unit).invocation_id)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct RunInfo {
    result: Option<String>,
    exit_code: Option<String>,
    exit_status: Option<String>,
    invocation_id: Option<String>,
}

impl RunInfo {
    fn is_complete(&self) -> bool {
        self.result.is_some()
            && self.exit_code.is_some()
            && self.exit_status.is_some()
            && self.invocation_id.is_some()
    }

    fn into_report(self) -> FailureReport {
        let mut report = FailureReport::new(self.result.unwrap_or_else(|| "unknown".to_owned()));
        report.exit_code = self.exit_code;
        report.exit_status = self.exit_status;
        report.invocation_id = self.invocation_id;
        report
    }

    fn fill(&mut self, other: &RunInfo) {
        let fill = |a: &mut Option<String>, b: &Option<String>| {
            if a.is_none() {
                a.clone_from(b);
            }
        };
        fill(&mut self.result, &other.result);
        fill(&mut self.exit_code, &other.exit_code);
        fill(&mut self.exit_status, &other.exit_status);
        fill(&mut self.invocation_id, &other.invocation_id);
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn from_monitor(unit: &str, env: &dyn Fn(&str) -> Option<String>) -> RunInfo {
    // The variables describe the triggering unit; ignore them if they name another.
    let monitor_unit = non_empty(env("MONITOR_UNIT"));
    if monitor_unit.as_deref().is_none_or(|u| u == unit) {
        let info = RunInfo {
            result: non_empty(env("MONITOR_SERVICE_RESULT")),
            exit_code: non_empty(env("MONITOR_EXIT_CODE")),
            exit_status: non_empty(env("MONITOR_EXIT_STATUS")),
            invocation_id: non_empty(env("MONITOR_INVOCATION_ID")),
        };
        if info != RunInfo::default() {
            return info;
        }
    }
    non_empty(env("MONITOR_METADATA"))
        .map(|m| parse_metadata(&m, unit))
        .unwrap_or_default()
}

/// systemd 250: `SERVICE_RESULT=..,EXIT_CODE=..,EXIT_STATUS=..,INVOCATION_ID=..,UNIT=..`,
/// several units separated by `;`. Takes the entry for `unit` (or the only one).
fn parse_metadata(metadata: &str, unit: &str) -> RunInfo {
    let entries: Vec<&str> = metadata.split(';').filter(|e| !e.is_empty()).collect();
    let pick = entries
        .iter()
        .find(|e| e.split(',').any(|kv| kv == format!("UNIT={unit}")))
        .or_else(|| (entries.len() == 1).then(|| &entries[0]));
    let mut info = RunInfo::default();
    for kv in pick.map(|e| e.split(',')).into_iter().flatten() {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let v = non_empty(Some(v.to_owned()));
        match k {
            "SERVICE_RESULT" => info.result = v,
            "EXIT_CODE" => info.exit_code = v,
            "EXIT_STATUS" => info.exit_status = v,
            "INVOCATION_ID" => info.invocation_id = v,
            _ => {}
        }
    }
    info
}

fn from_systemctl(unit: &str) -> RunInfo {
    let out = Command::new("systemctl")
        .args([
            "show",
            "-p",
            "Result,ExecMainCode,ExecMainStatus,InvocationID",
            "--",
        ])
        .arg(unit)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => parse_show(&String::from_utf8_lossy(&o.stdout)),
        _ => RunInfo::default(),
    }
}

fn parse_show(text: &str) -> RunInfo {
    let mut info = RunInfo::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = non_empty(Some(v.to_owned()));
        match k {
            "Result" => info.result = v,
            // siginfo's si_code: CLD_EXITED = 1, CLD_KILLED = 2, CLD_DUMPED = 3
            "ExecMainCode" => {
                info.exit_code = match v.as_deref() {
                    Some("1") => Some("exited".to_owned()),
                    Some("2") => Some("killed".to_owned()),
                    Some("3") => Some("dumped".to_owned()),
                    _ => None,
                }
            }
            "ExecMainStatus" => info.exit_status = v,
            "InvocationID" => info.invocation_id = v,
            _ => {}
        }
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(unit: &str) -> FailureArgs {
        FailureArgs {
            unit: unit.to_owned(),
            result: None,
            exit_code: None,
            exit_status: None,
            invocation_id: None,
            severity: None,
            message: None,
        }
    }

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn monitor_variables_fill_and_flags_override() {
        let env = env_of(&[
            ("MONITOR_SERVICE_RESULT", "exit-code"),
            ("MONITOR_EXIT_CODE", "exited"),
            ("MONITOR_EXIT_STATUS", "3"),
            ("MONITOR_INVOCATION_ID", "abc"),
            ("MONITOR_UNIT", "demo.service"),
        ]);
        let mut a = args("demo.service");
        a.exit_status = Some("7".to_owned());
        let r = failure_report(&a, &env);
        assert_eq!(r.service_result, "exit-code");
        assert_eq!(r.exit_code.as_deref(), Some("exited"));
        assert_eq!(r.exit_status.as_deref(), Some("7"));
        assert_eq!(r.invocation_id.as_deref(), Some("abc"));
    }

    /// As a unit's `ExecStopPost=` passes them: `$EXIT_STATUS` may be unset, so empty.
    #[test]
    fn empty_flags_count_as_not_given() {
        let env = env_of(&[
            ("MONITOR_SERVICE_RESULT", "exit-code"),
            ("MONITOR_EXIT_STATUS", "3"),
            ("MONITOR_UNIT", "demo.service"),
        ]);
        let mut a = args("demo.service");
        a.result = Some("watchdog".to_owned());
        a.exit_status = Some(String::new());
        let r = failure_report(&a, &env);
        assert_eq!(r.service_result, "watchdog");
        assert_eq!(r.exit_status.as_deref(), Some("3"));
    }

    #[test]
    fn monitor_variables_of_another_unit_are_ignored() {
        let env = env_of(&[
            ("MONITOR_SERVICE_RESULT", "exit-code"),
            ("MONITOR_UNIT", "other.service"),
        ]);
        let mut a = args("demo.service");
        a.result = Some("timeout".to_owned());
        assert_eq!(failure_report(&a, &env).service_result, "timeout");
    }

    #[test]
    fn a_success_handler_told_of_a_failed_run_reports_a_failure() {
        let restart = env_of(&[
            ("MONITOR_SERVICE_RESULT", "exit-code"),
            ("MONITOR_EXIT_CODE", "exited"),
            ("MONITOR_EXIT_STATUS", "3"),
            ("MONITOR_UNIT", "demo.service"),
        ]);
        let r = failure_in_success("demo.service", &restart).expect("a failure");
        assert_eq!(r.exit_status.as_deref(), Some("3"));
        assert!(r.restarting, "only an automatic restart runs it so");
        assert!(failure_in_success("other.service", &restart).is_none());
        let ok = env_of(&[("MONITOR_SERVICE_RESULT", "success")]);
        assert!(failure_in_success("demo.service", &ok).is_none());
        assert!(failure_in_success("demo.service", &env_of(&[])).is_none());
    }

    #[test]
    fn v250_metadata_is_parsed() {
        let m = "SERVICE_RESULT=signal,EXIT_CODE=killed,EXIT_STATUS=TERM,INVOCATION_ID=x1,UNIT=a.service;\
                 SERVICE_RESULT=exit-code,EXIT_CODE=exited,EXIT_STATUS=2,INVOCATION_ID=x2,UNIT=b.service";
        let info = parse_metadata(m, "b.service");
        assert_eq!(info.result.as_deref(), Some("exit-code"));
        assert_eq!(info.exit_status.as_deref(), Some("2"));
        assert_eq!(parse_metadata(m, "c.service"), RunInfo::default());
    }

    #[test]
    fn systemctl_show_output_is_parsed() {
        let info = parse_show("Result=signal\nExecMainCode=2\nExecMainStatus=9\nInvocationID=ff\n");
        assert_eq!(info.result.as_deref(), Some("signal"));
        assert_eq!(info.exit_code.as_deref(), Some("killed"));
        assert_eq!(info.exit_status.as_deref(), Some("9"));
        assert_eq!(info.invocation_id.as_deref(), Some("ff"));
    }
}
