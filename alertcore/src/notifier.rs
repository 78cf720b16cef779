//! The `Notifier` trait every transport implements, and the context it receives.

use std::fmt;
use std::sync::Arc;

use crate::error::{BuildError, NotifyError};
use crate::notification::Notification;
use crate::outbox::DeliverySpec;
use crate::table::Table;
use crate::template::{Context, Format};

/// Delivers notifications.
///
/// [`Notifier::notify`] gets every notification the engine decided to send to this
/// notifier: first alert, reminder, escalation and recovery ([`Notification::event`]),
/// with the service's failure history in the streak. The [`Context`] says how this
/// notifier renders it.
///
/// A notifier makes one attempt and reports: the outbox owns retries, their backoff and
/// any wait the receiver asked for ([`NotifyError::retry_after`]).
///
/// We use `#[async_trait]` rather than `async fn` in the trait: the registry needs
/// `Arc<dyn Notifier>`, and on Rust 1.95 a trait with `async fn` is not dyn-compatible.
/// The cost is one boxed future per notification, next to a network round trip.
#[async_trait::async_trait]
pub trait Notifier: Send + Sync + fmt::Debug {
    /// Short transport name used in logs and errors, e.g. `"email"`.
    fn kind(&self) -> &'static str;

    /// Delivers `notification` once.
    ///
    /// # Errors
    /// A [`NotifyError`] if delivery failed; [`NotifyError::is_retryable`] says whether
    /// trying again can help.
    async fn notify(
        &self,
        notification: &Notification,
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError>;

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

    /// Whether this notifier can send several notifications as one message
    /// ([`Notifier::notify_group`]), which `group_wait` in its table asks for; checked
    /// when the configuration is loaded. The default says it cannot.
    ///
    /// # Errors
    /// Why not, for the config error at `group_wait`.
    fn check_group(&self) -> Result<(), String> {
        Err(format!(
            "a {} notifier sends one message per notification; it cannot group",
            self.kind()
        ))
    }

    /// Delivers `group` (two or more notifications, oldest first, all for this
    /// notifier) as one message, once: the outbox records the result for each. Called
    /// only when [`Notifier::check_group`] says it can. `ctx` has the notifier's own
    /// format (a rule's per-recipient override does not apply to a group).
    ///
    /// # Errors
    /// As for [`Notifier::notify`]; the default refuses, as it cannot group.
    async fn notify_group(
        &self,
        group: &[Notification],
        ctx: &Context<'_>,
    ) -> Result<(), NotifyError> {
        let _ = (group, ctx);
        Err(NotifyError::config(
            self.kind(),
            "this notifier cannot send groups",
        ))
    }
}

macro_rules! forward_notifier {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl<N: Notifier + ?Sized> Notifier for $ty {
            fn kind(&self) -> &'static str {
                (**self).kind()
            }
            async fn notify(
                &self,
                notification: &Notification,
                ctx: &Context<'_>,
            ) -> Result<(), NotifyError> {
                (**self).notify(notification, ctx).await
            }
            fn check_format(&self, format: &Format) -> Result<(), BuildError> {
                (**self).check_format(format)
            }
            fn check_group(&self) -> Result<(), String> {
                (**self).check_group()
            }
            async fn notify_group(
                &self,
                group: &[Notification],
                ctx: &Context<'_>,
            ) -> Result<(), NotifyError> {
                (**self).notify_group(group, ctx).await
            }
        }
    };
}
forward_notifier!(Arc<N>);
forward_notifier!(Box<N>);

/// Builds a notifier from its config table. Each transport crate exports one as a `const`.
#[derive(Clone, Copy)]
pub struct NotifierFactory {
    /// The `type` name it is selected by.
    pub kind: &'static str,
    /// Builds the notifier from its `[notifiers.NAME]` table: its `type` and its own keys,
    /// the format's and the delivery settings' taken out ([`Table::deserialize`] reads
    /// them, skipping `type`).
    pub build: fn(&Table) -> Result<Arc<dyn Notifier>, BuildError>,
}

impl fmt::Debug for NotifierFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifierFactory")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

inventory::collect!(NotifierFactory);

/// Registers a [`NotifierFactory`] at build time: a crate that is linked into the
/// program makes its type available to [`Registry::with_linked`](crate::Registry::with_linked).
///
/// ```ignore
/// alertcore::submit_notifier!(my_pager::FACTORY);
/// ```
///
/// A crate nothing references may not be linked at all: applications add
/// `use my_notifier as _;`.
#[macro_export]
macro_rules! submit_notifier {
    ($factory:expr) => {
        $crate::__private::inventory::submit! { $factory }
    };
}

/// A notifier built from the configuration. Its `Debug` shows the table redacted.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConfiguredNotifier {
    /// Its name (`[notifiers.NAME]`).
    pub name: String,
    /// The implementation.
    pub notifier: Arc<dyn Notifier>,
    /// Its table from the config file (what `alertctl config dump` shows, redacted).
    pub config: Arc<Table>,
    /// Its message format (`format`, `subject`, `body`, ... of its table).
    pub format: Format,
    /// Its outbox settings (`retry_for`, `max_attempts`, `fallback`, `max_per_minute`,
    /// `max_concurrent`).
    pub delivery: DeliverySpec,
}

impl fmt::Debug for ConfiguredNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfiguredNotifier")
            .field("name", &self.name)
            .field("notifier", &self.notifier.kind())
            .field("config", &self.config)
            .field("format", &self.format.name())
            .field("delivery", &self.delivery)
            .finish()
    }
}
