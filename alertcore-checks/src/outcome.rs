//! What one run of a check found: a status in the Nagios plugin sense, a message, the
//! long output and the performance data.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The result class of one run, as the Nagios plugin API defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Exit 0: all is well.
    Ok,
    /// Exit 1: above a warning threshold, or working but degraded.
    Warning,
    /// Exit 2: above a critical threshold, or not working.
    Critical,
    /// Exit 3 (or any other exit, or a signal): the check could not tell.
    Unknown,
}

impl Status {
    /// The Nagios plugin contract: 0 ok, 1 warning, 2 critical, anything else unknown.
    pub fn from_exit_code(code: i32) -> Self {
        match code {
            0 => Self::Ok,
            1 => Self::Warning,
            2 => Self::Critical,
            _ => Self::Unknown,
        }
    }

    /// The Nagios exit code of the status: 0 ok, 1 warning, 2 critical, 3 unknown.
    pub fn code(self) -> u8 {
        match self {
            Self::Ok => 0,
            Self::Warning => 1,
            Self::Critical => 2,
            Self::Unknown => 3,
        }
    }

    /// `ok`, `warning`, `critical` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::Unknown => "unknown",
        }
    }

    /// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`: as plugins write it in their first line.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warning => "WARNING",
            Self::Critical => "CRITICAL",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// Whether this is [`Status::Ok`].
    pub fn is_ok(self) -> bool {
        self == Self::Ok
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One performance datum: `label=value[UOM];[warn];[crit];[min];[max]`.
///
/// `warn` and `crit` are kept as written: they are Nagios ranges (`10`, `10:`, `~:10`,
/// `@10:20`), not numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PerfDatum {
    /// The label, without the quotes it may have been written with.
    pub label: String,
    /// The value; `None` when the plugin wrote `U` (it could not measure).
    pub value: Option<f64>,
    /// The unit of measurement: empty, `s`, `ms`, `us`, `%`, `B`, `KB`, `MB`, `TB`, `c`, ...
    pub uom: String,
    /// The warning range, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<String>,
    /// The critical range, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<String>,
    /// The minimum possible value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// The maximum possible value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

impl PerfDatum {
    /// A datum with a value and unit and no thresholds.
    pub fn new(label: impl Into<String>, value: Option<f64>, uom: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            value,
            uom: uom.into(),
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }
}

impl fmt::Display for PerfDatum {
    /// As a plugin writes it: `'label'=value[UOM];[warn];[crit];[min];[max]`, with the
    /// label quoted when it needs to be and empty trailing fields left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self
            .label
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '=')
        {
            write!(f, "'{}'=", self.label.replace('\'', "''"))?;
        } else {
            write!(f, "{}=", self.label)?;
        }
        match self.value {
            Some(v) => write!(f, "{v}{}", self.uom)?,
            None => f.write_str("U")?,
        }
        let fields = [
            self.warn.clone(),
            self.crit.clone(),
            self.min.map(|v| v.to_string()),
            self.max.map(|v| v.to_string()),
        ];
        let used = fields
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |i| i + 1);
        for field in &fields[..used] {
            write!(f, ";{}", field.as_deref().unwrap_or(""))?;
        }
        Ok(())
    }
}

/// What one run of a check found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Outcome {
    /// The result class.
    pub status: Status,
    /// One line saying what was found (a plugin's first line of output, without its
    /// performance data).
    pub message: String,
    /// Further lines of output (a plugin's long output), capped.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub long_output: String,
    /// The performance data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub perfdata: Vec<PerfDatum>,
}

impl Outcome {
    /// An outcome with `status` and `message`, and nothing else.
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            long_output: String::new(),
            perfdata: Vec::new(),
        }
    }

    /// [`Status::Ok`] with `message`.
    pub fn ok(message: impl Into<String>) -> Self {
        Self::new(Status::Ok, message)
    }

    /// [`Status::Warning`] with `message`.
    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Status::Warning, message)
    }

    /// [`Status::Critical`] with `message`.
    pub fn critical(message: impl Into<String>) -> Self {
        Self::new(Status::Critical, message)
    }

    /// [`Status::Unknown`] with `message`.
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(Status::Unknown, message)
    }

    /// Adds a performance datum.
    #[must_use]
    pub fn perf(mut self, datum: PerfDatum) -> Self {
        self.perfdata.push(datum);
        self
    }

    /// Sets the long output.
    #[must_use]
    pub fn long_output(mut self, text: impl Into<String>) -> Self {
        self.long_output = text.into();
        self
    }

    /// The outcome written back as a plugin would print it: the message, the long
    /// output on the lines below, and the performance data after a `|` on the last
    /// line.
    pub fn plugin_output(&self) -> String {
        let mut out = self.message.clone();
        if !self.long_output.is_empty() {
            out.push('\n');
            out.push_str(self.long_output.trim_end());
        }
        if !self.perfdata.is_empty() {
            out.push_str(if self.long_output.is_empty() {
                " | "
            } else {
                "\n| "
            });
            let items: Vec<String> = self.perfdata.iter().map(ToString::to_string).collect();
            out.push_str(&items.join(" "));
        }
        out
    }

    /// The critical outcome of a run stopped at its timeout.
    pub fn timed_out(timeout: std::time::Duration) -> Self {
        Self::critical(format!(
            "timed out after {}",
            alertcore::duration::format(timeout)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What every check's alert carries as its message: the plugin's own text back.
    #[test]
    fn plugin_output_writes_message_long_output_and_perfdata_as_a_plugin_does() {
        let mut time = PerfDatum::new("time", Some(0.004), "s");
        time.crit = Some("5".to_owned());
        time.min = Some(0.0);
        let size = PerfDatum::new("my size", Some(12.0), "B");
        assert_eq!(Outcome::ok("TCP OK").plugin_output(), "TCP OK");
        assert_eq!(
            Outcome::ok("TCP OK").perf(time.clone()).plugin_output(),
            "TCP OK | time=0.004s;;5;0"
        );
        assert_eq!(
            Outcome::critical("HTTP CRITICAL")
                .long_output("line 1\nline 2\n")
                .perf(time)
                .perf(size)
                .plugin_output(),
            "HTTP CRITICAL\nline 1\nline 2\n| time=0.004s;;5;0 'my size'=12B"
        );
        assert_eq!(
            Outcome::timed_out(std::time::Duration::from_secs(90)).message,
            "timed out after 1m 30s"
        );
    }
}
