//! The crate's own error type and its mapping onto [`NotifyError`].

use std::time::Duration;

use alertcore::NotifyError;
use alertcore::config::duration_serde::format as fmt_duration;

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
    /// The server asked to wait (`Retry-After`) longer than `max_retry_after`: we stop
    /// here rather than hold the alert, and leave the retry to the caller.
    #[error(
        "{endpoint} asked to retry after {}, more than max_retry_after ({})",
        fmt_duration(*.retry_after),
        fmt_duration(*.max)
    )]
    RetryAfterTooLong {
        /// `scheme://host:port`.
        endpoint: String,
        /// What the server asked for.
        retry_after: Duration,
        /// The configured bound.
        max: Duration,
    },
    /// Every attempt failed; `last` is why the last one did.
    #[error("gave up after {attempts} attempts")]
    GaveUp {
        /// How many requests were sent.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Box<WebhookError>,
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
    /// unreachable), timeouts, HTTP 429 and 5xx, and a `Retry-After` beyond the bound.
    /// Other 4xx answers, redirects, refused certificates, template errors and client
    /// setup errors need someone to change something first.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { retryable, .. } => *retryable,
            Self::Timeout { .. } | Self::Io { .. } | Self::RetryAfterTooLong { .. } => true,
            Self::Status { status, .. } => status_is_retryable(*status),
            Self::GaveUp { last, .. } => last.is_retryable(),
            Self::Render(_) | Self::NotJson { .. } | Self::Client(_) | Self::Format(_) => false,
        }
    }

    /// The wait the server asked for (`Retry-After`) in the (last) answer, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            Self::RetryAfterTooLong { retry_after, .. } => Some(*retry_after),
            Self::GaveUp { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status of the (last) answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            Self::GaveUp { last, .. } => last.status(),
            _ => None,
        }
    }
}

impl From<WebhookError> for NotifyError {
    /// Carries the server's `Retry-After` along, so the outbox's next attempt waits
    /// at least that long.
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
    fn retryability_follows_the_status_and_survives_giving_up() {
        assert!(status(503).is_retryable());
        assert!(status(429).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(302).is_retryable());
        let gave_up = WebhookError::GaveUp {
            attempts: 3,
            last: Box::new(status(502)),
        };
        assert!(gave_up.is_retryable());
        assert_eq!(gave_up.status(), Some(502));
        let n: NotifyError = gave_up.into();
        assert!(n.is_retryable());
        assert_eq!(
            alertcore::chain(&n),
            "webhook delivery failed: gave up after 3 attempts: http://127.0.0.1:1 answered 502 Bad Gateway"
        );
        assert_eq!(n.retry_after(), None);
    }

    #[test]
    fn retry_after_reaches_the_outbox() {
        let too_long = WebhookError::RetryAfterTooLong {
            endpoint: "http://127.0.0.1:1".to_owned(),
            retry_after: Duration::from_secs(120),
            max: Duration::from_secs(60),
        };
        let n: NotifyError = too_long.into();
        assert_eq!(n.retry_after(), Some(Duration::from_secs(120)));
        let gave_up = WebhookError::GaveUp {
            attempts: 2,
            last: Box::new(WebhookError::Status {
                endpoint: "http://127.0.0.1:1".to_owned(),
                status: 429,
                body: String::new(),
                retry_after: Some(Duration::from_secs(30)),
            }),
        };
        let n: NotifyError = gave_up.into();
        assert!(n.is_retryable());
        assert_eq!(n.retry_after(), Some(Duration::from_secs(30)));
    }
}
