#![doc = include_str!("../README.md")]

mod config;
mod error;
mod mail;
mod notifier;
mod sendmail;
mod smtp;
mod tls;

use std::sync::Arc;

use alertcore::{Notifier, NotifierFactory};

pub use config::{EmailConfig, Mode};
pub use error::{EmailError, Stage};
pub use notifier::EmailNotifier;

/// The transport name, in `type = "email"`, logs and errors.
pub(crate) const KIND: &str = "email";

/// Registers `type = "email"`: `Registry::new().with(alertcore_email::FACTORY)`.
pub const FACTORY: NotifierFactory = NotifierFactory {
    kind: KIND,
    build: |table| {
        let notifier = EmailConfig::from_table(table)?.build()?;
        Ok(Arc::new(notifier) as Arc<dyn Notifier>)
    },
};
