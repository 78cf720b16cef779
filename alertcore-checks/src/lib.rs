//! Polling checks for alertcore.
//!
//! A check runs a probe of some kind (a Nagios plugin, a TCP connect, an HTTP request,
//! a TLS certificate, a DNS lookup, a ping, a file's age, a systemd unit's state) on a
//! schedule, and turns what it finds into the same failure and success events
//! `alertctl failure` records: the engine's policy, rules, templates and outbox decide
//! what is sent.

pub mod cron;
pub mod heartbeat;
mod kind;
mod outcome;
pub mod perfdata;
pub mod scheduler;
mod spec;
pub mod state;

pub use kind::{BuildContext, KINDS, Probe, build};
pub use outcome::{Outcome, PerfDatum, Status};
pub use scheduler::{Handle, Scheduler, Settings, Snapshot, Stats, run_all};
pub use spec::{Check, NextRun, checks, dependencies};
pub use state::CheckState;

/// Whether the tests run under CI, where a missing peer is a failure, not a skip: `CI`
/// set to anything but empty, `0` or `false` (as the workspace's integration tests read it).
#[cfg(test)]
pub(crate) fn under_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}
