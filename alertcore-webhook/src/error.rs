//! The crate's own error type and its mapping onto [`NotifyError`].

use std::time::Duration;

use alertcore::NotifyError;
use alertcore::duration::format as fmt_duration;

use crate::KIND;
use crate::retry::status_is_retryable;

/// Why a webhook could not be delivered.
///
/// Returned boxed inside [`NotifyError::Transport`]; reach it with
/// `std::error::Error::source` and `downcast_ref`. The endpoint is named by scheme, host
/// and port only: the path and query of a webhook URL are often its secret (a Slack
/// incoming-webhook URL is one), so neither appears in any message, nor do tokens,
/// signing keys or the request body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// No connection could be set up: refused, unreachable, name not found, or the TLS
    /// handshake failed.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// `scheme://host:port`.
        endpoint: String,
        /// Whether a later attempt may succeed (false for a refused certificate).
        retryable: bool,
        /// What went wrong, from reqwest, hyper or rustls.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No complete answer within `timeout` (connecting included).
    #[error("no answer from {endpoint} within {}", fmt_duration(*.timeout))]
    Timeout {
        /// `scheme://host:port`.
        endpoint: String,
        /// The configured `timeout`.
        timeout: Duration,
    },
    /// The connection broke while sending the request or reading the answer.
    #[error("the exchange with {endpoint} failed")]
    Io {
        /// `scheme://host:port`.
        endpoint: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server answered with a status that is not 2xx.
    #[error("{endpoint} answered {}{}", status_text(*.status), body_suffix(.body))]
    Status {
        /// `scheme://host:port`.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body, on one line (servers explain errors there).
        body: String,
        /// The server's `Retry-After`, if it sent one that could be read.
        retry_after: Option<Duration>,
    },
    /// The body template failed to render for this alert.
    #[error("cannot render the body")]
    Render(#[source] minijinja::Error),
    /// The body template rendered something that is not the JSON its `content_type`
    /// promises (a value not passed through `tojson`, most likely).
    #[error("the rendered body is not valid JSON (content_type {content_type:?})")]
    NotJson {
        /// The configured content type.
        content_type: String,
        /// Where the JSON breaks.
        #[source]
        source: serde_json::Error,
    },
    /// The HTTP client could not be set up (TLS settings, system certificates).
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// The message format (subject or body template) failed for this alert.
    #[error("cannot render the message format")]
    Format(#[source] alertcore::NotifyError),
}

/// `503 Service Unavailable`, or just the number for a code without a standard name.
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl WebhookError {
    /// Whether a later attempt may succeed: connection failures (refused, reset,
    /// unreachable), timeouts, and HTTP 429 and 5xx. Other 4xx answers, redirects,
    /// refused certificates, template errors and client setup errors need someone to
    /// change something first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { retryable, .. } => *retryable,
            Self::Timeout { .. } | Self::Io { .. } => true,
            Self::Status { status, .. } => status_is_retryable(*status),
            Self::Render(_) | Self::NotJson { .. } | Self::Client(_) | Self::Format(_) => false,
        }
    }

    /// The wait the server asked for (`Retry-After`) in its answer, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<WebhookError> for NotifyError {
    /// Carries the server's `Retry-After` along, whatever its length: the outbox waits
    /// at least that long before the next attempt (up to its own bound,
    /// [`alertcore::outbox::MAX_RETRY_AFTER`]).
    fn from(e: WebhookError) -> Self {
        let retryable = e.is_retryable();
        let wait = e.retry_after();
        let n = if retryable {
            NotifyError::retryable(KIND, e)
        } else {
            NotifyError::permanent(KIND, e)
        };
        match wait {
            Some(w) => n.with_retry_after(w),
            None => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> WebhookError {
        WebhookError::Status {
            endpoint: "http://127.0.0.1:1".to_owned(),
            status: code,
            body: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn retryability_follows_the_status() {
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(302).is_retryable());
        let n: NotifyError = status(502).into();
        assert!(n.is_retryable());
        assert_eq!(
            alertcore::chain(&n),
            "webhook delivery failed: http://127.0.0.1:1 answered 502 Bad Gateway"
        );
        assert_eq!(n.retry_after(), None);
        let n: NotifyError = status(404).into();
        assert!(!n.is_retryable());
    }

    #[test]
    fn retry_after_reaches_the_outbox_whole() {
        // longer than the outbox's bound: passed on as it is, the outbox caps it
        for secs in [1, 120, 7 * 24 * 3600] {
            let e = WebhookError::Status {
                endpoint: "http://127.0.0.1:1".to_owned(),
                status: 429,
                body: String::new(),
                retry_after: Some(Duration::from_secs(secs)),
            };
            assert_eq!(e.retry_after(), Some(Duration::from_secs(secs)));
            let n: NotifyError = e.into();
            assert!(n.is_retryable());
            assert_eq!(n.retry_after(), Some(Duration::from_secs(secs)));
        }
    }
}
