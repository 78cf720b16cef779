//! The built-in `exec` notifier: runs external alert agents, compatible with Pacemaker's.
//! The user-facing description is on [`ExecNotifier`].

mod env;
mod run;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use jiff::tz::TimeZone;
use serde::{Deserialize, Deserializer};
use tokio::sync::Semaphore;

use crate::duration;
use crate::error::BuildError;
use crate::error::{NotifyError, chain};
use crate::message::one_line;
use crate::notification::Notification;
use crate::notifier::{Notifier, NotifierFactory};
use crate::table::Table;
use crate::template::Context;

use self::run::{Captured, Ended, Finished};
use crate::template::timestamp::{self, TimestampFormat};

/// The longest `timeout` an agent may be given.
const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `type = "exec"`.
pub const FACTORY: NotifierFactory = NotifierFactory {
    kind: "exec",
    build: |table| {
        ExecConfig::from_table(table)?
            .build()
            .map(|n| Arc::new(n) as Arc<dyn Notifier>)
    },
};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_CONCURRENCY: usize = 4;
const DEFAULT_INHERIT_ENV: [&str; 5] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ"];
/// `PATH` for an agent when alertcore's own is not passed on.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How much of each of stdout and stderr goes into a recorded error.
const MAX_OUTPUT_IN_ERROR: usize = 1000;

/// The configuration of an [`ExecNotifier`]: `[notifiers.NAME] type = "exec"`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    #[serde(deserialize_with = "deserialize_command")]
    command: Vec<String>,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default = "default_timeout", with = "duration")]
    timeout: Duration,
    #[serde(default = "default_max_concurrency")]
    max_concurrency: usize,
    #[serde(default, deserialize_with = "deserialize_env")]
    env: BTreeMap<String, String>,
    #[serde(default = "default_inherit_env")]
    inherit_env: Vec<String>,
    #[serde(default)]
    timezone: Option<String>,
}

fn default_timeout() -> Duration {
    DEFAULT_TIMEOUT
}

fn default_max_concurrency() -> usize {
    DEFAULT_MAX_CONCURRENCY
}

fn default_inherit_env() -> Vec<String> {
    DEFAULT_INHERIT_ENV.map(str::to_owned).to_vec()
}

/// Pacemaker's `timestamp-format`, for `CRM_alert_timestamp` when the format sets none.
static PACEMAKER_TIMESTAMP: std::sync::LazyLock<TimestampFormat> = std::sync::LazyLock::new(|| {
    TimestampFormat::parse(timestamp::DEFAULT).expect("Pacemaker's default timestamp format parses")
});

impl fmt::Debug for ExecConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `env` values are the agent's settings and may be secrets: names only.
        f.debug_struct("ExecConfig")
            .field("command", &self.command)
            .field("recipients", &self.recipients)
            .field("timeout", &self.timeout)
            .field("max_concurrency", &self.max_concurrency)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("inherit_env", &self.inherit_env)
            .field("timezone", &self.timezone)
            .finish_non_exhaustive()
    }
}

/// `command`: an array of the program and its arguments.
fn deserialize_command<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let argv = Vec::<String>::deserialize(d).map_err(|_| {
        serde::de::Error::custom(
            "`command` must be an array of the program and its arguments (run without a \
             shell), e.g. [\"/usr/local/bin/agent.sh\"]",
        )
    })?;
    if argv.first().is_none_or(String::is_empty) {
        return Err(serde::de::Error::custom("`command` must name a program"));
    }
    Ok(argv)
}

