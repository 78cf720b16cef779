//! `alertctl`: the command-line front end of alertcore.
//!
//! The whole command line lives in the library ([`alertctl::main_with`]); a program
//! that links notifier crates of its own does the same with its own binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    alertctl::main_with(alertctl::default_registry())
}
