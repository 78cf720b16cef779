//! The `address` key: `unix:///dev/log`, `udp://host:port`, `tcp://host:port`.

use std::fmt;
use std::path::PathBuf;

/// The port syslog listens on by convention, for UDP (RFC 5426) and, in practice, for
/// plain TCP too (rsyslog's and syslog-ng's usual `514`).
const DEFAULT_PORT: u16 = 514;

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Address {
    /// A local socket: datagram, or stream when the path is a stream socket.
    Unix(PathBuf),
    /// UDP, one message per datagram (RFC 5426).
    Udp(HostPort),
    /// TCP with octet-counting framing (RFC 6587).
    Tcp(HostPort),
}

/// A host name or IP address (IPv6 without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Udp(hp) => write!(f, "udp://{hp}"),
            Self::Tcp(hp) => write!(f, "tcp://{hp}"),
        }
    }
}

impl Address {
    /// Parses the `address` value; the message says what is wrong and what would work.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        const FORMS: &str =
            "expected \"unix:///path/to/socket\", \"udp://host[:port]\" or \"tcp://host[:port]\"";
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(format!(
                    "unix socket path in {s:?} must be absolute: \"unix:///dev/log\""
                ));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let url =
            url::Url::parse(s).map_err(|e| format!("invalid address {s:?} ({e}); {FORMS}"))?;
        let make = match url.scheme() {
            "udp" => Self::Udp,
            "tcp" => Self::Tcp,
            other => return Err(format!("unsupported scheme {other:?} in {s:?}; {FORMS}")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!(
                "address {s:?} must not contain a user name or password"
            ));
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "address {s:?} must be only scheme, host and port; {FORMS}"
            ));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err(format!("address {s:?} has no host; {FORMS}")),
        };
        Ok(make(HostPort {
            host,
            port: url.port().unwrap_or(DEFAULT_PORT),
        }))
    }

    /// Whether each message travels as one datagram over the network (UDP).
    pub(crate) fn is_udp(&self) -> bool {
        matches!(self, Self::Udp(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(host: &str, port: u16) -> HostPort {
        HostPort {
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn accepted_forms() {
        let cases = [
            ("unix:///dev/log", Address::Unix("/dev/log".into())),
            (
                "unix:///run/my socket",
                Address::Unix("/run/my socket".into()),
            ),
            ("udp://127.0.0.1:5514", Address::Udp(hp("127.0.0.1", 5514))),
            (
                "udp://logs.example.org",
                Address::Udp(hp("logs.example.org", 514)),
            ),
            ("tcp://[::1]:601", Address::Tcp(hp("::1", 601))),
            (
                "tcp://logs.example.org:6514/",
                Address::Tcp(hp("logs.example.org", 6514)),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Address::parse(text).as_ref(), Ok(&want), "{text}");
        }
        assert_eq!(
            Address::parse("tcp://[::1]:601").unwrap().to_string(),
            "tcp://[::1]:601"
        );
    }

    #[test]
    fn rejected_forms() {
        for (text, needle) in [
            ("unix://dev/log", "absolute"),
            ("/dev/log", "invalid address"),
            ("tls://logs.example.org", "unsupported scheme \"tls\""),
            ("udp://", "no host"),
            ("udp://user:pw@host", "user name or password"),
            ("tcp://host:514/path", "only scheme, host and port"),
            ("tcp://host:99999", "invalid address"),
        ] {
            let e = Address::parse(text).unwrap_err();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
