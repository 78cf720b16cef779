//! The daemon's side of heartbeats: evaluates each at its deadlines and whenever a
//! signal of it is recorded (by the daemon's own listener, or by `alertctl ping` in
//! another process: the store is asked for new signals every second), keeps the
//! latest assessments for the status page, and records signals for the listener.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use alertcore::{Engine, Signal, StoreError, Timestamp, chain};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use super::assess::Assessment;
use super::evaluate::{BODY_CAP, KEEP, cap, evaluate, first_seen, save_created};
use super::spec::{DEFAULT_GRACE, Heartbeat};

/// The period of a heartbeat a ping created.
const CREATED_PERIOD: Duration = Duration::from_secs(86_400);

/// A heartbeat a ping of an unknown name created: daily, an hour's grace.
fn created(name: &str) -> Heartbeat {
    Heartbeat::every(name, CREATED_PERIOD, DEFAULT_GRACE)
}

/// How often the store is asked for signals other processes recorded, at most.
const POLL: Duration = Duration::from_secs(1);

/// One heartbeat as [`Handle::snapshot`] shows it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Snapshot {
    /// The heartbeat.
    pub heartbeat: Arc<Heartbeat>,
    /// Its latest assessment (`None` before its first evaluation).
    pub assessment: Option<Assessment>,
}

/// Why a signal was not recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    /// No heartbeat of that name is configured.
    #[error("no heartbeat named {0:?}")]
    Unknown(String),
    /// The store could not record it.
    #[error("cannot record the signal")]
    Store(#[from] StoreError),
}

enum Control {
    Created(Arc<Heartbeat>, Timestamp),
    Reload(
        Vec<Heartbeat>,
        Arc<Engine>,
        oneshot::Sender<Result<(), StoreError>>,
    ),
    Stop(Duration, oneshot::Sender<()>),
}

