//! Cross-crate integration tests, against real local servers (one test binary).

mod cli;
mod daemon;
mod daemon_systemd;
mod delivery;
mod durability;
mod email;
mod engine;
mod exec;
mod faults;
mod hardening;
mod heartbeat;
mod hold;
mod http;
mod journal;
mod peers;
mod report;
mod sandbox;
mod syslog;
mod systemd;
mod webhook;

/// Whether these tests run under CI, where a missing peer is a failure, not a skip:
/// `CI` set to anything but empty, `0` or `false` (GitHub and GitLab set `true`,
/// others `1`).
pub(crate) fn under_ci() -> bool {
    ci_says(std::env::var("CI").ok().as_deref())
}

fn ci_says(value: Option<&str>) -> bool {
    value.is_some_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

#[test]
fn ci_is_any_value_but_empty_zero_or_false() {
    for on in ["true", "1", "yes", "TRUE"] {
        assert!(ci_says(Some(on)), "{on}");
    }
    for off in [None, Some(""), Some("0"), Some("false"), Some("False")] {
        assert!(!ci_says(off), "{off:?}");
    }
}
