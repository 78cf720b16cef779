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
