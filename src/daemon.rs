//! `alertctl run`: the long-running daemon. It runs the polling checks, judges the
//! heartbeats at their deadlines and sends what falls due in the outbox (the flush
//! timer's job), over one engine, and talks to
//! systemd: READY once the config is loaded and the store is open, WATCHDOG pings
//! from the scheduler's own loop, STATUS with a one-line summary.
//!
//! Signals: SIGHUP reloads the config (a bad one is refused, logged with its
//! `file:line:col`, and the old one kept); SIGUSR1 prints every check, failing ones
//! first, and runs them all now; SIGTERM and SIGINT stop it, letting runs and
//! deliveries in progress finish within `[daemon] stop_timeout`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alertcore::{Config, Engine, Registry, chain};
use alertcore_checks::heartbeat::{self, Heartbeat, Monitor};
use alertcore_checks::scheduler::Snapshot;
use alertcore_checks::{Check, Handle, Scheduler, Settings, Stats, Status};
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::Cli;
use crate::{Fail, build_engine_on, load_config, open_store};

/// Runs the daemon until SIGTERM or SIGINT.
/// How often the daemon asks the store whether a `[report]` is due: so a report is late
/// by at most this (or by its `every`, when shorter).
const REPORT_CHECK: Duration = Duration::from_secs(10);

pub(crate) async fn run(cli: &Cli, registry: &Registry) -> Result<u8, Fail> {
    init_logging();
    let (config, path) = load_config(cli)?;
    let Prepared {
        engine,
        checks,
        heartbeats,
        http,
        report,
        watch,
        journal,
    } = prepare(cli, &config, registry)?;
    let watching = spawn_watch(watch, &engine);
    let journal = journal.map(|j| alertcore_journal::spawn(j, Arc::clone(&engine)));
    let settings = Settings::from_config(&config.daemon);
    let daemon_settings = config.daemon.clone();
    // what was built from it is all the daemon keeps: a config of 10,000 checks is
    // megabytes of text and tables
    drop(config);
    let (scheduler, handle) =
        Scheduler::new(Arc::clone(&engine), checks, settings).map_err(|e| Fail::other(&e))?;
    let (monitor, heartbeats) =
        Monitor::new(Arc::clone(&engine), heartbeats).map_err(|e| Fail::other(&e))?;
    let listener = match &http {
        Some(config) => Some(Listener::start(config, &engine, &handle, &heartbeats).await?),
        None => None,
    };
    let scheduler = match watchdog_interval() {
        Some(every) => scheduler.with_hook(every, move || {
            let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
            stall_for_tests();
        }),
        None => scheduler,
    };
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Fail::other(&e))?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(|e| Fail::other(&e))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| Fail::other(&e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Fail::other(&e))?;
    let task = tokio::spawn(scheduler.run());
    let monitor = tokio::spawn(monitor.run());
    let mut daemon = Daemon {
        cli,
        registry,
        path,
        engine,
        flush_every: daemon_settings.flush_every,
        stop_timeout: daemon_settings.stop_timeout,
        handle,
        heartbeats,
        listener,
        report,
        watching,
        journal,
    };
    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
    tracing::info!("started: {}", daemon.summary().await);
    let mut flush = tokio::time::interval(daemon.flush_every);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // one flush at a time, beside the loop: a notifier that hangs until its delivery
    // timeout must not hold up the signals
    let mut flushing: Option<tokio::task::JoinHandle<()>> = None;
    // whether a `[report]` is due: a read of the store, every REPORT_CHECK at most
    let check_every = |r: &Option<(Duration, Vec<String>)>| {
        r.as_ref()
            .map_or(REPORT_CHECK, |(every, _)| (*every).min(REPORT_CHECK))
    };
    let mut reporting = tokio::time::interval(check_every(&daemon.report));
    reporting.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // (without [report], no wake-ups for it)
            _ = reporting.tick(), if daemon.report.is_some() => {
                if let Some((every, to)) = &daemon.report {
                    crate::report::periodic(&daemon.engine, *every, to).await;
                }
            }
            _ = flush.tick() => {
                if flushing.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
                    flushing = Some(tokio::spawn(flush_outbox(Arc::clone(&daemon.engine))));
                }
                let status = daemon.summary().await;
                let _ = sd_notify::notify(false, &[NotifyState::Status(&status)]);
            }
            _ = hup.recv() => {
                if let Some(every) = daemon.reload().await {
                    flush = tokio::time::interval(every);
                    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                }
                reporting = tokio::time::interval(check_every(&daemon.report));
                reporting.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            }
            _ = usr1.recv() => {
                let (list, stats) = daemon.handle.snapshot().await;
                eprint!("{}", print_checks(&list, &stats));
                eprint!("{}", print_heartbeats(&daemon.heartbeats.snapshot()));
                daemon.handle.run_now();
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    tracing::info!("stopping");
    // no new pings first, then the sources, then the last deliveries
    if let Some(listener) = daemon.listener.take() {
        listener.stop(daemon.stop_timeout).await;
    }
    if let Some(w) = daemon.watching.take() {
        w.abort();
    }
    // the journal saves its cursor with what the entries read so far did
    if let Some(j) = daemon.journal.take() {
        j.stop().await;
    }
    daemon.handle.stop().await;
    daemon.heartbeats.stop(daemon.stop_timeout).await;
    let _ = task.await;
    let _ = monitor.await;
    // deliveries the checks started are done or in the outbox; send what is due once
    // more, within the bound (what does not finish stays in the outbox)
    let last = async {
        if let Some(flushing) = flushing {
            let _ = flushing.await;
        }
        flush_outbox(Arc::clone(&daemon.engine)).await;
    };
    let _ = tokio::time::timeout(daemon.stop_timeout, last).await;
    Ok(0)
}

