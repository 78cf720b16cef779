//! The `tcp` kind: connect to a port (optionally through TLS), optionally send a string
//! and look for a substring in the answer, like Nagios's `check_tcp`.
//!
//! ```toml
//! address = "db.example.org"   # default: the check's host
//! port = 5432                  # required
//! send = "PING\r\n"            # optional
//! expect = "+PONG"             # optional: a substring of what the server sends back
//! tls = true                   # optional: connect with TLS, verifying the certificate
//! ca_file = "/etc/ssl/my-ca.pem"   # with tls: these roots instead of the system's
//! server_name = "db.example.org"   # with tls: the name to verify (default: address)
//! warning = "500ms"            # optional response-time thresholds
//! critical = "2s"
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertcore::{BuildError, Table};
use rustls::pki_types::ServerName;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{BuildContext, Probe, net};
use crate::outcome::Outcome;

/// The most of the server's answer kept while looking for `expect`.
const MAX_ANSWER: usize = 64 * 1024;

/// How much of a wrong answer the message shows.
const SHOWN: usize = 120;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpConfig {
    address: Option<String>,
    port: u16,
    send: Option<String>,
    expect: Option<String>,
    #[serde(default)]
    tls: bool,
    ca_file: Option<PathBuf>,
    server_name: Option<String>,
    #[serde(default, with = "alertcore::duration::option")]
    warning: Option<Duration>,
    #[serde(default, with = "alertcore::duration::option")]
    critical: Option<Duration>,
}

#[derive(Debug)]
struct TcpProbe {
    host: String,
    port: u16,
    send: Option<String>,
    expect: Option<String>,
    tls: Option<TlsSettings>,
    warning: Option<Duration>,
    critical: Option<Duration>,
}

#[derive(Debug)]
struct TlsSettings {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    problem: Option<String>,
}

pub(crate) fn build(table: &Table, ctx: &BuildContext<'_>) -> Result<Arc<dyn Probe>, BuildError> {
    let cfg: TcpConfig = table.deserialize()?;
    let host = ctx.address(cfg.address.as_deref())?;
    if cfg.port == 0 {
        return Err(BuildError::key("port", "must be 1 to 65535"));
    }
    if cfg.expect.as_deref() == Some("") {
        return Err(BuildError::key(
            "expect",
            "is empty (leave it out to accept any answer)",
        ));
    }
    if !cfg.tls {
        for (key, given) in [
            ("ca_file", cfg.ca_file.is_some()),
            ("server_name", cfg.server_name.is_some()),
        ] {
            if given {
                return Err(BuildError::key(key, "is only used with `tls = true`"));
            }
        }
    }
    net::check_order(cfg.warning, cfg.critical, "warning", |d| {
        alertcore::duration::format(*d)
    })?;
    let tls = if cfg.tls {
        let trust = net::tls::Trust::new(cfg.ca_file.as_deref())
            .map_err(|e| BuildError::key("ca_file", e))?;
        let name_key = if cfg.server_name.is_some() {
            "server_name"
        } else {
            "address"
        };
        let name = net::tls::server_name(cfg.server_name.as_deref().unwrap_or(&host))
            .map_err(|e| BuildError::key(name_key, e))?;
        let config = trust.client_config().map_err(BuildError::new)?;
        Some(TlsSettings {
            config: Arc::new(config),
            name,
            problem: trust.problem().map(str::to_owned),
        })
    } else {
        None
    };
    Ok(Arc::new(TcpProbe {
        host,
        port: cfg.port,
        send: cfg.send,
        expect: cfg.expect,
        tls,
        warning: cfg.warning,
        critical: cfg.critical,
    }))
}

#[async_trait::async_trait]
impl Probe for TcpProbe {
    fn kind(&self) -> &'static str {
        "tcp"
    }

    async fn run(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        // Waiting for `expect` stops a little before the timeout, so a server that says
        // too little is reported with what it said rather than as a bare timeout.
        let read_until = tokio::time::Instant::from_std(start)
            + timeout.saturating_sub((timeout / 10).min(Duration::from_millis(250)));
        super::bounded(timeout, self.check(start, read_until, timeout)).await
    }
}

