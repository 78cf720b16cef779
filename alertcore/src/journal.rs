//! The journal excerpt of a failed run, read with `journalctl` (best effort).
//!
//! Output of the unit's processes carries `_SYSTEMD_INVOCATION_ID`, the manager's own
//! lines about the unit carry `INVOCATION_ID`. journald attaches the former only while
//! the process is still alive, so a unit that prints and exits at once leaves lines
//! without it (measured on systemd 252: 12 of 60 runs of `sh -c 'echo ..; exit 3'`);
//! those still carry `_SYSTEMD_UNIT`, from the stdout stream PID 1 set up. So we add the
//! unit's lines without an id from the invocation's first line on, and stop at the
//! first line of another invocation.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde_json::Value;

/// How to run `journalctl`.
#[derive(Debug, Clone)]
pub struct Journal {
    command: String,
    directory: Option<String>,
}

impl Default for Journal {
    fn default() -> Self {
        Self {
            command: "journalctl".to_owned(),
            directory: std::env::var("ALERTCORE_JOURNAL_DIRECTORY").ok(),
        }
    }
}

struct Entry {
    realtime_us: u64,
    /// `_SYSTEMD_INVOCATION_ID` (the unit's processes) or `INVOCATION_ID` (PID 1's lines).
    invocation: Option<String>,
    /// Written by the unit's own processes (not by PID 1 about the unit).
    own: bool,
    line: String,
}

impl Journal {
    /// A reader using `journalctl` from `PATH` (and `-D $ALERTCORE_JOURNAL_DIRECTORY` if set).
    pub fn new() -> Self {
        Self::default()
    }

    /// The last `max_lines` journal lines of invocation `invocation_id` of `unit`, or
    /// `None` when there is no journal or nothing was found. Never an error: the
    /// excerpt is a courtesy, not part of the alert.
    pub fn excerpt(&self, unit: &str, invocation_id: &str, max_lines: usize) -> Option<String> {
        self.entries(unit, invocation_id, max_lines).map(|list| {
            list.into_iter()
                .map(|e| e.line)
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// [`Journal::excerpt`] of a run that has just ended, whose own lines may still be on
    /// their way: journald reads a service's output from a stream, beside PID 1's own
    /// messages about the unit, and may write the last lines after PID 1's "Deactivated".
    /// While the excerpt has none of the run's own lines it is read again, for at most
    /// `patience` (a run that wrote nothing costs that wait).
    pub(crate) fn excerpt_of_ended_run(
        &self,
        unit: &str,
        invocation_id: &str,
        max_lines: usize,
        patience: std::time::Duration,
    ) -> Option<String> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            let list = self.entries(unit, invocation_id, max_lines);
            let own = list.as_ref().is_some_and(|l| l.iter().any(|e| e.own));
            if own || std::time::Instant::now() >= deadline {
                return list.map(|l| l.into_iter().map(|e| e.line).collect::<Vec<_>>().join("\n"));
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn entries(&self, unit: &str, invocation_id: &str, max_lines: usize) -> Option<Vec<Entry>> {
        if !is_id(invocation_id) {
            return None;
        }
        let mut entries = self.query(&[
            format!("_SYSTEMD_INVOCATION_ID={invocation_id}"),
            "+".to_owned(),
            format!("INVOCATION_ID={invocation_id}"),
        ])?;
        // The unit's lines since the invocation's first one, up to the first line of
        // another invocation (the next run's "Starting", under Restart=): those without
        // an invocation id are this run's, written by a process that had already exited.
        if let Some(start) = entries.values().map(|e| e.realtime_us).min() {
            let since = format!("@{}", start / 1_000_000);
            let unit_args = [
                "-u".to_owned(),
                unit.to_owned(),
                "--since".to_owned(),
                since,
            ];
            let mut more: Vec<(String, Entry)> = self
                .query(&unit_args)
                .map(|m| m.into_iter().collect())
                .unwrap_or_default();
            more.sort_by_key(|(_, e)| e.realtime_us);
            for (cursor, e) in more.into_iter().filter(|(_, e)| e.realtime_us >= start) {
                match e.invocation.as_deref() {
                    Some(id) if id != invocation_id => break,
                    _ => {
                        entries.entry(cursor).or_insert(e);
                    }
                }
            }
        }
        let mut list: Vec<Entry> = entries.into_values().collect();
        list.sort_by_key(|e| e.realtime_us);
        let skip = list.len().saturating_sub(max_lines);
        let list: Vec<Entry> = list.into_iter().skip(skip).collect();
        (!list.is_empty()).then_some(list)
    }

    fn query(&self, args: &[String]) -> Option<BTreeMap<String, Entry>> {
        let mut cmd = Command::new(&self.command);
        cmd.args(["--no-pager", "-q", "-o", "json", "-n", "500"]);
        if let Some(d) = &self.directory {
            cmd.args(["-D", d]);
        }
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let Ok(Value::Object(o)) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let field = |k: &str| o.get(k).map(field_text);
            let Some(cursor) = field("__CURSOR") else {
                continue;
            };
            let realtime_us = field("__REALTIME_TIMESTAMP")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let ident = field("SYSLOG_IDENTIFIER")
                .or_else(|| field("_COMM"))
                .unwrap_or_else(|| "?".to_owned());
            let pid = field("_PID").map(|p| format!("[{p}]")).unwrap_or_default();
            let msg = field("MESSAGE").unwrap_or_default();
            let time = humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_micros(realtime_us),
            );
            let own = field("_SYSTEMD_INVOCATION_ID").is_some();
            let invocation = field("_SYSTEMD_INVOCATION_ID").or_else(|| field("INVOCATION_ID"));
            map.insert(
                cursor,
                Entry {
                    realtime_us,
                    invocation,
                    own,
                    line: crate::message::one_line(&format!("{time} {ident}{pid}: {msg}")),
                },
            );
        }
        Some(map)
    }
}

/// journald encodes non-UTF-8 fields as arrays of bytes.
fn field_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        other => other.to_string(),
    }
}

/// An invocation id is 32 hex digits; anything else is not passed to journalctl.
fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_ids_and_missing_journalctl() {
        assert!(Journal::new().excerpt("x.service", "--help", 5).is_none());
        let j = Journal {
            command: "/nonexistent/journalctl".to_owned(),
            directory: None,
        };
        assert!(j.excerpt("x.service", &"a".repeat(32), 5).is_none());
    }

    #[test]
    fn decodes_byte_array_fields() {
        assert_eq!(field_text(&serde_json::json!([104, 105])), "hi");
    }
}
