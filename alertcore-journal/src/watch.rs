//! The daemon's journal loop: journalctl's entries through the chains, their effects
//! and the cursor saved together, alerts through the engine, programs run after.
//!
//! # Nothing lost, nothing done twice
//!
//! Every effect of an entry is a row in the state database: counter hits, report
//! lines, bans, queued programs, and (through the engine) the alert's outbox rows. They
//! are saved in one transaction with the cursor of the last entry whose effects they
//! are ([`State::checkpoint`]): with the last alert of an entry, inside the engine's
//! own transaction ([`Engine::failure_saving`]); else after `checkpoint_every` entries,
//! after `checkpoint_after`, or at once when an entry queued a program. After a crash
//! the daemon reads on after the saved cursor with the saved state, so an entry is
//! either wholly done or done again from the state before it. An entry with two alerts
//! that crashed between them is done again; its first alert carries the entry's cursor
//! as its invocation id, which the engine has in the streak: it is not sent twice.
//!
//! Programs (`exec`, `ban`) run after the transaction that queued them and are deleted
//! when they end: a crash while one runs runs it again at the next start (at least
//! once). Bans are kept with their end: at start every running ban is added again
//! (after a reboot the nftables set is empty), expired ones are forgotten.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use alertcore::store::blocking;
use alertcore::{
    Digest, Engine, EventKind, FailureReport, Notification, Store, StoreError, Timestamp, chain,
};
use tokio::sync::oneshot;

use crate::chain::{Actions, Outcome, Runner};
use crate::entry::Entry;
use crate::follow::{Follow, Reader};
use crate::spec::JournalConfig;
use crate::state::State;
use crate::{act, report};

/// The wait before journalctl is started again after it exited, doubling up to
/// [`RESTART_MAX`].
const RESTART_FIRST: Duration = Duration::from_millis(500);
const RESTART_MAX: Duration = Duration::from_secs(30);
/// How often the loop asks whether the daily report is due: it is late by at most this.
const REPORT_CHECK: Duration = Duration::from_secs(20);
/// The wait before a report no notifier took is sent again.
const REPORT_RETRY: Duration = Duration::from_secs(600);

/// A running journal watch; [`Handle::stop`] saves and ends it.
#[derive(Debug)]
pub struct Handle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Handle {
    /// Saves what was read and stops.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

/// Starts watching the journal as `config` says, alerting through `engine`.
pub fn spawn(config: JournalConfig, engine: Arc<Engine>) -> Handle {
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        Watch::new(config, engine).run(rx).await;
    });
    Handle {
        stop: Some(tx),
        task,
    }
}

/// Why the reading stopped.
enum Ended {
    /// Asked to stop.
    Stop,
    /// journalctl exited (how), or its output could not be read.
    Exited(String),
    /// The store failed: the state in memory may be ahead of it.
    Store(StoreError),
}

struct Watch {
    config: JournalConfig,
    actions: Actions,
    follow: Follow,
    engine: Arc<Engine>,
}

impl Watch {
    fn new(config: JournalConfig, engine: Arc<Engine>) -> Self {
        Self {
            actions: Actions::of(&config),
            follow: Follow::of(&config),
            config,
            engine,
        }
    }

    fn store(&self) -> Arc<dyn Store> {
        Arc::clone(self.engine.store())
    }

    async fn run(self, mut stop: oneshot::Receiver<()>) {
        if let Some(m) = self.follow.matches() {
            tracing::info!("journal: matches handed to journalctl: {}", m.join(" "));
        }
        let mut wait = RESTART_FIRST;
        let mut restored = false;
        loop {
            let ended = match self.load().await {
                Ok(mut state) => {
                    // once per start: a journalctl that exited changes no firewall
                    if !std::mem::replace(&mut restored, true) {
                        self.restore(&mut state).await;
                    }
                    self.read(&mut state, &mut stop, &mut wait).await
                }
                Err(e) => Ended::Store(e),
            };
            match ended {
                Ended::Stop => return,
                Ended::Exited(how) => tracing::warn!("journalctl ended ({how}); starting it again"),
                Ended::Store(e) => tracing::error!(
                    "journal: the state database failed ({}); reading again from the last saved cursor",
                    chain(&e)
                ),
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut stop => return,
            }
            wait = (wait * 2).min(RESTART_MAX);
        }
    }

    /// The saved state; on a first start, with the start position saved.
    async fn load(&self) -> Result<State, StoreError> {
        let store = self.store();
        let first = self.follow.first_position(SystemTime::now());
        let now = self.engine.now();
        blocking(move || {
            let mut state = State::load(store.as_ref())?;
            if state.cursor().is_none() {
                state.advance(&first);
            }
            if state.report_sent().is_none() {
                // the first report covers what comes from now on
                state.set_report_sent(now.as_millis());
            }
            if state.dirty() {
                store.save_sources(&state.checkpoint(now))?;
            }
            Ok(state)
        })
        .await
    }

