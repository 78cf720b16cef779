//! SMTP delivery over one kept-alive connection.
//!
//! We drive lettre's `AsyncSmtpConnection` ourselves instead of using its
//! `AsyncSmtpTransport`, for two reasons:
//!
//! * **Latency.** lettre writes the message and the final `.` line in two separate
//!   writes on a socket without `TCP_NODELAY`. Nagle's algorithm then holds the small
//!   second write until the server ACKs the first, and the server delays that ACK by
//!   up to 40 ms (Linux's delayed ACK): every mail stalls ~40 ms even on loopback. We
//!   open the TCP connection ourselves with `TCP_NODELAY` and hand it to lettre.
//! * **Reuse.** One notifier often sends several mails in a row (several services
//!   failing, a failure and a recovery). The open connection is kept in the notifier
//!   and reused while it is young and answers `NOOP`; otherwise a new one is opened.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use alertcore::NotifyError;
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::config::{PasswordSource, TlsMode};
use crate::error::{EmailError, Stage};
use crate::tls::ImplicitTls;

/// A kept connection older than this is not reused: servers drop idle clients after
/// a few minutes, and a fresh connection is cheap next to a stale one timing out.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// How long a reused connection may take to answer `NOOP` before we open a new one
/// (and never more than half a delivery's `timeout`, so a fresh connection has time).
const NOOP_TIMEOUT: Duration = Duration::from_secs(5);

/// SMTP AUTH settings.
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub(crate) username: String,
    pub(crate) password: PasswordSource,
}

/// TLS settings, built on first use: building them loads the system's root
/// certificates (several milliseconds and a hundred file reads), which a handler run
/// that sends no mail, or `alertctl config check`, should not pay.
pub(crate) struct LazyTls {
    host: String,
    /// A private CA (PEM), already checked to parse when the config was loaded.
    ca_pem: Option<Vec<u8>>,
    built: std::sync::OnceLock<Result<TlsParameters, String>>,
}

impl LazyTls {
    pub(crate) fn new(host: String, ca_pem: Option<Vec<u8>>) -> Self {
        Self {
            host,
            ca_pem,
            built: std::sync::OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&TlsParameters, NotifyError> {
        self.built
            .get_or_init(|| {
                let mut builder = TlsParameters::builder(self.host.clone());
                if let Some(pem) = &self.ca_pem {
                    let ca = Certificate::from_pem(pem).map_err(|e| alertcore::chain(&e))?;
                    builder = builder.add_root_certificate(ca);
                }
                builder.build_rustls().map_err(|e| alertcore::chain(&e))
            })
            .as_ref()
            .map_err(|e| NotifyError::config(crate::KIND, format!("cannot set up TLS: {e}")))
    }
}

/// An SMTP server and the connection kept open to it.
pub(crate) struct Smtp {
    host: String,
    port: u16,
    tls: TlsMode,
    tls_parameters: Option<LazyTls>,
    auth: Option<Auth>,
    hello: ClientId,
    idle: Mutex<Option<Idle>>,
}

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

impl fmt::Debug for Smtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smtp")
            .field("server", &self.server())
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Smtp {
    pub(crate) fn new(
        host: String,
        port: u16,
        tls: TlsMode,
        tls_parameters: Option<LazyTls>,
        auth: Option<Auth>,
        hello: ClientId,
    ) -> Self {
        Self {
            host,
            port,
            tls,
            tls_parameters,
            auth,
            hello,
            idle: Mutex::new(None),
        }
    }

    /// `host:port` (IPv6 in brackets), for messages.
    pub(crate) fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Sends one message, reusing the kept connection when it is still alive.
    ///
    /// Concurrent sends through one notifier take turns on the connection; `timeout`
    /// counts from a send's turn, not from the call, and covers everything from there:
    /// checking the kept connection (at most half of it), connecting, sending.
    pub(crate) async fn send(
        &self,
        envelope: &Envelope,
        message: &[u8],
        timeout: Duration,
    ) -> Result<(), NotifyError> {
        let mut idle = self.idle.lock().await;
        let deadline = tokio::time::Instant::now() + timeout;
        let reused = match idle.take() {
            Some(i) if i.since.elapsed() < MAX_IDLE && !i.conn.has_broken() => {
                Self::alive(i.conn, NOOP_TIMEOUT.min(timeout / 2)).await
            }
            _ => None,
        };
        if reused.is_some() {
            tracing::debug!(server = %self.server(), "reusing smtp connection");
        }
        let attempt = async {
            let mut conn = match reused {
                Some(c) => c,
                None => self.connect().await?,
            };
            conn.send(envelope, message)
                .await
                .map_err(|source| self.smtp_error(Stage::Send, source))?;
            Ok::<_, NotifyError>(conn)
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok(conn)) => {
                *idle = Some(Idle {
                    conn,
                    since: Instant::now(),
                });
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(EmailError::Timeout {
                server: self.server(),
                timeout,
            }
            .into()),
        }
    }

    /// Says goodbye (`QUIT`) on the kept connection, if there is one.
    pub(crate) async fn close(&self) {
        if let Some(mut i) = self.idle.lock().await.take() {
            let _ = tokio::time::timeout(NOOP_TIMEOUT, i.conn.quit()).await;
        }
    }

    async fn alive(mut conn: AsyncSmtpConnection, limit: Duration) -> Option<AsyncSmtpConnection> {
        match tokio::time::timeout(limit, conn.test_connected()).await {
            Ok(true) => Some(conn),
            _ => None,
        }
    }

    /// Opens a connection: TCP (with `TCP_NODELAY`), TLS or STARTTLS, EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, NotifyError> {
        // The password first: when it is missing we fail without touching the network.
        let credentials = match &self.auth {
            Some(a) => Some(Credentials::new(a.username.clone(), a.password.read()?)),
            None => None,
        };
        let params = self.tls_parameters.as_ref().map(LazyTls::get).transpose()?;
        let tcp = self
            .open_tcp()
            .await
            .map_err(|source| EmailError::Connect {
                server: self.server(),
                source,
            })?;
        let stream: Box<dyn AsyncTokioStream> = match (self.tls, params) {
            (TlsMode::Implicit, Some(params)) => Box::new(
                ImplicitTls::connect(tcp, params.clone())
                    .await
                    .map_err(|source| self.smtp_error(Stage::Connect, source))?,
            ),
            _ => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|source| self.smtp_error(Stage::Connect, source))?;
        if let (TlsMode::StartTls, Some(params)) = (self.tls, params) {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(EmailError::NoStartTls {
                    server: self.server(),
                }
                .into());
            }
            conn.starttls(params.clone(), &self.hello)
                .await
                .map_err(|source| self.smtp_error(Stage::StartTls, source))?;
        }
        if let Some(credentials) = credentials {
            if let Err(source) = conn.auth(DEFAULT_MECHANISMS, &credentials).await {
                conn.abort().await;
                return Err(self.smtp_error(Stage::Auth, source));
            }
            tracing::debug!(server = %self.server(), "smtp authentication succeeded");
        }
        Ok(conn)
    }

