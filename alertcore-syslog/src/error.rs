//! The crate's own error type and its mapping onto [`NotifyError`].

use std::io;
use std::time::Duration;

use alertcore::NotifyError;
use alertcore::duration;

use crate::KIND;

/// Why a syslog message could not be handed over.
///
/// Returned boxed inside [`NotifyError::Transport`]; reach it with
/// `std::error::Error::source` and `downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyslogError {
    /// No socket could be opened or connected: refused, no such socket file, unknown
    /// host.
    #[error("cannot connect to {address}")]
    Connect {
        /// The configured address, e.g. `tcp://logs.example.org:514`.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing the message failed, on a fresh connection (a kept one is replaced once
    /// before this is reported).
    #[error("cannot send to {address}")]
    Send {
        /// The configured address.
        address: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Connecting and sending took longer than `timeout`.
    #[error("sending to {address} took longer than {}", duration::format(*.timeout))]
    Timeout {
        /// The configured address.
        address: String,
        /// The configured limit.
        timeout: Duration,
    },
    /// The message could not be put together (should not happen with a validated
    /// configuration).
    #[error("cannot format the syslog message: {0}")]
    Format(String),
}

impl SyslogError {
    /// Whether a later attempt may succeed: refused or reset connections, a socket file
    /// that is not there (yet), name lookups and timeouts are; permission errors, and a
    /// message that cannot be formatted, are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { source, .. } | Self::Send { source, .. } => {
                io_is_retryable(source.kind())
            }
            Self::Timeout { .. } => true,
            Self::Format(_) => false,
        }
    }
}

impl From<SyslogError> for NotifyError {
    fn from(e: SyslogError) -> Self {
        if e.is_retryable() {
            NotifyError::retryable(KIND, e)
        } else {
            NotifyError::permanent(KIND, e)
        }
    }
}

/// Everything but what only a change of configuration or permissions can fix: a syslog
/// daemon that is restarting, not yet started or unreachable for now comes back.
fn io_is_retryable(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    !matches!(
        kind,
        K::PermissionDenied | K::InvalidInput | K::Unsupported | K::InvalidFilename
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_classes() {
        let conn = |kind| SyslogError::Connect {
            address: "tcp://127.0.0.1:1".to_owned(),
            source: io::Error::from(kind),
        };
        assert!(conn(io::ErrorKind::ConnectionRefused).is_retryable());
        assert!(conn(io::ErrorKind::NotFound).is_retryable());
        assert!(!conn(io::ErrorKind::PermissionDenied).is_retryable());
        assert!(!SyslogError::Format("x".to_owned()).is_retryable());
        let e: NotifyError = conn(io::ErrorKind::ConnectionRefused).into();
        assert!(e.is_retryable());
        assert_eq!(
            alertcore::chain(&e),
            "syslog delivery failed: cannot connect to tcp://127.0.0.1:1: connection refused"
        );
    }
}
