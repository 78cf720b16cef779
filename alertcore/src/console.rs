//! The built-in `console` notifier: one readable line per alert on stderr.

use std::io::Write as _;
use std::sync::Arc;

use serde::Deserialize;

use crate::error::NotifyError;
use crate::notification::Notification;
use crate::notifier::{Notifier, NotifierFactory};
use crate::template::Context;

/// `type = "console"`.
pub const FACTORY: NotifierFactory = NotifierFactory {
    kind: "console",
    build: |table| {
        let _: ConsoleConfig = table.deserialize()?;
        Ok(Arc::new(ConsoleNotifier) as Arc<dyn Notifier>)
    },
};

/// `[notifiers.NAME] type = "console"` takes no other keys (but the format keys of
/// [`crate::template`], taken out before).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsoleConfig {}

/// Writes one line per alert to stderr. The default when nothing is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsoleNotifier;

impl ConsoleNotifier {
    /// The line written for an alert (without the trailing newline): `alertcore: ` and
    /// the format's one-line form ([`Format::line`](crate::Format::line)).
    ///
    /// # Errors
    /// When the format's template fails.
    pub fn line(n: &Notification, ctx: &Context<'_>) -> Result<String, NotifyError> {
        Ok(format!("alertcore: {}", ctx.format.line(n, ctx)?))
    }

    fn write(line: String) -> Result<(), NotifyError> {
        let mut err = std::io::stderr().lock();
        writeln!(err, "{line}").map_err(|e| NotifyError::retryable("console", e))
    }
}

#[async_trait::async_trait]
impl Notifier for ConsoleNotifier {
    fn kind(&self) -> &'static str {
        "console"
    }

    async fn notify(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        Self::write(Self::line(n, ctx)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{EventKind, Failure, FailureReport, Timestamp};
    use crate::template::{Format, FormatSpec, Formats};

    #[test]
    fn line_is_one_readable_line() {
        let f = Failure::from_report(
            &FailureReport::new("exit-code")
                .exit_status("1")
                .message("disk\nfull"),
            "h",
            Timestamp::from_millis(0),
        );
        let ctx = Context::new("console");
        let n = Notification::new("backup\r\n.service", EventKind::Failure, "web1")
            .failures([f.clone()]);
        let line = ConsoleNotifier::line(&n, &ctx);
        assert_eq!(
            line.unwrap(),
            "alertcore: [web1] FAILED: backup  .service (exit-code, status=1), 1 failure since 1970-01-01T00:00:00Z: disk full"
        );

        let spec = FormatSpec {
            subject: Some("{{ event_word }} {{ service }}\n!".to_owned()),
            ..FormatSpec::default()
        };
        let format = Format::compile(&spec, &Formats::default(), Format::full()).unwrap();
        let ctx = ctx.format(&format);
        assert_eq!(
            ConsoleNotifier::line(
                &Notification::new("backup.service", EventKind::Failure, "web1").failures([f]),
                &ctx
            )
            .unwrap(),
            "alertcore: FAILED backup.service !"
        );
    }
}
