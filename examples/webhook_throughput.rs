//! Webhooks per second from the engine in one process: `Engine` with `SqliteStore` on a
//! file in a temporary directory and one `type = "webhook"` notifier (built from its
//! config table, as `alertctl` builds it), fed the first failure of `N` distinct services,
//! so every event is one alert and one POST. Events run concurrently (`CONCURRENCY`
//! tasks on a multi-threaded runtime), which is how a long-running embedder would use
//! the engine; the notifier keeps its connections alive across alerts.
//!
//! It is the alertcore side of "Alertmanager turns 1000 alerts into 1000 webhooks" in
//! `bench/webhook.sh`.
//!
//! ```sh
//! WEBHOOK_URL=http://127.0.0.1:8080/hook N=1000 \
//!     cargo run --release --example webhook_throughput
//! ```
//!
//! Environment: `WEBHOOK_URL` (required), `N` (default 1000), `CONCURRENCY` (default 32),
//! `MAX_CONCURRENT` (the notifier's `max_concurrent`; default: its default, 8),
//! `WEBHOOK_EXTRA` (more TOML keys for the notifier table, e.g. `preset = "slack"`), and
//! `MODE=notifier` to call the same notifier directly, without engine or store: what the
//! transport alone does, to tell where the time goes.
//!
//! Every notification goes through the outbox: a row written in the event's
//! transaction, sent after the commit when the notifier is under its `max_concurrent`,
//! else left waiting, and each sender that delivers claims the next waiting row in the
//! slot it frees (up to 64 in a row). Rows still pending when the last event is done
//! are sent by `Engine::flush_only` until none is left, inside the timed span
//! (`drained=` counts them), so the rate is of notifications enqueued and delivered.
//! Prints `notifications_per_s=N` on stdout, plus `delivered=`, `drained=`, `failed=`
//! and `seconds=`; the clock runs from the first event to the last delivery. Exits 1
//! if any delivery failed.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use alertcore::{
    Config, Context, Engine, EventKind, Failure, FailureReport, Notification, Registry,
    SqliteStore, Timestamp,
};

type Result<T, E = Box<dyn Error + Send + Sync>> = std::result::Result<T, E>;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|e| format!("{name}={v:?}: {e}").into()),
        Err(_) => Ok(default),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let url = std::env::var("WEBHOOK_URL").map_err(|_| "set WEBHOOK_URL (and N)")?;
    let n: usize = env_or("N", 1000)?;
    let concurrency: usize = env_or("CONCURRENCY", 32)?.max(1);
    let mut extra = std::env::var("WEBHOOK_EXTRA").unwrap_or_default();
    if let Ok(m) = std::env::var("MAX_CONCURRENT") {
        extra.push_str(&format!("\nmax_concurrent = {}\n", m.parse::<u32>()?));
    }
    let notifier_only = std::env::var("MODE").is_ok_and(|m| m == "notifier");

    let config = Config::parse(
        &format!("[notifiers.hook]\ntype = \"webhook\"\nurl = {url:?}\n{extra}\n"),
        "webhook_throughput",
    )?;
    let notifiers = config.build_notifiers(&Registry::new().with(alertcore_webhook::FACTORY))?;
    let notifier = notifiers
        .first()
        .map(|n| Arc::clone(&n.notifier))
        .ok_or("no notifier")?;
    let dir = tempfile::Builder::new()
        .prefix("alertcore-webhook-throughput-")
        .tempdir()?;
    let store = SqliteStore::open(dir.path().join("state.db"))?;
    let engine = Engine::builder(Arc::new(store))
        .configured(notifiers)
        .host("bench")
        .build();

    let next = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (engine, notifier, next, delivered, failed) = (
                engine.clone(),
                Arc::clone(&notifier),
                Arc::clone(&next),
                Arc::clone(&delivered),
                Arc::clone(&failed),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<(), alertcore::EngineError>(());
                    }
                    let service = format!("svc-{i:06}.service");
                    let report = FailureReport::new("exit-code")
                        .exit_code("exited")
                        .exit_status("1");
                    let errors: Vec<String> = if notifier_only {
                        let now = Timestamp::from_system_time(std::time::SystemTime::now());
                        let history = vec![Failure::from_report(&report, "bench", now)];
                        let alert = Notification::new(&service, EventKind::Failure, "bench")
                            .failures(history)
                            .streak(1, now)
                            .time(now);
                        let ctx = Context::new("hook");
                        match notifier.notify(&alert, &ctx).await {
                            Ok(()) => vec![String::new()],
                            Err(e) => vec![alertcore::chain(&e)],
                        }
                    } else {
                        let r = engine.failure(&service, report).await?;
                        r.deliveries
                            .iter()
                            .map(|d| d.error.clone().unwrap_or_default())
                            .collect()
                    };
                    for e in errors {
                        if e.is_empty() {
                            delivered.fetch_add(1, Ordering::Relaxed);
                        } else if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("webhook_throughput: first failure: {e}");
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    // what the last events left waiting for a slot, as a flusher would send it
    let mut drained = 0usize;
    if !notifier_only {
        let names = ["hook".to_owned()];
        loop {
            let sent = engine.flush_only(&names).await?;
            if sent.is_empty() {
                break;
            }
            for d in sent {
                drained += 1;
                match d.error {
                    None => {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("webhook_throughput: first failure: {e}");
                        }
                    }
                }
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let (delivered, failed) = (
        delivered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    // usize -> f64 is exact below 2^53 notifications
    #[allow(clippy::cast_precision_loss)]
    let rate = delivered as f64 / seconds.max(f64::EPSILON);
    println!("notifications_per_s={rate:.0}");
    println!("delivered={delivered}");
    println!("drained={drained}");
    println!("failed={failed}");
    println!("seconds={seconds:.3}");
    if failed > 0 || delivered != n {
        std::process::exit(1);
    }
    Ok(())
}
