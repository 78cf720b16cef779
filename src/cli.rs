//! Command-line arguments.

use std::path::PathBuf;

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
        unit: String,
    },
    /// Show failing services, their alerts and delivery errors.
    Status {
        /// Only this unit.
        unit: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show the failure history of UNIT's current streak and its recent notifications.
    History {
        /// The unit.
        unit: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Forget the state and failure history of units (the notification log stays).
    Clear {
        /// The units to clear.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        units: Vec<String>,
        /// Clear every unit.
        #[arg(long)]
        all: bool,
    },
    /// Explain what an event would do: which rules match and why, who would be sent
    /// what, and who not and why. Nothing is sent and nothing is written.
    Test(TestArgs),
    /// Send everything due in the outbox (retries, reminders of notifications whose
    /// sender died, notifications queued behind an earlier one) and exit. The shipped
    /// alertcore-flush.timer runs it every minute.
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
    /// Send a test alert through one notifier (no state is read or written).
    NotifyTest {
        /// The notifier's name (`[notifiers.NAME]`; `console` without a config).
        notifier: String,
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
pub(crate) enum ConfigCommand {
    /// Parse the config and build every notifier; report the first error.
    Check,
    /// Print the resolved config (defaults filled in, secrets redacted).
    Dump,
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// The service (e.g. backup.service).
    pub(crate) service: String,
    /// The host [default: this host, or `host` from the config]
    #[arg(long)]
    pub(crate) host: Option<String>,
    /// warning or critical [default: critical]
    #[arg(long)]
    pub(crate) severity: Option<alertcore::Severity>,
    /// failure (a failed run), reminder (everyone alerted at the streak start),
    /// escalation (a warning streak turning critical) or recovery (a successful run)
    #[arg(long, default_value = "failure")]
    pub(crate) event: alertcore::EventKind,
    /// The failed run is the Nth of its streak.
    #[arg(long, value_name = "N")]
    pub(crate) failures: Option<u32>,
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
    pub(crate) unit: String,
    /// systemd's Result (exit-code, signal, timeout, core-dump, ...).
    #[arg(long)]
    pub(crate) result: Option<String>,
    /// exited, killed or dumped.
    #[arg(long)]
    pub(crate) exit_code: Option<String>,
    /// The exit status or signal name.
    #[arg(long)]
    pub(crate) exit_status: Option<String>,
    /// The invocation id of the failed run.
    #[arg(long)]
    pub(crate) invocation_id: Option<String>,
    /// warning or critical [default: critical]
    #[arg(long)]
    pub(crate) severity: Option<alertcore::Severity>,
    /// Free text to include in the alert.
    #[arg(long)]
    pub(crate) message: Option<String>,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    alertcore::config::duration_serde::parse(s)
}

fn parse_time(s: &str) -> Result<alertcore::Timestamp, String> {
    humantime::parse_rfc3339_weak(s)
        .map(alertcore::Timestamp::from_system_time)
        .map_err(|e| format!("{e}; write e.g. 2026-11-23T03:00:00Z"))
}
