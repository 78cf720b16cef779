//! Parsing a Nagios plugin's output: first line, long output, performance data.
//!
//! The format is the one of the Nagios plugin API (Nagios Core's "Plugin API" page and the
//! Monitoring Plugins development guidelines):
//!
//! ```text
//! TEXT OUTPUT | OPTIONAL PERFDATA
//! LONG TEXT LINE 1
//! LONG TEXT LINE 2
//! LONG TEXT LINE N | PERFDATA LINE 2
//! PERFDATA LINE 3
//! ```
//!
//! The first line is the message, up to its first `|`; what follows that `|` is
//! performance data. The further lines are long output, up to the first of them with a
//! `|`: the text before it is the last line of long output, and everything after it (the
//! rest of that line and all the following lines) is performance data. This is what
//! Nagios Core's `parse_check_output` does.
//!
//! Performance data are items separated by whitespace:
//! `'label'=value[UOM];[warn];[crit];[min];[max]`. A label is quoted with single quotes
//! when it has spaces or `=` (a quote inside is written `''`); the value is a number or
//! `U` (could not measure); trailing semicolons may be left out. An item that does not
//! have this form is skipped, and parsing goes on with the next one.

use crate::outcome::PerfDatum;

/// The most a plugin's output may have, in bytes: Nagios' `MAX_PLUGIN_OUTPUT_LENGTH`.
/// A longer output is cut there.
pub const MAX_PLUGIN_OUTPUT: usize = 8192;

/// Splits a plugin's output into its message (the first line without its performance
/// data), its long output (the further lines without theirs, joined by `\n`) and its
/// performance data. The message is trimmed, and the long output's trailing whitespace
/// removed; a `\r` ending a line is dropped.
///
/// Never fails: performance data items that are not well formed are skipped.
pub fn parse_plugin_output(stdout: &str) -> (String, String, Vec<PerfDatum>) {
    let mut lines = stdout.lines().map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().unwrap_or("");
    let (message, mut perf) = match first.split_once('|') {
        Some((text, perf)) => (text.trim().to_owned(), perf.to_owned()),
        None => (first.trim().to_owned(), String::new()),
    };
    let mut long: Vec<&str> = Vec::new();
    let mut in_perf = false;
    for line in lines {
        if in_perf {
            perf.push(' ');
            perf.push_str(line);
        } else if let Some((text, rest)) = line.split_once('|') {
            long.push(text.trim_end());
            perf.push(' ');
            perf.push_str(rest);
            in_perf = true;
        } else {
            long.push(line);
        }
    }
    let long_output = long.join("\n").trim_end().to_owned();
    (message, long_output, parse_perfdata(&perf))
}

/// Parses performance data (the text after a plugin's `|`): the well-formed items, in
/// order; the others are skipped.
pub fn parse_perfdata(text: &str) -> Vec<PerfDatum> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return out;
        }
        let (item, next) = next_item(rest);
        if let Some(d) = item {
            out.push(d);
        }
        rest = next;
    }
}

/// Reads one item from the start of `text` (which does not start with whitespace).
/// Returns the datum if the item is well formed, and the text after the item.
fn next_item(text: &str) -> (Option<PerfDatum>, &str) {
    let (label, after_label) = if let Some(quoted) = text.strip_prefix('\'') {
        match quoted_label(quoted) {
            Some(found) => found,
            // no closing quote: nothing after it can be read reliably
            None => return (None, ""),
        }
    } else {
        let end = text
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(text.len());
        (text[..end].to_owned(), &text[end..])
    };
    let Some(after_eq) = after_label.strip_prefix('=') else {
        // not `label=`: skip to the next whitespace
        return (None, skip_token(after_label));
    };
    let end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
    let (fields, next) = after_eq.split_at(end);
    if label.is_empty() {
        return (None, next);
    }
    (datum(label, fields), next)
}

