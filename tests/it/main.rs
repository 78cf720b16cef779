//! Cross-crate integration tests, against real local servers (one test binary).

mod cli;
mod delivery;
mod durability;
mod email;
mod engine;
mod exec;
mod faults;
mod hardening;
mod peers;
mod syslog;
mod systemd;
mod webhook;
