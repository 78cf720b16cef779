//! The built-in `file` notifier: appends one line per alert to a file. The user-facing
//! description is on [`FileNotifier`].

use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::error::BuildError;
use crate::error::NotifyError;
use crate::notification::Notification;
use crate::notifier::{Notifier, NotifierFactory};
use crate::table::Table;
use crate::template::Context;

/// `type = "file"`.
pub const FACTORY: NotifierFactory = NotifierFactory {
    kind: "file",
    build: |table| {
        FileConfig::from_table(table)?
            .build()
            .map(|n| Arc::new(n) as Arc<dyn Notifier>)
    },
};

/// The mode a new file is created with: alerts may name hosts, services and errors that
/// are nobody else's business.
const MODE: u32 = 0o600;

/// The configuration of a [`FileNotifier`]: `[notifiers.NAME] type = "file"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    path: PathBuf,
}

impl FileConfig {
    /// A config appending to `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Reads a `[notifiers.NAME]` table (its `type` key is ignored).
    ///
    /// # Errors
    /// A [`BuildError`] naming the key for unknown keys and values of the wrong type.
    pub fn from_table(table: &Table) -> Result<Self, BuildError> {
        table.deserialize()
    }

    /// Checks the config and builds the notifier.
    ///
    /// # Errors
    /// A [`BuildError`] for an empty path.
    pub fn build(self) -> Result<FileNotifier, BuildError> {
        if self.path.as_os_str().is_empty() {
            return Err(BuildError::key("path", "`path` must name a file"));
        }
        Ok(FileNotifier {
            path: self.path.into(),
        })
    }
}

/// Appends one line per alert to a file: `type = "file"`.
///
/// ```toml
/// [notifiers.log]
/// type = "file"
/// path = "/var/log/alertcore/alerts.log"
/// # the format keys of alertcore::template, e.g.
/// subject = "{{ host }} {{ service }} {{ event }} {{ severity }} {{ result }} status={{ exit_status or '-' }}"
/// ```
///
/// Each alert is one `write(2)` of a whole line to the file opened with `O_APPEND`, so
/// any number of processes (concurrent `alertctl` handlers) can share the file and no line
/// is ever split or interleaved with another. The line is the event time (in the
/// format's `timestamp_format`, default RFC 3339 UTC), a space, and the format's
/// one-line form ([`Format::line`](crate::Format::line)): with the default format
/// `2026-11-21T10:00:00Z [web1] FAILED: backup.service (exit-code, status=1), 1 failure since 2026-11-21T10:00:00Z`;
/// with a `subject` set, that subject. Control characters in the data (a CR or LF in a
/// service name or message) become spaces, so one alert is always one line. The file is
/// opened per alert (log rotation needs no signal) and created with mode 0600 (an
/// existing file keeps its mode); its directory must exist.
///
/// Before message templates, `format` was a `{field}` line template of this notifier;
/// `format` now picks a [format](crate::template) for every transport, and the line is
/// written with `subject` (`{timestamp} {subject}{details}` was the default, which is
/// what the default format writes now).
#[derive(Debug, Clone)]
pub struct FileNotifier {
    path: Arc<Path>,
}

impl FileNotifier {
    /// The line written for an alert, without its newline.
    ///
    /// # Errors
    /// When the format's template fails.
    pub fn line(&self, n: &Notification, ctx: &Context<'_>) -> Result<String, NotifyError> {
        Ok(format!(
            "{} {}",
            ctx.format.time(n.time),
            ctx.format.line(n, ctx)?
        ))
    }

    async fn deliver(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        let mut line = self.line(n, ctx)?;
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
            let error = AppendError {
                path: self.path.display().to_string(),
                source,
            };
            if retryable {
                NotifyError::retryable("file", error)
            } else {
                NotifyError::permanent("file", error)
            }
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

    async fn notify(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        self.deliver(n, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::alert::{EventKind, Failure, FailureReport, Severity, Timestamp};
    use crate::template::{Format, FormatSpec, Formats};

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

    fn ctx() -> Context<'static> {
        Context::new("log")
    }

    fn note(service: &str, message: Option<&str>, event: EventKind) -> Notification {
        Notification::new(service, event, "web1")
            .failures(history(message))
            .sequence(9)
            .streak(2, START)
            .time(START.saturating_add(std::time::Duration::from_secs(60)))
    }

    /// A format with only `subject` set (`None`: the default format).
    fn format(subject: Option<&str>) -> Format {
        let spec = FormatSpec {
            subject: subject.map(str::to_owned),
            timestamp_format: subject.map(|_| "%s".to_owned()),
            ..FormatSpec::default()
        };
        Format::compile(&spec, &Formats::default(), Format::full()).unwrap()
    }

    fn render(f: &Format, service: &str, message: Option<&str>, event: EventKind) -> String {
        FileConfig::new("/x")
            .build()
            .unwrap()
            .line(&note(service, message, event), &ctx().format(f))
            .unwrap()
    }

    #[test]
    fn default_format_reads_well() {
        let f = format(None);
        assert_eq!(
            render(&f, "backup.service", Some("disk full"), EventKind::Failure),
            "2025-11-21T04:41:00Z [web1] FAILED: backup.service (exit-code, status=1), \
             1 failure since 2025-11-21T04:40:00Z: disk full"
        );
        assert_eq!(
            render(&f, "backup.service", Some("disk full"), EventKind::Recovery),
            "2025-11-21T04:41:00Z [web1] RECOVERED: backup.service (after 1 failure)"
        );
    }

    #[test]
    fn a_subject_is_the_line() {
        let f = format(Some(
            "{{ host }} {{ service }} {{ event }} {{ severity }} {{ result }} \
             status={{ exit_status or '-' }} {{ incident_id }} {{ notifier }}",
        ));
        assert_eq!(
            render(&f, "svc", None, EventKind::Reminder),
            "1763700060 web1 svc reminder warning exit-code status=1 \
             1763700000000.2.svc.web1 log"
        );
    }

    #[test]
    fn bad_configs_are_refused() {
        let e = FileConfig::new("").build().unwrap_err();
        assert_eq!(e.offending_key(), Some("path"));
        let t = Table::parse("type = \"file\"\npath = \"/x\"\nmode = 1").unwrap();
        assert_eq!(
            FileConfig::from_table(&t).unwrap_err().offending_key(),
            Some("mode")
        );
    }

    #[test]
    fn newlines_in_data_cannot_split_a_line() {
        for f in [
            format(None),
            format(Some("{{ service }} {{ message }}")),
            Format::builtin("short").unwrap().clone(),
            Format::builtin("json").unwrap().clone(),
        ] {
            let line = render(&f, "a\r\nb", Some("x\ny\u{2028}z"), EventKind::Failure);
            assert!(!line.contains(['\n', '\r']), "{line:?}");
        }
        let line = render(
            &format(Some("{{ service }} {{ message }}")),
            "a\r\nb",
            Some("x\ny\u{2028}z"),
            EventKind::Failure,
        );
        assert_eq!(line, "1763700060 a  b x y z");
    }

    #[tokio::test]
    async fn appends_lines_to_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.log");
        let n = FileConfig::new(&path).build().unwrap();
        let f = format(Some("{{ event }} {{ service }}"));
        n.notify(&note("a\nb", None, EventKind::Failure), &ctx().format(&f))
            .await
            .unwrap();
        n.notify(&note("a\nb", None, EventKind::Recovery), &ctx().format(&f))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1763700060 failure a b\n1763700060 recovery a b\n"
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
            .notify(&note("s", None, EventKind::Failure), &ctx())
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
