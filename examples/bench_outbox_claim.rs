//! What one store call costs while a notifier is at its `max_concurrent` limit, as a
//! function of how many rows wait behind it: the situation of a burst, when every
//! handler inserts its alert, finds the notifier busy and leaves the row for whoever
//! frees a slot (and then asks the outbox for what is due).
//!
//! For each size `P` it builds a fresh state file (`SqliteStore`, in `--dir` or a
//! temporary directory) holding `P` first failures of distinct services, one outbox row
//! each for notifier `hook` with `max_concurrent` (default 8): the first rows are
//! claimed, the rest wait. Then it times, with the notifier still busy (nothing is ever
//! delivered):
//!
//! * `apply_ms`: `Store::apply` of one more such event (insert a row, find the notifier
//!   busy; one fsync'd commit);
//! * `claim_busy_ms`: `Store::claim_due` for `hook` (finds every slot taken, claims
//!   nothing): what each handler's flush pays in a burst;
//! * `claim_nolimit_ms`: the same rows claimed without limits (`Limits::NONE`, 64 rows),
//!   for comparison: what the query costs without the per-row admission check.
//!
//! ```sh
//! cargo run --release --example bench_outbox_claim -- --sizes 0,100,300,1000,2000
//! ```
//!
//! Prints one line per size: `pending=P apply_ms=.. claim_busy_ms=.. claim_nolimit_ms=..`
//! (medians of `--reps` calls).

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use alertcore::outbox::Limits;
use alertcore::store::{Change, NewNotification};
use alertcore::{EventKind, SqliteStore, Store, Timestamp};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

const LEASE: Duration = Duration::from_secs(300);

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// One first failure of `service` with one outbox row for `hook` under `limits`.
fn event(store: &SqliteStore, service: &str, limits: Limits) -> Result<()> {
    store.apply(service, now(), &mut |state| {
        let mut change = Change::new(state.clone());
        change.notifications = vec![
            NewNotification::new("hook", EventKind::Failure, 1)
                .payload("{}")
                .lease(LEASE)
                .limits(limits),
        ];
        change
    })?;
    Ok(())
}

fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> Result<()> {
    let mut sizes = vec![0usize, 100, 300, 1000, 2000];
    let mut reps = 9usize;
    let mut max_concurrent = 8u32;
    let mut dir: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--sizes" => {
                sizes = value()?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--reps" => reps = value()?.parse::<usize>()?.max(1),
            "--max-concurrent" => max_concurrent = value()?.parse()?,
            "--dir" => dir = Some(value()?.into()),
            _ => return Err(format!("unknown argument {a:?}").into()),
        }
    }
    let limits = Limits::NONE.max_concurrent(Some(max_concurrent));
    for p in sizes {
        let tmp = match &dir {
            Some(d) => tempfile::Builder::new()
                .prefix("outbox-claim-")
                .tempdir_in(d)?,
            None => tempfile::Builder::new().prefix("outbox-claim-").tempdir()?,
        };
        let store = SqliteStore::open(tmp.path().join("state.db"))?;
        for i in 0..p {
            event(&store, &format!("svc-{i:06}.service"), limits)?;
        }
        let only = [("hook", limits)];
        let mut apply = Vec::new();
        let mut busy = Vec::new();
        for r in 0..reps {
            let t = Instant::now();
            event(&store, &format!("extra-{r:03}.service"), limits)?;
            apply.push(t.elapsed());
            let t = Instant::now();
            let got = store.claim_due(now(), LEASE, 64, Some(&only))?;
            busy.push(t.elapsed());
            if p >= max_concurrent as usize && !got.is_empty() {
                return Err(format!("claimed {} rows at the limit", got.len()).into());
            }
        }
        // without limits; claims (and so leases) up to 64 rows a call, so time it last
        let mut nolimit = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            store.claim_due(now(), LEASE, 64, Some(&[("hook", Limits::NONE)]))?;
            nolimit.push(t.elapsed());
        }
        println!(
            "pending={p} apply_ms={:.2} claim_busy_ms={:.2} claim_nolimit_ms={:.2}",
            median_ms(apply),
            median_ms(busy),
            median_ms(nolimit)
        );
    }
    Ok(())
}
