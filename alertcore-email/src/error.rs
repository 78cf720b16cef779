//! The crate's own error type and its mapping onto [`NotifyError`].

use std::fmt;
use std::io;
use std::time::Duration;

use alertcore::NotifyError;

use crate::KIND;

/// Why an email could not be delivered.
///
/// Returned boxed inside [`NotifyError::Transport`]; reach it with
/// `std::error::Error::source` and `downcast_ref`. Texts never contain the password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmailError {
    /// No TCP connection could be opened (refused, unreachable, name not found).
    #[error("cannot connect to {server}")]
    Connect {
        /// `host:port`.
        server: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server answered with an error, or the SMTP session broke, at `stage`.
    #[error("{stage} failed on {server}")]
    Smtp {
        /// What the client was doing.
        stage: Stage,
        /// `host:port`.
        server: String,
        /// lettre's error, with the server's reply code and text when there is one.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// `tls = "starttls"` but the server does not offer STARTTLS; nothing was sent.
    #[error("{server} does not offer STARTTLS; refusing to send in plain text")]
    NoStartTls {
        /// `host:port`.
        server: String,
    },
    /// The whole exchange took longer than `timeout`.
    #[error("no answer from {server} within {}", alertcore::duration::format(*.timeout))]
    Timeout {
        /// `host:port`, or the sendmail program.
        server: String,
        /// The configured limit.
        timeout: Duration,
    },
    /// The message could not be put together (should not happen with validated config).
    #[error("cannot build the message")]
    Message(#[source] lettre::error::Error),
    /// The sendmail program could not be started or fed.
    #[error("cannot run {program}")]
    SendmailIo {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The sendmail program exited unsuccessfully.
    #[error("{program} {status}{}", stderr_suffix(.stderr))]
    Sendmail {
        /// The program.
        program: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// The start of what it wrote on stderr.
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

/// The step of an SMTP session that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// TLS handshake, greeting and EHLO.
    Connect,
    /// `STARTTLS` and the TLS handshake that follows.
    StartTls,
    /// `AUTH`.
    Auth,
    /// `MAIL FROM`, `RCPT TO`, `DATA` and the message.
    Send,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "smtp session setup",
            Self::StartTls => "STARTTLS",
            Self::Auth => "smtp authentication",
            Self::Send => "sending the mail",
        })
    }
}

/// `EX_TEMPFAIL` from `<sysexits.h>`: sendmail's "try again later".
const EX_TEMPFAIL: i32 = 75;

impl EmailError {
    /// Whether a later attempt may succeed: timeouts, refused or reset connections,
    /// SMTP 4xx replies and sendmail's `EX_TEMPFAIL`. SMTP 5xx replies (a rejected
    /// recipient, a wrong password), TLS certificate failures and a missing STARTTLS
    /// are permanent until someone changes something.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } => true,
            Self::Smtp { source, .. } => smtp_is_retryable(source),
            Self::NoStartTls { .. } | Self::Message(_) | Self::SendmailIo { .. } => false,
            Self::Sendmail { status, .. } => status.code() == Some(EX_TEMPFAIL),
        }
    }
}

impl From<EmailError> for NotifyError {
    fn from(e: EmailError) -> Self {
        if e.is_retryable() {
            NotifyError::retryable(KIND, e)
        } else {
            NotifyError::permanent(KIND, e)
        }
    }
}

fn smtp_is_retryable(e: &lettre::transport::smtp::Error) -> bool {
    if e.is_transient() || e.is_timeout() {
        return true;
    }
    if e.is_permanent() || e.is_client() || e.is_tls() {
        return false;
    }
    // Connection, network and response errors: look at the I/O error underneath.
    // A TLS handshake failure (bad certificate) surfaces as `InvalidData` and is
    // permanent; a dropped connection is not.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            return io_is_retryable(io.kind());
        }
        cur = c.source();
    }
    // "incomplete response": the server hung up mid-reply.
    e.is_response()
}

pub(crate) fn io_is_retryable(kind: io::ErrorKind) -> bool {
    use io::ErrorKind as K;
    matches!(
        kind,
        K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::UnexpectedEof
            | K::Interrupted
            | K::WouldBlock
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::AddrNotAvailable
    )
}
