//! Cross-crate integration tests, against real local servers (one test binary).

mod cli;
mod email;
mod engine;
mod peers;
mod systemd;
