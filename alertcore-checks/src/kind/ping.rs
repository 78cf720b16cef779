//! The `ping` kind: ICMP echo, round-trip time and packet loss, like Nagios's
//! `check_ping`.
//!
//! ```toml
//! address = "192.0.2.1"   # default: the check's host
//! count = 3               # echo requests sent (default 3)
//! interval = "200ms"      # between them (default 200ms)
//! warning = "200ms"       # average round trip at or above which it is a warning (default 200ms)
//! critical = "500ms"      # ... critical (default 500ms)
//! warning_loss = 20       # packet loss in percent at or above which it is a warning (default 20)
//! critical_loss = 60      # ... critical (default 60)
//! ```
//!
//! It needs no `ping` binary and no privilege where unprivileged ICMP sockets are
//! allowed (`net.ipv4.ping_group_range` includes the group); elsewhere it needs a raw
//! socket (root or `CAP_NET_RAW`), and without either it is unknown, saying so. Replies
//! not in by the timeout (less a little, to report rather than time out) are lost.

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use alertcore::{BuildError, Table};
use serde::Deserialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::net;
use super::{BuildContext, Probe};
use crate::outcome::{Outcome, PerfDatum, Status};

/// Echo payload: 8 bytes of nonce, then a fixed pattern (56 bytes like ping's default).
const PAYLOAD: usize = 56;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PingConfig {
    address: Option<String>,
    #[serde(default = "default_count")]
    count: u16,
    #[serde(default = "default_interval", with = "alertcore::duration")]
    interval: Duration,
    #[serde(default = "default_warning", with = "alertcore::duration")]
    warning: Duration,
    #[serde(default = "default_critical", with = "alertcore::duration")]
    critical: Duration,
    #[serde(default = "default_warning_loss")]
    warning_loss: f64,
    #[serde(default = "default_critical_loss")]
    critical_loss: f64,
}

fn default_count() -> u16 {
    3
}
fn default_interval() -> Duration {
    Duration::from_millis(200)
}
fn default_warning() -> Duration {
    Duration::from_millis(200)
}
fn default_critical() -> Duration {
    Duration::from_millis(500)
}
fn default_warning_loss() -> f64 {
    20.0
}
fn default_critical_loss() -> f64 {
    60.0
}

#[derive(Debug)]
struct PingProbe {
    host: String,
    count: u16,
    interval: Duration,
    warning: Duration,
    critical: Duration,
    warning_loss: f64,
    critical_loss: f64,
}

pub(crate) fn build(table: &Table, ctx: &BuildContext<'_>) -> Result<Arc<dyn Probe>, BuildError> {
    let cfg: PingConfig = table.deserialize()?;
    let host = ctx.address(cfg.address.as_deref())?;
    if !(1..=100).contains(&cfg.count) {
        return Err(BuildError::key("count", "must be 1 to 100"));
    }
    if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&cfg.interval) {
        return Err(BuildError::key("interval", "must be between 10ms and 1m"));
    }
    for (key, v) in [
        ("warning_loss", cfg.warning_loss),
        ("critical_loss", cfg.critical_loss),
    ] {
        if !(0.0..=100.0).contains(&v) {
            return Err(BuildError::key(key, "must be a percentage, 0 to 100"));
        }
    }
    net::check_order(Some(cfg.warning), Some(cfg.critical), "warning", |d| {
        alertcore::duration::format(*d)
    })?;
    net::check_order(
        Some(cfg.warning_loss),
        Some(cfg.critical_loss),
        "warning_loss",
        |p| format!("{p}%"),
    )?;
    Ok(Arc::new(PingProbe {
        host,
        count: cfg.count,
        interval: cfg.interval,
        warning: cfg.warning,
        critical: cfg.critical,
        warning_loss: cfg.warning_loss,
        critical_loss: cfg.critical_loss,
    }))
}

#[async_trait::async_trait]
impl Probe for PingProbe {
    fn kind(&self) -> &'static str {
        "ping"
    }

    async fn run(&self, timeout: Duration) -> Outcome {
        super::bounded(timeout, self.check(timeout)).await
    }
}

/// Which kind of ICMP socket a run got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// `SOCK_DGRAM`: unprivileged; the kernel sets the identifier and strips the IP header.
    Dgram,
    /// `SOCK_RAW`: privileged; an IPv4 one receives the IP header too.
    Raw,
}

