//! The built-in `console` notifier: one readable line per alert on stderr.

use std::io::Write as _;
use std::sync::Arc;

use serde::Deserialize;

use crate::alert::{EventKind, Failure};
use crate::config::from_table;
use crate::error::NotifyError;
use crate::message::{one_line, plural, subject};
use crate::notifier::{Context, Notifier};
use crate::registry::NotifierFactory;

/// `type = "console"`.
pub const FACTORY: NotifierFactory = NotifierFactory {
    kind: "console",
    build: |table| {
        let _: ConsoleConfig = from_table(table)?;
        Ok(Arc::new(ConsoleNotifier) as Arc<dyn Notifier>)
    },
};

/// `[notifiers.NAME] type = "console"` takes no other keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleConfig {}

/// Writes one line per alert to stderr. The default when nothing is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleNotifier;

impl ConsoleNotifier {
    /// The line written for an alert (without the trailing newline).
    pub fn line(service: &str, failures: &[Failure], ctx: &Context<'_>) -> String {
        let mut line = format!("alertcore: {}", subject(service, failures, ctx));
        if ctx.event != EventKind::Recovery {
            line.push_str(&format!(
                ", {} since {}",
                plural(failures.len(), "failure"),
                ctx.streak_start
            ));
            if let Some(m) = failures.last().and_then(|f| f.message.as_deref()) {
                line.push_str(": ");
                line.push_str(&one_line(m));
            }
        }
        line
    }

    fn write(line: String) -> Result<(), NotifyError> {
        let mut err = std::io::stderr().lock();
        writeln!(err, "{line}").map_err(|e| NotifyError::transport("console", true, e))
    }
}

#[async_trait::async_trait]
impl Notifier for ConsoleNotifier {
    fn kind(&self) -> &'static str {
        "console"
    }

    async fn failure(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        Self::write(Self::line(service, failures, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{FailureReport, Timestamp};

    #[test]
    fn line_is_one_readable_line() {
        let f = Failure::from_report(
            &FailureReport::new("exit-code")
                .exit_status("1")
                .message("disk\nfull"),
            "h",
            Timestamp::from_millis(0),
        );
        let ctx = Context::new(EventKind::Failure, "web1");
        let line = ConsoleNotifier::line("backup\r\n.service", &[f], &ctx);
        assert_eq!(
            line,
            "alertcore: [web1] FAILED: backup  .service (exit-code, status=1), 1 failure since 1970-01-01T00:00:00Z: disk full"
        );
    }
}