/// `env`: a table of strings; numbers and booleans are taken as their text, as
/// Pacemaker's instance attributes are all strings.
fn deserialize_env<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        String(String),
        Integer(i64),
        Float(f64),
        Bool(bool),
    }
    let table = BTreeMap::<String, Scalar>::deserialize(d).map_err(|_| {
        serde::de::Error::custom("`env` must be a table of names to strings, numbers or booleans")
    })?;
    Ok(table
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::String(s) => s,
                Scalar::Integer(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

impl ExecConfig {
    /// A config running `command` (the program and its arguments), everything else at
    /// its default.
    pub fn new<I, S>(command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: command.into_iter().map(Into::into).collect(),
            recipients: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
            env: BTreeMap::new(),
            inherit_env: default_inherit_env(),
            timezone: None,
        }
    }

    /// Reads a `[notifiers.NAME]` table (its `type` key is ignored).
    ///
    /// # Errors
    /// A [`BuildError`] naming the key for unknown keys and values of the wrong type.
    pub fn from_table(table: &Table) -> Result<Self, BuildError> {
        table.deserialize()
    }

    /// `recipients`: adds a recipient; the agent runs once per recipient.
    pub fn recipient(mut self, recipient: impl Into<String>) -> Self {
        self.recipients.push(recipient.into());
        self
    }

    /// `timeout`: the limit for one run of the agent (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `max_concurrency`: how many runs of this notifier's agent may be under way at
    /// once, across all alerts (default 4).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n;
        self
    }

    /// `env`: sets an attribute passed to the agent as an environment variable, as
    /// Pacemaker passes instance attributes.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// `inherit_env`: the variables of alertcore's own environment passed on to the
    /// agent when set (default `PATH`, `HOME`, `LANG`, `LC_ALL`, `TZ`).
    pub fn inherit_env<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inherit_env = names.into_iter().map(Into::into).collect();
        self
    }

    /// `timezone`: the zone `CRM_alert_timestamp` is written in, `UTC` or an IANA name
    /// such as `Europe/Paris`; default the system's local zone, as Pacemaker does.
    pub fn timezone(mut self, zone: impl Into<String>) -> Self {
        self.timezone = Some(zone.into());
        self
    }

    /// Checks the config and builds the notifier.
    ///
    /// # Errors
    /// A [`BuildError`] naming the key: an empty command, a zero timeout or concurrency,
    /// a bad or reserved `env` name, a NUL byte in a value, an unknown `strftime`
    /// conversion or time zone.
    pub fn build(self) -> Result<ExecNotifier, BuildError> {
        if self.command.first().is_none_or(String::is_empty) {
            return Err(BuildError::key("command", "`command` must name a program"));
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err(BuildError::key("command", "`command` contains a NUL byte"));
        }
        if self.recipients.iter().any(|r| r.contains('\0')) {
            return Err(BuildError::key(
                "recipients",
                "`recipients` contains a NUL byte",
            ));
        }
        if self.timeout.is_zero() {
            return Err(BuildError::key("timeout", "`timeout` must be more than 0s"));
        }
        if self.timeout > MAX_TIMEOUT {
            return Err(BuildError::key(
                "timeout",
                format!(
                    "`timeout` must be at most {} (an agent that runs longer holds the handler)",
                    crate::duration::format(MAX_TIMEOUT)
                ),
            ));
        }
        if self.max_concurrency == 0 {
            return Err(BuildError::key(
                "max_concurrency",
                "`max_concurrency` must be at least 1",
            ));
        }
        for (name, value) in &self.env {
            if !env::is_valid_name(name) {
                return Err(BuildError::key(
                    "env",
                    format!("`env`: {name:?} is not a variable name (letters, digits, _)"),
                ));
            }
            if env::is_reserved(name) {
                return Err(BuildError::key(
                    "env",
                    format!(
                        "`env`: {name:?} is set by alertcore (names starting with {} are reserved)",
                        env::RESERVED_PREFIXES.join(", ")
                    ),
                ));
            }
            if value.contains('\0') {
                return Err(BuildError::key(
                    "env",
                    format!("`env`: the value of {name:?} contains a NUL byte"),
                ));
            }
        }
        if let Some(bad) = self.inherit_env.iter().find(|n| !env::is_valid_name(n)) {
            return Err(BuildError::key(
                "inherit_env",
                format!("`inherit_env`: {bad:?} is not a variable name"),
            ));
        }
        let timezone = match self.timezone.as_deref() {
            None => None,
            Some("UTC") => Some(TimeZone::UTC),
            Some(name) => Some(TimeZone::get(name).map_err(|e| {
                BuildError::key(
                    "timezone",
                    format!("`timezone`: unknown zone {name:?}: {e}"),
                )
            })?),
        };
        Ok(ExecNotifier {
            limit: Arc::new(Semaphore::new(self.max_concurrency)),
            timezone,
            config: self,
        })
    }
}

