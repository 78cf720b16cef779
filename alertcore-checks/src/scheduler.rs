//! The scheduler: runs every check on its interval, at most `concurrency` at once, and
//! hands what they find to the engine, the one that also serves `alertctl failure`.
//!
//! One loop owns the timing: a queue of due times, a timer for the nearest one. Each
//! run is a task of its own (a slow or hung check delays no other: it holds one of the
//! `concurrency` slots until its timeout), which records the run in the check's state,
//! tells the engine what it means, and hands the check back to the loop for its next
//! due time. A check never has two runs at once.
//!
//! Runs are due at fixed times: the first at a deterministic offset within the interval
//! (a hash of the name), so a thousand checks with one interval do not start in one
//! millisecond, then every interval from there (`retry_interval` after a failed run).
//! A run that overran its next due time skips the due times it missed (counted in
//! [`Stats::missed`]) rather than running twice in a row.
//!
//! A run that changes nothing writes nothing: a change of status, and a check starting
//! or stopping to count as failed, is saved right away, in one transaction with every
//! other change that came in meanwhile; everything else is saved at checkpoints.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use alertcore::{Engine, FailureReport, SourceState, StoreError, Timestamp, chain};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::outcome::Outcome;
use crate::spec::{Check, NextRun};
use crate::state::{CheckState, Verdict};

/// The source kind of check rows in the store.
pub const SOURCE_KIND: &str = "check";

/// A probe that overstays its timeout by this much is abandoned (its future dropped).
const GRACE: Duration = Duration::from_secs(2);

/// Due times are spread over an interval in steps of this: the runs due in one step
/// start on one wake-up of the loop (10,000 checks every 10 s: 20 wake-ups a second,
/// not 1,000).
const TICK: Duration = Duration::from_millis(50);

/// How many of the latest scheduling lags [`Stats`] keeps.
const LAGS_KEPT: usize = 1 << 16;

/// The scheduler's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// How many runs may be in progress at once.
    pub concurrency: usize,
    /// How often the state of runs that changed nothing is saved.
    pub checkpoint_every: Duration,
    /// How long [`Handle::stop`] waits for runs in progress.
    pub stop_timeout: Duration,
}

impl Default for Settings {
    /// As `[daemon]`'s defaults.
    fn default() -> Self {
        Self::from_config(&alertcore::DaemonConfig::default())
    }
}

impl Settings {
    /// Settings from the config's `[daemon]` table.
    pub fn from_config(daemon: &alertcore::DaemonConfig) -> Self {
        Self {
            concurrency: daemon.concurrency,
            checkpoint_every: daemon.checkpoint_every,
            stop_timeout: daemon.stop_timeout,
        }
    }
}

/// How the scheduler has kept time since it started.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Runs finished.
    pub runs: u64,
    /// Due times skipped because the check's previous run was still going (or the
    /// loop itself was late by a whole interval).
    pub missed: u64,
    /// The latest scheduling lags (due time to start, a slot included), in
    /// microseconds, up to 65 536 of them.
    pub lags_us: Vec<u32>,
}

impl Stats {
    /// The `q` quantile (0.0 to 1.0) of the kept lags.
    pub fn lag_quantile(&self, q: f64) -> Option<Duration> {
        if self.lags_us.is_empty() {
            return None;
        }
        let mut v = self.lags_us.clone();
        v.sort_unstable();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        Some(Duration::from_micros(u64::from(v[i])))
    }
}

/// One check as [`Handle::snapshot`] shows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// The check's name.
    pub name: String,
    /// Its state.
    pub state: CheckState,
    /// Whether a run is in progress.
    pub running: bool,
}

enum Control {
    Reload(Vec<Check>, Arc<Engine>, oneshot::Sender<()>),
    RunNow,
    Counts(oneshot::Sender<(usize, usize)>),
    Snapshot(oneshot::Sender<(Vec<Snapshot>, Stats)>),
    Stop(oneshot::Sender<()>),
}

/// Talks to a running [`Scheduler`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Control>,
}

impl Handle {
    /// Replaces the checks and the engine (a reloaded config). A check whose table did
    /// not change keeps its schedule; a changed one keeps its state and is due at once;
    /// a removed one is forgotten, in the store too. Returns once the loop took them.
    pub async fn reload(&self, checks: Vec<Check>, engine: Arc<Engine>) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Control::Reload(checks, engine, tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Makes every check that is not running due now.
    pub fn run_now(&self) {
        let _ = self.tx.send(Control::RunNow);
    }

    /// How many checks there are, and how many of them count as failed.
    pub async fn counts(&self) -> (usize, usize) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Control::Counts(tx)).is_err() {
            return (0, 0);
        }
        rx.await.unwrap_or_default()
    }

    /// Every check's state, by name, and the scheduling statistics.
    pub async fn snapshot(&self) -> (Vec<Snapshot>, Stats) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Control::Snapshot(tx)).is_err() {
            return (Vec::new(), Stats::default());
        }
        rx.await.unwrap_or_default()
    }

    /// Stops starting runs, waits for those in progress (up to the stop timeout),
    /// saves every state and makes [`Scheduler::run`] return.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Control::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// One check in the loop.
