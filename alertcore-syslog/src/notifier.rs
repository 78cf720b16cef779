//! The `SyslogNotifier` itself: what an alert says in syslog terms.

use std::borrow::Cow;
use std::fmt;

use alertcore::{Context, EventKind, Notification, Notifier, NotifyError, Severity};

use crate::KIND;
use crate::config::SyslogConfig;
use crate::format::{Encoder, Record};
use crate::transport::Transport;

/// Sends alerts as syslog messages: RFC 5424 with structured data (or RFC 3164) over the
/// local socket, UDP or TCP.
///
/// Build it with [`SyslogConfig::build`] (from a config table) or
/// [`SyslogNotifier::builder`]. A notifier keeps its socket open between messages (a TCP
/// or unix stream connection included) and opens a new one when the receiver closed it
/// or a send fails.
pub struct SyslogNotifier {
    encoder: Encoder,
    /// `hostname`; `None`: the host of each alert.
    hostname: Option<String>,
    transport: Transport,
}

impl fmt::Debug for SyslogNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyslogNotifier")
            .field("address", &self.transport.address())
            .field("format", &self.encoder.format)
            .field("facility", &self.encoder.facility)
            .field("app_name", &self.encoder.app_name)
            .field("hostname", &self.hostname)
            .field("sd_id", &self.encoder.sd_id)
            .field("max_size", &self.encoder.max_size)
            .field("timeout", &self.transport.timeout())
            .finish_non_exhaustive()
    }
}

impl SyslogNotifier {
    /// The default configuration (`unix:///dev/log`, RFC 5424, facility `daemon`) to
    /// change with its setters, then [`SyslogConfig::build`].
    ///
    /// ```
    /// let notifier = alertcore_syslog::SyslogNotifier::builder()
    ///     .address("udp://127.0.0.1:514")
    ///     .facility("local3")
    ///     .build()?;
    /// # Ok::<(), alertcore::BuildError>(())
    /// ```
    pub fn builder() -> SyslogConfig {
        SyslogConfig::default()
    }

    pub(crate) fn new(encoder: Encoder, hostname: Option<String>, transport: Transport) -> Self {
        Self {
            encoder,
            hostname,
            transport,
        }
    }

    async fn deliver(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        let record = self.record(n, ctx)?;
        let line = self.encoder.encode(&record)?;
        Ok(self.transport.send(line.as_bytes()).await?)
    }

    fn record<'a>(
        &'a self,
        n: &'a Notification,
        ctx: &Context<'_>,
    ) -> Result<Record<'a>, NotifyError> {
        let last = n.last_failure();
        let mut params: Vec<(&'static str, Cow<'a, str>)> = Vec::with_capacity(10);
        params.push(("service", n.service.as_str().into()));
        params.push(("event", n.event.as_str().into()));
        if let Some(f) = last {
            params.push(("severity", f.severity.as_str().into()));
            if !f.service_result.is_empty() {
                params.push(("result", f.service_result.as_str().into()));
            }
            for (name, value) in [
                ("exit_code", &f.exit_code),
                ("exit_status", &f.exit_status),
                ("invocation_id", &f.invocation_id),
            ] {
                if let Some(v) = value {
                    params.push((name, v.as_str().into()));
                }
            }
        }
        params.push(("streak", n.failures.len().to_string().into()));
        params.push(("sequence", n.sequence.to_string().into()));
        params.push(("incident", n.incident_id().into()));

        // The format's one-line form; the encoder still cleans and bounds it.
        let msg = ctx.format.line(n, ctx)?;

        Ok(Record {
            severity: severity(n.event, last.map(|f| f.severity)),
            hostname: self.hostname.as_deref().unwrap_or(&n.host),
            msgid: n.event.as_str(),
            params,
            msg,
        })
    }
}