/// Runs an external alert agent per recipient: `type = "exec"`.
///
/// ```toml
/// [notifiers.agents]
/// type = "exec"
/// command = ["/usr/local/lib/alertcore/alert_file.sh"]   # argv; no shell
/// recipients = ["/var/log/alerts.log"]                     # one run each; none: one run
/// timeout = "30s"
/// max_concurrency = 4
/// timestamp_format = "%H:%M:%S.%06N"                      # CRM_alert_timestamp (a format key)
/// timezone = "UTC"                                         # default: the local zone
/// env = { debug_exec_order = "false" }                     # the agent's attributes
/// inherit_env = ["PATH", "HOME", "LANG", "LC_ALL", "TZ"]  # passed on from ours
/// ```
///
/// The agent runs once per recipient (with none, once with an empty recipient, as
/// Pacemaker does), at most `max_concurrency` at a time per notifier, each within
/// `timeout`: on expiry the agent and its process group are killed with SIGKILL and that
/// delivery fails, retryably. The alert reaches the agent only as environment variables
/// (`ALERTCORE_*` and Pacemaker's `CRM_alert_*` / `CRM_notify_*`, listed below);
/// the command line is exactly `command`, never run through a shell, so no service name or
/// message can inject anything.
///
/// The agent's environment is *not* alertcore's: it starts empty, then gets the variables
/// named in `inherit_env` that are set in alertcore's environment (default `PATH`, `HOME`,
/// `LANG`, `LC_ALL`, `TZ`; `PATH` falls back to a standard system path), then the `env`
/// attributes, then ours. Pacemaker hands agents the cluster daemon's environment; ours may
/// hold secrets (an SMTP password in a `*_env` variable), which an agent has no business
/// seeing. Name what an agent needs in `inherit_env`, or set it in `env`.
///
/// # The agent's environment
///
/// Besides `inherit_env` and `env`, each run gets:
///
/// | variable | value |
/// |---|---|
/// | `ALERTCORE_VERSION` | alertcore's version |
/// | `ALERTCORE_EVENT` | `failure`, `reminder`, `escalation` or `recovery` |
/// | `ALERTCORE_SERVICE`, `ALERTCORE_HOST` | the service and the host |
/// | `ALERTCORE_NOTIFIER` | the notifier's name (`[notifiers.NAME]`) |
/// | `ALERTCORE_SEVERITY` | `warning` or `critical` |
/// | `ALERTCORE_RESULT`, `ALERTCORE_EXIT_CODE`, `ALERTCORE_EXIT_STATUS`, `ALERTCORE_INVOCATION_ID`, `ALERTCORE_MESSAGE` | of the latest failure of the streak (on recovery: of the streak that ended); empty when unknown |
/// | `ALERTCORE_SUBJECT` | the format's subject: `[web1] FAILED: backup.service (exit-code, status=1)` |
/// | `ALERTCORE_BODY` | the format's body (several lines; `full` has no journal excerpt here) |
/// | `ALERTCORE_RECIPIENT` | this run's recipient (empty with none configured) |
/// | `ALERTCORE_TIMESTAMP`, `ALERTCORE_TIMESTAMP_MS` | when the event was processed: RFC 3339 (UTC), Unix milliseconds |
/// | `ALERTCORE_SEQUENCE` | the per-host sequence number of the alert event |
/// | `ALERTCORE_STREAK_LENGTH`, `ALERTCORE_STREAK_START` | failures in the streak, and when it started |
/// | `ALERTCORE_INCIDENT_ID` | the same for the first alert, its reminders and its recovery |
///
/// and Pacemaker's resource-alert variables, each also as `CRM_notify_*`:
///
/// | variable | value |
/// |---|---|
/// | `CRM_alert_kind` | `resource` |
/// | `CRM_alert_version` | alertcore's version (agents only test that it is set) |
/// | `CRM_alert_recipient` | this run's recipient |
/// | `CRM_alert_node` | the host |
/// | `CRM_alert_node_sequence` | the sequence number, as `ALERTCORE_SEQUENCE` |
/// | `CRM_alert_timestamp` | the event time in the format's `timestamp_format` (default Pacemaker's `%H:%M:%S.%06N`) and `timezone` |
/// | `CRM_alert_timestamp_epoch`, `CRM_alert_timestamp_usec` | the same time as seconds and microseconds |
/// | `CRM_alert_rsc` | the service |
/// | `CRM_alert_task` | always `monitor`: a failed service is a failed health check |
/// | `CRM_alert_interval` | `0` |
/// | `CRM_alert_desc` | the result and exit status (`exit-code, status=1`); `OK` on recovery |
/// | `CRM_alert_rc` | the numeric exit status (`1` when it was a signal or unknown); `0` on recovery |
/// | `CRM_alert_status` | Pacemaker's op-status: `0` (done) for `exit-code` and recovery, `2` (timed out) for `timeout`, `4` (error) for any other result (`signal`, `core-dump`, `oom-kill`, ...) |
/// | `CRM_alert_target_rc` | `0` |
///
/// So Pacemaker's sample `alert_file.sh` writes
/// `12:00:00.000000: Resource operation 'monitor' for 'backup.service' on 'web1': exit-code, status=1`.
///
/// # Outcome
///
/// Exit status 0 is success. Any other exit fails the delivery with the agent's output
/// (first 1000 characters of stderr and stdout) in the error, and is retryable, except
/// 126 and 127 (the shell's "not executable" and "not found"), which a retry cannot fix;
/// so is a command that cannot be started for lack of the file or permission. stdout and
/// stderr are captured (the first 64 KiB of each) and logged through `tracing`.
pub struct ExecNotifier {
    config: ExecConfig,
    timezone: Option<TimeZone>,
    limit: Arc<Semaphore>,
}