struct Slot {
    check: Arc<Check>,
    shared: Arc<Shared>,
    /// Bumped when the check is replaced, so queue entries and finished runs of the
    /// old one are ignored.
    generation: u64,
    running: bool,
    /// The due time of the queued (or running) run.
    due: Instant,
}

/// What a run task and the loop share about one check.
#[derive(Default)]
struct Shared {
    state: Mutex<CheckState>,
    /// Changed since it was last saved.
    dirty: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, CheckState> {
        // a run task that panicked leaves a state no worse than the one it read
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Done {
    name: Arc<str>,
    generation: u64,
    /// The run changed the check's status or whether it fails: save soon.
    changed: bool,
    failed: bool,
    lag: Duration,
}

/// Runs checks on their schedules; see the module documentation.
pub struct Scheduler {
    engine: Arc<Engine>,
    settings: Settings,
    /// By name; the queue and finished runs name a check with the same `Arc`, so a run
    /// allocates no name.
    slots: HashMap<Arc<str>, Slot>,
    queue: BinaryHeap<Reverse<(Instant, u64, Arc<str>)>>,
    semaphore: Arc<Semaphore>,
    control: mpsc::UnboundedReceiver<Control>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    generation: u64,
    /// A run changed a check's state since the last save started.
    urgent: bool,
    stats: Stats,
    lag_next: usize,
    hook: Option<(Duration, Box<dyn FnMut() + Send + Sync>)>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("checks", &self.slots.len())
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler for `checks` over `engine`, with each check's state read back from
    /// the engine's store (the rows of checks no longer configured are deleted).
    ///
    /// A check counts as failed exactly when the engine has an open failure streak
    /// for its name: `alertctl clear` of a check's name ends its failure here too.
    ///
    /// # Errors
    /// A [`StoreError`] reading or cleaning the store.
    pub fn new(
        engine: Arc<Engine>,
        checks: Vec<Check>,
        settings: Settings,
    ) -> Result<(Self, Handle), StoreError> {
        let (tx, control) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let mut scheduler = Self {
            semaphore: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            engine,
            settings,
            slots: HashMap::new(),
            queue: BinaryHeap::new(),
            control,
            done_tx,
            done_rx,
            generation: 0,
            urgent: false,
            stats: Stats::default(),
            lag_next: 0,
            hook: None,
        };
        scheduler.install(checks)?;
        Ok((scheduler, Handle { tx }))
    }

    /// Calls `hook` from the loop itself at least every `every` (the daemon's systemd
    /// watchdog ping: a stalled loop stops pinging).
    #[must_use]
    pub fn with_hook(
        mut self,
        every: Duration,
        hook: impl FnMut() + Send + Sync + 'static,
    ) -> Self {
        self.hook = Some((every, Box::new(hook)));
        self
    }

    /// Reads the saved states of `checks` and queues them, replacing the checks there
    /// were.
    fn install(&mut self, checks: Vec<Check>) -> Result<(), StoreError> {
        let store = Arc::clone(self.engine.store());
        let saved: HashMap<String, CheckState> = store
            .sources(SOURCE_KIND)?
            .into_iter()
            .filter_map(|row| {
                let state = serde_json::from_str(&row.state)
                    .inspect_err(|e| {
                        tracing::warn!(check = %row.name, "saved state unreadable, starting afresh: {e}");
                    })
                    .ok()?;
                Some((row.name, state))
            })
            .collect();
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        store.forget_sources(SOURCE_KIND, &names)?;
        // whether each new check counts as failed: the engine's open streaks, read once
        let streaks: HashMap<String, Timestamp> = if checks
            .iter()
            .any(|c| !self.slots.contains_key(c.name.as_str()))
        {
            store
                .states()?
                .into_iter()
                .filter_map(|(name, state)| Some((name, state.streak?.started)))
                .collect()
        } else {
            HashMap::new()
        };
        let now = Instant::now();
        let mut old = std::mem::take(&mut self.slots);
        for check in checks {
            self.generation += 1;
            let name: Arc<str> = Arc::from(check.name.as_str());
            let slot = match old.remove(&name) {
                Some(slot) if slot.check.source == check.source => Slot {
                    generation: self.generation,
                    check: Arc::new(check),
                    ..slot
                },
                Some(slot) => Slot {
                    check: Arc::new(check),
                    shared: slot.shared,
                    generation: self.generation,
                    running: slot.running,
                    due: now,
                },
                None => {
                    let mut state = saved.get(&*name).cloned().unwrap_or_default();
                    state.failing = streaks
                        .get(&*name)
                        .map(|since| crate::state::Failing { since: *since });
                    let due = match &check.cron {
                        Some(cron) => {
                            let wall_now = self.engine.now();
                            instant_of(cron.next_after(wall_now), wall_now, now)
                        }
                        None => first_due(&name, check.interval, now),
                    };
                    Slot {
                        check: Arc::new(check),
                        shared: Arc::new(Shared {
                            state: Mutex::new(state),
                            dirty: AtomicBool::new(true),
                        }),
                        generation: self.generation,
                        running: false,
                        due,
                    }
                }
            };
            if !slot.running {
                self.queue
                    .push(Reverse((slot.due, slot.generation, name.clone())));
            }
            self.set_next_run(&slot);
            self.slots.insert(name, slot);
        }
        Ok(())
    }

    fn set_next_run(&self, slot: &Slot) {
        let in_ = slot.due.saturating_duration_since(Instant::now());
        slot.shared.lock().next_run = Some(self.engine.now().saturating_add(in_));
    }

    /// Runs every check once, now, through the engine and the saved state as the loop
    /// would, saves every state and returns them (`alertctl run --once --notify`).
    pub async fn run_once(mut self) -> Vec<Snapshot> {
        self.on_control(Control::RunNow);
        self.launch_due();
        self.finish(None).await;
        self.snapshots()
    }

    /// Runs until [`Handle::stop`] (or until every handle is dropped).
    pub async fn run(mut self) -> Stats {
        let mut next_checkpoint = Instant::now() + self.settings.checkpoint_every;
        let mut saving: Option<tokio::task::JoinHandle<()>> = None;
        let mut next_hook = Instant::now();
        // one timer, moved only when the next wake-up moves: a new timer per turn of
        // the loop would make tokio wake its own driver (an eventfd write) each time
        let timer = tokio::time::sleep_until(next_checkpoint);
        tokio::pin!(timer);
        loop {
            let now = Instant::now();
            if let Some((every, hook)) = &mut self.hook
                && now >= next_hook
            {
                hook();
                next_hook = now + *every;
            }
            // One save at a time: the changes that arrive while one runs go into the
            // next, in one transaction (not a commit and a blocking thread each); a slow
            // disk skips a checkpoint rather than piling them up.
            let idle = saving
                .as_ref()
                .is_none_or(tokio::task::JoinHandle::is_finished);
            if now >= next_checkpoint {
                if idle {
                    saving = Some(self.checkpoint());
                    self.urgent = false;
                }
                next_checkpoint = now + self.settings.checkpoint_every;
            } else if self.urgent && idle {
                saving = Some(self.checkpoint());
                self.urgent = false;
            }
            let next_due = self.queue.peek().map(|Reverse((due, _, _))| *due);
            let wake = [
                Some(next_checkpoint),
                next_due,
                self.hook.as_ref().map(|_| next_hook),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_checkpoint);
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            tokio::select! {
                control = self.control.recv() => match control {
                    Some(Control::Stop(_)) | None => {
                        if let Some(saving) = saving.take() {
                            let _ = saving.await;
                        }
                        self.finish(Some(Instant::now() + self.settings.stop_timeout)).await;
                        if let Some(Control::Stop(reply)) = control {
                            let _ = reply.send(());
                        }
                        return self.stats;
                    }
                    Some(other) => self.on_control(other),
                },
                Some(done) = self.done_rx.recv() => {
                    self.on_done(done);
                    // and every other run that finished meanwhile, in this turn
                    while let Ok(done) = self.done_rx.try_recv() {
                        self.on_done(done);
                    }
                }
                () = &mut timer => self.launch_due(),
                // a save finished: the next turn starts the one that waited for it
                _ = async { saving.as_mut()?.await.ok() }, if self.urgent => saving = None,
            }
        }
    }

    fn on_control(&mut self, control: Control) {
        match control {
            Control::Reload(checks, engine, reply) => {
                self.engine = engine;
                if let Err(e) = self.install(checks) {
                    tracing::error!("reloading the checks: {}", chain(&e));
                }
                let _ = reply.send(());
            }
            Control::RunNow => {
                let now = Instant::now();
                for (name, slot) in &mut self.slots {
                    if !slot.running {
                        slot.due = now;
                        self.queue
                            .push(Reverse((now, slot.generation, Arc::clone(name))));
                    }
                }
            }
            Control::Counts(reply) => {
                let failing = self
                    .slots
                    .values()
                    .filter(|s| s.shared.lock().is_failing())
                    .count();
                let _ = reply.send((self.slots.len(), failing));
            }
            Control::Snapshot(reply) => {
                let _ = reply.send((self.snapshots(), self.stats.clone()));
            }
            Control::Stop(_) => {}
        }
    }

    /// Every check's state, by name.
    fn snapshots(&self) -> Vec<Snapshot> {
        let mut list: Vec<Snapshot> = self
            .slots
            .iter()
            .map(|(name, slot)| Snapshot {
                name: name.to_string(),
                state: slot.shared.lock().clone(),
                running: slot.running,
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Starts every run that is due.
    fn launch_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((due, generation, _))) = self.queue.peek() {
            if *due > now {
                break;
            }
            let due = *due;
            let generation = *generation;
            let Some(Reverse((_, _, name))) = self.queue.pop() else {
                break;
            };
            let Some(slot) = self.slots.get_mut(&name) else {
                continue;
            };
            if slot.generation != generation || slot.running || slot.due != due {
                continue;
            }
            slot.running = true;
            tokio::spawn(run_one(RunOne {
                name,
                check: Arc::clone(&slot.check),
                shared: Arc::clone(&slot.shared),
                engine: Arc::clone(&self.engine),
                semaphore: Arc::clone(&self.semaphore),
                done: self.done_tx.clone(),
                generation,
                due,
            }));
        }
    }

    fn on_done(&mut self, done: Done) {
        self.stats.runs += 1;
        self.urgent |= done.changed;
        let lag = u32::try_from(done.lag.as_micros()).unwrap_or(u32::MAX);
        if self.stats.lags_us.len() < LAGS_KEPT {
            self.stats.lags_us.push(lag);
        } else {
            self.stats.lags_us[self.lag_next] = lag;
            self.lag_next = (self.lag_next + 1) % LAGS_KEPT;
        }
        let Some(slot) = self.slots.get_mut(&done.name) else {
            return;
        };
        slot.running = false;
        if slot.generation != done.generation {
            // replaced while it ran: the reload queued the new check already
            return;
        }
        let now = Instant::now();
        let (due, missed) = match slot.check.next_run(done.failed) {
            NextRun::After(period) => next_due(slot.due, period, now),
            NextRun::Schedule(cron) => {
                // the next time it names after the one just due, or after now if a
                // long run went past that one too
                let wall_now = self.engine.now();
                let due_wall = wall_now.saturating_sub(now.saturating_duration_since(slot.due));
                let next = cron.next_after(due_wall.max(wall_now));
                let skipped = cron.next_after(due_wall) < next;
                (instant_of(next, wall_now, now), u64::from(skipped))
            }
        };
        self.stats.missed += missed;
        slot.due = due;
        self.queue
            .push(Reverse((due, slot.generation, Arc::clone(&done.name))));
        let slot = &self.slots[&done.name];
        self.set_next_run(slot);
    }

    /// Saves the state of every check that changed since it was last saved, in a
    /// blocking task (reading the states and encoding them included), so the loop
    /// starts no run late for it. A save that fails leaves them to the next one.
    fn checkpoint(&self) -> tokio::task::JoinHandle<()> {
        let now = self.engine.now();
        let dirty: Vec<(Arc<str>, Arc<Shared>)> = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.shared.dirty.swap(false, Ordering::Relaxed))
            .map(|(name, slot)| (Arc::clone(name), Arc::clone(&slot.shared)))
            .collect();
        let store = Arc::clone(self.engine.store());
        tokio::task::spawn_blocking(move || {
            let rows: Vec<SourceState> = dirty
                .iter()
                .filter_map(|(name, shared)| row(name, &shared.lock(), now))
                .collect();
            if rows.is_empty() {
                return;
            }
            if let Err(e) = store.save_sources(&rows) {
                tracing::error!("saving the checks' state: {}", chain(&e));
                for (_, shared) in &dirty {
                    shared.dirty.store(true, Ordering::Relaxed);
                }
            }
        })
    }

    /// Waits for the runs in progress (until `deadline`, if one is given), then saves
    /// every state.
    async fn finish(&mut self, deadline: Option<Instant>) {
        while self.slots.values().any(|s| s.running) {
            let done = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, self.done_rx.recv())
                    .await
                    .ok()
                    .flatten(),
                None => self.done_rx.recv().await,
            };
            let Some(done) = done else { break };
            if let Some(slot) = self.slots.get_mut(&done.name) {
                slot.running = false;
            }
        }
        for slot in self.slots.values() {
            slot.shared.dirty.store(true, Ordering::Relaxed);
        }
        let _ = self.checkpoint().await;
    }
}