    /// Bans still running added again; programs a crash left queued run.
    async fn restore(&self, state: &mut State) {
        let now = self.engine.now().as_millis();
        for (address, until) in state.bans(now) {
            let Ok(ip) = address.parse() else { continue };
            let secs = u64::try_from((until - now) / 1000).unwrap_or(0).max(1);
            let p = self
                .actions
                .ban(ip, secs, format!("ban {address} again ({secs}s left)"));
            if let Err(e) = act::run(&p).await {
                tracing::warn!("journal: {}: {e}", p.what);
            }
        }
        self.run_pending(state).await;
        if state.dirty() {
            let rows = state.checkpoint(self.engine.now());
            if let Err(e) = blocking({
                let store = self.store();
                move || store.save_sources(&rows)
            })
            .await
            {
                tracing::warn!("journal: cannot save: {}", chain(&e));
            }
        }
    }

    /// Runs every queued program, marking each as run.
    async fn run_pending(&self, state: &mut State) {
        for (id, p) in state.pending() {
            match act::run(&p).await {
                Ok(()) => tracing::info!("journal: {}", p.what),
                Err(e) => tracing::warn!("journal: {} failed: {e}", p.what),
            }
            state.ran(&id);
        }
    }

    async fn read(
        &self,
        state: &mut State,
        stop: &mut oneshot::Receiver<()>,
        wait: &mut Duration,
    ) -> Ended {
        let position = state.cursor().unwrap_or_default().to_owned();
        let mut reader = match self.follow.spawn(&position, true) {
            Ok(r) => r,
            Err(e) => {
                return Ended::Exited(format!(
                    "cannot start {}: {e}",
                    self.config.journalctl.display()
                ));
            }
        };
        // journalctl starts at the saved cursor's own entry, if it is still there
        let mut handled = Follow::resumes_at(&position).map(str::to_owned);
        let mut runner = Runner::new(&self.config.chains, &self.actions);
        let mut entry = Entry::default();
        let mut since_checkpoint = 0usize;
        let mut tick = tokio::time::interval(self.config.checkpoint_after);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report_tick = tokio::time::interval(REPORT_CHECK);
        report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report_retry: Option<Timestamp> = None;
        loop {
            let line = tokio::select! {
                line = reader.next() => line,
                _ = report_tick.tick(), if self.config.report.is_some() => {
                    if let Err(e) = self.report_if_due(state, &mut report_retry).await {
                        let _ = reader.stop().await;
                        return Ended::Store(e);
                    }
                    continue;
                }
                _ = tick.tick() => {
                    if state.dirty()
                        && let Err(e) = self.checkpoint(state).await
                    {
                        let _ = reader.stop().await;
                        return Ended::Store(e);
                    }
                    since_checkpoint = 0;
                    continue;
                }
                _ = &mut *stop => {
                    let _ = reader.stop().await;
                    if state.dirty()
                        && let Err(e) = self.checkpoint(state).await
                    {
                        tracing::error!("journal: cannot save at stop: {}", chain(&e));
                    }
                    return Ended::Stop;
                }
            };
            match line {
                Ok(true) => {}
                Ok(false) => {
                    let how = reader.exit().await;
                    // what was read is saved before journalctl starts again from it
                    if state.dirty()
                        && let Err(e) = self.checkpoint(state).await
                    {
                        return Ended::Store(e);
                    }
                    return Ended::Exited(how);
                }
                Err(e) => {
                    let _ = reader.stop().await;
                    return Ended::Exited(format!("cannot read its output: {e}"));
                }
            }
            // entries flow: the next exit is a new trouble, retried soon
            *wait = RESTART_FIRST;
            if let Err(e) = entry.read(reader.line()) {
                tracing::warn!(
                    "journal: a line that is no entry ({e}): {:.200}",
                    String::from_utf8_lossy(reader.line()).trim_end()
                );
                continue;
            }
            if let Some(c) = handled.take()
                && entry.cursor() == Some(c.as_str())
            {
                continue;
            }
            let at = entry
                .time()
                .unwrap_or_else(|| self.engine.now())
                .as_millis();
            let outcome = runner.run(&mut entry, state, at, self.engine.now().as_millis());
            if let Some(c) = entry.cursor() {
                state.advance(c);
            }
            since_checkpoint += 1;
            let saved = if !outcome.alerts.is_empty() {
                self.alert(state, &outcome).await
            } else if outcome.queued > 0 || since_checkpoint >= self.config.checkpoint_every {
                self.checkpoint(state).await
            } else {
                continue;
            };
            if let Err(e) = saved {
                let _ = reader.stop().await;
                return Ended::Store(e);
            }
            since_checkpoint = 0;
            if outcome.queued > 0 {
                self.run_pending(state).await;
            }
        }
    }