impl PingProbe {
    async fn check(&self, timeout: Duration) -> Outcome {
        let start = Instant::now();
        // Stop waiting a little before the timeout, to report the loss rather than time out.
        let budget = timeout.saturating_sub((timeout / 10).min(Duration::from_millis(250)));
        let sending = self.interval * u32::from(self.count - 1);
        if sending >= budget {
            return Outcome::unknown(format!(
                "PING UNKNOWN - {} packets {} apart do not fit in the timeout ({})",
                self.count,
                alertcore::duration::format(self.interval),
                alertcore::duration::format(timeout)
            ));
        }
        let ip = match net::resolve(&self.host, 0).await {
            Ok(addrs) => match addrs.first() {
                Some(a) => a.ip(),
                None => {
                    return Outcome::critical(format!(
                        "PING CRITICAL - cannot resolve {}",
                        self.host
                    ));
                }
            },
            Err(e) => return Outcome::critical(format!("PING CRITICAL - {e}")),
        };
        let (socket, flavor) = match open(ip) {
            Ok(s) => s,
            Err(e) => return Outcome::unknown(format!("PING UNKNOWN - {e}")),
        };
        let v6 = ip.is_ipv6();
        let id = random() as u16;
        let nonce = random();
        let count = usize::from(self.count);
        let mut sent_at: Vec<Option<Instant>> = vec![None; count];
        let mut rtts: Vec<Option<Duration>> = vec![None; count];
        let mut next = 0usize;
        let mut received = 0usize;
        let mut trouble: Option<String> = None;
        let mut buf = [0u8; 2048];
        let deadline = start + budget;
        while received < count {
            let send_at = start + self.interval * u32::try_from(next).unwrap_or(u32::MAX);
            tokio::select! {
                () = tokio::time::sleep_until(send_at), if next < count => {
                    let seq = u16::try_from(next).unwrap_or(u16::MAX);
                    let packet = echo_request(v6, id, seq, nonce);
                    let now = Instant::now();
                    match socket.send(&packet).await {
                        Ok(_) => sent_at[next] = Some(now),
                        Err(e) => trouble = Some(net::io_reason(&e)),
                    }
                    next += 1;
                }
                r = socket.recv(&mut buf) => match r {
                    Ok(n) => {
                        let packet = buf.get(..n).unwrap_or_default();
                        if let Some(seq) = parse_reply(packet, v6, flavor, id, nonce) {
                            let i = usize::from(seq);
                            if let (Some(Some(at)), Some(slot @ None)) = (sent_at.get(i), rtts.get_mut(i)) {
                                *slot = Some(at.elapsed());
                                received += 1;
                            }
                        }
                    }
                    // An ICMP error about an earlier request (unreachable, ...).
                    Err(e) => trouble = Some(icmp_error(&e)),
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let times: Vec<Duration> = rtts.into_iter().flatten().collect();
        self.report(ip, flavor, &times, trouble)
    }

    /// The outcome for `times`, the round trips of the replies that came back.
    fn report(
        &self,
        ip: IpAddr,
        flavor: Flavor,
        times: &[Duration],
        trouble: Option<String>,
    ) -> Outcome {
        let count = usize::from(self.count);
        let received = times.len().min(count);
        let loss = ((count - received) * 100 / count) as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let rta = (!times.is_empty())
            .then(|| times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64);
        let status = grade(
            loss,
            rta,
            (self.warning_loss, self.critical_loss),
            (ms(self.warning), ms(self.critical)),
        );
        let mut message = format!("PING {} - Packet loss = {loss:.0}%", status.label());
        if let Some(rta) = rta {
            message.push_str(&format!(", RTA = {rta:.2} ms"));
        }
        if received < count
            && let Some(t) = &trouble
        {
            message.push_str(&format!(" ({t})"));
        }
        let socket = match flavor {
            Flavor::Dgram => "unprivileged ICMP socket",
            Flavor::Raw => "raw ICMP socket",
        };
        let mut long = format!("{count} echo requests to {ip} ({socket}), {received} replies");
        if let (Some(min), Some(max), Some(avg)) = (times.iter().min(), times.iter().max(), rta) {
            long.push_str(&format!(
                "; rtt min/avg/max = {:.3}/{avg:.3}/{:.3} ms",
                ms(*min),
                ms(*max)
            ));
        }
        let mut rta_perf = PerfDatum::new("rta", rta, "ms");
        rta_perf.warn = Some(format!("{:.3}", ms(self.warning)));
        rta_perf.crit = Some(format!("{:.3}", ms(self.critical)));
        rta_perf.min = Some(0.0);
        let mut pl_perf = PerfDatum::new("pl", Some(loss), "%");
        pl_perf.warn = Some(self.warning_loss.to_string());
        pl_perf.crit = Some(self.critical_loss.to_string());
        pl_perf.min = Some(0.0);
        pl_perf.max = Some(100.0);
        Outcome::new(status, message)
            .long_output(long)
            .perf(rta_perf)
            .perf(pl_perf)
    }
}

/// An error an ICMP socket reports (from an ICMP error message), in ping's words.
fn icmp_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "destination port unreachable".to_owned(),
        K::HostUnreachable => "destination host unreachable".to_owned(),
        K::NetworkUnreachable => "destination net unreachable".to_owned(),
        _ => net::io_reason(e),
    }
}

/// `check_ping`'s rule: critical when the loss or the average round trip (ms) is at or
/// above its critical threshold, or nothing came back; warning likewise.
fn grade(
    loss: f64,
    rta: Option<f64>,
    (warn_loss, crit_loss): (f64, f64),
    (warn_rta, crit_rta): (f64, f64),
) -> Status {
    let Some(rta) = rta else {
        return Status::Critical;
    };
    if loss >= crit_loss || rta >= crit_rta {
        Status::Critical
    } else if loss >= warn_loss || rta >= warn_rta {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// An ICMP socket connected to `ip`: the unprivileged kind if allowed, else raw.
fn open(ip: IpAddr) -> Result<(UdpSocket, Flavor), String> {
    let (domain, protocol) = match ip {
        IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
        IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
    };
    let (socket, flavor) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => (s, Flavor::Dgram),
        Err(dgram) => match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(s) => (s, Flavor::Raw),
            Err(raw) => {
                let range = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range")
                    .map(|r| {
                        format!(
                            ", net.ipv4.ping_group_range is {:?}",
                            r.split_whitespace().collect::<Vec<_>>().join(" ")
                        )
                    })
                    .unwrap_or_default();
                return Err(format!(
                    "cannot open an ICMP socket: unprivileged ping is not allowed here ({}{range}) \
                     and a raw socket needs root or CAP_NET_RAW ({})",
                    net::io_reason(&dgram),
                    net::io_reason(&raw)
                ));
            }
        },
    };
    let setup = |s: &Socket| -> std::io::Result<()> {
        s.set_nonblocking(true)?;
        s.connect(&SockAddr::from(SocketAddr::new(ip, 0)))
    };
    setup(&socket).map_err(|e| {
        format!(
            "cannot set up the ICMP socket for {ip}: {}",
            net::io_reason(&e)
        )
    })?;
    let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket)).map_err(|e| {
        format!(
            "cannot set up the ICMP socket for {ip}: {}",
            net::io_reason(&e)
        )
    })?;
    Ok((socket, flavor))
}

