//! The `tls` kind: the certificate of any TLS endpoint, its expiry and whether it is
//! trusted, like `check_http -C` or `check_ssl_cert`.
//!
//! ```toml
//! address = "mail.example.org"   # default: the check's host
//! port = 993                     # default 443
//! server_name = "imap.example.org"   # the name to verify and send as SNI (default: address)
//! warning = 30                   # days before expiry (default 30)
//! critical = 7                   # days before expiry (default 7)
//! ca_file = "/etc/ssl/my-ca.pem" # these roots instead of the system's
//! ```
//!
//! The handshake accepts any certificate, so that an expired or untrusted one can still
//! be looked at; it is then verified as a client would, and an untrusted one is critical
//! with the reason.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alertcore::{BuildError, Table};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Deserialize;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::net;
use super::{BuildContext, Probe};
use crate::outcome::{Outcome, PerfDatum, Status};

const DAY: i64 = 86_400;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsConfig {
    address: Option<String>,
    #[serde(default = "default_port")]
    port: u16,
    server_name: Option<String>,
    #[serde(default = "default_warning")]
    warning: u32,
    #[serde(default = "default_critical")]
    critical: u32,
    ca_file: Option<PathBuf>,
}

fn default_port() -> u16 {
    443
}
fn default_warning() -> u32 {
    30
}
fn default_critical() -> u32 {
    7
}

#[derive(Debug)]
struct TlsProbe {
    host: String,
    port: u16,
    name: ServerName<'static>,
    /// The name as written, for messages.
    shown_name: String,
    warning_days: u32,
    critical_days: u32,
    inspector: net::tls::Inspector,
    problem: Option<String>,
}

pub(crate) fn build(table: &Table, ctx: &BuildContext<'_>) -> Result<Arc<dyn Probe>, BuildError> {
    let cfg: TlsConfig = table.deserialize()?;
    let host = ctx.address(cfg.address.as_deref())?;
    if cfg.port == 0 {
        return Err(BuildError::key("port", "must be 1 to 65535"));
    }
    if cfg.warning < cfg.critical {
        return Err(BuildError::key(
            "warning",
            format!(
                "the warning threshold ({} days) is below the critical one ({} days): \
                 warning must give more notice",
                cfg.warning, cfg.critical
            ),
        ));
    }
    let (name_key, shown_name) = match &cfg.server_name {
        Some(n) => ("server_name", n.clone()),
        None => ("address", net::bare_host(&host).to_owned()),
    };
    let name = net::tls::server_name(&shown_name).map_err(|e| BuildError::key(name_key, e))?;
    let trust =
        net::tls::Trust::new(cfg.ca_file.as_deref()).map_err(|e| BuildError::key("ca_file", e))?;
    let inspector = trust.inspector().map_err(BuildError::new)?;
    Ok(Arc::new(TlsProbe {
        host,
        port: cfg.port,
        name,
        shown_name,
        warning_days: cfg.warning,
        critical_days: cfg.critical,
        inspector,
        problem: trust.problem().map(str::to_owned),
    }))
}

#[async_trait::async_trait]
impl Probe for TlsProbe {
    fn kind(&self) -> &'static str {
        "tls"
    }

    async fn run(&self, timeout: Duration) -> Outcome {
        super::bounded(timeout, self.check(timeout)).await
    }
}