impl fmt::Debug for ExecNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecNotifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ExecNotifier {
    /// The full environment of one run, sorted by name.
    fn environment(&self, alert: &[(String, String)], recipient: &str) -> Vec<(String, OsString)> {
        let mut vars: BTreeMap<String, OsString> = self
            .config
            .inherit_env
            .iter()
            .filter_map(|name| std::env::var_os(name).map(|v| (name.clone(), v)))
            .collect();
        vars.entry("PATH".to_owned())
            .or_insert_with(|| DEFAULT_PATH.into());
        let ours = alert.iter().cloned().chain(env::recipient_vars(recipient));
        for (k, v) in self.config.env.clone().into_iter().chain(ours) {
            vars.insert(k, v.into());
        }
        vars.into_iter().collect()
    }

    async fn deliver(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        let tz = self.timezone.clone().unwrap_or_else(TimeZone::system);
        let timestamp = ctx.format.timestamp().unwrap_or(&PACEMAKER_TIMESTAMP);
        let alert = env::alert_vars(n, ctx, timestamp, &tz)?;
        let recipients: Vec<&str> = if self.config.recipients.is_empty() {
            vec![""]
        } else {
            self.config.recipients.iter().map(String::as_str).collect()
        };
        let runs = recipients.iter().map(|&recipient| {
            let env = self.environment(&alert, recipient);
            async move {
                // The semaphore is never closed; without a permit we would still run.
                let _permit = self.limit.acquire().await.ok();
                let result = run::run(&self.config.command, &env, self.config.timeout)
                    .await
                    .and_then(|f| self.judge(f, ctx, &n.service, recipient));
                (recipient, result)
            }
        });
        let results = join_all(runs).await;
        let total = results.len();
        let mut failed: Vec<(String, ExecError)> = results
            .into_iter()
            .filter_map(|(r, res)| res.err().map(|e| (r.to_owned(), e)))
            .collect();
        let error = match failed.len() {
            0 => return Ok(()),
            1 if total == 1 => failed.remove(0).1,
            _ => ExecError::Recipients { total, failed },
        };
        Err(if error.is_retryable() {
            NotifyError::retryable("exec", error)
        } else {
            NotifyError::permanent("exec", error)
        })
    }

