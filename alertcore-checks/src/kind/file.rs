//! The `file` kind: a file's existence, age and size ("did last night's backup get
//! written").
//!
//! ```toml
//! [checks.backup]
//! kind = "file"
//! path = "/var/backups/db.tar.gz"
//! warning_age = "26h"    # warning when last modified longer ago than this
//! max_age = "50h"        # critical when last modified longer ago than this
//! min_size = "1 MiB"     # critical when smaller (bytes, or "10 kB", "1.5 GiB", ...)
//! max_size = 10737418240 # critical when larger
//! # exists = false       # the file must NOT exist (a lock or "failed" marker)
//! ```
//!
//! Messages: `FILE OK - /var/backups/db.tar.gz: 1.2 MiB, modified 3h 12m ago`;
//! `FILE CRITICAL - /var/backups/db.tar.gz: 1.2 MiB, modified 2d 3h ago (older than
//! 2d 2h)`; `FILE CRITICAL - /var/backups/db.tar.gz: No such file or directory`. A path
//! that cannot be examined for another reason (permission denied) is unknown. The age is
//! the time since the last modification (mtime), of the file a symlink points to.
//! Performance data: `age` in seconds (with the warning and critical ages as thresholds)
//! and `size` in bytes (with the size bounds as the critical range).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use alertcore::{BuildError, Table};
use serde::Deserialize;

use super::{BuildContext, Probe};
use crate::outcome::{Outcome, PerfDatum, Status};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    path: PathBuf,
    #[serde(default = "yes")]
    exists: bool,
    #[serde(default, with = "alertcore::duration::option")]
    max_age: Option<Duration>,
    #[serde(default, with = "alertcore::duration::option")]
    warning_age: Option<Duration>,
    #[serde(default)]
    min_size: Option<Size>,
    #[serde(default)]
    max_size: Option<Size>,
}

fn yes() -> bool {
    true
}

/// A size in bytes: an integer, or a string with a unit (`"10 MiB"`, `"1.5GB"`, `"512"`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "SizeRepr")]
struct Size(u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeRepr {
    Bytes(u64),
    Text(String),
}

impl TryFrom<SizeRepr> for Size {
    type Error = String;

    fn try_from(r: SizeRepr) -> Result<Self, String> {
        match r {
            SizeRepr::Bytes(n) => Ok(Self(n)),
            SizeRepr::Text(s) => parse_size(&s).map(Self).ok_or_else(|| {
                format!(
                    "invalid size {s:?}: write a number of bytes, or one with a unit \
                     (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. \"10 MiB\""
                )
            }),
        }
    }
}

/// `"10 MiB"`, `"1.5GB"`, `"512"`, `"4 k"`: bytes (decimal units are powers of 1000,
/// binary ones of 1024, a lone letter is binary).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = (number * factor as f64).round();
    (0.0..1.8e19).contains(&bytes).then_some(bytes as u64)
}

pub(crate) fn build(table: &Table, _ctx: &BuildContext<'_>) -> Result<Arc<dyn Probe>, BuildError> {
    let c: Config = table.deserialize()?;
    if c.path.as_os_str().is_empty() || !c.path.is_absolute() {
        return Err(BuildError::key(
            "path",
            format!("{:?}: must be an absolute path", c.path),
        ));
    }
    if !c.exists {
        for (key, set) in [
            ("max_age", c.max_age.is_some()),
            ("warning_age", c.warning_age.is_some()),
            ("min_size", c.min_size.is_some()),
            ("max_size", c.max_size.is_some()),
        ] {
            if set {
                return Err(BuildError::key(
                    key,
                    "makes no sense with `exists = false` (the file must not exist)",
                ));
            }
        }
    }
    for (key, age) in [("max_age", c.max_age), ("warning_age", c.warning_age)] {
        if age.is_some_and(|a| a.is_zero()) {
            return Err(BuildError::key(key, "must be longer than 0s"));
        }
    }
    if let (Some(w), Some(m)) = (c.warning_age, c.max_age)
        && w >= m
    {
        return Err(BuildError::key(
            "warning_age",
            format!(
                "must be shorter than max_age ({} is not shorter than {})",
                alertcore::duration::format(w),
                alertcore::duration::format(m)
            ),
        ));
    }
    if let (Some(min), Some(max)) = (c.min_size, c.max_size)
        && min.0 > max.0
    {
        return Err(BuildError::key(
            "min_size",
            format!("{} is more than max_size {}", min.0, max.0),
        ));
    }
    Ok(Arc::new(FileProbe {
        path: c.path,
        exists: c.exists,
        max_age: c.max_age,
        warning_age: c.warning_age,
        min_size: c.min_size.map(|s| s.0),
        max_size: c.max_size.map(|s| s.0),
    }))
}