struct Daemon<'a> {
    cli: &'a Cli,
    registry: &'a Registry,
    path: Option<PathBuf>,
    engine: Arc<Engine>,
    flush_every: Duration,
    stop_timeout: Duration,
    handle: Handle,
    heartbeats: heartbeat::Handle,
    listener: Option<Listener>,
    report: Option<(Duration, Vec<String>)>,
    watching: Option<tokio::task::JoinHandle<()>>,
    journal: Option<alertcore_journal::Handle>,
}

/// The `[http]` listener, serving until stopped.
struct Listener {
    app: Arc<crate::http::App>,
    listen: std::net::SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Listener {
    /// Binds `config.listen` and serves there.
    async fn start(
        config: &crate::http::HttpConfig,
        engine: &Arc<Engine>,
        checks: &Handle,
        heartbeats: &heartbeat::Handle,
    ) -> Result<Self, Fail> {
        let failed = |message: String| Fail { code: 1, message };
        let prom = crate::http::Prom::install().map_err(failed)?;
        let app = crate::http::App::new(
            config,
            Arc::clone(engine),
            checks.clone(),
            heartbeats.clone(),
            prom,
        )
        .map_err(failed)?;
        let socket = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| failed(format!("[http] cannot listen on {}: {e}", config.listen)))?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let serve = axum::serve(socket, crate::http::router(Arc::clone(&app)))
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            });
        let task = tokio::spawn(std::future::IntoFuture::into_future(serve));
        tracing::info!("listening on http://{}", config.listen);
        Ok(Self {
            app,
            listen: config.listen,
            shutdown,
            task,
        })
    }

    /// Stops accepting; waits up to `timeout` for requests in progress.
    async fn stop(self, timeout: Duration) {
        let _ = self.shutdown.send(());
        let _ = tokio::time::timeout(timeout, self.task).await;
    }
}

/// Sends what is due in the outbox: retries, reminders, first alerts whose
/// `min_duration` has now passed.
/// What `alertcore-flush.timer` does: reminders and alerts time made due, then every
/// due row of the outbox (retries, groups whose wait is over, rows a dead sender left).
async fn flush_outbox(engine: Arc<Engine>) {
    match engine.flush().await {
        Ok(deliveries) => {
            for d in deliveries.iter().filter(|d| !d.delivered()) {
                tracing::warn!(service = %d.service, "{d}");
            }
        }
        Err(e) => tracing::error!("flushing the outbox: {}", chain(&e)),
    }
}

