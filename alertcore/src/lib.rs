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
pub mod journal;
pub mod message;
mod notification;
mod notifier;
pub mod outbox;
pub mod policy;
mod registry;
pub mod rules;
pub mod secret;
pub mod store;
pub mod table;
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
pub use notification::{
    Digest, DigestLine, DigestPart, FallbackOf, Notification, RuleRef, sanitize_id,
};
pub use notifier::{ConfiguredNotifier, Notifier, NotifierFactory};
pub use policy::{Policy, ServiceState};
pub use registry::Registry;
pub use store::{MemoryStore, Signal, SourceState, SqliteStore, Store};
pub use table::Table;
pub use template::{Context, Format, FormatSpec, Formats, JournalExcerpt};

/// Re-exports for macros; not public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
}