    /// Logs a finished run and turns it into its outcome.
    fn judge(
        &self,
        f: Finished,
        ctx: &Context<'_>,
        service: &str,
        recipient: &str,
    ) -> Result<(), ExecError> {
        let program = self.config.command.first().cloned().unwrap_or_default();
        let elapsed_ms = u64::try_from(f.elapsed.as_millis()).unwrap_or(u64::MAX);
        let result = match f.ended {
            Ended::Exited(status) if status.success() => Ok(()),
            Ended::Exited(status) => match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => Err(ExecError::Exit {
                    program,
                    code,
                    output: output_note(&f.stdout, &f.stderr),
                }),
                (None, signal) => Err(ExecError::Signal {
                    program,
                    signal: signal.unwrap_or_default(),
                    output: output_note(&f.stdout, &f.stderr),
                }),
            },
            Ended::TimedOut => Err(ExecError::Timeout {
                program,
                timeout: self.config.timeout,
                output: output_note(&f.stdout, &f.stderr),
            }),
        };
        let stdout = f.stdout.text();
        let stderr = f.stderr.text();
        match &result {
            Ok(()) => tracing::debug!(
                notifier = ctx.notifier,
                service,
                recipient,
                elapsed_ms,
                stdout,
                stderr,
                "alert agent succeeded"
            ),
            Err(e) => tracing::warn!(
                notifier = ctx.notifier,
                service,
                recipient,
                elapsed_ms,
                stdout,
                stderr,
                error = %e,
                "alert agent failed"
            ),
        }
        result
    }
}

/// `; stderr: ...; stdout: ...` for the streams that said something, each cut to
/// [`MAX_OUTPUT_IN_ERROR`] characters and kept on one line.
fn output_note(stdout: &Captured, stderr: &Captured) -> String {
    let mut note = String::new();
    for (name, c) in [("stderr", stderr), ("stdout", stdout)] {
        if c.is_empty() {
            continue;
        }
        let text = c.text();
        let text = text.trim().replace('\n', " | ");
        let mut kept: String = one_line(&text).chars().take(MAX_OUTPUT_IN_ERROR).collect();
        if text.chars().count() > MAX_OUTPUT_IN_ERROR {
            kept.push_str(" [...]");
        }
        note.push_str(&format!("; {name}: {kept}"));
    }
    note
}

#[async_trait::async_trait]
impl Notifier for ExecNotifier {
    fn kind(&self) -> &'static str {
        "exec"
    }

    async fn notify(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        self.deliver(n, ctx).await
    }
}

/// Why an alert agent run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The program could not be started.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agent exited with a non-zero status.
    #[error("{program} exited with status {code}{output}")]
    Exit {
        /// The program.
        program: String,
        /// Its exit status.
        code: i32,
        /// `; stderr: ...; stdout: ...`, cut short.
        output: String,
    },
    /// The agent was killed by a signal it was not sent by us.
    #[error("{program} was killed by signal {signal}{output}")]
    Signal {
        /// The program.
        program: String,
        /// The signal number.
        signal: i32,
        /// `; stderr: ...; stdout: ...`, cut short.
        output: String,
    },
    /// The agent ran out of time; it and its process group were killed.
    #[error("{program} did not finish within {}; killed it{output}", duration::format(*.timeout))]
    Timeout {
        /// The program.
        program: String,
        /// The configured limit.
        timeout: Duration,
        /// `; stderr: ...; stdout: ...`, cut short.
        output: String,
    },
    /// Waiting for the agent failed.
    #[error("lost track of {program}")]
    Wait {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Some of the runs for several recipients failed.
    #[error("{} of {total} agent runs failed: {}", failed.len(), describe(failed))]
    Recipients {
        /// How many runs there were.
        total: usize,
        /// Each failed recipient with its error.
        failed: Vec<(String, ExecError)>,
    },
}