/// What the monitor and its handles share.
struct Shared {
    engine: RwLock<Arc<Engine>>,
    heartbeats: RwLock<HashMap<String, Arc<Heartbeat>>>,
    assessments: Mutex<HashMap<String, Assessment>>,
    /// Names signalled through a handle since the monitor last looked.
    signalled: Mutex<HashSet<String>>,
    wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Talks to a running [`Monitor`]; cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// The heartbeat named `name`, if one is configured.
    pub fn heartbeat(&self, name: &str) -> Option<Arc<Heartbeat>> {
        self.shared
            .heartbeats
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Records `signal` of a configured heartbeat durably (its body capped) and has the
    /// monitor evaluate it right away. Returns the signal's id once it is committed.
    /// With `create`, a signal of an unknown (valid) name first creates a heartbeat of
    /// that name, expected daily with an hour's grace (healthchecks.io's defaults),
    /// kept in the store until a config names it.
    ///
    /// # Errors
    /// [`PingError::Unknown`] for a name no heartbeat has (or, with `create`, one no
    /// heartbeat may have); [`PingError::Store`].
    pub async fn ping(&self, mut signal: Signal, create: bool) -> Result<i64, PingError> {
        let engine = Arc::clone(
            &self
                .shared
                .engine
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if self.heartbeat(&signal.source).is_none() {
            if !create || super::spec::check_name(&signal.source).is_err() {
                return Err(PingError::Unknown(signal.source));
            }
            let (store, name, now) = (
                Arc::clone(engine.store()),
                signal.source.clone(),
                engine.now(),
            );
            tokio::task::spawn_blocking(move || save_created(store.as_ref(), &name, now))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
            let hb = Arc::new(created(&signal.source));
            tracing::info!(heartbeat = %hb.name, "created by a ping");
            self.shared
                .heartbeats
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(hb.name.clone(), Arc::clone(&hb));
            let _ = self.tx.send(Control::Created(hb, now));
        }
        if let Some(body) = &mut signal.body {
            cap(body, BODY_CAP);
        }
        let store = Arc::clone(engine.store());
        let name = signal.source.clone();
        let kind = signal.kind.clone();
        let id = tokio::task::spawn_blocking(move || store.record_signal(&signal, KEEP))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
        metrics::counter!(alertcore::telemetry::PINGS, "kind" => kind).increment(1);
        lock(&self.shared.signalled).insert(name);
        self.shared.wake.notify_one();
        Ok(id)
    }

    /// Every heartbeat, by name, with its latest assessment.
    pub fn snapshot(&self) -> Vec<Snapshot> {
        let heartbeats = self
            .shared
            .heartbeats
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let assessments = lock(&self.shared.assessments);
        let mut list: Vec<Snapshot> = heartbeats
            .into_values()
            .map(|heartbeat| Snapshot {
                assessment: assessments.get(&heartbeat.name).cloned(),
                heartbeat,
            })
            .collect();
        list.sort_by(|a, b| a.heartbeat.name.cmp(&b.heartbeat.name));
        list
    }

    /// Replaces the heartbeats and the engine (a reloaded config); every heartbeat is
    /// evaluated again.
    ///
    /// # Errors
    /// A [`StoreError`] reading or writing their rows; then the old ones are kept.
    pub async fn reload(
        &self,
        heartbeats: Vec<Heartbeat>,
        engine: Arc<Engine>,
    ) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Control::Reload(heartbeats, engine, tx))
            .is_err()
        {
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }

    /// Stops evaluating; waits up to `timeout` for evaluations in progress.
    pub async fn stop(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Control::Stop(timeout, tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Tracked {
    heartbeat: Arc<Heartbeat>,
    since: Timestamp,
    /// When to evaluate it next with no new signal.
    wake: Option<Timestamp>,
    running: bool,
    /// Evaluate again when the running evaluation ends.
    again: bool,
}

/// Evaluates heartbeats; see the module documentation.
pub struct Monitor {
    shared: Arc<Shared>,
    tracked: HashMap<String, Tracked>,
    /// The newest signal id seen.
    last_id: i64,
    control: mpsc::UnboundedReceiver<Control>,
    running: JoinSet<(String, Option<Assessment>)>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("heartbeats", &self.tracked.len())
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// A monitor of `heartbeats` over `engine`: when each was first seen is read from
    /// the store (the rows of heartbeats no longer configured are deleted).
    ///
    /// # Errors
    /// A [`StoreError`] reading or writing the store.
    pub fn new(
        engine: Arc<Engine>,
        heartbeats: Vec<Heartbeat>,
    ) -> Result<(Self, Handle), StoreError> {
        let (tx, control) = mpsc::unbounded_channel();
        let last_id = engine.store().last_signal_id()?;
        let shared = Arc::new(Shared {
            engine: RwLock::new(Arc::clone(&engine)),
            heartbeats: RwLock::new(HashMap::new()),
            assessments: Mutex::new(HashMap::new()),
            signalled: Mutex::new(HashSet::new()),
            wake: Notify::new(),
        });
        let mut monitor = Self {
            shared: Arc::clone(&shared),
            tracked: HashMap::new(),
            last_id,
            control,
            running: JoinSet::new(),
        };
        monitor.install(heartbeats, engine)?;
        Ok((monitor, Handle { tx, shared }))
    }

    fn engine(&self) -> Arc<Engine> {
        Arc::clone(
            &self
                .shared
                .engine
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn install(
        &mut self,
        heartbeats: Vec<Heartbeat>,
        engine: Arc<Engine>,
    ) -> Result<(), StoreError> {
        let now = engine.now();
        let seen = first_seen(engine.store().as_ref(), &heartbeats, now, true)?;
        let mut heartbeats = heartbeats;
        // the ones pings created, with the defaults
        for (name, state) in &seen {
            if state.created_on_ping && !heartbeats.iter().any(|h| &h.name == name) {
                heartbeats.push(created(name));
            }
        }
        let mut old = std::mem::take(&mut self.tracked);
        let mut by_name = HashMap::new();
        for hb in heartbeats {
            let hb = Arc::new(hb);
            let since = seen.get(&hb.name).map_or(now, |s| s.since);
            let (running, again) = old
                .remove(&hb.name)
                .map_or((false, false), |t| (t.running, t.running));
            by_name.insert(hb.name.clone(), Arc::clone(&hb));
            self.tracked.insert(
                hb.name.clone(),
                Tracked {
                    heartbeat: hb,
                    since,
                    // evaluated at once
                    wake: Some(Timestamp::from_millis(0)),
                    running,
                    again,
                },
            );
        }
        lock(&self.shared.assessments).retain(|name, _| by_name.contains_key(name));
        *self
            .shared
            .heartbeats
            .write()
            .unwrap_or_else(PoisonError::into_inner) = by_name;
        *self
            .shared
            .engine
            .write()
            .unwrap_or_else(PoisonError::into_inner) = engine;
        Ok(())
    }

    /// Runs until [`Handle::stop`] (or until every handle is dropped).
    pub async fn run(mut self) {
        let shared = Arc::clone(&self.shared);
        loop {
            self.launch_due();
            let now = self.engine().now();
            let sleep = self
                .tracked
                .values()
                .filter(|t| !t.running)
                .filter_map(|t| t.wake)
                .min()
                .map_or(POLL, |w| w.saturating_duration_since(now).min(POLL));
            tokio::select! {
                control = self.control.recv() => match control {
                    Some(Control::Created(heartbeat, since)) => {
                        self.tracked.entry(heartbeat.name.clone()).or_insert(Tracked {
                            heartbeat,
                            since,
                            wake: Some(Timestamp::from_millis(0)),
                            running: false,
                            again: false,
                        });
                    }
                    Some(Control::Reload(heartbeats, engine, reply)) => {
                        let _ = reply.send(self.install(heartbeats, engine));
                    }
                    Some(Control::Stop(timeout, reply)) => {
                        let _ = tokio::time::timeout(timeout, async {
                            while self.running.join_next().await.is_some() {}
                        })
                        .await;
                        let _ = reply.send(());
                        return;
                    }
                    None => return,
                },
                Some(done) = self.running.join_next() => {
                    if let Ok((name, assessment)) = done {
                        self.finished(&name, assessment);
                    }
                }
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(sleep) => self.poll().await,
            }
        }
    }

    /// Marks the heartbeats other processes signalled since the last look as due.
    async fn poll(&mut self) {
        let store = Arc::clone(self.engine().store());
        let after = self.last_id;
        let found = tokio::task::spawn_blocking(move || store.signals_after(after, 10_000))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))
            .and_then(|r| r);
        match found {
            Ok(list) => {
                for (id, name) in list {
                    self.last_id = self.last_id.max(id);
                    if let Some(t) = self.tracked.get_mut(&name) {
                        t.wake = Some(Timestamp::from_millis(0));
                    }
                }
            }
            Err(e) => tracing::error!("reading new heartbeat signals: {}", chain(&e)),
        }
    }

    /// Starts an evaluation of every heartbeat that is due and not being evaluated.
    fn launch_due(&mut self) {
        let signalled = std::mem::take(&mut *lock(&self.shared.signalled));
        let engine = self.engine();
        let now = engine.now();
        for t in self.tracked.values_mut() {
            let due = signalled.contains(&t.heartbeat.name) || t.wake.is_some_and(|w| w <= now);
            if !due {
                continue;
            }
            if t.running {
                t.again = true;
                continue;
            }
            t.running = true;
            t.wake = None;
            let (engine, hb, since) = (Arc::clone(&engine), Arc::clone(&t.heartbeat), t.since);
            self.running.spawn(async move {
                match evaluate(&engine, &hb, since).await {
                    Ok(e) => {
                        for d in e.recorded.iter().flat_map(|r| &r.report().deliveries) {
                            if !d.delivered() {
                                tracing::warn!(heartbeat = %hb.name, "{d}");
                            }
                        }
                        (hb.name.clone(), Some(e.assessment))
                    }
                    Err(e) => {
                        tracing::error!(heartbeat = %hb.name, "cannot evaluate: {}", chain(&e));
                        (hb.name.clone(), None)
                    }
                }
            });
        }
    }

    fn finished(&mut self, name: &str, assessment: Option<Assessment>) {
        let now = self.engine().now();
        let Some(t) = self.tracked.get_mut(name) else {
            return;
        };
        t.running = false;
        t.wake = match (&assessment, t.again) {
            (_, true) => Some(Timestamp::from_millis(0)),
            (Some(a), false) => a.wake,
            // an evaluation that failed is tried again at the next poll
            (None, false) => Some(now.saturating_add(POLL)),
        };
        t.again = false;
        if let Some(a) = assessment {
            lock(&self.shared.assessments).insert(name.to_owned(), a);
        }
    }
}
