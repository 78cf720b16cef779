//! `[notifiers.NAME] type = "syslog"`: the keys and their validation.

use std::fmt;
use std::time::Duration;

use alertcore::duration;
use alertcore::{BuildError, Table};
use serde::{Deserialize, Deserializer};

use crate::address::Address;
use crate::format::Encoder;
use crate::notifier::SyslogNotifier;
use crate::transport::Transport;

const DEFAULT_ADDRESS: &str = "unix:///dev/log";
const DEFAULT_FACILITY: &str = "daemon";
const DEFAULT_APP_NAME: &str = "alertcore";
/// Our SD-ID. 32473 is the private enterprise number RFC 5612 reserves for
/// documentation; a site with its own number can set `sd_id`.
const DEFAULT_SD_ID: &str = "alertcore@32473";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// RFC 5424 §6.1: every receiver accepts 480 octets.
const MIN_SIZE: usize = 480;
/// The largest UDP payload over IPv4.
const MAX_SIZE: usize = 65_507;
/// RFC 5424 §6.1 asks receivers to accept 2048 octets; more may be cut or dropped on UDP.
const DEFAULT_UDP_SIZE: usize = 2048;
/// RFC 3164 §4.1: a message MUST be 1024 octets or less.
const DEFAULT_RFC3164_SIZE: usize = 1024;
/// rsyslog's default `maxMessageSize`, for the local socket and TCP.
const DEFAULT_STREAM_SIZE: usize = 8192;

const FACILITIES: &str = "kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, \
                          authpriv, ftp, ntp, audit, alert, clock, local0 .. local7";

/// The syslog message format: the `protocol` key. (`format` is the message template's
/// key, common to every transport: see `alertcore::template`.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// RFC 5424, with structured data (the default).
    #[default]
    Rfc5424,
    /// RFC 3164, the older BSD format: no structured data, no MSGID.
    Rfc3164,
}

impl Format {
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "rfc5424" => Ok(Self::Rfc5424),
            "rfc3164" => Ok(Self::Rfc3164),
            other => Err(format!(
                "`protocol` must be \"rfc5424\" or \"rfc3164\", not {other:?}"
            )),
        }
    }
}

/// The configuration of a [`SyslogNotifier`]: the keys of a `type = "syslog"` table.
///
/// Read it from the table with [`SyslogConfig::from_table`], or start from
/// [`SyslogNotifier::builder`] and set keys with the methods of the same names. Every key
/// is documented, with an example, in the crate documentation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogConfig {
    address: String,
    #[serde(deserialize_with = "deserialize_protocol")]
    protocol: Format,
    facility: String,
    app_name: String,
    hostname: Option<String>,
    sd_id: String,
    max_size: Option<usize>,
    #[serde(deserialize_with = "deserialize_timeout")]
    timeout: Duration,
}

impl Default for SyslogConfig {
    /// `address = "unix:///dev/log"`, `protocol = "rfc5424"`, `facility = "daemon"`,
    /// `app_name = "alertcore"`, the host name of each alert, `sd_id =
    /// "alertcore@32473"`, the size bound of the address, `timeout = "5s"`.
    fn default() -> Self {
        Self {
            address: DEFAULT_ADDRESS.to_owned(),
            protocol: Format::Rfc5424,
            facility: DEFAULT_FACILITY.to_owned(),
            app_name: DEFAULT_APP_NAME.to_owned(),
            hostname: None,
            sd_id: DEFAULT_SD_ID.to_owned(),
            max_size: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

// Custom messages that start with the key in backticks: `Table::deserialize` reads
// the key from them, so `alertctl` points at the right line.
fn deserialize_protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Format, D::Error> {
    let s = String::deserialize(d)
        .map_err(|_| serde::de::Error::custom("`protocol` must be a string"))?;
    Format::parse(&s).map_err(serde::de::Error::custom)
}

fn deserialize_timeout<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)
        .map_err(|_| serde::de::Error::custom("`timeout` must be a string such as \"5s\""))?;
    duration::parse(&s).map_err(|e| serde::de::Error::custom(format!("`timeout`: {e}")))
}

impl SyslogConfig {
    /// Reads a `[notifiers.NAME]` table (its `type` key is ignored).
    ///
    /// # Errors
    /// A [`BuildError`] naming the key for unknown keys and values of the wrong type.
    pub fn from_table(table: &Table) -> Result<Self, BuildError> {
        table.deserialize()
    }

