//! The `Notifier` trait every transport implements, and the context it receives.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::alert::{EventKind, Failure, Timestamp};
use crate::config::BuildError;
use crate::error::NotifyError;
use crate::template::{Format, JournalExcerpt};

/// Delivers alerts about one service.
///
/// `failure()` gets every failure-kind event (first alert, reminder, escalation: see
/// [`Context::event`]); `success()` gets recoveries. Both receive the service name, its
/// failure history in this streak (oldest first, the current failure last) and a
/// [`Context`] carrying the notifier's own config table.
///
/// We use `#[async_trait]` rather than `async fn` in the trait: the registry needs
/// `Arc<dyn Notifier>`, and on Rust 1.95 a trait with `async fn` is not dyn-compatible.
/// The cost is one boxed future per notification, next to a network round trip.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync + fmt::Debug {
    /// Short transport name used in logs and errors, e.g. `"email"`.
    fn kind(&self) -> &'static str;

    /// Alerts that `service` is failing.
    ///
    /// # Errors
    /// A [`NotifyError`] if delivery failed; [`NotifyError::is_retryable`] says whether
    /// trying again can help.
    async fn failure(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError>;

    /// Announces that `service` recovered; `failures` is the streak that ended.
    ///
    /// The default calls [`Notifier::failure`], whose [`Context::event`] is then
    /// [`EventKind::Recovery`]: most transports render every kind the same way.
    ///
    /// # Errors
    /// As for [`Notifier::failure`].
    async fn success(
        &self,
        service: &str,
        failures: &[Failure],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        self.failure(service, failures, ctx).await
    }

    /// Checks that `format` can work with this transport, when the configuration is
    /// loaded: the wiring calls it for the notifier's own format and for every
    /// per-recipient override. [`Format::compile`] has already test-rendered the
    /// templates; this is for what only the transport knows (the webhook, for one,
    /// checks that a custom body is JSON when its `content_type` says so).
    ///
    /// # Errors
    /// A [`BuildError`] naming the format key at fault (`body`, `template_file`, ...).
    fn check_format(&self, format: &Format) -> Result<(), BuildError> {
        let _ = format;
        Ok(())
    }
}

macro_rules! forward_notifier {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl<N: Notifier + ?Sized> Notifier for $ty {
            fn kind(&self) -> &'static str {
                (**self).kind()
            }
            async fn failure(
                &self,
                service: &str,
                failures: &[Failure],
                ctx: &Context<'_>,
            ) -> Result<(), NotifyError> {
                (**self).failure(service, failures, ctx).await
            }
            async fn success(
                &self,
                service: &str,
                failures: &[Failure],
                ctx: &Context<'_>,
            ) -> Result<(), NotifyError> {
                (**self).success(service, failures, ctx).await
            }
            fn check_format(&self, format: &Format) -> Result<(), BuildError> {
                (**self).check_format(format)
            }
        }
    };
}
forward_notifier!(Arc<N>);
forward_notifier!(Box<N>);

/// Everything about a notification beyond the service and its history.
///
/// `#[non_exhaustive]`: fields get added over time without breaking implementors. Build
/// one outside this crate (in a notifier's tests) with [`Context::new`] and the setters.
/// Its `Debug` shows the config table redacted.
#[derive(Clone)]
#[non_exhaustive]
pub struct Context<'a> {
    /// The notifier's configured name (`[notifiers.NAME]`).
    pub notifier: &'a str,
    /// The notifier's own config table (including `type`).
    pub config: &'a toml::Table,
    /// What this notification is about.
    pub event: EventKind,
    /// The host the service runs on.
    pub host: &'a str,
    /// Per-host sequence number of this alert event (shared by all its notifiers).
    pub sequence: u64,
    /// The per-service streak number: with `streak_start` it names the incident.
    pub streak_id: u64,
    /// When the streak's first failure was recorded.
    pub streak_start: Timestamp,
    /// When the event was processed.
    pub now: Timestamp,
    /// How subject and body are rendered: the notifier's format, or a recipient's
    /// override ([`Format::full`] unless set).
    pub format: &'a Format,
    /// The rule that routed this alert, if one did.
    pub rule: Option<RuleRef>,
    /// The journal excerpt of the failed run, when the transport read one (see
    /// [`crate::template`]).
    pub journal: Option<&'a JournalExcerpt>,
    /// Set when this notifier gets the alert as another one's `fallback`: that one
    /// gave it up.
    pub fallback_for: Option<&'a FallbackOf>,
    /// A recovery that replaced its failure alert, which was still waiting to be sent
    /// (the notifier's `collapse`): one "failed and recovered" notice.
    pub collapsed: bool,
}

/// The notifier that lost an alert handed to its `fallback`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct FallbackOf {
    /// The notifier that gave the alert up.
    pub notifier: String,
    /// Its last error.
    pub error: String,
}

impl FallbackOf {
    /// `notifier` gave an alert up with `error`.
    pub fn new(notifier: impl Into<String>, error: impl Into<String>) -> Self {
        Self {
            notifier: notifier.into(),
            error: error.into(),
        }
    }
}

