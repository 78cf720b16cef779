//! The built-in `file` notifier: appends one line per alert to a file. The user-facing
//! description is on [`FileNotifier`].

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::alert::{EventKind, Failure};
use crate::config::{BuildError, from_table};
use crate::error::NotifyError;
use crate::message::{one_line, plural, subject};
use crate::notifier::{Context, Notifier};
use crate::registry::NotifierFactory;

/// `type = "file"`.
pub const FACTORY: NotifierFactory = NotifierFactory {
    kind: "file",
    build: |table| {
        FileConfig::from_table(table)?
            .build()
            .map(|n| Arc::new(n) as Arc<dyn Notifier>)
    },
};

/// The default `format`.
pub(crate) const DEFAULT_FORMAT: &str = "{timestamp} {subject}{details}";

/// The mode a new file is created with: alerts may name hosts, services and errors that
/// are nobody else's business.
const MODE: u32 = 0o600;

/// The configuration of a [`FileNotifier`]: `[notifiers.NAME] type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    path: PathBuf,
    #[serde(default = "default_format")]
    format: String,
}

fn default_format() -> String {
    DEFAULT_FORMAT.to_owned()
}

impl FileConfig {
    /// A config appending to `path` in the default format.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            format: default_format(),
        }
    }

    /// Reads a `[notifiers.NAME]` table (its `type` key is ignored).
    ///
    /// # Errors
    /// A [`BuildError`] naming the key for unknown keys and values of the wrong type.
    pub fn from_table(table: &toml::Table) -> Result<Self, BuildError> {
        from_table(table)
    }

    /// `format`: the line template (see [`FileNotifier`]).
    pub fn format(mut self, format: impl Into<String>) -> Self {
        self.format = format.into();
        self
    }

    /// Checks the config and builds the notifier.
    ///
    /// # Errors
    /// A [`BuildError`] for an empty path, or a format with an unknown field, an unclosed
    /// brace or a control character.
    pub fn build(self) -> Result<FileNotifier, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::key("path", "`path` must name a file"));
        }
        let template = Template::parse(&self.format)
            .map_err(|e| BuildError::key("format", format!("`format`: {e}")))?;
        Ok(FileNotifier {
            path: self.path.into(),
            template,
        })
    }
}

/// Appends one line per alert to a file: `type = "file"`.
///
/// ```toml
/// [notifiers.log]
/// type = "file"
/// path = "/var/log/alertcore/alerts.log"
/// format = "{timestamp} {host} {service} {event} {severity} {result} status={exit_status}"
/// ```
///
/// Each alert is one `write(2)` of a whole line to the file opened with `O_APPEND`, so
/// any number of processes (concurrent `alertctl` handlers) can share the file and no line
/// is ever split or interleaved with another. Control characters in the data (a CR or LF
/// in a service name or message) become spaces, so one alert is always one line. The file
/// is opened per alert (log rotation needs no signal) and created with mode 0600 (an
/// existing file keeps its mode); its directory must exist.
///
/// The `format` is a small template: `{name}` is replaced by a field, `{{` and `}}` are
/// literal braces. Fields: `timestamp` (when the event was processed, RFC 3339 UTC),
/// `service`, `host`, `event` (`failure`, `reminder`, `escalation`, `recovery`),
/// `severity`, `result`, `exit_code`, `exit_status`, `invocation_id`, `message` (of the
/// latest failure of the streak), `failures` (the streak's length), `streak_start`,
/// `sequence`, `incident` (the incident id), `notifier`, `subject` (`[web1] FAILED:
/// backup.service (exit-code, status=1)`) and `details` (`, 3 failures since <time>:
/// <message>` for a failure, empty for a recovery). A field with no value is `-`. The
/// default, `{timestamp} {subject}{details}`, gives
/// `2026-11-21T10:00:00Z [web1] FAILED: backup.service (exit-code, status=1), 1 failure since 2026-11-21T10:00:00Z`.
#[derive(Debug, Clone)]
pub struct FileNotifier {
    path: Arc<Path>,
    template: Template,
}

impl FileNotifier {
    /// The line written for an alert, without its newline.
    pub fn line(&self, service: &str, failures: &[Failure], ctx: &Context<'_>) -> String {
        self.template.render(service, failures, ctx)
    }