impl TlsProbe {
    async fn check(&self, timeout: Duration) -> Outcome {
        if let Some(p) = &self.problem {
            return Outcome::unknown(format!("TLS UNKNOWN - {p}"));
        }
        let start = Instant::now();
        let tcp = match net::connect(&self.host, self.port, true).await {
            Ok(s) => s,
            Err(e) => return Outcome::critical(format!("TLS CRITICAL - {e}")),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.inspector.config));
        let stream = match connector.connect(self.name.clone(), tcp).await {
            Ok(s) => s,
            Err(e) => {
                return Outcome::critical(format!(
                    "TLS CRITICAL - handshake with {} port {} failed: {}",
                    self.host,
                    self.port,
                    handshake_reason(&e)
                ));
            }
        };
        let elapsed = start.elapsed();
        let chain: Vec<CertificateDer<'static>> = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        drop(stream);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.judge(&chain, now)
            .perf(net::time_perf(elapsed, None, None, timeout))
    }

    /// The outcome for the chain a server showed, at UNIX time `now`.
    fn judge(&self, chain: &[CertificateDer<'_>], now: i64) -> Outcome {
        let Some(end_entity) = chain.first() else {
            return Outcome::critical("TLS CRITICAL - the server presented no certificate");
        };
        let cert = match X509Certificate::from_der(end_entity) {
            Ok((_, c)) => c,
            Err(e) => {
                return Outcome::critical(format!(
                    "TLS CRITICAL - cannot read the server's certificate: {e}"
                ));
            }
        };
        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        let details = describe(&cert, chain.len());
        let left = not_after.saturating_sub(now);
        let days = PerfDatum {
            warn: Some(format!("{}:", self.warning_days)),
            crit: Some(format!("{}:", self.critical_days)),
            ..PerfDatum::new("days", Some(left as f64 / DAY as f64), "")
        };
        let name = &self.shown_name;

        let verdict = self.inspector.verify(chain, &self.name, unix(now));
        // An expired (or not yet valid) certificate may be untrusted besides: judge it
        // again at a time it is valid, to say so too.
        let untrusted = match &verdict {
            Err(e) if net::tls::is_time_error(e) && (now > not_after || now < not_before) => {
                let inside = if now > not_after {
                    not_after.saturating_sub(1).max(not_before)
                } else {
                    not_before
                };
                self.inspector
                    .verify(chain, &self.name, unix(inside))
                    .err()
                    .map(|e| net::tls::untrusted_reason(&e))
            }
            Err(e) => Some(net::tls::untrusted_reason(e)),
            Ok(()) => None,
        };
        let also = |s: String| match &untrusted {
            Some(why) => format!("{s}; and it is untrusted: {why}"),
            None => s,
        };

        let outcome = if now > not_after {
            Outcome::critical(also(format!(
                "TLS CRITICAL - certificate for {name} expired on {} ({} ago)",
                net::utc(not_after),
                net::span(now - not_after)
            )))
        } else if now < not_before {
            Outcome::critical(also(format!(
                "TLS CRITICAL - certificate for {name} is not valid until {} (in {})",
                net::utc(not_before),
                net::span(not_before - now)
            )))
        } else if let Some(why) = untrusted {
            Outcome::critical(format!(
                "TLS CRITICAL - certificate for {name} is untrusted: {why} (expires in {}, {})",
                net::span(left),
                net::utc(not_after)
            ))
        } else {
            let status = if left < i64::from(self.critical_days) * DAY {
                Status::Critical
            } else if left < i64::from(self.warning_days) * DAY {
                Status::Warning
            } else {
                Status::Ok
            };
            Outcome::new(
                status,
                format!(
                    "TLS {} - certificate for {name} expires in {} ({})",
                    status.label(),
                    net::span(left),
                    net::utc(not_after)
                ),
            )
        };
        outcome.long_output(details).perf(days)
    }
}

fn unix(ts: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(ts).unwrap_or(0)))
}

/// Subject, issuer, names and validity: the long output.
fn describe(cert: &X509Certificate<'_>, chain_len: usize) -> String {
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => names.push(match ip.len() {
                    4 => <[u8; 4]>::try_from(*ip).map_or_else(
                        |_| String::new(),
                        |a| std::net::Ipv4Addr::from(a).to_string(),
                    ),
                    16 => <[u8; 16]>::try_from(*ip).map_or_else(
                        |_| String::new(),
                        |a| std::net::Ipv6Addr::from(a).to_string(),
                    ),
                    _ => String::new(),
                }),
                _ => {}
            }
        }
    }
    names.retain(|n| !n.is_empty());
    format!(
        "subject: {}\nissuer: {}\nnames: {}\nvalid: {} to {}\nchain: {chain_len} certificate(s)",
        cert.subject(),
        cert.issuer(),
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        },
        net::utc(cert.validity().not_before.timestamp()),
        net::utc(cert.validity().not_after.timestamp()),
    )
}

