#![doc = include_str!("../README.md")]

mod address;
mod config;
mod error;
mod format;
mod notifier;
mod transport;

use std::sync::Arc;

use alertcore::{Notifier, NotifierFactory};

pub use config::{Format, SyslogConfig};
pub use error::SyslogError;
pub use notifier::SyslogNotifier;

/// The transport name, in `type = "syslog"`, logs and errors.
pub(crate) const KIND: &str = "syslog";

/// Registers `type = "syslog"`: `Registry::new().with(alertcore_syslog::FACTORY)`.
pub const FACTORY: NotifierFactory = NotifierFactory {
    kind: KIND,
    build: |table| {
        let notifier = SyslogConfig::from_table(table)?.build()?;
        Ok(Arc::new(notifier) as Arc<dyn Notifier>)
    },
};
