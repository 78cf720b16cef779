//! Events per second through the engine in one process, with `SqliteStore` on a file and
//! a notifier that only counts, next to its floor in the same run: a bare rusqlite loop
//! of `BEGIN IMMEDIATE; INSERT; COMMIT` with the pragmas `SqliteStore` uses (WAL,
//! `synchronous = FULL`). Both get the same stream of events: many services, mostly
//! failures, now and then a success, from a fixed-seed generator. They run in
//! alternating timed rounds, so a burst of load from elsewhere hits both alike.
//!
//! Each side first runs untimed until its write-ahead log has filled to the
//! auto-checkpoint size once. Until then every commit grows the `-wal` file, and on
//! ext4 an fsync that must also allocate blocks and write the inode costs several times
//! one that overwrites blocks in place; a side measured in that phase (the floor, which
//! writes one page per commit, stays in it for a thousand commits) looks slower than
//! it is in a long-running process.
//!
//! ```sh
//! cargo run --release --example engine_throughput
//! cargo run --release --example engine_throughput -- --seconds 2 --rounds 3 --services 100
//! ```
//!
//! Prints `floor_events_per_s=N`, `events_per_s=N` and `ratio=R` (engine / floor) on
//! stdout, one round per line on stderr. `--mode engine` or `--mode floor` runs one side.
//! The engine calls its store inline, as `alertctl` configures it
//! (`EngineBuilder::store_inline`); `--spawn-blocking` measures the default instead.
//!
//! `--tasks K` sends the events from K tasks at once (each waits for its event to be
//! durable before sending the next, as K handlers would), through `spawn_blocking`, so
//! the store commits them in groups; `--floor-sync normal` gives the floor
//! `synchronous = NORMAL` (no fsync per commit: the most a WAL database does without
//! durable commits). issue 23's pairs: one task against the FULL floor, 32 tasks
//! against the NORMAL floor.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alertcore::{
    Context, Engine, EventKind, FailureReport, Notification, Notifier, NotifyError, SqliteStore,
    Timestamp,
};
use rusqlite::{Connection, TransactionBehavior, params};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// A notifier that only counts: what is left is the engine and the store.
#[derive(Debug, Default)]
struct Counting {
    failures: AtomicU64,
    recoveries: AtomicU64,
}

#[async_trait::async_trait]
impl Notifier for Counting {
    fn kind(&self) -> &'static str {
        "counting"
    }

    async fn notify(&self, n: &Notification, _: &Context<'_>) -> Result<(), NotifyError> {
        let counter = match n.event {
            EventKind::Recovery => &self.recoveries,
            _ => &self.failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Both,
    Engine,
    Floor,
}

#[derive(Debug)]
struct Options {
    seconds: f64,
    rounds: u32,
    services: u64,
    /// One event in this many is a success.
    success_every: u64,
    mode: Mode,
    dir: PathBuf,
    /// Give up warming a side after this long.
    warmup_max: f64,
    /// Call the store through `spawn_blocking` (the default for embedders) instead of
    /// inline on the runtime thread (what `alertctl` does).
    spawn_blocking: bool,
    /// Tasks sending events at once (more than one: through `spawn_blocking`).
    tasks: usize,
    /// The floor's `synchronous`: `FULL` (as the store) or `NORMAL`.
    floor_sync: &'static str,
}

impl Options {
    fn parse() -> Result<Self> {
        let mut o = Options {
            seconds: 2.0,
            rounds: 3,
            services: 100,
            success_every: 5,
            mode: Mode::Both,
            dir: std::env::temp_dir(),
            warmup_max: 20.0,
            spawn_blocking: false,
            tasks: 1,
            floor_sync: "FULL",
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--seconds" => o.seconds = value()?.parse()?,
                "--rounds" => o.rounds = value()?.parse()?,
                "--services" => o.services = value()?.parse::<u64>()?.max(1),
                "--success-every" => o.success_every = value()?.parse::<u64>()?.max(1),
                "--dir" => o.dir = value()?.into(),
                "--warmup-max" => o.warmup_max = value()?.parse()?,
                "--spawn-blocking" => o.spawn_blocking = true,
                "--tasks" => o.tasks = value()?.parse::<usize>()?.max(1),
                "--floor-sync" => {
                    o.floor_sync = match value()?.as_str() {
                        "full" => "FULL",
                        "normal" => "NORMAL",
                        m => return Err(format!("unknown --floor-sync {m:?}").into()),
                    }
                }
                "--mode" => {
                    o.mode = match value()?.as_str() {
                        "both" => Mode::Both,
                        "engine" => Mode::Engine,
                        "floor" => Mode::Floor,
                        m => return Err(format!("unknown mode {m:?}").into()),
                    }
                }
                "-h" | "--help" => {
                    println!(
                        "usage: engine_throughput [--seconds S] [--rounds N] [--services K] \
                         [--success-every N] [--mode both|engine|floor] [--dir DIR] \
                         [--warmup-max S] [--spawn-blocking] [--tasks K] \
                         [--floor-sync full|normal]"
                    );
                    std::process::exit(0);
                }
                f => return Err(format!("unknown flag {f:?} (try --help)").into()),
            }
        }
        Ok(o)
    }
}