    /// Sends the daily report when it is due; forgets its lines once a notifier took
    /// it. When none did, tries again after [`REPORT_RETRY`].
    async fn report_if_due(
        &self,
        state: &mut State,
        retry: &mut Option<Timestamp>,
    ) -> Result<(), StoreError> {
        let Some(config) = &self.config.report else {
            return Ok(());
        };
        let now = self.engine.now();
        let last = Timestamp::from_millis(state.report_sent().unwrap_or(now.as_millis()));
        let due = retry
            .unwrap_or_else(|| report::next_due(config, last, self.engine.router().timezone()));
        if now < due {
            return Ok(());
        }
        let digest = report::digest(state, last, now, config.max_lines);
        let sent = send_digest(&self.engine, &config.notifiers, digest).await;
        if sent == 0 {
            *retry = Some(now.saturating_add(REPORT_RETRY));
            tracing::warn!("journal: no notifier took the daily report; trying again later");
            return Ok(());
        }
        *retry = None;
        state.clear_report();
        state.set_report_sent(now.as_millis());
        self.checkpoint(state).await
    }

    /// Saves the changed rows and the cursor.
    async fn checkpoint(&self, state: &mut State) -> Result<(), StoreError> {
        let rows = state.checkpoint(self.engine.now());
        if rows.is_empty() {
            return Ok(());
        }
        let store = self.store();
        blocking(move || store.save_sources(&rows)).await
    }

    /// Sends the entry's alerts through the engine, the last one carrying the
    /// checkpoint.
    async fn alert(&self, state: &mut State, outcome: &Outcome) -> Result<(), StoreError> {
        let last = outcome.alerts.len() - 1;
        for (i, a) in outcome.alerts.iter().enumerate() {
            let rows = if i == last {
                state.checkpoint(self.engine.now())
            } else {
                Vec::new()
            };
            let result = if a.recovery {
                self.engine.success_saving(&a.service, rows).await
            } else {
                let mut report = FailureReport::new("journal")
                    .severity(a.severity)
                    .message(a.message.clone())
                    .kind("journal");
                if let Some(id) = &a.id {
                    report = report.invocation_id(id.clone());
                }
                self.engine.failure_saving(&a.service, report, rows).await
            };
            match result {
                Ok(_) => {}
                Err(alertcore::EngineError::Store(e)) => return Err(e),
                Err(e) => return Err(StoreError::Task(e.to_string())),
            }
        }
        Ok(())
    }
}

/// Sends `digest` to `to` (every notifier when empty); returns how many took it.
pub async fn send_digest(engine: &Engine, to: &[String], digest: Digest) -> usize {
    let n = Notification::new("journal", EventKind::Digest, engine.host())
        .time(engine.now())
        .digest(digest);
    let names: Vec<String> = if to.is_empty() {
        engine.notifier_names().map(str::to_owned).collect()
    } else {
        to.to_vec()
    };
    let mut sent = 0;
    for name in &names {
        match engine.send_report(name, std::slice::from_ref(&n)).await {
            Ok(()) => sent += 1,
            Err(e) => tracing::warn!("journal: the daily report to {name} failed: {e}"),
        }
    }
    sent
}

/// Reads `entries` through the chains without acting: what `alertctl journal test`
/// shows. Counters start empty and count within these entries.
pub fn dry_run(
    config: &JournalConfig,
    entries: Vec<Entry>,
    now: Timestamp,
) -> Vec<(Entry, Outcome)> {
    let actions = Actions::of(config);
    let mut runner = Runner::new(&config.chains, &actions).traced();
    let mut state = State::default();
    entries
        .into_iter()
        .map(|mut e| {
            let at = e.time().unwrap_or(now).as_millis();
            let out = runner.run(&mut e, &mut state, at, now.as_millis());
            (e, out)
        })
        .collect()
}

/// Reads the entries since `position` (a cursor or `since=@SECS`) without following,
/// handing each (one entry, read into again for the next line) to `each` as it comes:
/// for `alertctl report journal --since`, which must not hold a day of entries at once,
/// and `alertctl journal test --since`, which keeps the ones it shows.
///
/// # Errors
/// journalctl cannot be started, or its output read.
pub async fn read_each(
    follow: &Follow,
    position: &str,
    mut each: impl FnMut(&mut Entry),
) -> Result<(), String> {
    let mut reader: Reader = follow.spawn(position, false).map_err(|e| e.to_string())?;
    let mut entry = Entry::default();
    while reader.next().await.map_err(|e| e.to_string())? {
        if entry.read(reader.line()).is_ok() {
            each(&mut entry);
        }
    }
    let _ = reader.exit().await;
    Ok(())
}
