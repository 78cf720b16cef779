//! `alertctl` with one more notifier type: `jsonl`, from the `jsonl-notifier` crate.
//!
//! Every subcommand of the stock `alertctl`, and a config may say `type = "jsonl"`.

use std::process::ExitCode;

// Nothing is used by name: this links the crate, whose `submit_notifier!` the default
// registry's `with_linked()` finds.
use jsonl_notifier as _;

fn main() -> ExitCode {
    alertctl::main_with(alertctl::default_registry())
}