impl Daemon<'_> {
    /// Reads the config again; on success swaps it in and returns the new flush
    /// interval, on error logs it and keeps the old config.
    async fn reload(&mut self) -> Option<Duration> {
        let _ = sd_notify::notify(false, &[NotifyState::Reloading]);
        let loaded = load_config(self.cli).and_then(|(config, path)| {
            let prepared = prepare(self.cli, &config, self.registry)?;
            Ok((config, path, prepared))
        });
        let result = match loaded {
            Ok((
                config,
                path,
                Prepared {
                    engine,
                    checks,
                    heartbeats,
                    http,
                    report,
                    watch,
                    journal,
                },
            )) => {
                if let Err(e) = self.reload_http(http.as_ref(), &heartbeats, &engine) {
                    tracing::error!("reload refused, keeping the running config: {e}");
                    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
                    return None;
                }
                if let Err(e) = self
                    .heartbeats
                    .reload(heartbeats, Arc::clone(&engine))
                    .await
                {
                    tracing::error!("reload refused, keeping the running config: {}", chain(&e));
                    let _ = sd_notify::notify(false, &[NotifyState::Ready]);
                    return None;
                }
                self.handle.reload(checks, Arc::clone(&engine)).await;
                self.engine = engine;
                self.path = path;
                self.stop_timeout = config.daemon.stop_timeout;
                self.report = report;
                if let Some(old) = self.watching.take() {
                    old.abort();
                }
                self.watching = spawn_watch(watch, &self.engine);
                // the old watch saves where it is; the new one reads on from there
                if let Some(old) = self.journal.take() {
                    old.stop().await;
                }
                self.journal =
                    journal.map(|j| alertcore_journal::spawn(j, Arc::clone(&self.engine)));
                let changed = self.flush_every != config.daemon.flush_every;
                self.flush_every = config.daemon.flush_every;
                tracing::info!("reloaded: {}", self.summary().await);
                changed.then_some(self.flush_every)
            }
            Err(f) => {
                tracing::error!("reload refused, keeping the running config: {}", f.message);
                None
            }
        };
        let _ = sd_notify::notify(false, &[NotifyState::Ready]);
        result
    }

    /// Hands a reloaded `[http]` to the listener: its secrets and settings; a new
    /// `listen`, or a listener started or stopped, takes a restart.
    fn reload_http(
        &self,
        http: Option<&crate::http::HttpConfig>,
        heartbeats: &[Heartbeat],
        engine: &Arc<Engine>,
    ) -> Result<(), String> {
        match (&self.listener, http) {
            (Some(listener), Some(config)) => {
                if config.listen != listener.listen {
                    tracing::warn!(
                        "[http] listen changed to {}: it takes effect at the next start; still listening on {}",
                        config.listen,
                        listener.listen
                    );
                }
                listener.app.reload(config, heartbeats, Arc::clone(engine))
            }
            (None, Some(_)) => {
                tracing::warn!("[http] was added: the listener starts at the next start");
                Ok(())
            }
            (Some(_), None) => {
                tracing::warn!("[http] was removed: the listener stops at the next start");
                Ok(())
            }
            (None, None) => Ok(()),
        }
    }

    /// `12 checks, 2 heartbeats: 1 failing (/etc/alertcore/alertcore.toml)` (no
    /// heartbeats: `12 checks: ...`): the STATUS= line.
    async fn summary(&self) -> String {
        let (checks, mut failing) = self.handle.counts().await;
        let heartbeats = self.heartbeats.snapshot();
        failing += heartbeats
            .iter()
            .filter(|h| {
                h.assessment
                    .as_ref()
                    .is_some_and(|a| matches!(a.standing, heartbeat::Standing::Down(_)))
            })
            .count();
        let origin = self.path.as_ref().map_or_else(
            || "built-in defaults".to_owned(),
            |p| p.display().to_string(),
        );
        let heartbeats = match heartbeats.len() {
            0 => String::new(),
            n => format!(", {}", alertcore::transport::plural(n, "heartbeat")),
        };
        format!(
            "{}{heartbeats}: {failing} failing ({origin})",
            alertcore::transport::plural(checks, "check"),
        )
    }
}

/// What the daemon runs, built from one config.
struct Prepared {
    engine: Arc<Engine>,
    checks: Vec<Check>,
    heartbeats: Vec<Heartbeat>,
    http: Option<crate::http::HttpConfig>,
    /// `[report]`: how often, to whom.
    report: Option<(Duration, Vec<String>)>,
    /// `[systemd] watch = true`.
    watch: Option<alertcore_systemd::WatchConfig>,
    /// `[journal]`.
    journal: Option<alertcore_journal::JournalConfig>,
}

/// The engine, the checks and the heartbeats of `config`, or the first config error.
fn prepare(cli: &Cli, config: &Config, registry: &Registry) -> Result<Prepared, Fail> {
    let checks = alertcore_checks::checks(config)?;
    let heartbeats = heartbeat::heartbeats(config)?;
    let http = crate::http::config(config)?;
    let engine = build_engine_on(cli, config, registry, open_store(cli, config)?, false)?;
    let names: Vec<&str> = engine.notifier_names().collect();
    let report = config.build_report(&names)?;
    let watch = alertcore_systemd::WatchConfig::from_config(config)?;
    let journal = alertcore_journal::JournalConfig::from_config(config)?;
    Ok(Prepared {
        engine: Arc::new(engine),
        checks,
        heartbeats,
        http,
        report,
        watch,
        journal,
    })
}

/// Watches systemd (`[systemd] watch = true`) with `engine` until aborted; when the bus
/// goes away, connects again after a pause.
fn spawn_watch(
    watch: Option<alertcore_systemd::WatchConfig>,
    engine: &Arc<Engine>,
) -> Option<tokio::task::JoinHandle<()>> {
    let config = watch?;
    let engine = Arc::clone(engine);
    Some(tokio::spawn(async move {
        loop {
            let result = match alertcore_systemd::Watcher::connect(
                config.clone(),
                Arc::clone(&engine),
            )
            .await
            {
                Ok(w) => w.run().await,
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::error!("systemd watch: {}; trying again in 5 s", chain(&e));
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }))
}

/// Half of `WatchdogSec=`, when systemd asks for pings.
fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
        Some(Duration::from_micros(usec / 2))
    } else {
        None
    }
}

