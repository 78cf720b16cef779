//! The wire format.
//!
//! RFC 5424 is written here, straight into one buffer; RFC 3164 comes from `fasyslog`'s
//! formatter, which renders its timestamp in the local time zone. fasyslog's RFC 5424
//! formatter was used first and measured: it needs an `SDElement` of owned strings and an
//! escaped copy of every value for each message, 5 µs of the 10 µs a message cost, where
//! sending it takes 1.5 µs. Writing PRI, the header, the escaped SD-PARAMs and the MSG
//! into one pre-sized string takes under 1 µs. fasyslog still provides the facility and
//! severity codes and validates the SD-ID when the notifier is built.
//!
//! Either way, what goes out is clean: control characters in the MSG and in SD-PARAM
//! values are replaced, header fields are PRINTUSASCII, and the message is cut to
//! `max_size` inside the MSG only.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use fasyslog::format::SyslogContext;
use fasyslog::{Facility, Severity};

use crate::config::Format;
use crate::error::SyslogError;

/// RFC 5424 §6: HOSTNAME is at most 255 PRINTUSASCII characters.
const MAX_HOSTNAME: usize = 255;
/// RFC 5424 §6: MSGID is at most 32.
const MAX_MSGID: usize = 32;

/// How long an SD-PARAM value may be before the size bound is looked at: room for a
/// systemd unit name (at most 255 bytes). If a message still does not fit, its values are
/// cut to the second size, and then the structured data is left out; the MSG is cut first
/// in every case.
const SD_VALUE_CAPS: [Option<usize>; 3] = [Some(255), Some(32), None];

/// What one message says, before it is put on the wire.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    /// RFC 5424 severity.
    pub(crate) severity: Severity,
    /// HOSTNAME; anything outside PRINTUSASCII is replaced.
    pub(crate) hostname: &'a str,
    /// MSGID (RFC 5424 only): the event kind.
    pub(crate) msgid: &'static str,
    /// SD-PARAMs of our SD-ELEMENT, in order (RFC 5424 only). Names are valid
    /// PARAM-NAMEs; values are cleaned, capped and escaped here.
    pub(crate) params: Vec<(&'static str, Cow<'a, str>)>,
    /// The free text; control characters are replaced.
    pub(crate) msg: String,
}

/// The fixed part of every message of one notifier.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    pub(crate) format: Format,
    pub(crate) facility: Facility,
    /// Validated APP-NAME: 1 to 48 PRINTUSASCII characters, no `[`, `]` or `:`.
    pub(crate) app_name: String,
    /// PROCID: our process id.
    pub(crate) procid: String,
    /// Validated SD-ID, e.g. `alertcore@32473`.
    pub(crate) sd_id: String,
    /// The largest message, in bytes, framing not included.
    pub(crate) max_size: usize,
}

impl Encoder {
    /// The message as it goes into one datagram or one frame.
    ///
    /// # Errors
    /// [`SyslogError::Format`] if even the header does not fit `max_size` (prevented by
    /// the configuration's lower bound).
    pub(crate) fn encode(&self, r: &Record<'_>) -> Result<String, SyslogError> {
        match self.format {
            Format::Rfc5424 => self.rfc5424(r),
            Format::Rfc3164 => self.rfc3164(r),
        }
    }

    fn pri(&self, severity: Severity) -> u8 {
        // At most 23 * 8 + 7 = 191.
        (self.facility.code() << 3) | severity.code()
    }

    fn rfc5424(&self, r: &Record<'_>) -> Result<String, SyslogError> {
        let now = SystemTime::now();
        for cap in SD_VALUE_CAPS {
            let mut out = String::with_capacity(self.max_size.min(640 + r.msg.len()));
            let _ = write!(out, "<{}>1 ", self.pri(r.severity));
            // humantime panics on times before 1970; RFC 5424 has NILVALUE for a sender
            // that does not know the time.
            if now >= UNIX_EPOCH {
                let _ = write!(out, "{}", humantime::format_rfc3339_micros(now));
            } else {
                out.push('-');
            }
            out.push(' ');
            push_header_field(&mut out, r.hostname, MAX_HOSTNAME);
            out.push(' ');
            out.push_str(&self.app_name);
            out.push(' ');
            out.push_str(&self.procid);
            out.push(' ');
            push_header_field(&mut out, r.msgid, MAX_MSGID);
            out.push(' ');
            match cap {
                Some(cap) => {
                    out.push('[');
                    out.push_str(&self.sd_id);
                    for (name, value) in &r.params {
                        out.push(' ');
                        out.push_str(name);
                        out.push_str("=\"");
                        push_sd_value(&mut out, value, cap);
                        out.push('"');
                    }
                    out.push(']');
                }
                None => out.push('-'),
            }
            out.push(' ');
            let msg_start = out.len();
            push_clean(&mut out, &r.msg);
            if let Some(out) = fit(out, msg_start, self.max_size) {
                return Ok(out);
            }
        }
        Err(self.too_small())
    }