/// The event stream: which service, failure or success. A fixed-seed xorshift, so the
/// engine and the floor see the same sequence and runs are comparable.
#[derive(Debug, Clone)]
struct Mix {
    state: u64,
    services: u64,
    success_every: u64,
}

impl Mix {
    fn new(services: u64, success_every: u64) -> Self {
        Self {
            state: 0x9e37_79b9_7f4a_7c15,
            services,
            success_every,
        }
    }

    fn next(&mut self) -> (String, bool) {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        let service = format!("svc-{:03}.service", x % self.services);
        let success = (x >> 32).is_multiple_of(self.success_every);
        (service, success)
    }
}

/// What one side did in one round.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    events: u64,
    /// Store transactions: the engine's `apply` and one `record_attempt` per delivery.
    transactions: u64,
    elapsed: Duration,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.events += other.events;
        self.transactions += other.transactions;
        self.elapsed += other.elapsed;
    }

    fn per_second(&self) -> f64 {
        // u64 -> f64 is exact below 2^53 events
        #[allow(clippy::cast_precision_loss)]
        let events = self.events as f64;
        events / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// The floor: a bare rusqlite loop, one transaction per event.
struct Floor {
    conn: Connection,
}

impl Floor {
    fn open(path: &Path, synchronous: &str) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(60))?;
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}"))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS events (
                 id      INTEGER PRIMARY KEY,
                 service TEXT NOT NULL,
                 success INTEGER NOT NULL,
                 ts_ms   INTEGER NOT NULL
             );",
        )?;
        Ok(Self { conn })
    }

    fn run(&mut self, budget: Duration, mix: &mut Mix) -> Result<Tally> {
        let start = Instant::now();
        let mut tally = Tally::default();
        while start.elapsed() < budget {
            let (service, success) = mix.next();
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached("INSERT INTO events (service, success, ts_ms) VALUES (?1, ?2, ?3)")?
                .execute(params![service, success, now])?;
            tx.commit()?;
            tally.events += 1;
            tally.transactions += 1;
        }
        tally.elapsed = start.elapsed();
        Ok(tally)
    }
}

/// `tasks` tasks sending events from `mix` for `budget`, each one at a time.
async fn run_engine(
    engine: &Arc<Engine>,
    budget: Duration,
    mix: &Arc<Mutex<Mix>>,
    tasks: usize,
) -> Result<Tally> {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (engine, mix) = (Arc::clone(engine), Arc::clone(mix));
        set.spawn(async move {
            let mut tally = Tally::default();
            while start.elapsed() < budget {
                let (service, success) = mix.lock().map_err(|_| "poisoned")?.next();
                let report = if success {
                    engine.success(&service).await
                } else {
                    let failure = FailureReport::new("exit-code")
                        .exit_code("exited")
                        .exit_status("1");
                    engine.failure(&service, failure).await
                }
                .map_err(|e| e.to_string())?;
                tally.events += 1;
                tally.transactions += 1 + u64::try_from(report.deliveries.len()).unwrap_or(0);
            }
            Ok::<Tally, String>(tally)
        });
    }
    let mut total = Tally::default();
    while let Some(done) = set.join_next().await {
        total.add(done??);
    }
    // the tasks ran side by side: the round took the wall time, not their sum
    total.elapsed = start.elapsed();
    Ok(total)
}

/// SQLite's default `wal_autocheckpoint`, in frames.
const AUTOCHECKPOINT_FRAMES: u64 = 1000;

/// Frames the `-wal` file beside `db` has room for (it is reused, not truncated, after a
/// checkpoint, so this only grows).
fn wal_frames(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    // 32-byte header, then frames of a 24-byte header and a 4096-byte page
    std::fs::metadata(wal).map_or(0, |m| m.len().saturating_sub(32) / (24 + 4096))
}

