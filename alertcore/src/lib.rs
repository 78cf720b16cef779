#![doc = include_str!("../README.md")]

mod alert;
pub mod config;
mod console;
pub mod duration;
mod engine;
mod error;
mod exec;
mod file;
pub mod flap;
pub mod hold;
mod journal;
mod message;
mod notification;
mod notifier;
pub mod outbox;
pub mod policy;
mod registry;
pub mod rules;
mod secret;
pub mod store;
mod table;
pub mod telemetry;
pub mod template;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use alert::{EventKind, Failure, FailureReport, Severity, Timestamp, Trigger};
pub use config::{Config, ConfigError, DaemonConfig, JournalTables};
pub use console::{ConsoleNotifier, FACTORY as CONSOLE_FACTORY};
pub use engine::{Clock, Delivery, Engine, EngineBuilder, Report, SystemClock, Waiting, host_name};
pub use error::BuildError;
pub use error::{EngineError, NotifyError, StoreError, chain};
pub use exec::{ExecConfig, ExecError, ExecNotifier, FACTORY as EXEC_FACTORY};
pub use file::{FACTORY as FILE_FACTORY, FileConfig, FileNotifier};
pub use notification::{Digest, DigestLine, DigestPart, FallbackOf, Notification, RuleRef};
pub use notifier::{ConfiguredNotifier, Notifier, NotifierFactory};
pub use policy::{Policy, ServiceState};
pub use registry::Registry;
pub use store::{MemoryStore, Signal, SourceState, SqliteStore, Store};
pub use table::Table;
pub use template::{Context, Format, FormatSpec, Formats, JournalExcerpt};

/// What a transport crate needs besides the root's types: the [`Notifier`] trait and its
/// factory, errors, the message formats and their template environment, the config
/// [`Table`], secrets, the journal excerpt, durations and text helpers.
///
/// A transport implements [`Notifier`] (`kind`, `notify` with one attempt per call,
/// optionally `check_format`, `notify_group`) and exports a [`NotifierFactory`] that
/// builds it from its `[notifiers.NAME]` table; `submit_notifier!` registers it.
pub mod transport {
    pub use crate::duration;
    pub use crate::error::{BuildError, NotifyError, chain};
    pub use crate::journal::Journal;
    pub use crate::message::{event_word, html_escape, one_line, plural};
    pub use crate::notification::{FallbackOf, Notification, RuleRef};
    pub use crate::notifier::{ConfiguredNotifier, Notifier, NotifierFactory};
    pub use crate::outbox::{FIRST_BACKOFF, MAX_RETRY_AFTER};
    pub use crate::secret::{CREDENTIALS_DIRECTORY, SecretError, SecretSource};
    pub use crate::table::{Table, redact_url};
    pub use crate::template::{
        Context, Format, FormatSpec, Formats, JournalExcerpt, check_tags, cut, environment,
        render_bounded,
    };
    pub use crate::{EventKind, Failure, FailureReport, Severity, Timestamp};
}

/// How an event was routed and decided, to show it: the result of [`Engine::plan`] and
/// [`Engine::preview`], a [`Report`]'s rule trace, and the text `alertctl test` and
/// `--trace` print.
pub mod explain {
    pub use crate::rules::trace::{Plan, RuleOutcome, RuleTrace, explain};
}

/// Re-exports for macros; not public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