    async fn deliver(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        let mut line = self.line(service, failures, ctx);
        line.push('\n');
        let path = Arc::clone(&self.path);
        let result = tokio::task::spawn_blocking(move || append(&path, line.as_bytes()))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
        result.map_err(|source| {
            let retryable = !matches!(
                source.kind(),
                io::ErrorKind::NotFound
                    | io::ErrorKind::PermissionDenied
                    | io::ErrorKind::IsADirectory
                    | io::ErrorKind::NotADirectory
            );
            NotifyError::transport(
                "file",
                retryable,
                AppendError {
                    path: self.path.display().to_string(),
                    source,
                },
            )
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot append to {path}")]
struct AppendError {
    path: String,
    #[source]
    source: io::Error,
}

/// Appends `line` with a single `write(2)` on an `O_APPEND` descriptor: the kernel puts
/// it at the end of the file whole, whoever else appends at the same time. A short write
/// (a full disk) is reported, not completed by a second write that could land after
/// someone else's line.
fn append(path: &Path, line: &[u8]) -> io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(MODE)
        .open(path)?;
    loop {
        match file.write(line) {
            Ok(n) if n == line.len() => return Ok(()),
            Ok(n) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    format!("short write: {n} of {} bytes", line.len()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[async_trait::async_trait]
impl Notifier for FileNotifier {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn failure(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        self.deliver(service, failures, ctx).await
    }
}

/// A parsed `format`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Field(Field),
}

macro_rules! fields {
    ($($variant:ident = $name:literal),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Field { $($variant),* }

        impl Field {
            const ALL: &[(&str, Field)] = &[$(($name, Field::$variant)),*];
        }
    };
}

fields! {
    Timestamp = "timestamp",
    Service = "service",
    Host = "host",
    Event = "event",
    Severity = "severity",
    Result = "result",
    ExitCode = "exit_code",
    ExitStatus = "exit_status",
    InvocationId = "invocation_id",
    Message = "message",
    Failures = "failures",
    StreakStart = "streak_start",
    Sequence = "sequence",
    Incident = "incident",
    Notifier = "notifier",
    Subject = "subject",
    Details = "details",
}

impl Template {
    fn parse(format: &str) -> Result<Self, String> {
        if format.chars().any(char::is_control) {
            return Err("contains a control character; one alert is one line".to_owned());
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            match c {
                '{' => {
                    let rest = chars.as_str();
                    if let Some(after) = rest.strip_prefix('{') {
                        text.push('{');
                        chars = after.chars();
                        continue;
                    }
                    let Some(end) = rest.find('}') else {
                        return Err(format!(
                            "unclosed `{{` in {format:?} (write `{{{{` for a brace)"
                        ));
                    };
                    let name = &rest[..end];
                    let field = Field::ALL
                        .iter()
                        .find(|(n, _)| *n == name.trim())
                        .map(|(_, f)| *f)
                        .ok_or_else(|| {
                            format!(
                                "unknown field {{{name}}}; known: {}",
                                Field::ALL
                                    .iter()
                                    .map(|(n, _)| *n)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Field(field));
                    chars = rest[end + 1..].chars();
                }
                '}' => {
                    let rest = chars.as_str();
                    let Some(after) = rest.strip_prefix('}') else {
                        return Err(format!(
                            "lone `}}` in {format:?} (write `}}}}` for a brace)"
                        ));
                    };
                    text.push('}');
                    chars = after.chars();
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Self(pieces))
    }

    fn render(&self, service: &str, failures: &[Failure], ctx: &Context<'_>) -> String {
        let last = failures.last();
        let opt = |v: Option<&str>| v.map_or_else(|| "-".to_owned(), str::to_owned);
        let mut out = String::new();
        for piece in &self.0 {
            let value = match piece {
                Piece::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Piece::Field(f) => match f {
                    Field::Timestamp => ctx.now.to_string(),
                    Field::Service => service.to_owned(),
                    Field::Host => ctx.host.to_owned(),
                    Field::Event => ctx.event.as_str().to_owned(),
                    Field::Severity => opt(last.map(|f| f.severity.as_str())),
                    Field::Result => opt(last.map(|f| f.service_result.as_str())),
                    Field::ExitCode => opt(last.and_then(|f| f.exit_code.as_deref())),
                    Field::ExitStatus => opt(last.and_then(|f| f.exit_status.as_deref())),
                    Field::InvocationId => opt(last.and_then(|f| f.invocation_id.as_deref())),
                    Field::Message => opt(last.and_then(|f| f.message.as_deref())),
                    Field::Failures => failures.len().to_string(),
                    Field::StreakStart => ctx.streak_start.to_string(),
                    Field::Sequence => ctx.sequence.to_string(),
                    Field::Incident => ctx.incident_id(service),
                    Field::Notifier => ctx.notifier.to_owned(),
                    Field::Subject => subject(service, failures, ctx),
                    Field::Details => details(failures, ctx),
                },
            };
            out.push_str(&one_line(&value));
        }
        out
    }
}

/// `, 3 failures since <time>: <message>` for failure events, empty for a recovery
/// (whose subject already counts the failures).
fn details(failures: &[Failure], ctx: &Context<'_>) -> String {
    if ctx.event == EventKind::Recovery {
        return String::new();
    }
    let mut s = String::new();
    let _ = write!(
        s,
        ", {} since {}",
        plural(failures.len(), "failure"),
        ctx.streak_start
    );
    if let Some(m) = failures.last().and_then(|f| f.message.as_deref()) {
        s.push_str(": ");
        s.push_str(m);
    }
    s
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::alert::{FailureReport, Severity, Timestamp};

    const START: Timestamp = Timestamp::from_millis(1_763_700_000_000);

    fn history(message: Option<&str>) -> Vec<Failure> {
        let mut r = FailureReport::new("exit-code")
            .exit_code("exited")
            .exit_status("1")
            .severity(Severity::Warning);
        if let Some(m) = message {
            r = r.message(m);
        }
        vec![Failure::from_report(&r, "web1", START)]
    }

    fn ctx(event: EventKind) -> Context<'static> {
        Context::new(event, "web1")
            .notifier("log")
            .sequence(9)
            .streak(2, START)
            .now(START.saturating_add(std::time::Duration::from_secs(60)))
    }

    fn render(format: &str, service: &str, message: Option<&str>, event: EventKind) -> String {
        FileConfig::new("/x").format(format).build().unwrap().line(
            service,
            &history(message),
            &ctx(event),
        )
    }

    #[test]
    fn default_format_reads_well() {
        assert_eq!(
            render(
                DEFAULT_FORMAT,
                "backup.service",
                Some("disk full"),
                EventKind::Failure
            ),
            "2025-11-21T04:41:00Z [web1] FAILED: backup.service (exit-code, status=1), \
             1 failure since 2025-11-21T04:40:00Z: disk full"
        );
        assert_eq!(
            render(
                DEFAULT_FORMAT,
                "backup.service",
                Some("disk full"),
                EventKind::Recovery
            ),
            "2025-11-21T04:41:00Z [web1] RECOVERED: backup.service (after 1 failure)"
        );
    }

    #[test]
    fn every_field_and_escapes() {
        let all = Field::ALL
            .iter()
            .map(|(n, _)| format!("{n}={{{n}}}"))
            .collect::<Vec<_>>()
            .join(" ");
        let line = render(&format!("{{{{{all}}}}}"), "svc", None, EventKind::Reminder);
        assert_eq!(
            line,
            "{timestamp=2025-11-21T04:41:00Z service=svc host=web1 event=reminder \
             severity=warning result=exit-code exit_code=exited exit_status=1 \
             invocation_id=- message=- failures=1 streak_start=2025-11-21T04:40:00Z \
             sequence=9 incident=1763700000000.2.svc.web1 notifier=log \
             subject=[web1] REMINDER: svc (exit-code, status=1) \
             details=, 1 failure since 2025-11-21T04:40:00Z}"
        );
    }

    #[test]
    fn bad_formats_are_refused() {
        for (format, want) in [
            ("{nope}", "unknown field {nope}"),
            ("{service", "unclosed"),
            ("a } b", "lone"),
            ("a\nb", "control character"),
        ] {
            let e = FileConfig::new("/x").format(format).build().unwrap_err();
            assert_eq!(e.offending_key(), Some("format"));
            assert!(e.to_string().contains(want), "{format}: {e}");
        }
        let e = FileConfig::new("").build().unwrap_err();
        assert_eq!(e.offending_key(), Some("path"));
        let t: toml::Table = toml::from_str("type = \"file\"\npath = \"/x\"\nmode = 1").unwrap();
        assert_eq!(
            FileConfig::from_table(&t).unwrap_err().offending_key(),
            Some("mode")
        );
    }

    #[test]
    fn newlines_in_data_cannot_split_a_line() {
        let line = render(
            "{service} {message} {details}",
            "a\r\nb",
            Some("x\ny\u{2028}z"),
            EventKind::Failure,
        );
        assert!(!line.contains(['\n', '\r']), "{line:?}");
        assert!(line.starts_with("a  b x y"), "{line:?}");
    }

    #[tokio::test]
    async fn appends_lines_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.log");
        let n = FileConfig::new(&path)
            .format("{event} {service}")
            .build()
            .unwrap();
        n.failure("a\nb", &history(None), &ctx(EventKind::Failure))
            .await
            .unwrap();
        n.success("a\nb", &history(None), &ctx(EventKind::Recovery))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "failure a b\nrecovery a b\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn a_missing_directory_is_not_retryable() {
        let dir = tempfile::tempdir().unwrap();
        let n = FileConfig::new(dir.path().join("no/such/dir.log"))
            .build()
            .unwrap();
        let e = n
            .failure("s", &history(None), &ctx(EventKind::Failure))
            .await
            .unwrap_err();
        assert!(!e.is_retryable());
        assert!(
            crate::chain(&e).starts_with("file delivery failed: cannot append to "),
            "{}",
            crate::chain(&e)
        );
    }
}
