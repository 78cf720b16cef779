//! Command-line arguments.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::PathBuf;

use clap::builder::{OsStringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  recorded (and delivered, or deliberately suppressed)
  1  anything else (e.g. the state file cannot be written)
  2  usage or configuration error
  3  recorded, but a delivery failed (see `alertctl status`)";

/// Decide when to alert about a failing service, and deliver the alert.
///
/// Install it as the `OnFailure=`/`OnSuccess=` handler of systemd units (see the shipped
/// `alertcore-failure@.service`), or call it from scripts.
#[derive(Debug, Parser)]
#[command(name = "alertctl", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Config file [default: /etc/alertcore/alertcore.toml if present, else built-in defaults]
    #[arg(long, env = "ALERTCORE_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// State file [default: $STATE_DIRECTORY/state.db under systemd,
    /// /var/lib/alertcore/state.db as root, else $XDG_STATE_HOME/alertcore/state.db]
    #[arg(long, env = "ALERTCORE_STATE", value_name = "FILE")]
    pub(crate) state: Option<PathBuf>,
    /// Pretend it is this time (RFC 3339, e.g. 2026-11-23T03:00:00Z): for tests and
    /// for replaying events.
    #[arg(long, env = "ALERTCORE_NOW", value_name = "TIME", hide = true, value_parser = parse_time)]
    pub(crate) now: Option<alertcore::Timestamp>,
    /// With failure/success: append how the rules and the policy decided to FILE.
    #[arg(long, env = "ALERTCORE_TRACE", value_name = "FILE", global = true)]
    pub(crate) trace: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Record a failed run of UNIT and alert as the policy says.
    ///
    /// Under systemd the MONITOR_* variables describe the run; without them,
    /// `systemctl show UNIT` is asked. Flags override both.
    Failure(FailureArgs),
    /// Record a successful run of UNIT; send recoveries as the policy says.
    Success {
        /// The unit (e.g. backup.service).
        #[arg(value_parser = unit_arg())]
        unit: String,
    },
    /// Show failing services, their alerts and delivery errors.
    Status {
        /// Only this unit.
        #[arg(value_parser = unit_arg())]
        unit: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Report everything failing now (since when, how many failures, the last message,
    /// who was alerted), and with --send, send it (only when something is failing).
    /// `report journal`: the journal's three-part report instead.
    Report {
        /// `journal`: what the journal chains collected for the next daily report
        /// (`[journal.report]`), or with --since what they make of that span.
        #[arg(value_parser = ["journal"])]
        what: Option<String>,
        /// With `journal`: run the chains over the entries of the last so long (nothing
        /// is done or written) and report those.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "what")]
        since: Option<std::time::Duration>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Send the report through this notifier (repeat for more): one message where
        /// it can group, else one per failing service.
        #[arg(long, value_name = "NOTIFIER")]
        send: Vec<String>,
    },
    /// Show the failure history of UNIT's current streak and its recent notifications.
    History {
        /// The unit.
        #[arg(value_parser = unit_arg())]
        unit: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Forget the state and failure history of units (the notification log stays).
    Clear {
        /// The units to clear.
        #[arg(required_unless_present = "all", conflicts_with = "all", value_parser = unit_arg())]
        units: Vec<String>,
        /// Clear every unit.
        #[arg(long)]
        all: bool,
    },
    /// Explain what an event would do: which rules match and why, who would be sent
    /// what, and who not and why. Nothing is sent and nothing is written.
    Test(TestArgs),
    /// Judge the heartbeats' deadlines, send everything due in the outbox (retries,
    /// reminders of notifications whose sender died, notifications queued behind an
    /// earlier one) and exit. The shipped alertcore-flush.timer runs it every minute.
    Flush,
    /// List pending and failed deliveries, or manage them.
    Outbox {
        #[command(subcommand)]
        action: Option<OutboxCommand>,
        /// Machine-readable output (for the listing).
        #[arg(long)]
        json: bool,
    },
    /// Check or show the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the daemon: the polling checks of `[[checks]]`, the deadlines of
    /// `[[heartbeats]]`, the outbox's due deliveries and, with `[http]`, the ping API,
    /// the status page and /metrics, until SIGTERM. SIGHUP reloads the config,
    /// SIGUSR1 prints every check and heartbeat and runs the checks now. Under systemd
    /// (the shipped alertcore.service) it reports READY and pings the watchdog.
    Run {
        /// Run every check once now, print the results and exit: 0 when all passed,
        /// 1 otherwise. Nothing is sent or recorded unless --notify.
        #[arg(long)]
        once: bool,
        /// With --once: record the results and alert as the daemon would.
        #[arg(long, requires = "once")]
        notify: bool,
    },
    /// Record a signal of heartbeat NAME (`[[heartbeats]]`): a success unless told
    /// otherwise. It is judged at once (a failure alerts as the policy says); the
    /// daemon or the flush timer judges the deadlines.
    Ping(PingArgs),
    /// Hold the alerts of matching services for a while: they are recorded, not sent;
    /// one still failing when the silence ends alerts then.
    #[command(subcommand)]
    Silence(SilenceCommand),
    /// Wire units to the handlers (OnFailure=/OnSuccess= drop-ins), or remove that.
    #[command(subcommand)]
    Systemd(SystemdCommand),
    /// Acknowledge SERVICE's failure: no more reminders of its current streak (an
    /// escalation to critical still goes out, and so does the recovery).
    Ack {
        /// The failing service.
        #[arg(value_parser = unit_arg())]
        service: String,
        /// What is being done about it.
        #[arg(long, value_parser = text_arg())]
        comment: Option<String>,
        /// Tell the notifiers already alerted of this failure that it was acknowledged,
        /// by whom, and the comment.
        #[arg(long)]
        notify: bool,
    },
    /// The journal chains of `[journal]`.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Write the man pages or a shell's completions (for packages).
    #[command(hide = true, subcommand)]
    Generate(GenerateCommand),
    /// Send a test alert through one notifier (no state is read or written).
    NotifyTest {
        /// The notifier's name (`[notifiers.NAME]`; `console` without a config).
        notifier: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PingArgs {
    /// The heartbeat's name.
    pub(crate) name: String,
    /// The job started (`--rid` pairs it with its finish).
    #[arg(long, group = "signal")]
    pub(crate) start: bool,
    /// The job failed.
    #[arg(long, group = "signal")]
    pub(crate) fail: bool,
    /// The job finished with exit status N: 0 is a success, anything else a failure.
    #[arg(
        long,
        group = "signal",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub(crate) exit: Option<i32>,
    /// Attach TEXT to the job's log; no change of state.
    #[arg(long, group = "signal", value_name = "TEXT", value_parser = text_arg())]
    pub(crate) log: Option<String>,
    /// The run this signal belongs to, when runs overlap.
    #[arg(long, value_name = "ID")]
    pub(crate) rid: Option<String>,
    /// Text to keep with the signal (its output; the first line is shown in alerts);
    /// `-` reads it from stdin.
    #[arg(long, value_name = "TEXT", value_parser = text_arg(), conflicts_with = "log")]
    pub(crate) body: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum GenerateCommand {
    /// `alertctl.1` and one `alertctl-COMMAND.1` per command, into DIR.
    Man {
        /// Where to write them.
        dir: PathBuf,
    },
    /// SHELL's completion script, on stdout.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SystemdCommand {
    /// Write the drop-ins that make UNITs (or every service) call the handlers on
    /// failure and success, then `systemctl daemon-reload`.
    Install(WireArgs),
    /// Remove exactly the drop-ins `install` wrote, then `systemctl daemon-reload`.
    Uninstall(WireArgs),
}

/// What `systemd install|uninstall` wires.
#[derive(Debug, Args)]
pub(crate) struct WireArgs {
    /// The units (`backup.service`).
    #[arg(value_parser = unit_arg(), required_unless_present = "all_services")]
    pub(crate) units: Vec<String>,
    /// Every service on the machine (a top-level `service.d/` drop-in), with the guard
    /// that keeps the handlers from handling themselves.
    #[arg(long, conflicts_with = "units")]
    pub(crate) all_services: bool,
    /// Only the failure handler (no OnSuccess=: no recovery notices).
    #[arg(long)]
    pub(crate) failure_only: bool,
    /// Print what would be written or removed, and change nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Where the drop-ins go.
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub(crate) unit_dir: PathBuf,
    /// Do not run `systemctl daemon-reload` afterwards.
    #[arg(long)]
    pub(crate) no_reload: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SilenceCommand {
    /// Add a silence: every given matcher must match (none: everything).
    Add {
        /// Services it covers: a glob (`web-*`) or `re:REGEX`; repeat for more.
        #[arg(long = "service", value_name = "PATTERN")]
        services: Vec<String>,
        /// Hosts it covers; repeat for more.
        #[arg(long = "host", value_name = "PATTERN")]
        hosts: Vec<String>,
        /// Only failures of this severity.
        #[arg(long)]
        severity: Option<alertcore::Severity>,
        /// How long from now (or from --start): `2h`, `30m`.
        #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration, required_unless_present = "until", conflicts_with = "until")]
        duration: Option<std::time::Duration>,
        /// When it ends: `2026-12-24 08:00` (config time zone) or RFC 3339.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// When it starts [default: now].
        #[arg(long, value_name = "TIME")]
        start: Option<String>,
        /// Why.
        #[arg(long, value_parser = text_arg())]
        comment: String,
    },
    /// List the silences not ended yet (with --all: ended ones too).
    List {
        /// Ended ones too.
        #[arg(long)]
        all: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now.
    Expire {
        /// Its id (see `alertctl silence list`).
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum OutboxCommand {
    /// Make a pending or failed delivery due now (the next flush sends it).
    Retry {
        /// The delivery's id (see `alertctl outbox`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every pending and failed delivery.
        #[arg(long)]
        all: bool,
    },
    /// Give up on a delivery: it is never sent.
    Drop {
        /// The delivery's id.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum JournalCommand {
    /// Run the chains over real entries without acting (nothing is sent, run or
    /// written; counters start at zero): which step matched each entry and what it
    /// would have done.
    Test(JournalTestArgs),
}

#[derive(Debug, Args)]
pub(crate) struct JournalTestArgs {
    /// The entries of the last so long, read with journalctl as the daemon reads them
    /// (the same matches).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h", conflicts_with = "file")]
    pub(crate) since: std::time::Duration,
    /// Entries from FILE instead, one JSON object per line as `journalctl -o json`
    /// prints them; `-` is stdin.
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Show every entry, also those no step matched.
    #[arg(long)]
    pub(crate) all: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Parse the config and build every notifier; report the first error.
    Check,
    /// Print the resolved config (defaults filled in, secrets redacted).
    Dump,
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The service (e.g. backup.service).
    #[arg(value_parser = unit_arg())]
    pub(crate) service: String,
    /// The host [default: this host, or `host` from the config]
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// warning or critical [default: critical]
    #[arg(long)]
    pub(crate) severity: Option<alertcore::Severity>,
    /// failure (a failed run), reminder (everyone alerted at the streak start),
    /// escalation (a warning streak turning critical), recovery (a successful run) or
    /// output (where a successful run's output goes: `on_success = "output"`)
    #[arg(long, default_value = "failure")]
    pub(crate) event: alertcore::EventKind,
    /// The failed run is the Nth of its streak.
    #[arg(long, value_name = "N")]
    pub(crate) failures: Option<u32>,
    /// What started the failed run: timer, boot or other (for rules with `trigger`)
    #[arg(long)]
    pub(crate) trigger: Option<alertcore::Trigger>,
    /// The streak started this long before --at (e.g. 45m) [default for reminder and
    /// escalation: 24h]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: Option<std::time::Duration>,
    /// When, in the config's timezone ("2026-11-23 03:00") or RFC 3339 [default: now]
    #[arg(long, value_name = "TIME")]
    pub(crate) at: Option<String>,
    /// Start from no stored state instead of the service's current state.
    #[arg(long)]
    pub(crate) fresh: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FailureArgs {
    /// The unit that failed (e.g. backup.service).
    #[arg(value_parser = unit_arg())]
    pub(crate) unit: String,
    /// systemd's Result (exit-code, signal, timeout, core-dump, ...).
    #[arg(long, value_parser = text_arg())]
    pub(crate) result: Option<String>,
    /// exited, killed or dumped.
    #[arg(long, value_parser = text_arg())]
    pub(crate) exit_code: Option<String>,
    /// The exit status or signal name.
    #[arg(long, value_parser = text_arg())]
    pub(crate) exit_status: Option<String>,
    /// The invocation id of the failed run.
    #[arg(long, value_parser = text_arg())]
    pub(crate) invocation_id: Option<String>,
    /// warning or critical [default: critical]
    #[arg(long)]
    pub(crate) severity: Option<alertcore::Severity>,
    /// Free text to include in the alert.
    #[arg(long, value_parser = text_arg())]
    pub(crate) message: Option<String>,
}

/// A unit name from argv (or the environment) as the text that is stored, shown and sent.
///
/// Valid UTF-8 is taken as it is: systemd's unit names are ASCII, already escaped by
/// systemd (`mnt-a\x2db.mount`), and must match `MONITOR_UNIT`, the rules and the state.
/// A name that is not valid UTF-8 (systemd never passes one; a script may) is neither
/// refused, which would lose the event, nor made lossy with U+FFFD, which would make the
/// bytes `a` 0xFF and `a` 0xFE one service: each invalid byte and each backslash is
/// written `\xNN`, as `systemd-escape` writes them (`a\xff`). So two such names never
/// become one, and the name as shown, typed back, names the same service in `status`,
/// `history` and `clear` (as do the raw bytes).
pub(crate) fn unit_name(name: &OsStr) -> String {
    let bytes = name.as_bytes();
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\x5c"),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A unit name argument: any bytes, see [`unit_name`].
fn unit_arg() -> impl TypedValueParser<Value = String> {
    OsStringValueParser::new().map(|s| unit_name(&s))
}

/// A free-text argument (`--message`, `--result`, ...): any bytes, invalid UTF-8 becoming
/// U+FFFD, so that it never costs the event.
fn text_arg() -> impl TypedValueParser<Value = String> {
    OsStringValueParser::new().map(|s| s.to_string_lossy().into_owned())
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    alertcore::duration::parse(s)
}

fn parse_time(s: &str) -> Result<alertcore::Timestamp, String> {
    humantime::parse_rfc3339_weak(s)
        .map(alertcore::Timestamp::from_system_time)
        .map_err(|e| format!("{e}; write e.g. 2026-11-23T03:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(bytes: &[u8]) -> String {
        unit_name(OsStr::from_bytes(bytes))
    }

    #[test]
    fn valid_unit_names_are_kept_as_they_are() {
        assert_eq!(name(b"backup.service"), "backup.service");
        assert_eq!(name(br"mnt-a\x2db.mount"), r"mnt-a\x2db.mount");
        assert_eq!(name("caf\u{e9}.service".as_bytes()), "caf\u{e9}.service");
    }

    #[test]
    fn invalid_bytes_and_backslashes_of_invalid_names_are_escaped() {
        assert_eq!(name(b"bad\xff\xfe.service"), r"bad\xff\xfe.service");
        // a truncated sequence, valid text after it
        assert_eq!(name(b"\xc3(caf\xc3\xa9"), "\\xc3(caf\u{e9}");
        assert_eq!(name(b"a\\b\xff"), r"a\x5cb\xff");
        // no two invalid names collide, even with a backslash spelling an escape
        assert_ne!(name(b"\\xff\xfe"), name(b"\xff\xfe"));
        assert_ne!(name(b"a\xff"), name(b"a\xfe"));
    }

    #[test]
    fn failure_takes_any_bytes() {
        let cli = Cli::try_parse_from([
            OsStr::new("alertctl"),
            OsStr::new("failure"),
            OsStr::new("--message"),
            OsStr::from_bytes(b"m\xff"),
            OsStr::new("--"),
            OsStr::from_bytes(b"-x\xff.service"),
        ])
        .expect("parses");
        let Command::Failure(args) = cli.command else {
            panic!("not failure: {:?}", cli.command);
        };
        assert_eq!(args.unit, r"-x\xff.service");
        assert_eq!(args.message.as_deref(), Some("m\u{fffd}"));
    }
}