/// Runs `side` untimed until the WAL of `db` has reached the auto-checkpoint size, or
/// `max` has passed.
fn warm_up(
    name: &str,
    db: &Path,
    max: Duration,
    mut side: impl FnMut(Duration) -> Result<Tally>,
) -> Result<()> {
    let start = Instant::now();
    let mut events = 0;
    while wal_frames(db) < AUTOCHECKPOINT_FRAMES && start.elapsed() < max {
        events += side(Duration::from_millis(250))?.events;
    }
    let frames = wal_frames(db);
    let state = if frames < AUTOCHECKPOINT_FRAMES {
        "NOT warm, measuring anyway"
    } else {
        "warm"
    };
    eprintln!(
        "warm-up {name:>6}: {events} events in {:.1}s, WAL {frames} frames: {state}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_round(side: &str, round: u32, t: &Tally) {
    // u64 -> f64 is exact below 2^53
    #[allow(clippy::cast_precision_loss)]
    let per_event = t.transactions as f64 / t.events.max(1) as f64;
    eprintln!(
        "round {round} {side:>6}: {:>6} events in {:.2}s = {:>7.0}/s ({per_event:.2} transactions/event)",
        t.events,
        t.elapsed.as_secs_f64(),
        t.per_second(),
    );
}

fn main() -> Result<()> {
    let o = Options::parse()?;
    let dir = tempfile::Builder::new()
        .prefix("engine_throughput")
        .tempdir_in(&o.dir)?;
    let budget = Duration::from_secs_f64(o.seconds);

    let counting = Arc::new(Counting::default());
    let engine_db = dir.path().join("engine.db");
    let floor_db = dir.path().join("floor.db");
    let store = SqliteStore::open(&engine_db)?;
    // an inline store call holds the runtime's one thread: tasks share a commit only
    // through spawn_blocking
    let inline = !o.spawn_blocking && o.tasks == 1;
    let engine = Arc::new(
        Engine::builder(Arc::new(store))
            .notifier("counting", Arc::clone(&counting) as Arc<dyn Notifier>)
            .host("bench")
            .store_inline(inline)
            .build(),
    );
    // the runtime alertctl uses: current thread (store calls inline unless --spawn-blocking)
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut floor = Floor::open(&floor_db, o.floor_sync)?;

    let mut floor_mix = Mix::new(o.services, o.success_every);
    let engine_mix = Arc::new(Mutex::new(floor_mix.clone()));
    let warmup_max = Duration::from_secs_f64(o.warmup_max);
    if o.mode != Mode::Engine {
        warm_up("floor", &floor_db, warmup_max, |d| {
            floor.run(d, &mut floor_mix)
        })?;
    }
    if o.mode != Mode::Floor {
        warm_up("engine", &engine_db, warmup_max, |d| {
            runtime.block_on(run_engine(&engine, d, &engine_mix, o.tasks))
        })?;
    }
    let alerted = counting.failures.load(Ordering::Relaxed);
    let recovered = counting.recoveries.load(Ordering::Relaxed);
    let (mut engine_total, mut floor_total) = (Tally::default(), Tally::default());
    let started = Timestamp::from_system_time(SystemTime::now());
    for round in 1..=o.rounds {
        // alternate which side goes first, so neither always follows the other's checkpoint
        let engine_first = round % 2 == 0;
        for side in [engine_first, !engine_first] {
            if side && o.mode != Mode::Floor {
                let t = runtime.block_on(run_engine(&engine, budget, &engine_mix, o.tasks))?;
                print_round("engine", round, &t);
                engine_total.add(t);
            } else if !side && o.mode != Mode::Engine {
                let t = floor.run(budget, &mut floor_mix)?;
                print_round("floor", round, &t);
                floor_total.add(t);
            }
        }
    }

    eprintln!(
        "{} services, one success in {} events, measured since {started}: alerts {} recoveries {}",
        o.services,
        o.success_every,
        counting.failures.load(Ordering::Relaxed) - alerted,
        counting.recoveries.load(Ordering::Relaxed) - recovered,
    );
    println!(
        "tasks={} store_inline={inline} floor_synchronous={}",
        o.tasks, o.floor_sync
    );
    if o.mode != Mode::Engine {
        println!("floor_events_per_s={:.0}", floor_total.per_second());
    }
    if o.mode != Mode::Floor {
        println!("events_per_s={:.0}", engine_total.per_second());
        #[allow(clippy::cast_precision_loss)]
        let per_event = engine_total.transactions as f64 / engine_total.events.max(1) as f64;
        println!("engine_transactions_per_event={per_event:.2}");
    }
    if o.mode == Mode::Both {
        println!(
            "ratio={:.2}",
            engine_total.per_second() / floor_total.per_second().max(f64::EPSILON)
        );
    }
    Ok(())
}