/// The label inside single quotes (`''` is a quote), and the text after the closing one;
/// `None` without a closing quote.
fn quoted_label(text: &str) -> Option<(String, &str)> {
    let mut label = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            label.push(c);
            continue;
        }
        let after = &text[i + 1..];
        if after.starts_with('\'') {
            label.push('\'');
            chars.next();
        } else {
            return Some((label, after));
        }
    }
    None
}

fn skip_token(text: &str) -> &str {
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    &text[end..]
}

/// `value[UOM];[warn];[crit];[min];[max]` (fields beyond the fifth are ignored).
fn datum(label: String, fields: &str) -> Option<PerfDatum> {
    let mut parts = fields.split(';');
    let value_uom = parts.next().unwrap_or("");
    let (value, uom) = if value_uom == "U" {
        (None, String::new())
    } else {
        let (number, uom) = split_number(value_uom)?;
        if !uom.chars().all(|c| c.is_alphabetic() || c == '%') {
            return None;
        }
        (Some(number), uom.to_owned())
    };
    let range = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
    let bound = |s: Option<&str>| s.and_then(split_number).map(|(n, _)| n);
    let warn = range(parts.next());
    let crit = range(parts.next());
    let min = bound(parts.next());
    let max = bound(parts.next());
    Some(PerfDatum {
        label,
        value,
        uom,
        warn,
        crit,
        min,
        max,
    })
}