fn describe(failed: &[(String, ExecError)]) -> String {
    failed
        .iter()
        .map(|(r, e)| format!("recipient {r:?}: {}", chain(e)))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ExecError {
    /// Whether running the agent again may help: not for a missing or non-executable
    /// program (including exit status 126 and 127, the shell's words for those);
    /// otherwise yes. Several recipients: when any of the failures may.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Spawn { source, .. } => {
                !matches!(
                    source.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::PermissionDenied
                        | std::io::ErrorKind::InvalidInput
                ) && source.raw_os_error() != Some(ENOEXEC)
            }
            Self::Exit { code, .. } => !matches!(code, 126 | 127),
            Self::Signal { .. } | Self::Timeout { .. } | Self::Wait { .. } => true,
            Self::Recipients { failed, .. } => failed.iter().any(|(_, e)| e.is_retryable()),
        }
    }
}

/// "Exec format error": not a program (a script without `#!`, a binary for another
/// machine). Linux's value, the same on every architecture it runs on.
const ENOEXEC: i32 = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{EventKind, Failure, FailureReport, Timestamp};

    fn build(text: &str) -> Result<ExecNotifier, BuildError> {
        let table = Table::parse(text).unwrap();
        ExecConfig::from_table(&table)?.build()
    }

    fn build_err(text: &str) -> (Option<String>, String) {
        let e = build(text).unwrap_err();
        (e.offending_key().map(str::to_owned), e.to_string())
    }

    #[test]
    fn defaults() {
        let n = build("type = \"exec\"\ncommand = [\"/bin/true\"]").unwrap();
        assert_eq!(n.config.timeout, Duration::from_secs(30));
        assert_eq!(n.config.max_concurrency, 4);
        assert!(n.config.recipients.is_empty());
        assert_eq!(n.limit.available_permits(), 4);
    }

    #[test]
    fn bad_configs_name_their_key() {
        let cases = [
            (
                "command = \"/bin/agent --x\"",
                "command",
                "must be an array",
            ),
            ("command = []", "command", "must name a program"),
            ("command = [\"\"]", "command", "must name a program"),
            ("command = [\"/a\\u0000b\"]", "command", "NUL"),
            (
                "command = [\"/a\"]\ntimeout = \"0s\"",
                "timeout",
                "more than 0s",
            ),
            (
                "command = [\"/a\"]\ntimeout = \"500000000000y\"",
                "timeout",
                "at most 1day",
            ),
            (
                "command = [\"/a\"]\nmax_concurrency = 0",
                "max_concurrency",
                "at least 1",
            ),
            (
                "command = [\"/a\"]\nenv = { \"a-b\" = \"1\" }",
                "env",
                "not a variable name",
            ),
            (
                "command = [\"/a\"]\nenv = { CRM_alert_kind = \"node\" }",
                "env",
                "reserved",
            ),
            (
                "command = [\"/a\"]\nenv = { ALERTCORE_HOST = \"x\" }",
                "env",
                "reserved",
            ),
            (
                "command = [\"/a\"]\nenv = { a = \"x\\u0000\" }",
                "env",
                "NUL",
            ),
            (
                "command = [\"/a\"]\nenv = { a = [1] }",
                "env",
                "table of names",
            ),
            (
                "command = [\"/a\"]\ninherit_env = [\"A B\"]",
                "inherit_env",
                "not a variable",
            ),
            (
                "command = [\"/a\"]\nrecipients = [\"a\\u0000\"]",
                "recipients",
                "NUL",
            ),
            (
                "command = [\"/a\"]\ntimezone = \"Mars/Olympus\"",
                "timezone",
                "unknown zone",
            ),
            ("command = [\"/a\"]\nshell = true", "shell", "unknown field"),
        ];
        // (serde does not say which key a bad duration string is at: the config file
        // error then points at the notifier's table instead)
        let (_, m) = build_err("command = [\"/a\"]\ntimeout = \"soon\"");
        assert!(m.contains("invalid duration"), "{m}");
        for (text, key, msg) in cases {
            let (k, m) = build_err(text);
            assert_eq!(k.as_deref(), Some(key), "{text}: {m}");
            assert!(m.contains(msg), "{text}: {m}");
        }
    }

    #[test]
    fn env_scalars_become_text_and_debug_hides_values() {
        let n = build("command = [\"/a\"]\nenv = { flag = true, n = 3, secret = \"hunter2\" }")
            .unwrap();
        assert_eq!(n.config.env["flag"], "true");
        assert_eq!(n.config.env["n"], "3");
        let debug = format!("{n:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("secret"),
            "{debug}"
        );
    }

    #[test]
    fn environment_layers_inherited_then_env_then_ours() {
        let n = ExecConfig::new(["/a"])
            .inherit_env(["ALERTCORE_TEST_SURELY_UNSET"])
            .env("PATH", "/opt/agents/bin")
            .env("email_sender", "me@example.org")
            .build()
            .unwrap();
        let alert = vec![("ALERTCORE_EVENT".to_owned(), "failure".to_owned())];
        let env: BTreeMap<_, _> = n.environment(&alert, "ops").into_iter().collect();
        let get = |k: &str| env.get(k).and_then(|v| v.to_str());
        assert_eq!(get("PATH"), Some("/opt/agents/bin"));
        assert_eq!(get("email_sender"), Some("me@example.org"));
        assert_eq!(get("ALERTCORE_EVENT"), Some("failure"));
        assert_eq!(get("CRM_alert_recipient"), Some("ops"));
        assert_eq!(get("CRM_notify_recipient"), Some("ops"));
        assert_eq!(env.len(), 6, "{env:?}");

        // nothing inherited: a standard PATH
        let n = ExecConfig::new(["/a"])
            .inherit_env::<_, String>([])
            .build()
            .unwrap();
        let env: BTreeMap<_, _> = n.environment(&[], "").into_iter().collect();
        assert_eq!(env.get("PATH").and_then(|v| v.to_str()), Some(DEFAULT_PATH));
    }

    #[test]
    fn retryability() {
        let exit = |code| ExecError::Exit {
            program: "a".into(),
            code,
            output: String::new(),
        };
        assert!(exit(1).is_retryable());
        assert!(exit(75).is_retryable());
        assert!(!exit(126).is_retryable());
        assert!(!exit(127).is_retryable());
        let several = |codes: &[i32]| ExecError::Recipients {
            total: 3,
            failed: codes.iter().map(|c| (format!("r{c}"), exit(*c))).collect(),
        };
        assert!(!several(&[127, 126]).is_retryable());
        assert!(several(&[127, 1]).is_retryable());
        assert_eq!(
            several(&[1]).to_string(),
            "1 of 3 agent runs failed: recipient \"r1\": a exited with status 1"
        );
    }

    #[test]
    fn output_note_is_one_bounded_line() {
        let mut err = Captured::default();
        let long = format!("first\r\nsecond\n{}", "x".repeat(3000));
        err.data = long.clone().into_bytes();
        err.total = long.len();
        let note = output_note(&Captured::default(), &err);
        assert!(
            note.starts_with("; stderr: first  | second | xxx"),
            "{note}"
        );
        assert!(note.ends_with(" [...]"), "{note}");
        assert!(!note.contains('\n') && !note.contains('\r'));
        assert!(note.len() < MAX_OUTPUT_IN_ERROR + 40);
    }

    fn ctx() -> Context<'static> {
        Context::new("agents")
    }

    fn note(service: &str) -> Notification {
        Notification::new(service, EventKind::Failure, "web1")
            .failures(history())
            .time(Timestamp::from_millis(1_234_567_890_123))
    }

    fn history() -> Vec<Failure> {
        vec![Failure::from_report(
            &FailureReport::new("exit-code").exit_status("1"),
            "web1",
            Timestamp::from_millis(0),
        )]
    }

    #[tokio::test]
    async fn hostile_service_names_are_data_not_code() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        // The agent prints its argv and the service; nothing is interpreted.
        let n = ExecConfig::new([
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "printf '%s\\n' \"$#\" \"$ALERTCORE_SERVICE\" \"$CRM_alert_rsc\" > \"$1\"".to_owned(),
            "agent".to_owned(),
            out.display().to_string(),
        ])
        .build()
        .unwrap();
        for service in ["x; rm -rf /", "$(touch pwned)", "`touch pwned`", "a\nb"] {
            n.notify(&note(service), &ctx()).await.unwrap();
            let text = std::fs::read_to_string(&out).unwrap();
            assert_eq!(text, format!("1\n{service}\n{service}\n"));
        }
        assert!(!dir.path().join("pwned").exists());
        assert!(!std::path::Path::new("pwned").exists());
    }

    #[tokio::test]
    async fn the_format_renders_subject_body_and_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let n = ExecConfig::new([
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            "printf '%s|%s|%s' \"$ALERTCORE_SUBJECT\" \"$ALERTCORE_BODY\" \"$CRM_alert_timestamp\" > \"$1\""
                .to_owned(),
            "agent".to_owned(),
            out.display().to_string(),
        ])
        .build()
        .unwrap();
        // the default: full's subject and body, Pacemaker's timestamp
        n.notify(&note("s"), &ctx()).await.unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(
            text.starts_with("[web1] FAILED: s (exit-code, status=1)|Service:   s\n"),
            "{text}"
        );
        assert!(text.ends_with(":31:30.123000"), "{text}");
        // a custom format: its templates and its timestamp_format
        let spec = crate::template::FormatSpec {
            subject: Some("{{ service }} is down".to_owned()),
            body: Some("since {{ streak_start }}".to_owned()),
            timestamp_format: Some("%s.%3N".to_owned()),
            ..Default::default()
        };
        let f = crate::template::Format::compile(
            &spec,
            &crate::template::Formats::default(),
            crate::template::Format::full(),
        )
        .unwrap();
        n.notify(&note("s"), &ctx().format(&f)).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "s is down|since 0.000|1234567890.123"
        );
    }

    #[tokio::test]
    async fn exit_statuses_map_to_errors() {
        let sh = |script: &str| {
            ExecConfig::new(["/bin/sh", "-c", script])
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap()
        };
        let e = sh("echo 'bad recipient' >&2; exit 3")
            .notify(&note("s"), &ctx())
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert_eq!(
            chain(&e),
            "exec delivery failed: /bin/sh exited with status 3; stderr: bad recipient"
        );
        let e = sh("exit 127").notify(&note("s"), &ctx()).await.unwrap_err();
        assert!(!e.is_retryable(), "{e:?}");
        let e = sh("kill -TERM $$")
            .notify(&note("s"), &ctx())
            .await
            .unwrap_err();
        assert!(e.is_retryable());
        assert!(chain(&e).contains("killed by signal 15"), "{}", chain(&e));
        let e = ExecConfig::new(["/nonexistent/agent"])
            .build()
            .unwrap()
            .notify(&note("s"), &ctx())
            .await
            .unwrap_err();
        assert!(!e.is_retryable());
        assert!(
            chain(&e).starts_with("exec delivery failed: cannot run /nonexistent/agent: "),
            "{}",
            chain(&e)
        );
        sh("exit 0").notify(&note("s"), &ctx()).await.unwrap();
    }
}