impl TcpProbe {
    async fn check(
        &self,
        start: Instant,
        read_until: tokio::time::Instant,
        timeout: Duration,
    ) -> Outcome {
        // a TLS check that cannot verify anything says so without connecting
        if let Some(p) = self.tls.as_ref().and_then(|t| t.problem.as_ref()) {
            return Outcome::unknown(format!("TCP UNKNOWN - {p}"));
        }
        let converse = self.send.is_some() || self.expect.is_some() || self.tls.is_some();
        let tcp = match net::connect(&self.host, self.port, converse).await {
            Ok(s) => s,
            Err(e) => return Outcome::critical(format!("TCP CRITICAL - {e}")),
        };
        let result = match &self.tls {
            None => self.converse(tcp, read_until).await,
            Some(tls) => {
                let connector = tokio_rustls::TlsConnector::from(Arc::clone(&tls.config));
                match connector.connect(tls.name.clone(), tcp).await {
                    Ok(stream) => self.converse(stream, read_until).await,
                    Err(e) => Err(format!(
                        "TLS handshake with {} port {} failed: {}",
                        self.host,
                        self.port,
                        handshake_reason(&e)
                    )),
                }
            }
        };
        let elapsed = start.elapsed();
        if let Err(e) = result {
            return Outcome::critical(format!("TCP CRITICAL - {e}")).perf(net::time_perf(
                elapsed,
                self.warning,
                self.critical,
                timeout,
            ));
        }
        let status = net::grade(elapsed, self.warning, self.critical);
        Outcome::new(
            status,
            format!(
                "TCP {} - {} second response time on {} port {}",
                status.label(),
                net::secs(elapsed),
                self.host,
                self.port
            ),
        )
        .perf(net::time_perf(
            elapsed,
            self.warning,
            self.critical,
            timeout,
        ))
    }

    /// Sends `send` and reads until `expect` shows up.
    async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        read_until: tokio::time::Instant,
    ) -> Result<(), String> {
        let at = || format!("{} port {}", self.host, self.port);
        if let Some(send) = &self.send {
            let sent = match stream.write_all(send.as_bytes()).await {
                Ok(()) => stream.flush().await,
                Err(e) => Err(e),
            };
            sent.map_err(|e| format!("cannot send to {}: {}", at(), net::io_reason(&e)))?;
        }
        let Some(expect) = &self.expect else {
            // closing (the drop) ends the connection; no shutdown of its own
            return Ok(());
        };
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if net::contains(&got, expect.as_bytes()) {
                let _ = stream.shutdown().await;
                return Ok(());
            }
            if got.len() >= MAX_ANSWER {
                break format!("after {MAX_ANSWER} bytes");
            }
            match tokio::time::timeout_at(read_until, stream.read(&mut buf)).await {
                Ok(Ok(0)) => break "before the connection closed".to_owned(),
                Ok(Ok(n)) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Ok(Err(e)) => break format!("before {}", net::io_reason(&e)),
                Err(_) => break "within the timeout".to_owned(),
            }
        };
        Err(format!(
            "expected {expect:?} from {} not received {end}; got {}",
            at(),
            net::excerpt(&got, SHOWN)
        ))
    }
}

