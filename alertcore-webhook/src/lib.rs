#![doc = include_str!("../README.md")]

mod body;
mod client;
mod config;
mod error;
mod notifier;
mod retry;
mod secret;

use std::sync::Arc;

use alertcore::{Notifier, NotifierFactory};

pub use body::{Preset, Variables};
pub use config::WebhookConfig;
pub use error::WebhookError;
pub use notifier::WebhookNotifier;

/// The transport name, in `type = "webhook"`, logs and errors.
pub(crate) const KIND: &str = "webhook";

/// Registers `type = "webhook"`: `Registry::new().with(alertcore_webhook::FACTORY)`.
pub const FACTORY: NotifierFactory = NotifierFactory {
    kind: KIND,
    build: |table| {
        let notifier = WebhookConfig::from_table(table)?.build()?;
        Ok(Arc::new(notifier) as Arc<dyn Notifier>)
    },
};