    /// `address`: `"unix:///dev/log"` (default), `"udp://host[:port]"` or
    /// `"tcp://host[:port]"` (port 514 when left out).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// `protocol`: [`Format::Rfc5424`] (default) or [`Format::Rfc3164`].
    pub fn protocol(mut self, protocol: Format) -> Self {
        self.protocol = protocol;
        self
    }

    /// `facility`: a syslog(3) facility name such as `"daemon"` (default) or `"local3"`.
    pub fn facility(mut self, facility: impl Into<String>) -> Self {
        self.facility = facility.into();
        self
    }

    /// `app_name`: the APP-NAME (RFC 3164: TAG), default `"alertcore"`.
    pub fn app_name(mut self, app_name: impl Into<String>) -> Self {
        self.app_name = app_name.into();
        self
    }

    /// `hostname`: the HOSTNAME of every message, instead of the host of each alert.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// `sd_id`: the SD-ID of the structured data, default `"alertcore@32473"`.
    pub fn sd_id(mut self, sd_id: impl Into<String>) -> Self {
        self.sd_id = sd_id.into();
        self
    }

    /// `max_size`: the largest message in bytes (480 to 65507), framing not included.
    pub fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// `timeout`: the limit for one message, connecting included (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Validates the configuration and builds the notifier. No socket is opened: the
    /// first message opens it.
    ///
    /// # Errors
    /// A [`BuildError`] naming the key at fault: an address that does not parse, an
    /// unknown facility, an APP-NAME, HOSTNAME or SD-ID that RFC 5424 does not allow, a
    /// `max_size` out of range, a zero `timeout`.
    pub fn build(self) -> Result<SyslogNotifier, BuildError> {
        let address = Address::parse(&self.address).map_err(|e| BuildError::key("address", e))?;
        let facility: fasyslog::Facility = self.facility.parse().map_err(|()| {
            BuildError::key(
                "facility",
                format!(
                    "unknown facility {:?} (one of: {FACILITIES})",
                    self.facility
                ),
            )
        })?;
        let tag_max = match self.protocol {
            // RFC 3164 §4.1.3: the TAG is at most 32 characters.
            Format::Rfc3164 => 32,
            Format::Rfc5424 => 48,
        };
        check_name(&self.app_name, tag_max, "[]:")
            .map_err(|e| BuildError::key("app_name", format!("`app_name` {e}")))?;
        if let Some(h) = &self.hostname {
            check_name(h, 255, "")
                .map_err(|e| BuildError::key("hostname", format!("`hostname` {e}")))?;
        }
        fasyslog::SDElement::new(self.sd_id.as_str())
            .map_err(|e| BuildError::key("sd_id", format!("`sd_id` is not a valid SD-ID: {e}")))?;
        let max_size = match self.max_size {
            Some(n) if !(MIN_SIZE..=MAX_SIZE).contains(&n) => {
                return Err(BuildError::key(
                    "max_size",
                    format!("`max_size` must be between {MIN_SIZE} and {MAX_SIZE} bytes, not {n}"),
                ));
            }
            Some(n) => n,
            None => match (self.protocol, address.is_udp()) {
                (Format::Rfc3164, _) => DEFAULT_RFC3164_SIZE,
                (Format::Rfc5424, true) => DEFAULT_UDP_SIZE,
                (Format::Rfc5424, false) => DEFAULT_STREAM_SIZE,
            },
        };
        if self.timeout.is_zero() {
            return Err(BuildError::key("timeout", "`timeout` must be more than 0s"));
        }
        let encoder = Encoder {
            format: self.protocol,
            facility,
            app_name: self.app_name,
            procid: std::process::id().to_string(),
            sd_id: self.sd_id,
            max_size,
        };
        Ok(SyslogNotifier::new(
            encoder,
            self.hostname,
            Transport::new(address, self.timeout),
        ))
    }
}

/// A header field written in the configuration: 1 to `max` PRINTUSASCII characters, none
/// of `also_forbidden`. Configured values are refused rather than repaired.
fn check_name(s: &str, max: usize, also_forbidden: &str) -> Result<(), String> {
    if s.is_empty() || s == "-" {
        return Err("must not be empty".to_owned());
    }
    if s.len() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !c.is_ascii_graphic() || also_forbidden.contains(*c))
    {
        return Err(format!(
            "must be printable ASCII without spaces{}; {c:?} is not allowed",
            if also_forbidden.is_empty() {
                String::new()
            } else {
                format!(" or any of {also_forbidden:?}")
            }
        ));
    }
    Ok(())
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rfc5424 => "rfc5424",
            Self::Rfc3164 => "rfc3164",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml_text: &str) -> Result<SyslogNotifier, BuildError> {
        let t = Table::parse(toml_text).unwrap();
        SyslogConfig::from_table(&t)?.build()
    }

    fn build_err(toml_text: &str) -> (Option<String>, String) {
        let e = build(toml_text).unwrap_err();
        (e.offending_key().map(str::to_owned), e.to_string())
    }

    #[test]
    fn defaults_and_full_configs_build() {
        let n = build("type = \"syslog\"").unwrap();
        let d = format!("{n:?}");
        assert!(
            d.contains("unix:///dev/log") && d.contains("max_size: 8192"),
            "{d}"
        );
        let n = build(
            "type = \"syslog\"\naddress = \"udp://127.0.0.1:5514\"\nprotocol = \"rfc3164\"\n\
             facility = \"local3\"\napp_name = \"ops-alerts\"\nhostname = \"web1.example.org\"\n\
             sd_id = \"alertcore@12345\"\nmax_size = 1500\ntimeout = \"2s\"",
        )
        .unwrap();
        let d = format!("{n:?}");
        assert!(d.contains("max_size: 1500") && d.contains("Rfc3164"), "{d}");
        let udp = format!("{:?}", build("address = \"udp://127.0.0.1\"").unwrap());
        assert!(udp.contains("max_size: 2048"), "{udp}");
        let b = SyslogNotifier::builder()
            .address("tcp://127.0.0.1:601")
            .facility("local0")
            .build()
            .unwrap();
        assert!(format!("{b:?}").contains("tcp://127.0.0.1:601"));
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases = [
            ("adress = \"udp://h\"", "adress", "unknown field `adress`"),
            ("address = \"http://h\"", "address", "unsupported scheme"),
            ("protocol = \"rfc9999\"", "protocol", "`protocol` must be"),
            ("protocol = 5424", "protocol", "`protocol` must be a string"),
            (
                "facility = \"local9\"",
                "facility",
                "unknown facility \"local9\"",
            ),
            (
                "app_name = \"alert core\"",
                "app_name",
                "' ' is not allowed",
            ),
            ("app_name = \"a[1]\"", "app_name", "'[' is not allowed"),
            ("app_name = \"\"", "app_name", "must not be empty"),
            (
                "protocol = \"rfc3164\"\napp_name = \"a-very-long-application-name-over-32\"",
                "app_name",
                "at most 32",
            ),
            ("hostname = \"web 1\"", "hostname", "' ' is not allowed"),
            ("hostname = \"wéb\"", "hostname", "not allowed"),
            ("sd_id = \"alertcore\"", "sd_id", "not a valid SD-ID"),
            ("max_size = 100", "max_size", "between 480 and 65507"),
            ("timeout = \"0s\"", "timeout", "more than 0s"),
            ("timeout = \"soon\"", "timeout", "invalid duration"),
        ];
        for (text, key, needle) in cases {
            let (k, msg) = build_err(&format!("type = \"syslog\"\n{text}"));
            assert_eq!(k.as_deref(), Some(key), "{text}: {msg}");
            assert!(msg.contains(needle), "{text}: {msg}");
        }
    }
}
