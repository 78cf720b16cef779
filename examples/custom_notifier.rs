//! A custom notifier type in an embedding program: the `jsonl` type of the
//! `examples/jsonl-notifier` crate (a complete notifier crate: one JSON document per
//! notification appended to a file), registered at build time, selected from a config
//! file by its type name; for each event the program prints what the engine decided and
//! what became of each delivery.
//!
//! ```sh
//! cargo run --example custom_notifier            # uses examples/custom_notifier.toml
//! cargo run --example custom_notifier -- my.toml
//! ```

use std::sync::Arc;

use alertcore::{Config, Engine, FailureReport, MemoryStore, Registry, Report};
// Nothing is used by name: this links the crate, whose `submit_notifier!` makes its
// `jsonl` type known to `Registry::with_linked()`.
use jsonl_notifier as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/custom_notifier.toml").to_owned()
    });
    let config = Config::load(path.as_ref())?;
    let registry = Registry::new().with_linked();
    let notifiers = config.build_notifiers(&registry)?;
    let engine = Engine::builder(Arc::new(MemoryStore::new()))
        .policy(config.policy.clone())
        .host(config.host.clone().unwrap_or_else(alertcore::host_name))
        .configured(notifiers)
        .build();

    for _ in 0..3 {
        let r = engine
            .failure(
                "backup.service",
                FailureReport::new("exit-code")
                    .exit_code("exited")
                    .exit_status("1"),
            )
            .await?;
        print_report("failure", &r);
    }
    let r = engine.success("backup.service").await?;
    print_report("success", &r);
    Ok(())
}

/// What the engine decided for each notifier, then what became of each delivery: the
/// decision says "send", the delivery says whether it arrived, will be retried, or was
/// given up (and why).
fn print_report(what: &str, r: &Report) {
    println!("{what} #{} of {}:", r.failures, r.service);
    for d in &r.decisions {
        println!("  decided: {}: {}", d.notifier, d.action);
    }
    for d in &r.deliveries {
        println!("  {d}");
    }
    for w in &r.waiting {
        println!("  {w}");
    }
}