fn handshake_reason(e: &std::io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r) => r.to_string(),
        None => net::io_reason(e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::net::tls::testing::{Ca, serve};
    use super::*;

    const DAYS: i64 = DAY;

    async fn check(
        ca: &Ca,
        cert_ca: &Ca,
        names: &[&str],
        from: i64,
        until: i64,
        extra: &str,
    ) -> Outcome {
        let (cert, key) = cert_ca.leaf(names, from, until);
        let (port, _task) = serve(vec![cert], key, None).await;
        let toml = format!(
            "address = \"127.0.0.1\"\nport = {port}\nserver_name = \"localhost\"\nca_file = {:?}\n{extra}",
            ca.pem_file
        );
        let p = build(&Table::parse(&toml).unwrap(), &BuildContext::new(None)).unwrap();
        p.run(Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn a_long_lived_trusted_certificate_is_ok() {
        let ca = Ca::new("test CA");
        let out = check(&ca, &ca, &["localhost"], -DAYS, 400 * DAYS, "").await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
        assert!(
            out.message
                .starts_with("TLS OK - certificate for localhost expires in 399 days (")
                || out
                    .message
                    .starts_with("TLS OK - certificate for localhost expires in 400 days ("),
            "{}",
            out.message
        );
        assert!(
            out.long_output.contains("names: localhost"),
            "{}",
            out.long_output
        );
        let days = out.perfdata.iter().find(|p| p.label == "days").unwrap();
        assert!(days.value.unwrap() > 399.0);
        assert_eq!(days.warn.as_deref(), Some("30:"));
    }

    #[tokio::test]
    async fn expiring_soon_is_a_warning_then_critical() {
        let ca = Ca::new("test CA");
        let out = check(
            &ca,
            &ca,
            &["localhost"],
            -DAYS,
            5 * DAYS,
            "warning = 30\ncritical = 3",
        )
        .await;
        assert_eq!(out.status, Status::Warning, "{out:?}");
        assert!(
            out.message
                .contains("certificate for localhost expires in 4 days")
                || out
                    .message
                    .contains("certificate for localhost expires in 5 days"),
            "{}",
            out.message
        );
        // the default critical threshold is 7 days
        let out = check(&ca, &ca, &["localhost"], -DAYS, 5 * DAYS, "").await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(out.message.contains("expires in"), "{}", out.message);
    }

    #[tokio::test]
    async fn an_expired_certificate_is_critical_with_its_date() {
        let ca = Ca::new("test CA");
        let out = check(&ca, &ca, &["localhost"], -30 * DAYS, -3 * DAYS - 60, "").await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message
                .contains("certificate for localhost expired on ")
                && out.message.ends_with("(3 days ago)"),
            "{}",
            out.message
        );
        // expired and from an unknown CA: both are said
        let stranger = Ca::new("stranger");
        let out = check(&ca, &stranger, &["localhost"], -30 * DAYS, -3 * DAYS, "").await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message.contains("expired on")
                && out.message.contains("untrusted: issued by an unknown"),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_critical_with_the_reason() {
        let ca = Ca::new("test CA");
        let stranger = Ca::new("stranger");
        let out = check(&ca, &stranger, &["localhost"], -DAYS, 400 * DAYS, "").await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message.contains(
                "certificate for localhost is untrusted: issued by an unknown certificate authority"
            ) && (out.message.contains("(expires in 399 days,")
                || out.message.contains("(expires in 400 days,")),
            "{}",
            out.message
        );

        let out = check(&ca, &ca, &["example.org"], -DAYS, 400 * DAYS, "").await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message
                .contains("is untrusted: certificate not valid for name \"localhost\"")
                && out.message.contains("example.org"),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_critical() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let t = Table::parse(&format!("port = {port}")).unwrap();
        let p = build(&t, &BuildContext::new(Some("127.0.0.1"))).unwrap();
        let out = p.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert_eq!(
            out.message,
            format!("TLS CRITICAL - connection refused: 127.0.0.1:{port}")
        );
    }

    #[tokio::test]
    async fn a_plain_tcp_server_is_a_failed_handshake() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _task = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"220 hello, this is not TLS\r\n").await;
            }
        });
        let t = Table::parse(&format!("address = \"127.0.0.1\"\nport = {port}")).unwrap();
        let p = build(&t, &BuildContext::new(None)).unwrap();
        let out = p.run(Duration::from_secs(5)).await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message.contains("handshake with 127.0.0.1 port"),
            "{}",
            out.message
        );
    }

    #[test]
    fn bad_config_names_the_key() {
        let err =
            |toml: &str| build(&Table::parse(toml).unwrap(), &BuildContext::new(None)).unwrap_err();
        assert_eq!(
            err("address = \"a\"\nwarn = 3").offending_key(),
            Some("warn")
        );
        assert_eq!(
            err("address = \"a\"\nwarning = 3\ncritical = 7").offending_key(),
            Some("warning")
        );
        assert_eq!(
            err("address = \"a\"\nwarning = -1").offending_key(),
            Some("warning")
        );
        assert_eq!(
            err("address = \"a\"\nport = 0").offending_key(),
            Some("port")
        );
        assert_eq!(err("address = \"a b\"").offending_key(), Some("address"));
        assert_eq!(
            err("address = \"a\"\nserver_name = \"not a name!\"").offending_key(),
            Some("server_name")
        );
        assert_eq!(
            err("address = \"a\"\nca_file = \"/nonexistent\"").offending_key(),
            Some("ca_file")
        );
        assert_eq!(err("port = 443").offending_key(), Some("address"));
    }
}