/// A decimal number at the start of `text` (`-1`, `0.25`, `.5`, `1e-3`) and the text
/// after it; `None` when there is none. No `inf` or `NaN`.
fn split_number(text: &str) -> Option<(f64, &str)> {
    let b = text.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let int_end = digits(i);
    let mut end = int_end;
    let mut has_digits = int_end > i;
    if b.get(end) == Some(&b'.') {
        let frac_end = digits(end + 1);
        has_digits |= frac_end > end + 1;
        end = frac_end;
    }
    if !has_digits {
        return None;
    }
    // an exponent only when digits follow it: `1e` is 1 with unit `e`
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end > j {
            end = exp_end;
        }
    }
    let n: f64 = text[..end].parse().ok()?;
    n.is_finite().then_some((n, &text[end..]))
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn cap(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A process's output as text: at most [`MAX_PLUGIN_OUTPUT`] bytes of it, a character cut
/// at the end dropped, invalid UTF-8 replaced.
pub fn output_text(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MAX_PLUGIN_OUTPUT)];
    let bytes = match std::str::from_utf8(bytes) {
        // an incomplete character at the end (cut by the cap): drop it
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    };
    let text = String::from_utf8_lossy(bytes);
    cap(&text, MAX_PLUGIN_OUTPUT).to_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn d(label: &str, value: Option<f64>, uom: &str) -> PerfDatum {
        PerfDatum::new(label, value, uom)
    }

    fn full(
        label: &str,
        value: f64,
        uom: &str,
        ranges: [Option<&str>; 2],
        min: Option<f64>,
        max: Option<f64>,
    ) -> PerfDatum {
        let mut p = d(label, Some(value), uom);
        p.warn = ranges[0].map(str::to_owned);
        p.crit = ranges[1].map(str::to_owned);
        p.min = min;
        p.max = max;
        p
    }

    #[test]
    fn check_disk() {
        // Debian 12's monitoring-plugins-basic 2.3.3
        let out = "DISK OK - free space: / 58454MiB (62% inode=97%);| \
                   /=36277583872B;243497277849;257024904396;0;270552530944\n";
        let (msg, long, perf) = parse_plugin_output(out);
        assert_eq!(msg, "DISK OK - free space: / 58454MiB (62% inode=97%);");
        assert_eq!(long, "");
        assert_eq!(
            perf,
            vec![full(
                "/",
                36_277_583_872.0,
                "B",
                [Some("243497277849"), Some("257024904396")],
                Some(0.0),
                Some(270_552_530_944.0)
            )]
        );
    }

    #[test]
    fn check_load_with_trailing_semicolons_and_space() {
        let out = "LOAD OK - total load average: 0.29, 1.10, 1.58|load1=0.290;5.000;10.000;0; \
                   load5=1.100;4.000;8.000;0; load15=1.580;3.000;6.000;0; \n";
        let (msg, _, perf) = parse_plugin_output(out);
        assert_eq!(msg, "LOAD OK - total load average: 0.29, 1.10, 1.58");
        assert_eq!(perf.len(), 3);
        assert_eq!(
            perf[2],
            full(
                "load15",
                1.58,
                "",
                [Some("3.000"), Some("6.000")],
                Some(0.0),
                None
            )
        );
    }

    #[test]
    fn check_http_with_empty_thresholds() {
        let out = "HTTP OK: HTTP/1.0 200 OK - 7611 bytes in 0.003 second response time \
                   |time=0.002649s;;;0.000000;10.000000 size=7611B;;;0;\n";
        let (msg, _, perf) = parse_plugin_output(out);
        assert_eq!(
            msg,
            "HTTP OK: HTTP/1.0 200 OK - 7611 bytes in 0.003 second response time"
        );
        assert_eq!(
            perf,
            vec![
                full("time", 0.002649, "s", [None, None], Some(0.0), Some(10.0)),
                full("size", 7611.0, "B", [None, None], Some(0.0), None),
            ]
        );
    }

    #[test]
    fn plugin_api_example_with_long_output_and_perfdata_on_later_lines() {
        // the example of Nagios Core's Plugin API page
        let out = "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n\
                   / 15272 MB (77%);\n\
                   /boot 68 MB (69%);\n\
                   /home 69357 MB (27%);\n\
                   /var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n\
                   /home=69357MB;253404;253409;0;253414 \n\
                   /var/log=818MB;970;975;0;980\n";
        let (msg, long, perf) = parse_plugin_output(out);
        assert_eq!(msg, "DISK OK - free space: / 3326 MB (56%);");
        assert_eq!(
            long,
            "/ 15272 MB (77%);\n/boot 68 MB (69%);\n/home 69357 MB (27%);\n/var/log 819 MB (84%);"
        );
        let labels: Vec<_> = perf.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["/", "/boot", "/home", "/var/log"]);
        assert_eq!(perf[3].value, Some(818.0));
        assert_eq!(perf[3].uom, "MB");
        assert_eq!(perf[3].max, Some(980.0));
    }

    #[test]
    fn a_pipe_in_long_output_after_perfdata_began_is_perfdata() {
        let (_, long, perf) = parse_plugin_output("msg\nline | a=1\nb=2 | c=3\n");
        assert_eq!(long, "line");
        let labels: Vec<_> = perf.iter().map(|p| p.label.as_str()).collect();
        // `|` is not a separator inside performance data: `b=2`, the `|` skipped, `c=3`
        assert_eq!(labels, ["a", "b", "c"]);
    }

    #[test]
    fn quoted_labels_and_unknown_values() {
        let perf = parse_perfdata(
            "'C:\\ Used Space'=12.5GB;20;25;0;30 'it''s'=1 'a=b'=2% rtt=U;100;200 x=U",
        );
        assert_eq!(
            perf,
            vec![
                full(
                    "C:\\ Used Space",
                    12.5,
                    "GB",
                    [Some("20"), Some("25")],
                    Some(0.0),
                    Some(30.0)
                ),
                d("it's", Some(1.0), ""),
                d("a=b", Some(2.0), "%"),
                {
                    let mut p = d("rtt", None, "");
                    p.warn = Some("100".into());
                    p.crit = Some("200".into());
                    p
                },
                d("x", None, ""),
            ]
        );
    }

    #[test]
    fn ranges_are_kept_as_written() {
        let perf = parse_perfdata("t=5c;@10:20;~:30");
        assert_eq!(perf[0].uom, "c");
        assert_eq!(perf[0].warn.as_deref(), Some("@10:20"));
        assert_eq!(perf[0].crit.as_deref(), Some("~:30"));
    }

    #[test]
    fn malformed_items_are_skipped() {
        let perf =
            parse_perfdata("ok1=1 novalue= =5 noeq junk=abc bad=1x2 'unterminated=3 never=4");
        assert_eq!(perf, vec![d("ok1", Some(1.0), "")]);
        let perf = parse_perfdata("a=1 b=nan c=inf d=-.5e1s e=1e f=.");
        assert_eq!(
            perf,
            vec![
                d("a", Some(1.0), ""),
                d("d", Some(-5.0), "s"),
                d("e", Some(1.0), "e")
            ]
        );
    }

    #[test]
    fn no_perfdata_empty_output_and_crlf() {
        assert_eq!(
            parse_plugin_output(""),
            (String::new(), String::new(), vec![])
        );
        let (msg, long, perf) = parse_plugin_output("OK: fine\r\nmore\r\n");
        assert_eq!((msg.as_str(), long.as_str()), ("OK: fine", "more"));
        assert!(perf.is_empty());
    }

    #[test]
    fn cap_cuts_on_a_char_boundary() {
        assert_eq!(cap("héllo", 2), "h");
        assert_eq!(cap("héllo", 3), "hé");
        assert_eq!(cap("abc", 10), "abc");
        let text = output_text("ab€".as_bytes().get(..4).unwrap());
        assert_eq!(text, "ab");
        let long = vec![b'x'; MAX_PLUGIN_OUTPUT + 10];
        assert_eq!(output_text(&long).len(), MAX_PLUGIN_OUTPUT);
        assert_eq!(output_text(b"a\xffb"), "a\u{fffd}b");
    }

    /// A label as a plugin may write it, and the label it means.
    fn label() -> impl Strategy<Value = (String, String)> {
        prop_oneof![
            "[a-zA-Z_/][a-zA-Z0-9_/.:-]{0,12}".prop_map(|l| (l.clone(), l)),
            "[a-zA-Z0-9 '=|;_/-]{1,12}".prop_map(|l| (format!("'{}'", l.replace('\'', "''")), l)),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            let _ = parse_plugin_output(&s);
            let _ = output_text(s.as_bytes());
            let _ = cap(&s, 7);
        }

        #[test]
        fn perfdata_like_text_never_panics(s in "[a-zA-Z0-9' =;|\n.,:~@U%+eE-]{0,200}") {
            let _ = parse_plugin_output(&s);
        }

        /// What an alert carries (`Outcome::plugin_output`) reads back as the same data.
        #[test]
        fn parsed_items_print_back_as_themselves(
            s in "('[a-z \t\u{a0}=;']{0,6}'|[a-z;]{1,4})=[0-9U.]{1,4}(%|s|c)?(;[0-9:~@]{0,3}){0,4}[ \t]?[a-zA-Z0-9' =;|\t.,:~@U%+eE-]{0,40}"
        ) {
            for datum in parse_perfdata(&s) {
                let again = parse_perfdata(&datum.to_string());
                prop_assert_eq!(again.len(), 1, "{:?} printed as {}", datum, datum);
                prop_assert_eq!(&again[0], &datum);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_plugin_output(&output_text(&b));
        }

        #[test]
        fn well_formed_items_round_trip(
            items in proptest::collection::vec(
                (label(), -1.0e9..1.0e9f64, "(|s|ms|%|B|MB|c)", proptest::option::of(0.0..100.0f64)),
                0..6,
            ),
            text in "[a-zA-Z0-9 :,()]{0,30}",
        ) {
            let perf: Vec<String> = items
                .iter()
                .map(|((written, _), v, uom, max)| match max {
                    Some(m) => format!("{written}={v}{uom};;;0;{m}"),
                    None => format!("{written}={v}{uom}"),
                })
                .collect();
            let out = format!("{text}|{}\n", perf.join(" "));
            let (msg, _, parsed) = parse_plugin_output(&out);
            prop_assert_eq!(msg, text.trim());
            prop_assert_eq!(parsed.len(), items.len());
            for (p, ((_, meant), v, uom, max)) in parsed.iter().zip(&items) {
                prop_assert_eq!(&p.label, meant);
                prop_assert_eq!(p.value, Some(*v));
                prop_assert_eq!(&p.uom, uom);
                prop_assert_eq!(p.max, *max);
            }
        }
    }
}