    async fn open_tcp(&self) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in tokio::net::lookup_host((self.host.as_str(), self.port)).await? {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    // See the module doc: without it every mail waits ~40 ms.
                    s.set_nodelay(true)?;
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the host name has no address")
        }))
    }

    fn smtp_error(&self, stage: Stage, source: SmtpError) -> NotifyError {
        EmailError::Smtp {
            stage,
            server: self.server(),
            source,
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// A minimal SMTP server on 127.0.0.1: accepts every mail; on its first connection
    /// it goes silent at the first `NOOP` (a kept connection whose server stalls), and
    /// stays so until `stop`.
    fn stalling_server(stop: Arc<AtomicBool>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || converse(stream, n == 0, &stop));
            }
        });
        port
    }

    fn converse(stream: TcpStream, stall_at_noop: bool, stop: &AtomicBool) {
        let mut out = stream.try_clone().unwrap();
        let mut lines = BufReader::new(stream);
        let mut say = |s: &str| out.write_all(s.as_bytes()).is_ok();
        if !say("220 test ESMTP\r\n") {
            return;
        }
        let mut line = String::new();
        while lines.read_line(&mut line).is_ok_and(|n| n > 0) {
            let cmd = line.get(..4).unwrap_or_default().to_ascii_uppercase();
            let ok = match cmd.as_str() {
                "EHLO" | "HELO" => say("250 test\r\n"),
                "MAIL" | "RCPT" | "RSET" => say("250 ok\r\n"),
                "DATA" => {
                    say("354 go ahead\r\n");
                    let mut data = String::new();
                    while lines.read_line(&mut data).is_ok_and(|n| n > 0) && data != ".\r\n" {
                        data.clear();
                    }
                    say("250 queued\r\n")
                }
                "NOOP" if stall_at_noop => {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    return;
                }
                "NOOP" => say("250 ok\r\n"),
                _ => {
                    say("221 bye\r\n");
                    return;
                }
            };
            if !ok {
                return;
            }
            line.clear();
        }
    }

    /// The module doc's first reason, as behaviour: every connection this opens has
    /// `TCP_NODELAY` set, so lettre's separate final `.` is not held for a delayed ACK.
    /// (What the stall would cost per mail is measured by `bench/run.sh`, target 2.)
    #[tokio::test]
    async fn connections_are_opened_with_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let smtp = Smtp::new(
            "127.0.0.1".to_owned(),
            listener.local_addr().unwrap().port(),
            TlsMode::None,
            None,
            None,
            ClientId::Domain("client.test".to_owned()),
        );
        let tcp = smtp.open_tcp().await.unwrap();
        assert!(tcp.nodelay().unwrap());
    }

    /// `timeout` bounds the whole delivery, the check of a kept connection included: a
    /// server that stalls on `NOOP` cannot stretch a delivery to `NOOP_TIMEOUT` (5 s)
    /// plus `timeout`; a fresh connection gets what is left of it.
    #[tokio::test]
    async fn a_stalled_kept_connection_does_not_stretch_the_timeout() {
        let stop = Arc::new(AtomicBool::new(false));
        let port = stalling_server(Arc::clone(&stop));
        let smtp = Smtp::new(
            "127.0.0.1".to_owned(),
            port,
            TlsMode::None,
            None,
            None,
            ClientId::Domain("client.test".to_owned()),
        );
        let address: lettre::Address = "a@example.org".parse().unwrap();
        let envelope = Envelope::new(Some(address.clone()), vec![address]).unwrap();
        let message = b"Subject: test\r\n\r\nbody\r\n";
        let timeout = Duration::from_secs(1);
        smtp.send(&envelope, message, timeout).await.unwrap();
        // the kept connection now stalls; the fresh one works
        let started = Instant::now();
        let second = smtp.send(&envelope, message, timeout).await;
        let took = started.elapsed();
        stop.store(true, Ordering::SeqCst);
        second.unwrap();
        // with the NOOP check outside the budget, this took NOOP_TIMEOUT at least
        assert!(took < NOOP_TIMEOUT, "{took:?} for a {timeout:?} timeout");
    }
}
