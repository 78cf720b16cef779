//! The `dns` kind: look a name up, and check the answers, like Nagios's `check_dns`.
//!
//! ```toml
//! name = "www.example.org"      # required; {host} is the check's host address
//! record = "A"                  # A, AAAA, CNAME, MX, TXT, NS, PTR, SRV, SOA, CAA, ...; default A
//! expect = ["192.0.2.10"]       # optional: values that must all be among the answers
//! server = "192.0.2.53:53"      # optional: the server to ask (default: /etc/resolv.conf's)
//! ```
//!
//! The name is looked up as written, fully qualified (no search domains), in DNS only
//! (not `/etc/hosts`), and never from a cache: every run asks the server.
//!
//! `expect` values compare as the record type says: addresses as addresses (`::1` is
//! `0::1`), names without case and trailing dot, an MX as its host name or as `10
//! mail.example.org`, TXT exactly.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertcore::{BuildError, Table};
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use serde::Deserialize;

use super::net;
use super::{BuildContext, OneOrMany, Probe};
use crate::outcome::Outcome;

/// How much of the answers the message shows.
const SHOWN: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsConfig {
    name: String,
    record: Option<String>,
    expect: Option<OneOrMany<String>>,
    server: Option<String>,
}

#[derive(Debug)]
struct DnsProbe {
    /// The name as written, for messages.
    shown: String,
    name: Name,
    record: RecordType,
    expect: Vec<String>,
    server: Option<SocketAddr>,
}

pub(crate) fn build(table: &Table, ctx: &BuildContext<'_>) -> Result<Arc<dyn Probe>, BuildError> {
    let cfg: DnsConfig = table.deserialize()?;
    let shown = ctx.expand("name", &cfg.name)?;
    let shown = shown.trim_end_matches('.').to_owned();
    if shown.is_empty() {
        return Err(BuildError::key("name", "is empty"));
    }
    let mut name = Name::from_str(&shown)
        .map_err(|e| BuildError::key("name", format!("{shown:?} is not a domain name ({e})")))?;
    // As written: no search domains.
    name.set_fqdn(true);
    let record = match &cfg.record {
        None => RecordType::A,
        Some(r) => {
            let t = RecordType::from_str(&r.to_ascii_uppercase()).map_err(|_| {
                BuildError::key("record", format!("{r:?} is not a DNS record type"))
            })?;
            if matches!(
                t,
                RecordType::ANY
                    | RecordType::AXFR
                    | RecordType::IXFR
                    | RecordType::OPT
                    | RecordType::ZERO
                    | RecordType::NULL
                    | RecordType::TSIG
            ) {
                return Err(BuildError::key(
                    "record",
                    format!(
                        "{r:?} cannot be checked: name a record type such as A, AAAA, MX or TXT"
                    ),
                ));
            }
            t
        }
    };
    let expect = cfg.expect.map(OneOrMany::into_vec).unwrap_or_default();
    for e in &expect {
        let bad = match record {
            RecordType::A => e.trim().parse::<std::net::Ipv4Addr>().is_err(),
            RecordType::AAAA => e.trim().parse::<std::net::Ipv6Addr>().is_err(),
            _ => e.trim().is_empty(),
        };
        if bad {
            return Err(BuildError::key(
                "expect",
                format!("{e:?} cannot be the value of a {record} record"),
            ));
        }
    }
    let server = cfg
        .server
        .as_deref()
        .map(|s| {
            s.parse::<SocketAddr>()
                .or_else(|_| {
                    net::bare_host(s)
                        .parse::<IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    BuildError::key(
                        "server",
                        format!("{s:?} is not an IP address, or address:port"),
                    )
                })
        })
        .transpose()?;
    Ok(Arc::new(DnsProbe {
        shown,
        name,
        record,
        expect,
        server,
    }))
}

#[async_trait::async_trait]
impl Probe for DnsProbe {
    fn kind(&self) -> &'static str {
        "dns"
    }

    async fn run(&self, timeout: Duration) -> Outcome {
        super::bounded(timeout, self.check(timeout)).await
    }
}