/// A check's row in the store.
fn row(name: &str, state: &CheckState, now: Timestamp) -> Option<SourceState> {
    match serde_json::to_string(state) {
        Ok(json) => Some(SourceState::new(SOURCE_KIND, name, json, now)),
        Err(e) => {
            tracing::error!(check = %name, "cannot encode its state: {e}");
            None
        }
    }
}

/// The instant of the wall-clock time `t`, when the wall clock says `wall_now` and the
/// monotonic one `now`; a year on when there is none (a schedule that names no time in
/// the coming years is refused when read).
fn instant_of(t: Option<Timestamp>, wall_now: Timestamp, now: Instant) -> Instant {
    match t {
        Some(t) => now + t.saturating_duration_since(wall_now),
        None => now + Duration::from_secs(365 * 86_400),
    }
}

/// The first due time of a check: a deterministic offset within its interval, in
/// [`TICK`] steps, from a hash of its name (FNV-1a), so checks of one interval spread
/// over it.
fn first_due(name: &str, interval: Duration, now: Instant) -> Instant {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let steps = u64::try_from(interval.as_nanos() / TICK.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    now + TICK * u32::try_from(hash % steps).unwrap_or(0)
}

/// The due time after one at `due` with `period`, seen at `now`: the first of
/// `due + k·period` (k ≥ 1) that is not a whole period in the past, and how many due
/// times were skipped to get there.
fn next_due(due: Instant, period: Duration, now: Instant) -> (Instant, u64) {
    let next = due + period;
    if next + period > now {
        return (next, 0);
    }
    let behind = now.saturating_duration_since(next).as_nanos();
    let skipped = behind / period.as_nanos().max(1);
    let skipped = u32::try_from(skipped).unwrap_or(u32::MAX);
    (next + period * skipped, u64::from(skipped))
}

/// Runs `check`'s probe once, bounded by its timeout; what it found and how long it took.
async fn probe(check: &Check) -> (Outcome, Duration) {
    let started = Instant::now();
    let run = tokio::time::timeout(check.timeout + GRACE, check.probe.run(check.timeout));
    let outcome = run
        .await
        .unwrap_or_else(|_| Outcome::timed_out(check.timeout));
    (outcome, started.elapsed())
}

/// Runs every check once, at most `concurrency` at once, and returns what each found,
/// by name: nothing is recorded, reported or saved (`alertctl run --once`).
pub async fn run_all(checks: Vec<Check>, concurrency: usize) -> Vec<Snapshot> {
    let semaphore = Arc::new(Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = checks
        .into_iter()
        .map(|check| {
            let semaphore = Arc::clone(&semaphore);
            tokio::spawn(async move {
                let _permit = semaphore.acquire_owned().await.ok();
                let at = Timestamp::from_system_time(std::time::SystemTime::now());
                let (outcome, took) = probe(&check).await;
                let mut state = CheckState::default();
                state.observe(&check, outcome, at, took);
                Snapshot {
                    name: check.name.clone(),
                    state,
                    running: false,
                }
            })
        })
        .collect();
    let mut list = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(s) => list.push(s),
            Err(e) => tracing::error!("a check's run failed: {e}"),
        }
    }
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

struct RunOne {
    name: Arc<str>,
    check: Arc<Check>,
    shared: Arc<Shared>,
    engine: Arc<Engine>,
    semaphore: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Done>,
    generation: u64,
    due: Instant,
}

/// One run: probe, record, tell the engine, save a change, hand the check back.
async fn run_one(run: RunOne) {
    let RunOne {
        name,
        check,
        shared,
        engine,
        semaphore,
        done,
        generation,
        due,
    } = run;
    let (outcome, at, took, lag) = {
        // the semaphore is never closed
        let _permit = semaphore.acquire_owned().await.ok();
        let lag = due.elapsed();
        let at = engine.now();
        let (outcome, took) = probe(&check).await;
        metrics::histogram!(alertcore::telemetry::CHECK_DURATION, "kind" => check.kind())
            .record(took.as_secs_f64());
        (outcome, at, took, lag)
    };
    let (observed, failing_before, failure, failed) = {
        let mut state = shared.lock();
        let (status_before, failing_before) = (state.status(), state.failing.clone());
        let observed = state.observe(&check, outcome, at, took);
        // the loop sets the exact time when it queues the next run; this one, close
        // to it, is what a save right after the run shows
        let failed = state.last_failed();
        state.next_run = check.next_after(at.saturating_sub(lag), failed);
        if observed.changed {
            log_change(&check, &state, status_before, failing_before.is_some());
        }
        let failure = match observed.verdict {
            Verdict::Failure(severity) => state
                .last
                .as_ref()
                .map(|l| failure_report(&l.outcome, severity, check.host.as_deref())),
            _ => None,
        };
        (observed, failing_before, failure, failed)
    };
    shared.dirty.store(true, Ordering::Relaxed);
    if !report(&engine, &check.name, observed.verdict, failure).await {
        // the engine did not record it: as if the run had not counted, so the next
        // failed run reports again
        shared.lock().failing = failing_before;
    }
    let _ = done.send(Done {
        name,
        generation,
        changed: observed.changed,
        failed,
        lag,
    });
}

/// Tells the engine what the run means; `false` if the engine could not record it.
async fn report(
    engine: &Engine,
    name: &str,
    verdict: Verdict,
    failure: Option<FailureReport>,
) -> bool {
    let result = match (verdict, failure) {
        (Verdict::Failure(_), Some(failure)) => engine.failure(name, failure).await,
        (Verdict::Recovery, _) => engine.success(name).await,
        _ => return true,
    };
    match result {
        Ok(report) => {
            for delivery in &report.deliveries {
                if !delivery.delivered() {
                    tracing::warn!(check = %name, "{delivery}");
                }
            }
            true
        }
        Err(e) => {
            tracing::error!(check = %name, "cannot record the result: {}", chain(&e));
            false
        }
    }
}

/// The failure the engine records for a failed run that found `outcome`: its status
/// as the result (`critical`, ...), its output as the message, source kind `check`,
/// and the check's `[hosts.NAME]` as the host it is about.
fn failure_report(
    outcome: &Outcome,
    severity: alertcore::Severity,
    host: Option<&str>,
) -> FailureReport {
    let report = FailureReport::new(outcome.status.as_str())
        .severity(severity)
        .kind("check")
        .message(outcome.plugin_output());
    match host {
        Some(host) => report.host(host),
        None => report,
    }
}

/// One line for a change of state: `ok → critical (counts as failed): ...`.
fn log_change(check: &Check, state: &CheckState, was: Option<crate::Status>, was_failing: bool) {
    let Some(last) = &state.last else { return };
    let from = was.map_or("new", |s| s.as_str());
    let counted = match (was_failing, state.is_failing()) {
        (false, true) => " (counts as failed)",
        (true, false) => " (recovered)",
        _ => "",
    };
    if last.outcome.status.is_ok() {
        tracing::info!(check = %check.name, "{from} → ok{counted}: {}", last.outcome.message);
    } else {
        tracing::warn!(
            check = %check.name,
            "{from} → {}{counted}: {}",
            last.outcome.status,
            last.outcome.message
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_due_keeps_a_fixed_rate_and_counts_what_it_skips() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // finished in time: one period on
        assert_eq!(next_due(t0, s(10), t0 + s(3)), (t0 + s(10), 0));
        // finished after the next due time but less than a period late: run at once
        assert_eq!(next_due(t0, s(10), t0 + s(12)), (t0 + s(10), 0));
        // 35 s late on a 10 s period: the due times at 10 and 20 are skipped, 30 runs
        assert_eq!(next_due(t0, s(10), t0 + s(35)), (t0 + s(30), 2));
    }

    #[test]
    fn first_runs_spread_over_the_interval_and_do_not_move() {
        let t0 = Instant::now();
        let every = Duration::from_secs(10);
        let offsets: Vec<Duration> = (0..1000)
            .map(|i| first_due(&format!("check-{i}"), every, t0) - t0)
            .collect();
        assert!(offsets.iter().all(|d| *d < every));
        // in steps, so that the runs of one step start on one wake-up
        assert!(offsets.iter().all(|d| d.as_nanos() % TICK.as_nanos() == 0));
        // each tenth of the interval gets about a tenth of the checks
        for k in 0..10 {
            let n = offsets.iter().filter(|d| d.as_secs() == k).count();
            assert!((60..=140).contains(&n), "second {k}: {n} of 1000");
        }
        assert_eq!(first_due("web", every, t0), first_due("web", every, t0));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod run_tests {
    use alertcore::testkit::RecordingNotifier;
    use alertcore::{Clock, EventKind, MemoryStore, Store};

    use super::*;
    use crate::state::tests::{Scripted, check};

    /// The engine's clock follows tokio's (paused) clock, so saved times tell runs apart.
    #[derive(Debug)]
    struct TokioClock(Instant);

    impl Clock for TokioClock {
        fn now(&self) -> Timestamp {
            let ms = i64::try_from(self.0.elapsed().as_millis()).unwrap();
            Timestamp::from_millis(1_800_000_000_000 + ms)
        }
    }

    fn engine(store: Arc<dyn Store>, notifier: Arc<RecordingNotifier>) -> Arc<Engine> {
        Arc::new(
            Engine::builder(store)
                .notifier("rec", notifier)
                .clock(Arc::new(TokioClock(Instant::now())))
                .build(),
        )
    }

    fn probed(name: &str, probe: Arc<Scripted>, threshold: u32) -> Check {
        let mut c = check(threshold, None, 1);
        c.name = name.to_owned();
        c.probe = probe;
        c
    }

    fn settings() -> Settings {
        Settings {
            concurrency: 8,
            checkpoint_every: Duration::from_secs(3600),
            stop_timeout: Duration::from_secs(5),
        }
    }

    /// Lets the scheduler run for `d` of paused time.
    async fn run_for(scheduler: Scheduler, handle: &Handle, d: Duration) -> Stats {
        let task = tokio::spawn(scheduler.run());
        tokio::time::sleep(d).await;
        handle.stop().await;
        task.await.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_alerts_at_its_threshold_once_and_recovers() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let rec = RecordingNotifier::new();
        let probe = Scripted::new([
            Outcome::ok("up"),
            Outcome::critical("down 1"),
            Outcome::critical("down 2"),
            Outcome::critical("down 3"),
            Outcome::ok("up again"),
        ]);
        let mut web = probed("web", Arc::clone(&probe), 2);
        web.host = Some("web1".to_owned());
        let (s, h) =
            Scheduler::new(engine(store, Arc::clone(&rec)), vec![web], settings()).unwrap();
        run_for(s, &h, Duration::from_secs(60)).await;
        let calls = rec.calls();
        let events: Vec<EventKind> = calls.iter().map(|c| c.event).collect();
        assert_eq!(
            events,
            [EventKind::Failure, EventKind::Recovery],
            "{calls:#?}"
        );
        // the alert carries the run's output, and its history starts at the threshold
        let failure = &calls[0].notification;
        assert_eq!(failure.service, "web");
        // about its [hosts.NAME], not the daemon's host; the recovery too
        assert_eq!(failure.host, "web1");
        assert_eq!(calls[1].notification.host, "web1");
        let last = failure.last_failure().unwrap();
        assert_eq!(last.message.as_deref(), Some("down 2"));
        assert_eq!(last.service_result, "critical");
    }

    #[tokio::test(start_paused = true)]
    async fn runs_keep_a_fixed_rate_and_retry_sooner_while_failing() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let probe = Scripted::new([
            Outcome::ok("a"),
            Outcome::critical("b"),
            Outcome::critical("c"),
        ]);
        let mut c = probed("db", Arc::clone(&probe), 5);
        c.retry_interval = Some(Duration::from_secs(3));
        let (s, h) =
            Scheduler::new(engine(store, RecordingNotifier::new()), vec![c], settings()).unwrap();
        run_for(s, &h, Duration::from_secs(45)).await;
        let runs = probe.runs();
        let gaps: Vec<u64> = runs.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        // ok → 10 s; critical → 3 s; critical → 3 s; then ok again → 10 s
        assert_eq!(gaps[..4], [10, 3, 3, 10], "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cron_schedule_runs_at_the_times_it_names_and_retries_in_between() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        // the engine's clock starts on a minute (2027-01-15T08:00:00Z)
        let probe = Scripted::new([
            Outcome::ok("a"),
            Outcome::critical("b"),
            Outcome::critical("c"),
        ]);
        let mut c = probed("nightly", Arc::clone(&probe), 5);
        c.cron =
            Some(crate::cron::CronSchedule::parse("*/2 * * * *", jiff::tz::TimeZone::UTC).unwrap());
        c.retry_interval = Some(Duration::from_secs(15));
        let start = Instant::now();
        let (s, h) =
            Scheduler::new(engine(store, RecordingNotifier::new()), vec![c], settings()).unwrap();
        run_for(s, &h, Duration::from_secs(300)).await;
        let at: Vec<u64> = probe
            .runs()
            .iter()
            .map(|t| (*t - start).as_secs())
            .collect();
        // 08:02 ok; 08:04 critical, then every 15 s while failing: 08:04:15 critical,
        // 08:04:30 ok (the script's default); then the schedule again: 08:06
        assert_eq!(at, [120, 240, 255, 270], "{at:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_delays_no_other() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let hung = Scripted::hanging();
        let quick = Scripted::new([]);
        let mut slow = probed("hung", Arc::clone(&hung), 1);
        slow.timeout = Duration::from_secs(30);
        slow.interval = Duration::from_secs(60);
        let checks = vec![slow, probed("quick", Arc::clone(&quick), 1)];
        let mut settings = settings();
        settings.concurrency = 2;
        let (s, h) =
            Scheduler::new(engine(store, RecordingNotifier::new()), checks, settings).unwrap();
        let stats = run_for(s, &h, Duration::from_secs(200)).await;
        // quick ran every 10 s although hung held a slot for 32 s at a time
        assert!(quick.runs().len() >= 19, "{}", quick.runs().len());
        // on time, to the timer's millisecond
        let worst = stats.lag_quantile(1.0).unwrap();
        assert!(worst < Duration::from_millis(2), "{worst:?}");
        // and the hung one was stopped at its timeout and counted as critical
        assert!(hung.runs().len() >= 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_that_changes_nothing_writes_nothing_until_the_checkpoint() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let probe = Scripted::new([]);
        let checks = vec![probed("web", Arc::clone(&probe), 1)];
        let mut settings = settings();
        settings.checkpoint_every = Duration::from_secs(100);
        let (s, h) = Scheduler::new(
            engine(Arc::clone(&store), RecordingNotifier::new()),
            checks,
            settings,
        )
        .unwrap();
        let task = tokio::spawn(s.run());
        tokio::time::sleep(Duration::from_secs(55)).await;
        assert!(probe.runs().len() >= 5);
        let rows = store.sources(SOURCE_KIND).unwrap();
        let state: CheckState = serde_json::from_str(&rows[0].state).unwrap();
        // saved once, at the first run (a new status); not at the four since
        let first = state.last.unwrap().at;
        assert_eq!(rows[0].updated, first);
        let latest = h.snapshot().await.0[0].state.last.clone().unwrap().at;
        assert!(latest > first);
        // the checkpoint (every 100 s here) saves what changed since
        tokio::time::sleep(Duration::from_secs(50)).await;
        let rows = store.sources(SOURCE_KIND).unwrap();
        let checkpointed: CheckState = serde_json::from_str(&rows[0].state).unwrap();
        assert!(checkpointed.last.unwrap().at >= latest, "{rows:?}");
        // stopping saves the latest (the paused clock stands still until the stop)
        let latest = h.snapshot().await.0[0].state.last.clone().unwrap().at;
        h.stop().await;
        task.await.unwrap();
        let rows = store.sources(SOURCE_KIND).unwrap();
        let saved: CheckState = serde_json::from_str(&rows[0].state).unwrap();
        assert_eq!(saved.last.unwrap().at, latest);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_keeps_unchanged_checks_runs_changed_ones_and_forgets_removed_ones() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (kept, changed, removed) = (Scripted::new([]), Scripted::new([]), Scripted::new([]));
        let checks = vec![
            probed("kept", Arc::clone(&kept), 1),
            probed("changed", Arc::clone(&changed), 1),
            probed("removed", Arc::clone(&removed), 1),
        ];
        let engine = engine(Arc::clone(&store), RecordingNotifier::new());
        let (s, h) = Scheduler::new(Arc::clone(&engine), checks, settings()).unwrap();
        let task = tokio::spawn(s.run());
        tokio::time::sleep(Duration::from_secs(25)).await;
        let kept_runs = kept.runs();
        let changed_before = changed.runs().len();

        // the same "kept", "changed" with another table, no "removed"
        let mut new_changed = probed("changed", Arc::clone(&changed), 1);
        new_changed.source = 42;
        let reloaded_at = Instant::now();
        h.reload(
            vec![probed("kept", Arc::clone(&kept), 1), new_changed],
            engine,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(25)).await;
        h.stop().await;
        task.await.unwrap();

        // "changed" ran at once, with its state kept
        let after: Vec<_> = changed.runs().into_iter().skip(changed_before).collect();
        assert!(
            after
                .first()
                .is_some_and(|t| *t - reloaded_at < Duration::from_millis(20)),
            "{after:?}"
        );
        // "kept" kept its rhythm: every run 10 s after the one before
        let runs = kept.runs();
        assert!(runs.len() > kept_runs.len());
        assert!(
            runs.windows(2)
                .all(|w| w[1] - w[0] == Duration::from_secs(10)),
            "{runs:?}"
        );
        // "removed" is gone from the store
        let names: Vec<String> = store
            .sources(SOURCE_KIND)
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["changed", "kept"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_neither_realerts_nor_forgets_a_failure() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let rec = RecordingNotifier::new();
        let down = Scripted::new([Outcome::critical("down")]);
        let (s, h) = Scheduler::new(
            engine(Arc::clone(&store), Arc::clone(&rec)),
            vec![probed("web", Arc::clone(&down), 1)],
            settings(),
        )
        .unwrap();
        // one run (the first is due within 10 s), then stop
        let task = tokio::spawn(s.run());
        while down.runs().is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.stop().await;
        task.await.unwrap();
        assert_eq!(rec.events(), [EventKind::Failure]);

        // a new daemon on the same store: still down, then up
        let again = Scripted::new([Outcome::critical("still down"), Outcome::ok("up")]);
        let (s, h) = Scheduler::new(
            engine(Arc::clone(&store), Arc::clone(&rec)),
            vec![probed("web", Arc::clone(&again), 1)],
            settings(),
        )
        .unwrap();
        run_for(s, &h, Duration::from_secs(30)).await;
        assert!(again.runs().len() >= 2);
        // no second failure alert; the recovery went to the one alerted
        assert_eq!(rec.events(), [EventKind::Failure, EventKind::Recovery]);
    }
}