/// Which `[[rules]]` entry routed an alert: its 1-based position and the config line
/// where it starts. Shown as `rule 3 (line 42)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct RuleRef {
    /// The 1-based position of the rule in `[[rules]]`.
    pub index: usize,
    /// The config line where the rule starts.
    pub line: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rule {} (line {})", self.index, self.line)
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("notifier", &self.notifier)
            .field("config", &crate::config::redact(self.config))
            .field("event", &self.event)
            .field("host", &self.host)
            .field("sequence", &self.sequence)
            .field("streak_id", &self.streak_id)
            .field("streak_start", &self.streak_start)
            .field("now", &self.now)
            .field("format", &self.format.name())
            .field("rule", &self.rule)
            .field("journal", &self.journal.is_some())
            .field("fallback_for", &self.fallback_for)
            .field("collapsed", &self.collapsed)
            .finish()
    }
}

static EMPTY_TABLE: std::sync::LazyLock<toml::Table> = std::sync::LazyLock::new(toml::Table::new);

impl<'a> Context<'a> {
    /// A context for `event` on `host`, with an empty config and zero counters.
    pub fn new(event: EventKind, host: &'a str) -> Self {
        Self {
            notifier: "",
            config: &EMPTY_TABLE,
            event,
            host,
            sequence: 0,
            streak_id: 0,
            streak_start: Timestamp::from_millis(0),
            now: Timestamp::from_millis(0),
            format: Format::full(),
            rule: None,
            journal: None,
            fallback_for: None,
            collapsed: false,
        }
    }

    /// Marks a recovery as replacing its unsent failure alert.
    pub fn collapsed(mut self, collapsed: bool) -> Self {
        self.collapsed = collapsed;
        self
    }

    /// Marks the alert as handed over from a notifier that gave it up.
    pub fn fallback_for(mut self, lost: impl Into<Option<&'a FallbackOf>>) -> Self {
        self.fallback_for = lost.into();
        self
    }

    /// Sets the format subject and body are rendered with.
    pub fn format(mut self, format: &'a Format) -> Self {
        self.format = format;
        self
    }

    /// Sets the rule that routed the alert.
    pub fn rule(mut self, rule: impl Into<Option<RuleRef>>) -> Self {
        self.rule = rule.into();
        self
    }

    /// Sets the journal excerpt of the failed run.
    pub fn journal(mut self, excerpt: &'a JournalExcerpt) -> Self {
        self.journal = Some(excerpt);
        self
    }

    /// Sets the notifier name.
    pub fn notifier(mut self, name: &'a str) -> Self {
        self.notifier = name;
        self
    }

    /// Sets the config table.
    pub fn config(mut self, config: &'a toml::Table) -> Self {
        self.config = config;
        self
    }

    /// Sets the sequence number.
    pub fn sequence(mut self, n: u64) -> Self {
        self.sequence = n;
        self
    }

    /// Sets the streak id and start.
    pub fn streak(mut self, id: u64, start: Timestamp) -> Self {
        self.streak_id = id;
        self.streak_start = start;
        self
    }

    /// Sets the processing time.
    pub fn now(mut self, now: Timestamp) -> Self {
        self.now = now;
        self
    }

    /// A stable id for the incident (streak start and number, service, host): the same
    /// for the first alert, every reminder and the recovery, so transports can thread
    /// them. Parts are joined by `.` and each is [`sanitize_id`]-ed, so the result fits a
    /// Message-ID or a URL and two incidents never share an id. A very long service or
    /// host name is shortened to its start and a hash of the whole, so the id stays
    /// under 400 bytes (a mail header line must stay under 998).
    pub fn incident_id(&self, service: &str) -> String {
        format!(
            "{}.{}.{}.{}",
            self.streak_start.as_millis(),
            self.streak_id,
            bounded_id(service),
            bounded_id(self.host)
        )
    }
}

/// The longest sanitized part kept whole in an incident id.
const MAX_ID_PART: usize = 160;

/// [`sanitize_id`], with a part longer than [`MAX_ID_PART`] cut to its first 120 bytes
/// and `-h` + the FNV-1a hash of the whole name (stable across processes and builds).
fn bounded_id(s: &str) -> String {
    let id = sanitize_id(s);
    if id.len() <= MAX_ID_PART {
        return id;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // `sanitize_id` output is ASCII: any byte index is a char boundary
    format!("{}-h{hash:016x}", &id[..120])
}

/// Keeps `[A-Za-z0-9-]` and writes every other byte as `_xx` hex, so the result is a
/// safe, unambiguous part of an id (it never contains `.`, `@`, `<` or `>`).
pub fn sanitize_id(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_id_is_safe_and_stable() {
        let ctx = Context::new(EventKind::Failure, "h").streak(3, Timestamp::from_millis(5));
        assert_eq!(
            ctx.incident_id("a b@c.service"),
            "5.3.a_20b_40c_2eservice.h"
        );
        let again = Context::new(EventKind::Recovery, "h").streak(3, Timestamp::from_millis(5));
        assert_eq!(again.incident_id("x"), ctx.incident_id("x"));
        // long names are bounded, and still told apart
        let a = ctx.incident_id(&format!("{}a", "é".repeat(300)));
        let b = ctx.incident_id(&format!("{}b", "é".repeat(300)));
        assert!(a.len() < 400 && b.len() < 400, "{a}");
        assert_ne!(a, b);
        assert_eq!(a, again.incident_id(&format!("{}a", "é".repeat(300))));
    }
}