/// Test builds only: `ALERTCORE_TEST_STALL_AFTER=N` makes the scheduler loop hang on its
/// Nth watchdog ping, so a test can see systemd's watchdog restart a stalled daemon.
#[cfg(debug_assertions)]
fn stall_for_tests() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PINGS: AtomicU64 = AtomicU64::new(0);
    let Some(after) = std::env::var("ALERTCORE_TEST_STALL_AFTER")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    if PINGS.fetch_add(1, Ordering::Relaxed) + 1 >= after {
        tracing::warn!("ALERTCORE_TEST_STALL_AFTER: the loop stalls now");
        loop {
            std::thread::park();
        }
    }
}

#[cfg(not(debug_assertions))]
fn stall_for_tests() {}

/// Logs to stderr (the journal's), one line per event; `ALERTCORE_LOG` sets the level
/// (`info` by default; `debug`, `warn`, ...). `config check` and `config dump` log
/// too, so what building the config warns about (a deprecated key) is seen.
pub(crate) fn init_logging() {
    let level = std::env::var("ALERTCORE_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    // under systemd the journal adds the time
    let under_systemd = std::env::var_os("INVOCATION_ID").is_some();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    let _ = if under_systemd {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}

/// Every check, failing ones first (by name), then the rest: picomon's SIGUSR1 dump and
/// `alertctl run --once`'s listing.
pub(crate) fn print_checks(list: &[Snapshot], stats: &Stats) -> String {
    use std::fmt::Write as _;
    let mut order: Vec<&Snapshot> = list.iter().collect();
    order.sort_by_key(|s| (!s.state.last_failed(), s.name.clone()));
    let mut out = String::new();
    for s in order {
        let (status, message) = s.state.last.as_ref().map_or(("pending", ""), |l| {
            (l.outcome.status.as_str(), l.outcome.message.as_str())
        });
        let note = if s.state.is_failing() {
            " [failing]"
        } else if s.state.below_threshold() {
            " [below threshold]"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<9} {}{note}: {message}",
            status.to_uppercase(),
            s.name
        );
    }
    if let (Some(p50), Some(p99)) = (stats.lag_quantile(0.5), stats.lag_quantile(0.99)) {
        let _ = writeln!(
            out,
            "{} runs, {} missed, start lag p50 {p50:?} p99 {p99:?}",
            stats.runs, stats.missed
        );
    }
    out
}

/// Every heartbeat, down ones first: its line in the SIGUSR1 dump.
fn print_heartbeats(list: &[heartbeat::monitor::Snapshot]) -> String {
    use std::fmt::Write as _;
    let mut order: Vec<&heartbeat::monitor::Snapshot> = list.iter().collect();
    let down = |s: &heartbeat::monitor::Snapshot| {
        s.assessment
            .as_ref()
            .is_some_and(|a| matches!(a.standing, heartbeat::Standing::Down(_)))
    };
    order.sort_by_key(|s| (!down(s), s.heartbeat.name.clone()));
    let mut out = String::new();
    for s in order {
        let line = match s.assessment.as_ref().map(|a| &a.standing) {
            None => "PENDING".to_owned(),
            Some(heartbeat::Standing::New) => "NEW       no run yet".to_owned(),
            Some(heartbeat::Standing::Up) => "UP".to_owned(),
            Some(heartbeat::Standing::Down(p)) => format!("DOWN      ({}) {}", p.result, p.message),
        };
        let _ = writeln!(out, "heartbeat {}: {line}", s.heartbeat.name);
    }
    out
}

/// `alertctl run --once`: every check once, now, results printed; 0 when all passed,
/// 1 otherwise. Sends nothing unless `notify`: then each result goes through the
/// engine and the saved state as a daemon's run would.
pub(crate) async fn once(
    cli: &Cli,
    registry: &Registry,
    config: &Config,
    notify: bool,
) -> Result<u8, Fail> {
    let list = if notify {
        init_logging();
        let Prepared { engine, checks, .. } = prepare(cli, config, registry)?;
        let settings = Settings::from_config(&config.daemon);
        let (scheduler, _handle) =
            Scheduler::new(engine, checks, settings).map_err(|e| Fail::other(&e))?;
        scheduler.run_once().await
    } else {
        let checks = alertcore_checks::checks(config)?;
        alertcore_checks::run_all(checks, config.daemon.concurrency).await
    };
    print!("{}", print_checks(&list, &Stats::default()));
    let failed = list.iter().any(|s| s.state.status() != Some(Status::Ok));
    Ok(u8::from(failed))
}
