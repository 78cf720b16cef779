//! Error types, one per concern.

use std::error::Error as StdError;
use std::fmt;

/// A delivery failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The transport failed; `retryable` says whether trying again can help
    /// (timeouts, refused connections, SMTP 4xx, HTTP 429/5xx) or not (bad address,
    /// SMTP 5xx, HTTP 4xx).
    #[error("{kind} delivery failed")]
    Transport {
        /// The transport name, e.g. `"email"`.
        kind: &'static str,
        /// Whether a later attempt may succeed.
        retryable: bool,
        /// The transport's own error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
        /// How long the receiver asked us to wait (`Retry-After`), if it did.
        retry_after: Option<std::time::Duration>,
    },
    /// The notifier's configuration cannot work (missing secret, bad address).
    #[error("{kind} notifier misconfigured: {message}")]
    Config {
        /// The transport name.
        kind: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl NotifyError {
    /// A transport failure that a later attempt may get past: a timeout, a refused
    /// connection, SMTP 4xx, HTTP 429/5xx. The outbox tries again with its backoff (no
    /// sooner than [`NotifyError::with_retry_after`] says, when set).
    pub fn retryable(
        kind: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::transport(kind, true, source.into())
    }

    /// A transport failure that trying again cannot mend: a bad address, SMTP 5xx,
    /// HTTP 4xx. The outbox gives the notification up (or hands it to the fallback).
    pub fn permanent(
        kind: &'static str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self::transport(kind, false, source.into())
    }

    fn transport(
        kind: &'static str,
        retryable: bool,
        source: Box<dyn StdError + Send + Sync>,
    ) -> Self {
        Self::Transport {
            kind,
            retryable,
            source,
            retry_after: None,
        }
    }

    /// Adds the wait the receiver asked for (`Retry-After`): the outbox's next attempt
    /// is no sooner (within bounds).
    #[must_use]
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Self {
        if let Self::Transport { retry_after, .. } = &mut self {
            *retry_after = Some(wait);
        }
        self
    }

    /// The wait the receiver asked for, if any.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Transport { retry_after, .. } => *retry_after,
            Self::Config { .. } => None,
        }
    }

    /// A configuration error.
    pub fn config(kind: &'static str, message: impl Into<String>) -> Self {
        Self::Config {
            kind,
            message: message.into(),
        }
    }

    /// Whether trying again later can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport { retryable, .. } => *retryable,
            Self::Config { .. } => false,
        }
    }
}

/// The state store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("state database error")]
    Sqlite(#[from] rusqlite::Error),
    /// The state file could not be opened.
    #[error("cannot open state file {path}")]
    Open {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The state file or its directory could not be prepared.
    #[error("cannot prepare state file {path}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file was written by a newer alertcore; we refuse to touch it.
    #[error(
        "state file {path} has schema version {found}, newer than this alertcore supports ({supported}); upgrade alertcore (the file was left untouched)"
    )]
    SchemaTooNew {
        /// The path.
        path: String,
        /// Its `user_version`.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The state file cannot be used as needed: read-only, disk full, locked too long,
    /// not a database.
    #[error("state file {path}: {problem}")]
    File {
        /// The path.
        path: String,
        /// What is wrong, in words an operator can act on.
        problem: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored row could not be decoded.
    #[error("corrupt state record: {0}")]
    Corrupt(String),
    /// A blocking task failed (panicked or was cancelled).
    #[error("store task failed: {0}")]
    Task(String),
}

/// The engine could not process an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// Loading or saving state failed; nothing was sent.
    #[error("cannot record the event")]
    Store(#[from] StoreError),
}

/// Renders an error with its chain of causes: `a: b: c`.
pub fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// The error a notifier factory returns for a bad notifier table.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    pub(crate) message: String,
    pub(crate) key: Option<String>,
}

impl BuildError {
    /// An error about the notifier's table as a whole.
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            key: None,
        }
    }

    /// An error about one key of the notifier's table, so it can be pointed at.
    pub fn key(key: impl Into<String>, message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            key: Some(key.into()),
        }
    }

    /// Wraps a `toml` deserialisation error of the table (unknown field, wrong type).
    pub(crate) fn from_toml(e: toml::de::Error) -> Self {
        let message = e.message().trim_end().to_owned();
        // serde names the offending field in backticks: "unknown field `tto`, ...";
        // custom errors of ours start with it: "`sendmail_command` must ..."; other
        // messages quote values, not keys.
        let key = [
            "unknown field `",
            "missing field `",
            "duplicate field `",
            "`",
        ]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split('`').next())
        .map(str::to_owned);
        Self { message, key }
    }
}

impl BuildError {
    /// The key the error is about, when it is about one.
    pub fn offending_key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}