    fn rfc3164(&self, r: &Record<'_>) -> Result<String, SyslogError> {
        let mut msg = String::with_capacity(r.msg.len());
        push_clean(&mut msg, &r.msg);
        let mut hostname = String::with_capacity(r.hostname.len());
        push_header_field(&mut hostname, r.hostname, MAX_HOSTNAME);
        let mut ctx = SyslogContext::const_new();
        ctx.facility(self.facility)
            .hostname(hostname)
            .appname(self.app_name.as_str())
            .procid(self.procid.as_str());
        let mut out = String::with_capacity(self.max_size.min(128 + msg.len()));
        write!(out, "{}", ctx.format_rfc3164(r.severity, Some(&msg)))
            .map_err(|_| SyslogError::Format("formatter failed".to_owned()))?;
        // The formatter ends with the MSG.
        let msg_start = out.len().saturating_sub(msg.len());
        fit(out, msg_start, self.max_size).ok_or_else(|| self.too_small())
    }

    fn too_small(&self) -> SyslogError {
        SyslogError::Format(format!(
            "the header alone is longer than max_size ({} bytes)",
            self.max_size
        ))
    }
}

/// `out` cut to `max` bytes, if that only shortens what follows `msg_start` (the MSG); the
/// cut falls on a UTF-8 character boundary.
fn fit(mut out: String, msg_start: usize, max: usize) -> Option<String> {
    if out.len() <= max {
        return Some(out);
    }
    if msg_start > max {
        return None;
    }
    out.truncate(floor_char_boundary(&out, max));
    Some(out)
}

/// The largest character boundary of `s` at or before `i`.
fn floor_char_boundary(s: &str, i: usize) -> usize {
    let mut end = i.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Whether `c` must not reach a log line: control characters (C0, DEL, C1) and the
/// Unicode line and paragraph separators. Replaced by a space, they can never end a record
/// or start a new one on a receiver that splits on line ends, nor reach a terminal as an
/// escape sequence.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Appends `s` with every [`is_unsafe`] character replaced by a space.
pub(crate) fn push_clean(out: &mut String, s: &str) {
    // Fast path: C0 and DEL are single bytes below 0x20 or 0x7f; C1 characters start
    // with 0xc2, the separators with 0xe2. Text without those bytes is clean.
    if !s
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == 0xc2 || b == 0xe2)
    {
        out.push_str(s);
        return;
    }
    out.extend(s.chars().map(|c| if is_unsafe(c) { ' ' } else { c }));
}

/// Appends at most `cap` bytes of `value` (cut on a character boundary), cleaned, and
/// escaped as RFC 5424 §6.3.3 requires: `"`, `\` and `]` get a backslash.
fn push_sd_value(out: &mut String, value: &str, cap: usize) {
    let value = &value[..floor_char_boundary(value, cap)];
    // Fast path, as in push_clean, plus the three escaped characters.
    if !value
        .bytes()
        .any(|b| b < 0x20 || matches!(b, 0x7f | 0xc2 | 0xe2 | b'"' | b'\\' | b']'))
    {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '"' | '\\' | ']' => {
                out.push('\\');
                out.push(c);
            }
            c if is_unsafe(c) => out.push(' '),
            c => out.push(c),
        }
    }
}

