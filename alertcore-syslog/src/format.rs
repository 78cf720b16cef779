//! The wire format: RFC 5424 or RFC 3164 text through `fasyslog`'s formatters, with the
//! cleaning and size bound those leave to the caller.
//!
//! fasyslog writes PRI, VERSION, TIMESTAMP and the header fields, and escapes SD-PARAM
//! values (`"`, `\`, `]`); it does not check that header fields are PRINTUSASCII, does
//! not touch the MSG, and knows no size limit. That part is here: what we hand it is
//! already clean, and the result is cut to `max_size` inside the MSG only.

use std::fmt::Write as _;

use fasyslog::format::SyslogContext;
use fasyslog::{Facility, SDElement, Severity};

use crate::config::Format;
use crate::error::SyslogError;

/// RFC 5424 §6: HOSTNAME is at most 255 PRINTUSASCII characters.
const MAX_HOSTNAME: usize = 255;

/// How long an SD-PARAM value may be before the size bound is looked at: room for a
/// systemd unit name (at most 255 bytes). If a message still does not fit, its values are
/// cut to the second size, and then the structured data is left out; the MSG is cut first
/// in every case.
const SD_VALUE_CAPS: [Option<usize>; 3] = [Some(255), Some(32), None];

/// What one message says, before it is put on the wire.
#[derive(Debug)]
pub(crate) struct Record {
    /// RFC 5424 severity.
    pub(crate) severity: Severity,
    /// HOSTNAME; anything outside PRINTUSASCII is replaced.
    pub(crate) hostname: String,
    /// MSGID (RFC 5424 only): the event kind.
    pub(crate) msgid: &'static str,
    /// SD-PARAMs of our SD-ELEMENT, in order (RFC 5424 only).
    pub(crate) params: Vec<(&'static str, String)>,
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
    /// the configuration's lower bound) or fasyslog rejects a parameter name.
    pub(crate) fn encode(&self, r: &Record) -> Result<String, SyslogError> {
        let msg = clean_text(&r.msg);
        let mut ctx = SyslogContext::const_new();
        ctx.facility(self.facility)
            .hostname(header_field(&r.hostname, MAX_HOSTNAME))
            .appname(self.app_name.as_str())
            .procid(self.procid.as_str());
        for cap in SD_VALUE_CAPS {
            let mut out = String::with_capacity(512 + msg.len());
            let written = match self.format {
                Format::Rfc5424 => {
                    let elements = match cap {
                        Some(cap) => vec![self.element(&r.params, cap)?],
                        None => Vec::new(),
                    };
                    write!(
                        out,
                        "{}",
                        ctx.format_rfc5424(r.severity, Some(r.msgid), elements, Some(&msg))
                    )
                }
                Format::Rfc3164 => write!(out, "{}", ctx.format_rfc3164(r.severity, Some(&msg))),
            };
            written.map_err(|_| SyslogError::Format("formatter failed".to_owned()))?;
            if let Some(out) = fit(out, msg.len(), self.max_size) {
                return Ok(out);
            }
            if self.format == Format::Rfc3164 {
                break;
            }
        }
        Err(SyslogError::Format(format!(
            "the header alone is longer than max_size ({} bytes)",
            self.max_size
        )))
    }

    fn element(
        &self,
        params: &[(&'static str, String)],
        cap: usize,
    ) -> Result<SDElement, SyslogError> {
        let mut element = SDElement::new(self.sd_id.as_str()).map_err(SyslogError::Format)?;
        for (name, value) in params {
            element
                .add_param(*name, truncate(clean_text(value), cap))
                .map_err(SyslogError::Format)?;
        }
        Ok(element)
    }
}

/// `out` cut to `max` bytes, if that only shortens its last `msg_len` bytes (the MSG);
/// the cut falls on a UTF-8 character boundary.
fn fit(out: String, msg_len: usize, max: usize) -> Option<String> {
    if out.len() <= max {
        return Some(out);
    }
    let msg_start = out.len().saturating_sub(msg_len);
    if msg_start > max {
        return None;
    }
    Some(truncate(out, max))
}

/// `s` cut to at most `max` bytes on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Text with every control character (C0, DEL, C1) and the Unicode line and paragraph
/// separators replaced by a space, so it can never end a record or start a new one on a
/// receiver that splits on line ends, or reach a log file as a terminal escape.
pub(crate) fn clean_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// A header field of at most `max` PRINTUSASCII characters (`!` to `~`): others become
/// `_`; an empty field is the NILVALUE `-`.
pub(crate) fn header_field(s: &str, max: usize) -> String {
    let out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if out.is_empty() { "-".to_owned() } else { out }
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

    fn record(msg: &str) -> Record {
        Record {
            severity: Severity::CRITICAL,
            hostname: "web1".to_owned(),
            msgid: "failure",
            params: vec![
                ("service", "backup.service".to_owned()),
                ("exit_status", "1".to_owned()),
            ],
            msg: msg.to_owned(),
        }
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
        r.params = vec![("service", "a\"b\\c]d\ne".to_owned())];
        let line = encoder(Format::Rfc5424, 2048).encode(&r).unwrap();
        assert!(
            line.contains(r#"[alertcore@32473 service="a\"b\\c\]d e"]"#),
            "{line}"
        );
    }

    #[test]
    fn msg_and_header_cannot_forge_records() {
        let mut r = record("svc\n<13>1 - fake - - - - x\r\u{85}\u{2028}end\0");
        r.hostname = "we b\n1\u{e9}".to_owned();
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
        r.params = (0..8).map(|_| ("service", "\"".repeat(255))).collect();
        // 8 values of 255 escaped quotes: ~4 KiB of structured data.
        let line = encoder(Format::Rfc5424, 1024).encode(&r).unwrap();
        assert!(line.len() <= 1024, "{}", line.len());
        assert!(line.contains("[alertcore@32473 service="), "{line}");
        // With room for nothing but the header, the structured data goes.
        r.hostname = "h".repeat(255);
        let line = encoder(Format::Rfc5424, 480).encode(&r).unwrap();
        assert!(line.len() <= 480, "{}", line.len());
        assert!(line.contains(" failure - msg"), "{line}");
    }
}