/// critical → `crit`, warning → `warning`, a recovery or an acknowledgement →
/// `notice`, a run's output or a digest → `info`, flapping → `warning`.
fn severity(event: EventKind, last: Option<Severity>) -> fasyslog::Severity {
    match (event, last) {
        (EventKind::Recovery | EventKind::Acknowledged, _) => fasyslog::Severity::NOTICE,
        (EventKind::Output | EventKind::Digest, _) => fasyslog::Severity::INFORMATIONAL,
        (EventKind::Flapping, _) => fasyslog::Severity::WARNING,
        (_, Some(Severity::Warning)) => fasyslog::Severity::WARNING,
        (_, Some(Severity::Critical) | None) => fasyslog::Severity::CRITICAL,
    }
}

#[async_trait::async_trait]
impl Notifier for SyslogNotifier {
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use alertcore::{Failure, FailureReport, Timestamp};

    use super::*;

    const START: Timestamp = Timestamp::from_millis(1_763_700_000_000);

    fn history(severity: Severity) -> Vec<Failure> {
        (0..3u64)
            .map(|i| {
                Failure::from_report(
                    &FailureReport::new("exit-code")
                        .exit_code("exited")
                        .exit_status("1")
                        .severity(severity)
                        .invocation_id(format!("{i:032x}"))
                        .message("disk full"),
                    "web1",
                    START.saturating_add(Duration::from_secs(60 * i)),
                )
            })
            .collect()
    }

    fn notification(event: EventKind, failures: Vec<Failure>) -> Notification {
        Notification::new("backup.service", event, "web1")
            .failures(failures)
            .streak(7, START)
            .sequence(9)
    }

    #[test]
    fn severity_mapping() {
        use fasyslog::Severity as S;
        assert_eq!(
            severity(EventKind::Failure, Some(Severity::Critical)),
            S::CRITICAL
        );
        assert_eq!(
            severity(EventKind::Reminder, Some(Severity::Warning)),
            S::WARNING
        );
        assert_eq!(severity(EventKind::Escalation, None), S::CRITICAL);
        assert_eq!(
            severity(EventKind::Recovery, Some(Severity::Critical)),
            S::NOTICE
        );
        assert_eq!(severity(EventKind::Output, None), S::INFORMATIONAL);
        assert_eq!(severity(EventKind::Digest, None), S::INFORMATIONAL);
    }

    #[test]
    fn record_carries_the_failure() {
        let n = SyslogNotifier::builder().build().unwrap();
        let alert = notification(EventKind::Failure, history(Severity::Warning));
        let r = n.record(&alert, &Context::new("syslog")).unwrap();
        assert_eq!(r.hostname, "web1");
        assert_eq!(r.msgid, "failure");
        assert_eq!(
            r.msg,
            "[web1] FAILED: backup.service (exit-code, status=1), 3 failures \
             since 2025-11-21T04:40:00Z: disk full"
        );
        let names: Vec<&str> = r.params.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "service",
                "event",
                "severity",
                "result",
                "exit_code",
                "exit_status",
                "invocation_id",
                "streak",
                "sequence",
                "incident"
            ]
        );
        assert_eq!(r.params[7].1, "3");
        assert_eq!(r.params[8].1, "9");
        assert_eq!(r.params[6].1, format!("{:032x}", 2));

        let n = SyslogNotifier::builder().hostname("relay").build().unwrap();
        let recovery = notification(EventKind::Recovery, history(Severity::Critical));
        let r = n.record(&recovery, &Context::new("syslog")).unwrap();
        assert_eq!(r.hostname, "relay");
        assert_eq!(r.msg, "[web1] RECOVERED: backup.service (after 3 failures)");

        // a custom format: its line is the message
        let spec = alertcore::FormatSpec {
            subject: Some("{{ event_word }} {{ service }}\n{{ message }}".to_owned()),
            ..Default::default()
        };
        let f = alertcore::Format::compile(
            &spec,
            &alertcore::Formats::default(),
            alertcore::Format::full(),
        )
        .unwrap();
        let alert = notification(EventKind::Failure, history(Severity::Critical));
        let r = n
            .record(&alert, &Context::new("syslog").format(&f))
            .unwrap();
        assert_eq!(r.msg, "FAILED backup.service disk full");
    }
}
