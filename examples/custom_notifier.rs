//! A complete custom notifier: a `jsonl` type that appends one JSON document per alert
//! to a file, registered at build time and selected from a config file by its type name.
//!
//! ```sh
//! cargo run --example custom_notifier            # uses examples/custom_notifier.toml
//! cargo run --example custom_notifier -- my.toml
//! ```

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use alertcore::config::from_table;
use alertcore::{
    BuildError, Config, Context, Engine, FailureReport, MemoryStore, Notification, Notifier,
    NotifierFactory, NotifyError, Registry, Report,
};
use serde::Deserialize;

/// `[notifiers.NAME] type = "jsonl"`: its own config keys, typos rejected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlConfig {
    path: PathBuf,
}

#[derive(Debug)]
struct JsonlNotifier {
    path: PathBuf,
}

/// The descriptor a notifier crate exports.
const FACTORY: NotifierFactory = NotifierFactory {
    kind: "jsonl",
    build: |table| {
        let config: JsonlConfig = from_table(table)?;
        if config.path.as_os_str().is_empty() {
            return Err(BuildError::key("path", "`path` must not be empty"));
        }
        Ok(Arc::new(JsonlNotifier { path: config.path }) as Arc<dyn Notifier>)
    },
};

// Linking this crate is enough: `Registry::with_linked()` finds it.
alertcore::submit_notifier!(FACTORY);

impl JsonlNotifier {
    fn append(&self, n: &Notification) -> Result<(), NotifyError> {
        // the notification is serde: its fields are the template variables' names
        let mut line = serde_json::to_string(n).map_err(|e| NotifyError::permanent("jsonl", e))?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| NotifyError::retryable("jsonl", e))?;
        // one write per line: concurrent writers never interleave within a line
        file.write_all(line.as_bytes())
            .map_err(|e| NotifyError::retryable("jsonl", e))
    }
}

#[async_trait::async_trait]
impl Notifier for JsonlNotifier {
    fn kind(&self) -> &'static str {
        "jsonl"
    }

    async fn notify(&self, n: &Notification, _: &Context<'_>) -> Result<(), NotifyError> {
        self.append(n)
    }
}

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