/// Why a TLS handshake failed: the certificate's problem when it is one.
fn handshake_reason(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r @ rustls::Error::InvalidCertificate(_)) => {
            format!("certificate untrusted: {}", net::tls::untrusted_reason(r))
        }
        Some(r) => r.to_string(),
        None => net::io_reason(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::net::TcpListener;

    use super::net::tls::testing;
    use super::*;
    use crate::outcome::Status;

    fn probe(toml: &str) -> Arc<dyn Probe> {
        build(&Table::parse(toml).unwrap(), &BuildContext::new(None)).unwrap()
    }

    fn build_err(toml: &str) -> BuildError {
        build(&Table::parse(toml).unwrap(), &BuildContext::new(None)).unwrap_err()
    }

    /// A server that greets with `banner`, then echoes one read back prefixed with
    /// `echo: `, then closes.
    async fn banner_server(banner: &'static [u8]) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = s.write_all(banner).await;
                    let mut buf = [0u8; 1024];
                    if let Ok(n) = s.read(&mut buf).await
                        && n > 0
                    {
                        let _ = s.write_all(b"echo: ").await;
                        let _ = s.write_all(&buf[..n]).await;
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn open_port_is_ok_and_closed_port_is_critical() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = probe(&format!("address = \"127.0.0.1\"\nport = {port}"));
        let out = p.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
        assert!(
            out.message.starts_with("TCP OK - ")
                && out
                    .message
                    .ends_with(&format!("second response time on 127.0.0.1 port {port}")),
            "{}",
            out.message
        );
        assert_eq!(out.perfdata[0].label, "time");
        assert_eq!(out.perfdata[0].uom, "s");

        drop(listener);
        let out = p.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert_eq!(
            out.message,
            format!("TCP CRITICAL - connection refused: 127.0.0.1:{port}")
        );
    }

    #[tokio::test]
    async fn send_and_expect() {
        let port = banner_server(b"+OK hello\r\n").await;
        let p = probe(&format!(
            "address = \"127.0.0.1\"\nport = {port}\nsend = \"PING\\r\\n\"\nexpect = \"echo: PING\""
        ));
        let out = p.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Ok, "{out:?}");

        let p = probe(&format!(
            "address = \"127.0.0.1\"\nport = {port}\nexpect = \"+OK\""
        ));
        let out = p.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
    }

    #[tokio::test]
    async fn expect_mismatch_shows_what_came() {
        let port = banner_server(b"-ERR go away\r\n").await;
        let p = probe(&format!(
            "address = \"127.0.0.1\"\nport = {port}\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\""
        ));
        let out = p.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message.contains("expected \"+PONG\"")
                && out
                    .message
                    .contains("\"-ERR go away\\r\\necho: PING\\r\\n\"")
                && out.message.contains("before the connection closed"),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn a_silent_server_is_reported_within_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // accepts and keeps the connection open, saying nothing
        let _task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let p = probe(&format!(
            "address = \"127.0.0.1\"\nport = {port}\nexpect = \"hello\""
        ));
        let timeout = Duration::from_millis(400);
        let start = Instant::now();
        let out = p.run(timeout).await;
        assert!(start.elapsed() < timeout + Duration::from_secs(2));
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message
                .contains("not received within the timeout; got nothing"),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn response_time_thresholds() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    let _ = s.write_all(b"late\n").await;
                });
            }
        });
        let p = probe(&format!(
            "address = \"127.0.0.1\"\nport = {port}\nexpect = \"late\"\nwarning = \"50ms\"\ncritical = \"10s\""
        ));
        let out = p.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Warning, "{out:?}");
        assert!(
            out.message.starts_with("TCP WARNING - 0.1"),
            "{}",
            out.message
        );
        assert_eq!(out.perfdata[0].warn.as_deref(), Some("0.05"));
        assert_eq!(out.perfdata[0].crit.as_deref(), Some("10"));
    }

    #[tokio::test]
    async fn tls_with_a_ca_file() {
        let ca = testing::Ca::new("test CA");
        let (cert, key) = ca.leaf(&["localhost"], -3600, 86_400 * 90);
        let (port, _task) = testing::serve(vec![cert], key, Some(b"+PONG\r\n")).await;
        let ok = probe(&format!(
            "address = \"127.0.0.1\"\nport = {port}\ntls = true\nserver_name = \"localhost\"\n\
             ca_file = {:?}\nsend = \"PING\\r\\n\"\nexpect = \"+PONG\"",
            ca.pem_file
        ));
        let out = ok.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Ok, "{out:?}");

        let other = testing::Ca::new("another CA");
        let bad = probe(&format!(
            "address = \"127.0.0.1\"\nport = {port}\ntls = true\nserver_name = \"localhost\"\n\
             ca_file = {:?}",
            other.pem_file
        ));
        let out = bad.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message.contains("TLS handshake with 127.0.0.1 port")
                && out
                    .message
                    .contains("certificate untrusted: issued by an unknown"),
            "{}",
            out.message
        );
    }

    #[test]
    fn bad_config_names_the_key() {
        let e = build_err("address = \"127.0.0.1\"\nport = 80\nexpct = \"x\"");
        assert_eq!(e.offending_key(), Some("expct"));
        let e = build_err("address = \"127.0.0.1\"");
        assert_eq!(e.offending_key(), Some("port"));
        let e = build_err("address = \"127.0.0.1\"\nport = 70000");
        assert_eq!(e.offending_key(), Some("port"));
        let e = build_err("address = \"127.0.0.1\"\nport = 0");
        assert_eq!(e.offending_key(), Some("port"));
        let e = build_err("port = 80");
        assert_eq!(e.offending_key(), Some("address"));
        let e = build_err("address = \"127.0.0.1\"\nport = 80\nserver_name = \"x\"");
        assert_eq!(e.offending_key(), Some("server_name"));
        let e =
            build_err("address = \"127.0.0.1\"\nport = 80\nwarning = \"2s\"\ncritical = \"1s\"");
        assert_eq!(e.offending_key(), Some("warning"));
        let e = build_err("address = \"127.0.0.1\"\nport = 80\nwarning = \"soon\"");
        assert_eq!(e.offending_key(), Some("warning"));
        let e = build_err(
            "address = \"127.0.0.1\"\nport = 80\ntls = true\nca_file = \"/nonexistent/ca.pem\"",
        );
        assert_eq!(e.offending_key(), Some("ca_file"));
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn host_is_the_default_address() {
        let t = Table::parse("port = 22").unwrap();
        build(&t, &BuildContext::new(Some("127.0.0.1"))).unwrap();
    }
}
