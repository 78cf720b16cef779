//! The engine inside a long-running Rust program: the program runs its own job every
//! few hundred milliseconds, reports each run to the engine, and a notifier of its own
//! (added at build time, no config file) pages on failure and recovery. A flusher task
//! sends reminders and retries in the background while the program lives.
//!
//! ```sh
//! cargo run --example embedded                    # state in memory
//! cargo run --example embedded -- state.db        # state in SQLite: survives restarts
//! ```
//!
//! The job fails on runs 2 to 5 and succeeds otherwise; with `threshold = 2` the page goes
//! out on the second failure in a row, and the recovery on the next success. The pager
//! refuses its first page (as a receiver that is briefly down would): the report says it
//! will be retried and when, the recovery waits behind it in the outbox, and at exit the
//! program lists what is still pending (with a state file, the next run's flusher sends
//! it once it is due).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alertcore::store::OutboxFilter;
use alertcore::{
    Context, Engine, FailureReport, MemoryStore, Notification, Notifier, NotifyError, Policy,
    SqliteStore, Store,
};

/// A notifier of the program's own: prints a page (the format's subject) to stdout.
#[derive(Debug, Default)]
struct Pager {
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Notifier for Pager {
    fn kind(&self) -> &'static str {
        "pager"
    }

    async fn notify(&self, n: &Notification, ctx: &Context<'_>) -> Result<(), NotifyError> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(NotifyError::retryable(
                "pager",
                "the pager gateway is restarting",
            ));
        }
        println!("PAGE #{}: {}", n.sequence, ctx.format.subject(n, ctx)?);
        Ok(())
    }
}

/// The program's own job: fails on runs 2 to 5.
fn run_job(run: usize) -> Result<(), String> {
    if (2..=5).contains(&run) {
        Err(format!("run {run}: target unreachable"))
    } else {
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store: Arc<dyn Store> = match std::env::args().nth(1) {
        Some(path) => Arc::new(SqliteStore::open(std::path::Path::new(&path))?),
        None => Arc::new(MemoryStore::new()),
    };
    let engine = Engine::builder(store)
        .policy(Policy::default().threshold(2))
        .host("example-host")
        .notifier("pager", Arc::new(Pager::default()))
        .delivery_timeout(Duration::from_secs(10))
        .build();
    // reminders, alerts held back by `min_duration` and retries go out from here
    let flusher = engine.spawn_flusher(Duration::from_millis(200));

    for run in 1..=7 {
        let report = match run_job(run) {
            Ok(()) => engine.success("backup-job").await?,
            Err(why) => {
                let failure = FailureReport::new("exit-code").message(why);
                engine.failure("backup-job", failure).await?
            }
        };
        println!("run {run}: {} failure(s) in the streak", report.failures);
        for d in &report.decisions {
            println!("  decided: {}: {}", d.notifier, d.action);
        }
        for d in &report.deliveries {
            println!("  {d}");
        }
        for w in &report.waiting {
            println!("  {w}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    flusher.abort();
    for row in engine.store().outbox(&OutboxFilter::new())? {
        let next = row.next_attempt.map(|t| t.to_string()).unwrap_or_default();
        println!(
            "at exit, pending: {} {} of {} (#{}), next attempt {next}",
            row.notifier, row.kind, row.service, row.id
        );
    }
    Ok(())
}