/// A random number, from the standard library's per-process random hash keys.
fn random() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// An echo request: type, code, checksum, identifier, sequence, payload (the nonce,
/// then a pattern). The kernel fills in the ICMPv6 checksum, and for an unprivileged
/// socket the identifier.
fn echo_request(v6: bool, id: u16, seq: u16, nonce: u64) -> [u8; 8 + PAYLOAD] {
    let mut p = [0u8; 8 + PAYLOAD];
    p[0] = if v6 { 128 } else { 8 };
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(&nonce.to_be_bytes());
    for (i, b) in p[16..].iter_mut().enumerate() {
        *b = (i % 256) as u8;
    }
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = match pair {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The sequence number of `packet` if it is the reply to one of our requests: an echo
/// reply carrying our nonce (and, on a raw socket, our identifier).
fn parse_reply(packet: &[u8], v6: bool, flavor: Flavor, id: u16, nonce: u64) -> Option<u16> {
    let icmp = if flavor == Flavor::Raw && !v6 {
        let first = *packet.first()?;
        if first >> 4 != 4 {
            return None;
        }
        packet.get(usize::from(first & 0x0f) * 4..)?
    } else {
        packet
    };
    let reply_type = if v6 { 129 } else { 0 };
    if *icmp.first()? != reply_type || *icmp.get(1)? != 0 {
        return None;
    }
    let their_id = u16::from_be_bytes(icmp.get(4..6)?.try_into().ok()?);
    if flavor == Flavor::Raw && their_id != id {
        return None;
    }
    if icmp.get(8..16)? != nonce.to_be_bytes() {
        return None;
    }
    Some(u16::from_be_bytes(icmp.get(6..8)?.try_into().ok()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn probe(toml: &str) -> Arc<dyn Probe> {
        build(&Table::parse(toml).unwrap(), &BuildContext::new(None)).unwrap()
    }

    #[tokio::test]
    async fn loopback_answers_every_echo() {
        // generous round-trip thresholds: a loaded machine must not make this fail
        let p = probe(
            "address = \"127.0.0.1\"\ncount = 4\ninterval = \"20ms\"\nwarning = \"2s\"\ncritical = \"3s\"",
        );
        let out = p.run(Duration::from_secs(5)).await;
        match open("127.0.0.1".parse().unwrap()) {
            Ok((_, flavor)) => {
                assert_eq!(out.status, Status::Ok, "{out:?}");
                let socket = match flavor {
                    Flavor::Dgram => "(unprivileged ICMP socket)",
                    Flavor::Raw => "(raw ICMP socket)",
                };
                assert!(out.long_output.contains(socket), "{}", out.long_output);
                assert!(
                    out.message
                        .starts_with("PING OK - Packet loss = 0%, RTA = "),
                    "{}",
                    out.message
                );
                assert!(out.long_output.contains("4 replies"), "{}", out.long_output);
                assert_eq!(out.perfdata[0].label, "rta");
                assert_eq!(out.perfdata[1].label, "pl");
                assert_eq!(out.perfdata[1].value, Some(0.0));
            }
            Err(e) => {
                eprintln!("no ICMP socket here: {e}");
                assert_eq!(out.status, Status::Unknown, "{out:?}");
                assert!(
                    out.message
                        .starts_with("PING UNKNOWN - cannot open an ICMP socket"),
                    "{}",
                    out.message
                );
            }
        }
    }

    #[tokio::test]
    async fn ipv6_loopback_if_there_is_one() {
        if std::net::UdpSocket::bind("[::1]:0").is_err() || open("::1".parse().unwrap()).is_err() {
            eprintln!("skipping: no IPv6 loopback or no ICMPv6 socket here");
            return;
        }
        let out = probe("address = \"::1\"\ncount = 2\ninterval = \"20ms\"")
            .run(Duration::from_secs(5))
            .await;
        assert_eq!(out.status, Status::Ok, "{out:?}");
    }

    #[tokio::test]
    async fn packets_that_do_not_fit_in_the_timeout_are_unknown() {
        let p = probe("address = \"127.0.0.1\"\ncount = 10\ninterval = \"1s\"");
        let out = p.run(Duration::from_secs(2)).await;
        assert_eq!(out.status, Status::Unknown, "{out:?}");
        assert!(
            out.message
                .contains("10 packets 1s apart do not fit in the timeout (2s)"),
            "{}",
            out.message
        );
    }

    #[test]
    fn grading_follows_check_ping() {
        let t = ((20.0, 60.0), (200.0, 500.0));
        assert_eq!(grade(0.0, Some(0.05), t.0, t.1), Status::Ok);
        assert_eq!(grade(33.0, Some(0.05), t.0, t.1), Status::Warning);
        assert_eq!(grade(66.0, Some(0.05), t.0, t.1), Status::Critical);
        assert_eq!(grade(0.0, Some(200.0), t.0, t.1), Status::Warning);
        assert_eq!(grade(0.0, Some(500.0), t.0, t.1), Status::Critical);
        assert_eq!(grade(100.0, None, t.0, t.1), Status::Critical);
    }

    #[test]
    fn report_of_a_partial_loss() {
        let p = PingProbe {
            host: "192.0.2.1".into(),
            count: 3,
            interval: Duration::from_millis(200),
            warning: Duration::from_millis(200),
            critical: Duration::from_millis(500),
            warning_loss: 20.0,
            critical_loss: 60.0,
        };
        let ip = "192.0.2.1".parse().unwrap();
        let two = [Duration::from_micros(40), Duration::from_micros(60)];
        let out = p.report(ip, Flavor::Raw, &two, Some("host unreachable".into()));
        assert_eq!(out.status, Status::Warning);
        assert_eq!(
            out.message,
            "PING WARNING - Packet loss = 33%, RTA = 0.05 ms (host unreachable)"
        );
        let out = p.report(ip, Flavor::Dgram, &[], None);
        assert_eq!(out.status, Status::Critical);
        assert_eq!(out.message, "PING CRITICAL - Packet loss = 100%");
        assert_eq!(out.perfdata[0].value, None);
    }

    #[test]
    fn replies_are_recognised_and_the_rest_ignored() {
        let (id, nonce) = (0x1234, 0xdead_beef_0bad_f00d);
        let mut reply = echo_request(false, id, 7, nonce);
        reply[0] = 0;
        // unprivileged socket: no IP header, the identifier is the kernel's
        assert_eq!(parse_reply(&reply, false, Flavor::Dgram, 0, nonce), Some(7));
        // raw socket: an IPv4 header first (20 bytes), and our identifier
        let mut ip = vec![0x45u8];
        ip.extend_from_slice(&[0; 19]);
        ip.extend_from_slice(&reply);
        assert_eq!(parse_reply(&ip, false, Flavor::Raw, id, nonce), Some(7));
        assert_eq!(parse_reply(&ip, false, Flavor::Raw, id + 1, nonce), None);
        assert_eq!(parse_reply(&ip, false, Flavor::Raw, id, nonce + 1), None);
        // our own request, seen on a raw socket over loopback
        let request = echo_request(false, id, 7, nonce);
        assert_eq!(parse_reply(&request, false, Flavor::Dgram, id, nonce), None);
        // IPv6: reply type 129
        let mut v6 = echo_request(true, id, 9, nonce);
        assert_eq!(parse_reply(&v6, true, Flavor::Raw, id, nonce), None);
        v6[0] = 129;
        assert_eq!(parse_reply(&v6, true, Flavor::Raw, id, nonce), Some(9));
        // every truncation of a reply is ignored without a panic
        for n in 0..ip.len() {
            let _ = parse_reply(&ip[..n], false, Flavor::Raw, id, nonce);
            assert_eq!(
                parse_reply(&ip[..n.min(35)], false, Flavor::Raw, id, nonce),
                None
            );
        }
    }

    #[test]
    fn checksums() {
        let p = echo_request(false, 1, 2, 3);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        // RFC 1071's example
        assert_eq!(
            !checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn bad_config_names_the_key() {
        let key = |toml: &str| {
            build(&Table::parse(toml).unwrap(), &BuildContext::new(None))
                .unwrap_err()
                .offending_key()
                .map(str::to_owned)
        };
        assert_eq!(key("address = \"a\"\ncunt = 3").as_deref(), Some("cunt"));
        assert_eq!(key("count = 3").as_deref(), Some("address"));
        assert_eq!(key("address = \"a\"\ncount = 0").as_deref(), Some("count"));
        assert_eq!(
            key("address = \"a\"\ncount = 1000").as_deref(),
            Some("count")
        );
        assert_eq!(
            key("address = \"a\"\ninterval = \"1ms\"").as_deref(),
            Some("interval")
        );
        // a huge one would overflow the send times
        assert_eq!(
            key("address = \"a\"\ninterval = \"10000000000000000000s\"").as_deref(),
            Some("interval")
        );
        assert_eq!(
            key("address = \"a\"\nwarning = \"1s\"").as_deref(),
            Some("warning")
        );
        assert_eq!(
            key("address = \"a\"\nwarning_loss = 101").as_deref(),
            Some("warning_loss")
        );
        assert_eq!(
            key("address = \"a\"\nwarning_loss = 70").as_deref(),
            Some("warning_loss")
        );
        assert_eq!(
            key("address = \"a\"\ncritical_loss = \"x\"").as_deref(),
            Some("critical_loss")
        );
        // integers and floats are both percentages
        build(
            &Table::parse("address = \"a\"\nwarning_loss = 10\ncritical_loss = 50.5").unwrap(),
            &BuildContext::new(None),
        )
        .unwrap();
    }
}