/// Appends a header field of at most `max` PRINTUSASCII characters (`!` to `~`): others
/// become `_`; an empty field is the NILVALUE `-`.
pub(crate) fn push_header_field(out: &mut String, s: &str, max: usize) {
    if s.is_empty() {
        out.push('-');
        return;
    }
    if s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic()) {
        out.push_str(s);
        return;
    }
    out.extend(
        s.chars()
            .take(max)
            .map(|c| if c.is_ascii_graphic() { c } else { '_' }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoder(format: Format, max_size: usize) -> Encoder {
        Encoder {
            format,
            facility: Facility::DAEMON,
            app_name: "alertcore".to_owned(),
            procid: "4242".to_owned(),
            sd_id: "alertcore@32473".to_owned(),
            max_size,
        }
    }

    fn record(msg: &str) -> Record<'static> {
        Record {
            severity: Severity::CRITICAL,
            hostname: "web1",
            msgid: "failure",
            params: vec![
                ("service", "backup.service".into()),
                ("exit_status", "1".into()),
            ],
            msg: msg.to_owned(),
        }
    }

    fn header_field(s: &str, max: usize) -> String {
        let mut out = String::new();
        push_header_field(&mut out, s, max);
        out
    }

    /// `<PRI>1 TIMESTAMP` and the rest, split after the timestamp.
    fn split_5424(line: &str) -> (&str, &str, &str) {
        let mut it = line.splitn(3, ' ');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    }

    #[test]
    fn rfc5424_layout() {
        let line = encoder(Format::Rfc5424, 2048)
            .encode(&record("[web1] FAILED: backup.service"))
            .unwrap();
        let (pri_version, ts, rest) = split_5424(&line);
        // daemon (3) * 8 + crit (2)
        assert_eq!(pri_version, "<26>1");
        assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");
        assert_eq!(
            rest,
            "web1 alertcore 4242 failure [alertcore@32473 service=\"backup.service\" \
             exit_status=\"1\"] [web1] FAILED: backup.service"
        );
    }

    #[test]
    fn rfc3164_layout() {
        let line = encoder(Format::Rfc3164, 1024)
            .encode(&record("[web1] FAILED: backup.service"))
            .unwrap();
        // "<26>Nov 21 04:40:00 web1 alertcore[4242]: ..."; the day is space-padded.
        assert!(line.starts_with("<26>"), "{line}");
        let after_ts = &line[4 + 15..];
        assert_eq!(
            after_ts,
            " web1 alertcore[4242]: [web1] FAILED: backup.service"
        );
    }

    #[test]
    fn sd_values_are_escaped_and_cleaned() {
        let mut r = record("m");
        r.params = vec![("service", "a\"b\\c]d\ne".into())];
        let line = encoder(Format::Rfc5424, 2048).encode(&r).unwrap();
        assert!(
            line.contains(r#"[alertcore@32473 service="a\"b\\c\]d e"]"#),
            "{line}"
        );
    }

    #[test]
    fn msg_and_header_cannot_forge_records() {
        let mut r = record("svc\n<13>1 - fake - - - - x\r\u{85}\u{2028}end\0");
        r.hostname = "we b\n1\u{e9}";
        for format in [Format::Rfc5424, Format::Rfc3164] {
            let line = encoder(format, 2048).encode(&r).unwrap();
            assert!(
                !line.chars().any(|c| c.is_control() || c == '\u{2028}'),
                "{line:?}"
            );
            assert!(line.contains(" we_b_1_ "), "{line}");
            assert!(
                line.ends_with("svc <13>1 - fake - - - - x   end "),
                "{line:?}"
            );
        }
    }

    #[test]
    fn header_fields_are_printusascii() {
        assert_eq!(header_field("", 10), "-");
        assert_eq!(header_field("höst name", 10), "h_st_name");
        assert_eq!(header_field(&"x".repeat(300), 255).len(), 255);
    }

    #[test]
    fn long_msg_is_cut_on_a_char_boundary() {
        let long = "é".repeat(3000);
        for (format, max) in [
            (Format::Rfc5424, 2048),
            (Format::Rfc3164, 1024),
            (Format::Rfc5424, 2049),
        ] {
            let line = encoder(format, max).encode(&record(&long)).unwrap();
            assert!(line.len() <= max && line.len() >= max - 1, "{}", line.len());
            assert!(line.ends_with('é'));
            assert!(
                line.contains("[web1]")
                    || format == Format::Rfc3164
                    || line.contains("alertcore@32473")
            );
        }
    }

    #[test]
    fn oversized_structured_data_shrinks_before_the_header_breaks() {
        let mut r = record("msg");
        r.params = (0..8)
            .map(|_| ("service", "\"".repeat(255).into()))
            .collect();
        // 8 values of 255 escaped quotes: ~4 KiB of structured data.
        let line = encoder(Format::Rfc5424, 1024).encode(&r).unwrap();
        assert!(line.len() <= 1024, "{}", line.len());
        assert!(line.contains("[alertcore@32473 service="), "{line}");
        // With room for nothing but the header, the structured data goes.
        let long_host = "h".repeat(255);
        r.hostname = &long_host;
        let line = encoder(Format::Rfc5424, 480).encode(&r).unwrap();
        assert!(line.len() <= 480, "{}", line.len());
        assert!(line.contains(" failure - msg"), "{line}");
    }
}