#[derive(Debug)]
struct FileProbe {
    path: PathBuf,
    exists: bool,
    max_age: Option<Duration>,
    warning_age: Option<Duration>,
    min_size: Option<u64>,
    max_size: Option<u64>,
}

#[async_trait::async_trait]
impl Probe for FileProbe {
    fn kind(&self) -> &'static str {
        "file"
    }

    async fn run(&self, timeout: Duration) -> Outcome {
        // a hung network file system must not hold the check past its timeout
        let path = self.path.clone();
        let stat = tokio::task::spawn_blocking(move || std::fs::metadata(path));
        match tokio::time::timeout(timeout, stat).await {
            Err(_) => Outcome::timed_out(timeout),
            Ok(Err(e)) => Outcome::unknown(format!("FILE UNKNOWN - {}: {e}", self.path.display())),
            Ok(Ok(m)) => self.judge(m, SystemTime::now()),
        }
    }
}

impl FileProbe {
    fn judge(&self, meta: std::io::Result<std::fs::Metadata>, now: SystemTime) -> Outcome {
        let path = self.path.display();
        let says = |status: Status, what: String| {
            Outcome::new(status, format!("FILE {} - {path}: {what}", status.label()))
        };
        let meta = match meta {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return if self.exists {
                    says(Status::Critical, io_reason(&e))
                } else {
                    says(Status::Ok, "does not exist".into())
                };
            }
            Err(e) => return says(Status::Unknown, io_reason(&e)),
        };
        if !self.exists {
            return says(Status::Critical, "exists (it should not)".into());
        }
        let size = meta.len();
        let age = meta
            .modified()
            .ok()
            .map(|t| now.duration_since(t).unwrap_or_default());
        let mut status = Status::Ok;
        let mut why = Vec::new();
        let mut worse = |s: Status, reason: String| {
            if s == Status::Critical || status == Status::Ok {
                status = s;
            }
            why.push(reason);
        };
        match (age, self.max_age, self.warning_age) {
            (Some(a), Some(max), _) if a > max => {
                worse(
                    Status::Critical,
                    format!("older than {}", short_duration(max)),
                );
            }
            (Some(a), _, Some(warn)) if a > warn => {
                worse(
                    Status::Warning,
                    format!("older than {}", short_duration(warn)),
                );
            }
            (None, Some(_), _) | (None, _, Some(_)) => {
                worse(Status::Unknown, "no modification time".into());
            }
            _ => {}
        }
        // in bytes where the rounded sizes would look the same ("2.0 KiB (smaller than 2.0 KiB)")
        let mut size_text = human_size(size);
        let mut bound_text = |bound: u64| {
            let b = human_size(bound);
            if b == human_size(size) {
                size_text = format!("{size} B");
                format!("{bound} B")
            } else {
                b
            }
        };
        if let Some(min) = self.min_size.filter(|&min| size < min) {
            worse(
                Status::Critical,
                format!("smaller than {}", bound_text(min)),
            );
        }
        if let Some(max) = self.max_size.filter(|&max| size > max) {
            worse(Status::Critical, format!("larger than {}", bound_text(max)));
        }
        let mut what = size_text;
        if let Some(a) = age {
            what.push_str(&format!(", modified {} ago", short_duration(a)));
        }
        if !why.is_empty() {
            what.push_str(&format!(" ({})", why.join("; ")));
        }
        let secs = |d: Duration| d.as_secs() as f64;
        let mut age_perf = PerfDatum::new("age", age.map(secs), "s");
        age_perf.warn = self.warning_age.map(|d| d.as_secs().to_string());
        age_perf.crit = self.max_age.map(|d| d.as_secs().to_string());
        age_perf.min = Some(0.0);
        let mut size_perf = PerfDatum::new("size", Some(size as f64), "B");
        size_perf.crit = match (self.min_size, self.max_size) {
            (None, None) => None,
            (Some(min), None) => Some(format!("{min}:")),
            (None, Some(max)) => Some(max.to_string()),
            (Some(min), Some(max)) => Some(format!("{min}:{max}")),
        };
        size_perf.min = Some(0.0);
        says(status, what).perf(age_perf).perf(size_perf)
    }
}

