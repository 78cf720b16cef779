//! The `EmailNotifier` itself.

use std::fmt;
use std::time::Duration;

use alertcore::transport::Journal;
use alertcore::{Context, JournalExcerpt, Notification, Notifier, NotifyError};
use lettre::message::Mailbox;

use crate::KIND;
use crate::config::EmailConfig;
use crate::mail::{compose, compose_group};
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

    async fn deliver(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        // The journal costs a journalctl run: only when a template shows it.
        let excerpt = if ctx.format.uses_journal() {
            JournalExcerpt::read_with(
                self.journal.clone(),
                n,
                self.journal_lines,
                self.timeout.min(JOURNAL_TIMEOUT),
            )
            .await
        } else {
            None
        };
        let ctx = match &excerpt {
            Some(x) => ctx.journal(x),
            None => *ctx,
        };
        let (subject, body) = ctx.format.subject_and_body(n, &ctx)?;
        self.transmit(compose(&self.from, &self.to, n, subject, body)?)
            .await
    }

    async fn transmit(&self, message: lettre::Message) -> Result<(), NotifyError> {
        let bytes = message.formatted();
        match &self.transport {
            Transport::Smtp(s) => s.send(message.envelope(), &bytes, self.timeout).await,
            Transport::Sendmail(s) => Ok(s.send(message.envelope(), &bytes, self.timeout).await?),
        }
    }
}

#[async_trait::async_trait]
impl Notifier for EmailNotifier {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn notify(
        &self,
        notification: &Notification,
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        self.deliver(notification, ctx).await
    }

    /// One mail for the group: see `compose_group` (no journal excerpts).
    fn check_group(&self) -> Result<(), String> {
        Ok(())
    }

    async fn notify_group(
        &self,
        group: &[Notification],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        if group.is_empty() {
            return Ok(());
        }
        self.transmit(compose_group(&self.from, &self.to, group, ctx)?)
            .await
    }
}