impl DnsProbe {
    /// A resolver for one run: no cache survives to the next.
    fn resolver(&self, budget: Duration) -> Result<TokioResolver, String> {
        let mut builder = match self.server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => Resolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?,
        };
        let o = builder.options_mut();
        // Two tries within the timeout: one lost UDP datagram is not an outage.
        o.timeout = (budget / 2).max(Duration::from_millis(50));
        o.attempts = 2;
        o.cache_size = 0;
        o.use_hosts_file = ResolveHosts::Never;
        o.preserve_intermediates = true;
        builder
            .build()
            .map_err(|e| format!("cannot set up the resolver: {e}"))
    }

    fn from(&self) -> String {
        self.server
            .map_or_else(String::new, |s| format!(" from {s}"))
    }

    async fn check(&self, timeout: Duration) -> Outcome {
        // Give up a little before the timeout, to say which server did not answer.
        let budget = timeout.saturating_sub((timeout / 10).min(Duration::from_millis(250)));
        let resolver = match self.resolver(budget) {
            Ok(r) => r,
            Err(e) => return Outcome::unknown(format!("DNS UNKNOWN - {e}")),
        };
        let (name, record) = (&self.shown, self.record);
        let start = Instant::now();
        let result = tokio::time::timeout(budget, resolver.lookup(self.name.clone(), record)).await;
        let elapsed = start.elapsed();
        let perf = net::time_perf(elapsed, None, None, timeout);
        let lookup = match result {
            Ok(Ok(l)) => l,
            Err(_) => {
                return Outcome::critical(format!(
                    "DNS CRITICAL - no answer for {name} {record}{} within {}",
                    self.from(),
                    alertcore::duration::format(budget)
                ))
                .perf(perf);
            }
            Ok(Err(e)) => {
                return Outcome::critical(format!("DNS CRITICAL - {}", self.failure(&e)))
                    .perf(perf);
            }
        };
        let answers: Vec<&RData> = lookup
            .answers()
            .iter()
            .filter(|r| r.record_type() == record)
            .map(|r| &r.data)
            .collect();
        if answers.is_empty() {
            return Outcome::critical(format!(
                "DNS CRITICAL - {name} has no {record} record{}",
                self.from()
            ))
            .perf(perf);
        }
        let shown = shorten(
            answers
                .iter()
                .map(|a| show(a))
                .collect::<Vec<_>>()
                .join(", "),
        );
        let missing: Vec<&str> = self
            .expect
            .iter()
            .filter(|e| !answers.iter().any(|a| matches(e, a)))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Outcome::critical(format!(
                "DNS CRITICAL - {name} {record}: expected {} not among the answers{} ({shown})",
                missing.join(", "),
                self.from(),
            ))
            .perf(perf);
        }
        Outcome::ok(format!(
            "DNS OK - {name} {record}: {shown} in {} s",
            net::secs(elapsed)
        ))
        .perf(perf)
    }

    /// Why the lookup failed, in a few words.
    fn failure(&self, e: &NetError) -> String {
        let (name, record) = (&self.shown, self.record);
        let from = self.from();
        match e {
            NetError::Dns(DnsError::NoRecordsFound(NoRecords {
                response_code: ResponseCode::NXDomain,
                ..
            })) => format!("name {name} does not resolve (NXDOMAIN{from})"),
            NetError::Dns(DnsError::NoRecordsFound(_)) => {
                format!("{name} has no {record} record{from}")
            }
            NetError::Dns(DnsError::ResponseCode(code)) => {
                format!("{} ({code}) for {name} {record}{from}", rcode_word(*code))
            }
            NetError::Timeout => format!("no answer for {name} {record}{from}: timed out"),
            NetError::Io(io) => format!(
                "no answer for {name} {record}{from}: {}",
                net::io_reason(io)
            ),
            other => format!("no answer for {name} {record}{from}: {other}"),
        }
    }
}

fn rcode_word(code: ResponseCode) -> String {
    match code {
        ResponseCode::ServFail => "SERVFAIL".to_owned(),
        ResponseCode::Refused => "REFUSED".to_owned(),
        ResponseCode::FormErr => "FORMERR".to_owned(),
        ResponseCode::NotImp => "NOTIMP".to_owned(),
        ResponseCode::NXDomain => "NXDOMAIN".to_owned(),
        other => format!("rcode {}", u16::from(other)),
    }
}

/// An answer as text, without panicking on data that has no text form.
fn show(data: &RData) -> String {
    let mut s = String::new();
    if write!(s, "{data}").is_err() {
        s = format!("({} record)", data.record_type());
    }
    s
}

fn shorten(s: String) -> String {
    if s.chars().count() <= SHOWN {
        s
    } else {
        let mut cut: String = s.chars().take(SHOWN).collect();
        cut.push_str("...");
        cut
    }
}

