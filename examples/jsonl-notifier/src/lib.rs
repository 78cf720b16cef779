//! A notifier crate as a user would write one: a `jsonl` type that appends one JSON
//! document per notification to a file, registered at build time.
//!
//! ```toml
//! [notifiers.audit]
//! type = "jsonl"
//! path = "/var/log/alertcore/alerts.jsonl"
//! ```
//!
//! Linking the crate is enough: [`alertcore::Registry::with_linked`] (which
//! `alertctl::default_registry` includes) finds [`FACTORY`]. A program that uses nothing
//! from it by name writes `use jsonl_notifier as _;` so that it is linked at all;
//! `examples/jsonl-alertctl/` is such a program: the whole `alertctl` with this type.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use alertcore::{BuildError, Context, Notification, Notifier, NotifierFactory, NotifyError};
use serde::Deserialize;

/// `[notifiers.NAME] type = "jsonl"`: its own config keys, typos rejected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlConfig {
    path: PathBuf,
}

/// Appends each notification to a file as one line of JSON (the [`Notification`] as
/// serde writes it: its fields are the template variables' names).
#[derive(Debug)]
pub struct JsonlNotifier {
    path: PathBuf,
}

/// The `jsonl` type: `path` (required, not empty) names the file, created if missing.
pub const FACTORY: NotifierFactory = NotifierFactory {
    kind: "jsonl",
    build: |table| {
        let config: JsonlConfig = table.deserialize()?;
        if config.path.as_os_str().is_empty() {
            return Err(BuildError::key("path", "`path` must not be empty"));
        }
        Ok(Arc::new(JsonlNotifier { path: config.path }) as Arc<dyn Notifier>)
    },
};

// Linking this crate is enough: `Registry::with_linked()` finds it.
alertcore::submit_notifier!(FACTORY);

impl JsonlNotifier {
    fn append(&self, n: &Notification) -> Result<(), NotifyError> {
        let mut line = serde_json::to_string(n).map_err(|e| NotifyError::permanent("jsonl", e))?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| NotifyError::retryable("jsonl", e))?;
        // one write per line: concurrent writers never interleave within a line
        file.write_all(line.as_bytes())
            .map_err(|e| NotifyError::retryable("jsonl", e))
    }
}

#[async_trait::async_trait]
impl Notifier for JsonlNotifier {
    fn kind(&self) -> &'static str {
        "jsonl"
    }

    async fn notify(&self, n: &Notification, _: &Context<'_>) -> Result<(), NotifyError> {
        self.append(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml: &str) -> Result<Arc<dyn Notifier>, BuildError> {
        let table = alertcore::Table::parse(toml).expect("valid TOML");
        (FACTORY.build)(&table)
    }

    #[test]
    fn builds_from_a_path() {
        let n = build("type = \"jsonl\"\npath = \"/tmp/alerts.jsonl\"").expect("builds");
        assert_eq!(n.kind(), "jsonl");
    }

    #[test]
    fn an_empty_path_is_refused_by_its_key() {
        let e = build("type = \"jsonl\"\npath = \"\"").expect_err("empty path");
        assert_eq!(e.offending_key(), Some("path"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(build("type = \"jsonl\"\npath = \"a\"\npaht = \"b\"").is_err());
    }

    #[test]
    fn is_linked() {
        let registry = alertcore::Registry::empty().with_linked();
        assert!(registry.get("jsonl").is_some(), "{:?}", registry.kinds());
    }
}
