//! The `EmailNotifier` itself.

use std::fmt;
use std::time::Duration;

use alertcore::journal::Journal;
use alertcore::{Context, Failure, Notifier, NotifyError};
use lettre::message::Mailbox;

use crate::KIND;
use crate::config::EmailConfig;
use crate::mail::{Excerpt, compose};
use crate::sendmail::Sendmail;
use crate::smtp::Smtp;

/// The journal is a courtesy: never wait for it longer than this.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends alerts as plain-text mail, by SMTP or through a local `sendmail`.
///
/// Build it with [`EmailConfig::build`] (from a config table) or [`EmailNotifier::builder`].
/// An SMTP notifier keeps its connection open between mails and reuses it while it is
/// alive; [`EmailNotifier::close`] ends it politely.
pub struct EmailNotifier {
    pub(crate) from: Mailbox,
    pub(crate) to: Vec<Mailbox>,
    pub(crate) timeout: Duration,
    pub(crate) journal_lines: usize,
    pub(crate) journal: Journal,
    pub(crate) transport: Transport,
}

/// How mail leaves.
#[derive(Debug)]
pub(crate) enum Transport {
    // Boxed: the TLS settings make it large, and the sendmail variant is tiny.
    Smtp(Box<Smtp>),
    Sendmail(Sendmail),
}

impl fmt::Debug for EmailNotifier {
    /// Shows where mail goes, never a secret (the password is not even held: it is read
    /// from `password_env` / `password_file` when a connection is opened).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .field("transport", &self.transport)
            .field("timeout", &self.timeout)
            .field("journal_lines", &self.journal_lines)
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    /// An empty configuration to fill in with its setters, then [`EmailConfig::build`].
    ///
    /// ```
    /// let notifier = alertcore_email::EmailNotifier::builder()
    ///     .url("smtp://127.0.0.1:25")
    ///     .from("alertcore@example.org")
    ///     .to("ops@example.org")
    ///     .timeout(std::time::Duration::from_secs(10))
    ///     .build()?;
    /// # Ok::<(), alertcore::BuildError>(())
    /// ```
    pub fn builder() -> EmailConfig {
        EmailConfig::default()
    }

    /// Ends the kept SMTP connection with `QUIT`, if there is one. Sending again later
    /// opens a new connection. Dropping the notifier without it just closes the socket.
    pub async fn close(&self) {
        if let Transport::Smtp(s) = &self.transport {
            s.close().await;
        }
    }

    async fn deliver(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        let excerpt = self.excerpt(service, failures, ctx).await;
        let message = compose(
            &self.from,
            &self.to,
            service,
            failures,
            ctx,
            excerpt.as_ref(),
        )?;
        let bytes = message.formatted();
        match &self.transport {
            Transport::Smtp(s) => s.send(message.envelope(), &bytes, self.timeout).await,
            Transport::Sendmail(s) => Ok(s.send(message.envelope(), &bytes, self.timeout).await?),
        }
    }

    /// The journal lines of the latest failed run that has an invocation id. Only for
    /// failure-kind events: a recovery mail has no failed run to show.
    async fn excerpt(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Option<Excerpt> {
        if self.journal_lines == 0 || !ctx.event.is_failure() {
            return None;
        }
        let invocation_id = failures
            .iter()
            .rev()
            .find_map(|f| f.invocation_id.clone())?;
        let journal = self.journal.clone();
        let (unit, id, lines) = (
            service.to_owned(),
            invocation_id.clone(),
            self.journal_lines,
        );
        // journalctl is a blocking subprocess; keep it off the async workers.
        let task = tokio::task::spawn_blocking(move || journal.excerpt(&unit, &id, lines));
        match tokio::time::timeout(self.timeout.min(JOURNAL_TIMEOUT), task).await {
            Ok(Ok(text)) => text.map(|text| Excerpt {
                invocation_id,
                lines,
                text,
            }),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "journal excerpt task failed");
                None
            }
            Err(_) => {
                tracing::debug!("journal excerpt timed out; sending without it");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        KIND
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