/// A domain name for comparing: no case, no trailing dot.
fn norm_name(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Whether the answer `data` is the `expected` value.
fn matches(expected: &str, data: &RData) -> bool {
    let e = expected.trim();
    match data {
        RData::A(a) => e.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip == a.0),
        RData::AAAA(a) => e.parse::<std::net::Ipv6Addr>().is_ok_and(|ip| ip == a.0),
        RData::MX(mx) => {
            let words: Vec<&str> = e.split_whitespace().collect();
            match words.as_slice() {
                [host] => norm_name(host) == norm_name(&mx.exchange.to_string()),
                [pref, host] => {
                    pref.parse::<u16>().is_ok_and(|p| p == mx.preference)
                        && norm_name(host) == norm_name(&mx.exchange.to_string())
                }
                _ => false,
            }
        }
        RData::TXT(_) => expected == show(data),
        _ => {
            let words = |s: &str| s.split_whitespace().map(norm_name).collect::<Vec<_>>();
            words(e) == words(&show(data))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;
    use crate::outcome::Status;

    const T: Duration = Duration::from_secs(5);

    /// A dnsmasq on 127.0.0.1 serving a few records, killed when dropped.
    struct Dnsmasq {
        child: Child,
        port: u16,
    }

    impl Drop for Dnsmasq {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts dnsmasq, or says why it cannot (and fails under CI, where it must run).
    async fn dnsmasq() -> Option<Dnsmasq> {
        let Some(bin) = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
        else {
            assert!(
                !crate::under_ci(),
                "dnsmasq is not installed (Debian: dnsmasq-base): the dns tests cannot run"
            );
            eprintln!("skipping: dnsmasq is not installed (Debian: dnsmasq-base)");
            return None;
        };
        // A port free for UDP and TCP now; dnsmasq takes it right after.
        let port = {
            let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = tcp.local_addr().unwrap().port();
            std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
            port
        };
        let child = Command::new(bin)
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                &format!("--port={port}"),
                "--address=/example.test/127.0.0.7",
                "--address=/example.test/127.0.0.8",
                "--txt-record=example.test,v=spf1 -all",
                "--mx-host=example.test,mail.example.test,10",
                "--cname=www.example.test,example.test",
                "--local=/test/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut d = Dnsmasq { child, port };
        // Ready when it accepts TCP on its port (it binds UDP before).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(d);
            }
            if let Some(status) = d.child.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = d.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("dnsmasq exited ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "dnsmasq did not start listening");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn probe(d: &Dnsmasq, toml: &str) -> Arc<dyn Probe> {
        let toml = format!("server = \"127.0.0.1:{}\"\n{toml}", d.port);
        build(&Table::parse(&toml).unwrap(), &BuildContext::new(None)).unwrap()
    }

    #[tokio::test]
    async fn answers_and_expectations() {
        let Some(d) = dnsmasq().await else { return };

        let out = probe(&d, "name = \"example.test\"").run(T).await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
        assert!(
            out.message.starts_with("DNS OK - example.test A: 127.0.0."),
            "{}",
            out.message
        );
        assert!(
            out.message.contains("127.0.0.7") && out.message.contains("127.0.0.8"),
            "{}",
            out.message
        );

        let out = probe(
            &d,
            "name = \"example.test\"\nexpect = [\"127.0.0.8\", \"127.0.0.7\"]",
        )
        .run(T)
        .await;
        assert_eq!(out.status, Status::Ok, "{out:?}");

        let out = probe(&d, "name = \"Example.Test.\"\nexpect = \"127.0.0.7\"")
            .run(T)
            .await;
        assert_eq!(out.status, Status::Ok, "{out:?}");

        let out = probe(
            &d,
            "name = \"example.test\"\nexpect = [\"127.0.0.7\", \"10.0.0.1\"]",
        )
        .run(T)
        .await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message.starts_with(&format!(
                "DNS CRITICAL - example.test A: expected 10.0.0.1 not among the answers from 127.0.0.1:{} (127.0.0.",
                d.port
            )),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn other_record_types() {
        let Some(d) = dnsmasq().await else { return };
        let out = probe(
            &d,
            "name = \"example.test\"\nrecord = \"mx\"\nexpect = \"mail.example.test\"",
        )
        .run(T)
        .await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
        let out = probe(
            &d,
            "name = \"example.test\"\nrecord = \"MX\"\nexpect = \"20 mail.example.test.\"",
        )
        .run(T)
        .await;
        assert_eq!(out.status, Status::Critical, "{out:?}");

        let out = probe(
            &d,
            "name = \"example.test\"\nrecord = \"TXT\"\nexpect = \"v=spf1 -all\"",
        )
        .run(T)
        .await;
        assert_eq!(out.status, Status::Ok, "{out:?}");

        let out = probe(
            &d,
            "name = \"www.example.test\"\nrecord = \"CNAME\"\nexpect = \"EXAMPLE.test\"",
        )
        .run(T)
        .await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
    }

    #[tokio::test]
    async fn unknown_names_and_missing_records() {
        let Some(d) = dnsmasq().await else { return };
        let out = probe(&d, "name = \"nothing.test\"").run(T).await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert_eq!(
            out.message,
            format!(
                "DNS CRITICAL - name nothing.test does not resolve (NXDOMAIN from 127.0.0.1:{})",
                d.port
            )
        );
        let out = probe(&d, "name = \"example.test\"\nrecord = \"AAAA\"")
            .run(T)
            .await;
        assert_eq!(out.status, Status::Critical, "{out:?}");
        assert!(
            out.message
                .starts_with("DNS CRITICAL - example.test has no AAAA record"),
            "{}",
            out.message
        );
    }

    #[tokio::test]
    async fn no_server_is_critical_within_the_timeout() {
        // a UDP port nobody answers on: bound here, never read
        let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let t = Table::parse(&format!(
            "name = \"example.test\"\nserver = \"127.0.0.1:{port}\""
        ))
        .unwrap();
        let p = build(&t, &BuildContext::new(None)).unwrap();
        let timeout = Duration::from_millis(500);
        let start = Instant::now();
        let out = p.run(timeout).await;
        assert!(start.elapsed() < timeout + Duration::from_secs(2));
        assert_eq!(out.status, Status::Critical, "{out:?}");
        // hickory's own timeout or ours: both say which server did not answer
        assert!(
            out.message.starts_with(&format!(
                "DNS CRITICAL - no answer for example.test A from 127.0.0.1:{port}"
            )),
            "{}",
            out.message
        );
    }

    #[test]
    fn bad_config_names_the_key() {
        let key = |toml: &str| {
            build(&Table::parse(toml).unwrap(), &BuildContext::new(None))
                .unwrap_err()
                .offending_key()
                .map(str::to_owned)
        };
        assert_eq!(
            key("name = \"a.test\"\nrecrd = \"A\"").as_deref(),
            Some("recrd")
        );
        assert_eq!(key("record = \"A\"").as_deref(), Some("name"));
        assert_eq!(key("name = \"{host}\"").as_deref(), Some("name"));
        assert_eq!(key("name = \"\"").as_deref(), Some("name"));
        assert_eq!(
            key("name = \"a.test\"\nrecord = \"BOGUS\"").as_deref(),
            Some("record")
        );
        assert_eq!(
            key("name = \"a.test\"\nrecord = \"AXFR\"").as_deref(),
            Some("record")
        );
        assert_eq!(
            key("name = \"a.test\"\nexpect = [\"not-an-ip\"]").as_deref(),
            Some("expect")
        );
        assert_eq!(
            key("name = \"a.test\"\nrecord = \"AAAA\"\nexpect = \"1.2.3.4\"").as_deref(),
            Some("expect")
        );
        assert_eq!(
            key("name = \"a.test\"\nexpect = 5").as_deref(),
            Some("expect")
        );
        assert_eq!(
            key("name = \"a.test\"\nserver = \"dns.example\"").as_deref(),
            Some("server")
        );
    }

    #[test]
    fn expected_values_compare_by_type() {
        use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
        let a = RData::A(A("192.0.2.1".parse().unwrap()));
        assert!(matches("192.0.2.1", &a) && matches(" 192.0.2.1 ", &a));
        assert!(!matches("192.0.2.10", &a));
        let aaaa = RData::AAAA(AAAA("2001:db8::1".parse().unwrap()));
        assert!(matches("2001:DB8:0::1", &aaaa));
        let mx = RData::MX(MX::new(10, Name::from_str("Mail.Example.org.").unwrap()));
        assert!(matches("mail.example.org", &mx) && matches("10 mail.example.org.", &mx));
        assert!(!matches("20 mail.example.org", &mx) && !matches("mail2.example.org", &mx));
        let cname = RData::CNAME(CNAME(Name::from_str("target.example.org.").unwrap()));
        assert!(matches("TARGET.example.org", &cname));
        let txt = RData::TXT(TXT::new(vec!["Hello World".to_owned()]));
        assert!(matches("Hello World", &txt) && !matches("hello world", &txt));
    }
}