/// The OS's reason without Rust's " (os error 2)".
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// `512 B`, `1.2 MiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// The two largest units: `42s`, `5m 3s`, `3h 12m`, `2d 3h`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    let parts = [
        (s / 86400, "d"),
        (s / 3600 % 24, "h"),
        (s / 60 % 60, "m"),
        (s % 60, "s"),
    ];
    let Some(first) = parts.iter().position(|&(n, _)| n > 0) else {
        return "0s".into();
    };
    parts[first..]
        .iter()
        .take(2)
        .filter(|&&(n, _)| n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs::File;
    use std::io::Write as _;

    use super::*;
    use crate::kind::build as build_kind;

    const T: Duration = Duration::from_secs(5);

    fn probe(toml: &str) -> Arc<dyn Probe> {
        build_kind(
            "file",
            &Table::parse(toml).unwrap(),
            &BuildContext::new(None),
        )
        .unwrap()
    }

    /// A file of `size` bytes last modified `age` ago.
    fn file(dir: &tempfile::TempDir, size: usize, age: Duration) -> PathBuf {
        let p = dir.path().join("backup.tar");
        let mut f = File::create(&p).unwrap();
        f.write_all(&vec![b'x'; size]).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
        p
    }

    fn toml_path(p: &std::path::Path) -> String {
        format!("path = {:?}\n", p.display().to_string())
    }

    const H: u64 = 3600;

    #[tokio::test]
    async fn age_thresholds() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, 1_300_000, Duration::from_secs(3 * H + 12 * 60 + 5));
        let ages = "warning_age = \"2h\"\nmax_age = \"4h\"\n";
        let o = probe(&format!("{}{ages}", toml_path(&p))).run(T).await;
        assert_eq!(o.status, Status::Warning, "{o:?}");
        assert_eq!(
            o.message,
            format!(
                "FILE WARNING - {}: 1.2 MiB, modified 3h 12m ago (older than 2h)",
                p.display()
            )
        );
        let age = &o.perfdata[0];
        assert_eq!((age.label.as_str(), age.uom.as_str()), ("age", "s"));
        assert!(
            age.value.is_some_and(|v| (11525.0..11535.0).contains(&v)),
            "{age:?}"
        );
        assert_eq!(
            (age.warn.as_deref(), age.crit.as_deref()),
            (Some("7200"), Some("14400"))
        );
        assert_eq!(o.perfdata[1], {
            let mut s = PerfDatum::new("size", Some(1_300_000.0), "B");
            s.min = Some(0.0);
            s
        });

        let o = probe(&format!("{}max_age = \"3h\"\n", toml_path(&p)))
            .run(T)
            .await;
        assert_eq!(o.status, Status::Critical, "{o:?}");
        assert!(o.message.ends_with("(older than 3h)"), "{o:?}");

        let o = probe(&format!(
            "{}max_age = \"4h\"\nwarning_age = \"3h 13m\"\n",
            toml_path(&p)
        ))
        .run(T)
        .await;
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert_eq!(
            o.message,
            format!("FILE OK - {}: 1.2 MiB, modified 3h 12m ago", p.display())
        );
    }

    #[tokio::test]
    async fn size_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, 2000, Duration::from_secs(10));
        let run = async |bounds: &str| probe(&format!("{}{bounds}", toml_path(&p))).run(T).await;
        let o = run("min_size = \"2 KiB\"").await;
        assert_eq!(o.status, Status::Critical, "{o:?}");
        assert!(
            o.message
                .ends_with(": 2000 B, modified 10s ago (smaller than 2048 B)"),
            "{o:?}"
        );
        assert_eq!(o.perfdata[1].crit.as_deref(), Some("2048:"));
        let o = run("min_size = \"1 MiB\"").await;
        assert!(
            o.message
                .ends_with(": 2.0 KiB, modified 10s ago (smaller than 1.0 MiB)"),
            "{o:?}"
        );
        let o = run("max_size = 1999").await;
        assert_eq!(o.status, Status::Critical, "{o:?}");
        assert!(o.message.ends_with("(larger than 1999 B)"), "{o:?}");
        let o = run("min_size = 2000\nmax_size = \"2kB\"").await;
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert_eq!(o.perfdata[1].crit.as_deref(), Some("2000:2000"));
        // an old and small file: critical, with both reasons
        let o = run("min_size = 4096\nwarning_age = \"1s\"").await;
        assert_eq!(o.status, Status::Critical, "{o:?}");
        assert!(
            o.message
                .ends_with("2.0 KiB, modified 10s ago (older than 1s; smaller than 4.0 KiB)"),
            "{o:?}"
        );
    }

    #[tokio::test]
    async fn missing_file_and_exists_false() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let o = probe(&toml_path(&missing)).run(T).await;
        assert_eq!(
            (o.status, o.message),
            (
                Status::Critical,
                format!(
                    "FILE CRITICAL - {}: No such file or directory",
                    missing.display()
                )
            )
        );
        let o = probe(&format!("{}exists = false", toml_path(&missing)))
            .run(T)
            .await;
        assert_eq!(
            (o.status, o.message),
            (
                Status::Ok,
                format!("FILE OK - {}: does not exist", missing.display())
            )
        );
        let p = file(&dir, 1, Duration::ZERO);
        let o = probe(&format!("{}exists = false", toml_path(&p)))
            .run(T)
            .await;
        assert_eq!(
            (o.status, o.message),
            (
                Status::Critical,
                format!("FILE CRITICAL - {}: exists (it should not)", p.display())
            )
        );
    }

    #[test]
    fn a_future_mtime_is_age_zero() {
        let dir = tempfile::tempdir().unwrap();
        let p = file(&dir, 10, Duration::ZERO);
        let f = File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(H))
            .unwrap();
        let probe = FileProbe {
            path: p.clone(),
            exists: true,
            max_age: Some(Duration::from_secs(1)),
            warning_age: None,
            min_size: None,
            max_size: None,
        };
        let o = probe.judge(std::fs::metadata(&p), SystemTime::now());
        assert_eq!(o.status, Status::Ok, "{o:?}");
        assert!(o.message.ends_with("10 B, modified 0s ago"), "{o:?}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10 MiB"), Some(10 << 20));
        assert_eq!(parse_size("1.5GB"), Some(1_500_000_000));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size(" 4 k "), Some(4096));
        assert_eq!(parse_size("4 parsecs"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("1e30"), None);
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(5 << 30), "5.0 GiB");
        assert_eq!(short_duration(Duration::from_secs(42)), "42s");
        assert_eq!(
            short_duration(Duration::from_secs(2 * 86400 + 3 * H + 59)),
            "2d 3h"
        );
        assert_eq!(short_duration(Duration::from_secs(86400 + 60)), "1d");
        assert_eq!(short_duration(Duration::from_millis(300)), "0s");
    }

    #[test]
    fn bad_configs_name_the_key() {
        let ctx = BuildContext::new(None);
        for (toml, key) in [
            ("", "path"),
            ("path = \"relative/x\"", "path"),
            ("path = \"/x\"\nmax_age = \"soon\"", "max_age"),
            ("path = \"/x\"\nmax_age = \"0s\"", "max_age"),
            (
                "path = \"/x\"\nmax_age = \"1h\"\nwarning_age = \"2h\"",
                "warning_age",
            ),
            ("path = \"/x\"\nmin_size = \"lots\"", "min_size"),
            ("path = \"/x\"\nmin_size = -1", "min_size"),
            ("path = \"/x\"\nmin_size = 10\nmax_size = 5", "min_size"),
            ("path = \"/x\"\nexists = false\nmax_age = \"1h\"", "max_age"),
            ("path = \"/x\"\nmaxage = \"1h\"", "maxage"),
        ] {
            let e = build_kind("file", &Table::parse(toml).unwrap(), &ctx).unwrap_err();
            assert_eq!(e.offending_key(), Some(key), "{toml}: {e}");
        }
    }
}
