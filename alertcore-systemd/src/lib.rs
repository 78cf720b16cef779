//! Watching systemd over D-Bus (`[systemd] watch = true` in `alertctl run`): every
//! unit's failures and recoveries become the same events the `OnFailure=` handler
//! records, with no per-unit wiring.
//!
//! The [`Watcher`] subscribes to the manager's signals and follows each unit's
//! `ActiveState` and `SubState` (`PropertiesChanged` on `org.freedesktop.systemd1.Unit`;
//! no polling):
//!
//! - a unit entering `failed`, or `auto-restart` (systemd restarts it, `Restart=`), is
//!   an [`Engine::failure`] with what systemd records of the run: `Result`,
//!   `ExecMainCode`/`ExecMainStatus` (as `exited`/`killed`/`dumped` and the status or
//!   signal name, as the handler's `MONITOR_*` variables say them), its `InvocationID`,
//!   whether it is being restarted ([`FailureReport::restarting`]: a restart loop is one
//!   streak whose alert says so) and what started it ([`trigger_of`]). The engine counts
//!   a run once by its invocation id, so a unit that also has the handler in
//!   `OnFailure=` is not counted twice, and a failure seen again (the boot sweep after a
//!   restart of the daemon) is not alerted again;
//! - a unit the engine has failing that becomes `active` and stays so for `stable_for`,
//!   or `inactive` after a new run whose `Result` is `success` (a oneshot that passed;
//!   not `reset-failed`, which starts no run), is an [`Engine::success`]; a run that
//!   passed is also an [`Engine::output`] where a rule asks for it. Other transitions
//!   cost one lookup of a name and, for units the engine does not have failing, nothing
//!   else;
//! - at start, the **boot sweep**: every unit already `failed` is reported as above;
//! - with `timers`, each watched timer's next elapse is followed from its own signals
//!   (`org.freedesktop.systemd1.Timer`), and one that does not fire by then plus its
//!   slack and `timer_grace` is a failure of the timer (the `timers` module).
//!
//! Which units: `units` (patterns as in `[[rules]]`, default `["*.service"]`), minus
//! `exclude` and, always, alertcore's own handler units (`alertcore-failure@*`,
//! `alertcore-success@*`: their failure is logged by systemd, and alerting about it
//! through them would loop). `bus = "user"` watches the calling user's manager instead
//! of the system's.

mod timers;
mod trigger;

use timers::{Timers, realtime_now};
pub use trigger::{TIMER_SLACK, find_trigger, trigger_of};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use alertcore::config::Config;
use alertcore::rules::Patterns;
use alertcore::{BuildError, ConfigError, Engine, FailureReport, chain};
use futures_util::StreamExt;
use serde::Deserialize;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::{Connection, MatchRule, MessageStream};

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";
const TIMER: &str = "org.freedesktop.systemd1.Timer";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// Which manager to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Bus {
    /// The system manager (PID 1).
    System,
    /// The calling user's manager.
    User,
}

/// The `[systemd]` settings of the watch.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WatchConfig {
    /// The manager.
    pub bus: Bus,
    /// The units watched.
    pub units: Patterns,
    /// The units not watched.
    pub exclude: Patterns,
    /// A failing unit that becomes `active` again has recovered once it stayed active
    /// this long: a restart loop of a service that crashes after starting is one
    /// incident, not an alert and a recovery per restart.
    pub stable_for: Duration,
    /// The timers whose missed elapses are alerted (`timers = true`: every timer).
    pub timers: Option<Patterns>,
    /// How long after its expected elapse (plus its `AccuracySec=` and
    /// `RandomizedDelaySec=`) a timer that did not fire is alerted.
    pub timer_grace: Duration,
}

/// `[systemd]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    watch: bool,
    #[serde(default)]
    bus: Option<Bus>,
    #[serde(default)]
    units: Option<Patterns>,
    #[serde(default)]
    exclude: Patterns,
    #[serde(default, with = "alertcore::duration::option")]
    stable_for: Option<Duration>,
    #[serde(default)]
    timers: Option<TimersSpec>,
    #[serde(default, with = "alertcore::duration::option")]
    timer_grace: Option<Duration>,
}

/// `timers = true` or `timers = ["backup.timer", ...]`.
#[derive(Debug)]
enum TimersSpec {
    All(bool),
    Some(Patterns),
}

impl<'de> Deserialize<'de> for TimersSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(b) => Ok(Self::All(b)),
            list @ toml::Value::Array(_) => Patterns::deserialize(list)
                .map(Self::Some)
                .map_err(serde::de::Error::custom),
            other => Err(serde::de::Error::custom(format!(
                "expected `true`, `false` or a list of timer patterns, not {}",
                other.type_str()
            ))),
        }
    }
}

impl WatchConfig {
    /// `stable_for` when not set.
    pub const DEFAULT_STABLE_FOR: Duration = Duration::from_secs(30);
    /// `timer_grace` when not set.
    pub const DEFAULT_TIMER_GRACE: Duration = Duration::from_secs(300);

    /// `[systemd]` of `config`: `None` without the table or with `watch = false`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] at the bad key.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        let Some(spanned) = &config.systemd else {
            return Ok(None);
        };
        let build = || -> Result<Option<Self>, BuildError> {
            let spec: Spec = alertcore::Table::from(spanned.get_ref().clone()).deserialize()?;
            if !spec.watch {
                return Ok(None);
            }
            let units = match spec.units {
                Some(u) if u.is_empty() => {
                    return Err(BuildError::key(
                        "units",
                        "`units` is empty: leave it out to watch every service",
                    ));
                }
                Some(u) => u,
                None => Patterns::parse(["*.service"]).map_err(BuildError::new)?,
            };
            let timers = match spec.timers {
                None | Some(TimersSpec::All(false)) => None,
                Some(TimersSpec::All(true)) => {
                    Some(Patterns::parse(["*.timer"]).map_err(BuildError::new)?)
                }
                Some(TimersSpec::Some(p)) if p.is_empty() => {
                    return Err(BuildError::key(
                        "timers",
                        "`timers` is empty: say `true` for every timer, or leave it out",
                    ));
                }
                Some(TimersSpec::Some(p)) => Some(p),
            };
            Ok(Some(Self {
                bus: spec.bus.unwrap_or(Bus::System),
                units,
                exclude: spec.exclude,
                stable_for: spec.stable_for.unwrap_or(Self::DEFAULT_STABLE_FOR),
                timers,
                timer_grace: spec.timer_grace.unwrap_or(Self::DEFAULT_TIMER_GRACE),
            }))
        };
        build().map_err(|e| config.error_in(spanned, "[systemd]", e))
    }

    /// Whether `unit` is watched.
    pub fn watches(&self, unit: &str) -> bool {
        !unit.starts_with("alertcore-failure@")
            && !unit.starts_with("alertcore-success@")
            && self.units.matches_any(unit)
            && !self.exclude.matches_any(unit)
    }

    /// Whether `timer`'s elapses are watched.
    pub fn watches_timer(&self, timer: &str) -> bool {
        self.timers.as_ref().is_some_and(|t| t.matches_any(timer))
            && !self.exclude.matches_any(timer)
    }
}

/// Follows one manager's units and tells the engine (see the crate documentation).
#[derive(Debug)]
pub struct Watcher {
    config: WatchConfig,
    engine: Arc<Engine>,
    conn: Connection,
    /// Object path → unit name, as learnt.
    names: HashMap<OwnedObjectPath, String>,
    /// Object path → the `ActiveState` and `SubState` last seen: systemd sends a
    /// unit's properties on any change (a start job queued on a failed unit repeats
    /// `failed`, with the new run's invocation id already set), so only a change of
    /// state is acted on.
    states: HashMap<OwnedObjectPath, (String, String)>,
    /// Object path → the invocation id of its latest run, from the same signals (a
    /// oneshot that passed may be unloaded before its properties can be asked for).
    invocations: HashMap<OwnedObjectPath, String>,
    /// Failing units that are `active` again, until they have stayed so for
    /// `stable_for`: the run's invocation id and when it counts as recovered.
    settling: HashMap<OwnedObjectPath, (Option<String>, Instant)>,
    /// The watched timers, by object path.
    timers: Timers,
    /// When the manager finished starting up (µs, monotonic), once it has.
    boot_finished: u64,
}

/// A D-Bus error, with what was being done.
#[derive(Debug)]
pub struct WatchError {
    what: String,
    source: Box<zbus::Error>,
}

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for WatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

fn ctx<T>(what: &str, r: zbus::Result<T>) -> Result<T, WatchError> {
    r.map_err(|source| WatchError {
        what: what.to_owned(),
        source: Box::new(source),
    })
}

impl Watcher {
    /// Connects to the manager's bus.
    ///
    /// # Errors
    /// When the bus cannot be reached.
    pub async fn connect(config: WatchConfig, engine: Arc<Engine>) -> Result<Self, WatchError> {
        let conn = connect(config.bus).await?;
        Ok(Self {
            config,
            engine,
            conn,
            names: HashMap::new(),
            states: HashMap::new(),
            invocations: HashMap::new(),
            settling: HashMap::new(),
            timers: Timers::default(),
            boot_finished: 0,
        })
    }

    /// Subscribes, sweeps the units already failed (and reads the watched timers), then
    /// follows every change until the connection ends (or the task is aborted).
    ///
    /// # Errors
    /// When subscribing or listing the units fails, or the stream ends.
    pub async fn run(mut self) -> Result<(), WatchError> {
        let mut stream = self.changes(UNIT).await?;
        let mut timer_stream = match self.config.timers {
            Some(_) => Some(self.changes(TIMER).await?),
            None => None,
        };
        ctx(
            "subscribing to the manager",
            self.conn
                .call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), "Subscribe", &())
                .await,
        )?;
        self.sweep().await?;
        if self.config.timers.is_some() {
            self.read_timers().await?;
        }
        tracing::info!("watching systemd's units");
        loop {
            let wake = self.next_wake();
            let timer_msg = async {
                match timer_stream.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(Ok(msg)) => self.unit_message(&msg).await,
                    Some(Err(e)) => tracing::warn!("systemd watch: a bad message: {e}"),
                    None => break,
                },
                msg = timer_msg => match msg {
                    Some(Ok(msg)) => self.timer_message(&msg).await,
                    Some(Err(e)) => tracing::warn!("systemd watch: a bad message: {e}"),
                    None => break,
                },
                () = tokio::time::sleep(wake) => self.deadlines().await,
            }
        }
        Err(WatchError {
            what: "the bus connection ended".to_owned(),
            source: Box::new(zbus::Error::Failure("end of stream".to_owned())),
        })
    }

    /// The `PropertiesChanged` signals of `iface` on every unit.
    async fn changes(&self, iface: &'static str) -> Result<MessageStream, WatchError> {
        let rule = ctx(
            "building the match rule",
            MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface(PROPERTIES)
                .and_then(|b| b.member("PropertiesChanged"))
                .and_then(|b| b.path_namespace("/org/freedesktop/systemd1/unit"))
                .and_then(|b| b.arg(0, iface))
                .map(zbus::match_rule::Builder::build),
        )?;
        ctx(
            "adding the match rule",
            MessageStream::for_match_rule(rule, &self.conn, Some(4096)).await,
        )
    }

    /// A unit's properties changed.
    async fn unit_message(&mut self, msg: &zbus::Message) {
        let Some((path, changed)) = changed(msg) else {
            return;
        };
        if let Some(id) = changed
            .get("InvocationID")
            .and_then(|v| Vec::<u8>::try_from(v.clone()).ok())
            .and_then(invocation_hex)
        {
            self.invocations.insert(path.clone(), id);
        }
        let text = |k: &str| {
            changed
                .get(k)
                .and_then(|v| String::try_from(v.clone()).ok())
        };
        let Some(active) = text("ActiveState") else {
            return;
        };
        let sub = text("SubState").unwrap_or_default();
        if let Err(e) = self.changed(&path, active.clone(), sub).await {
            tracing::warn!("systemd watch: {}", chain(&e));
        }
        // an inactive unit has nothing more to tell until it starts again: forget
        // it, so transient units (`systemd-run`, scopes) do not pile up here
        if active == "inactive" {
            self.names.remove(&path);
            self.states.remove(&path);
            self.invocations.remove(&path);
            self.settling.remove(&path);
        }
    }

    /// The boot sweep: every watched unit already failed, as if it failed now.
    async fn sweep(&mut self) -> Result<(), WatchError> {
        for (name, path) in self.list(&["failed"], &[]).await? {
            self.names.insert(path.clone(), name.clone());
            self.states
                .insert(path.clone(), ("failed".to_owned(), "failed".to_owned()));
            if self.config.watches(&name)
                && let Err(e) = self.failed(&path, &name).await
            {
                tracing::warn!("systemd watch: {}", chain(&e));
            }
        }
        Ok(())
    }

    /// The loaded units in one of `states` (any with none) whose names match one of
    /// `patterns` (any with none): name and object path.
    async fn list(
        &self,
        states: &[&str],
        patterns: &[&str],
    ) -> Result<Vec<(String, OwnedObjectPath)>, WatchError> {
        type Listed = Vec<(
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        )>;
        let reply = ctx(
            "listing the units",
            self.conn
                .call_method(
                    Some(DEST),
                    MANAGER_PATH,
                    Some(MANAGER),
                    "ListUnitsByPatterns",
                    &(states, patterns),
                )
                .await,
        )?;
        let units: Listed = ctx("reading the units", reply.body().deserialize())?;
        Ok(units
            .into_iter()
            .map(|(name, .., path, _, _, _)| (name, path))
            .collect())
    }

    /// `path`'s `ActiveState` and `SubState` became `active`, `sub`.
    async fn changed(
        &mut self,
        path: &OwnedObjectPath,
        active: String,
        sub: String,
    ) -> Result<(), WatchError> {
        let before = self
            .states
            .insert(path.clone(), (active.clone(), sub.clone()));
        // a unit forgotten when it became inactive (see `unit_message`) that sends more
        // of its properties while still inactive has not changed state
        if before.is_none() && active == "inactive" {
            return Ok(());
        }
        let (was_active, was_sub) = before.unwrap_or_default();
        let restarting = sub == "auto-restart" && was_sub != "auto-restart";
        if !restarting
            && (was_active == active
                || !matches!(active.as_str(), "failed" | "active" | "inactive"))
        {
            return Ok(());
        }
        let name = match self.names.get(path) {
            Some(n) => n.clone(),
            None => {
                let id: String = self.get(path, UNIT, "Id").await?;
                self.names.insert(path.clone(), id.clone());
                id
            }
        };
        if !self.config.watches(&name) {
            return Ok(());
        }
        // it did not stay up
        self.settling.remove(path);
        match active.as_str() {
            // systemd restarts the run that failed (`Restart=`): on 252 the unit enters
            // `failed`, then at once `auto-restart` (which the report of the `failed`
            // signal already saw); elsewhere it may go there directly
            _ if restarting && was_active == "failed" => Ok(()),
            _ if restarting => self.failed(path, &name).await,
            "failed" => self.failed(path, &name).await,
            "active" => {
                if self.failing(&name).is_some() {
                    let id = self.invocations.get(path).cloned();
                    let at = Instant::now() + self.config.stable_for;
                    self.settling.insert(path.clone(), (id, at));
                }
                Ok(())
            }
            _ => self.passed(path, &name).await,
        }
    }

    /// Reports the failed run of `name`.
    async fn failed(&mut self, path: &OwnedObjectPath, name: &str) -> Result<(), WatchError> {
        let (mut report, unit) = self.read_run(path).await;
        // (only a failure needs to know: it costs a few more calls)
        report.trigger = trigger::of_run(&self.conn, &unit, &mut self.boot_finished).await;
        let restarting = report.restarting;
        match self.engine.failure(name, report).await {
            Ok(r) if r.duplicate => {
                tracing::info!(
                    unit = name,
                    "failed: this run's failure was already recorded"
                );
            }
            Ok(r) => {
                tracing::info!(
                    unit = name,
                    "{} ({} in streak)",
                    if restarting {
                        "failed, restarting"
                    } else {
                        "failed"
                    },
                    r.failures
                );
                for d in r.deliveries.iter().filter(|d| !d.delivered()) {
                    tracing::warn!(unit = name, "{d}");
                }
            }
            Err(e) => tracing::error!(unit = name, "cannot record the failure: {}", chain(&e)),
        }
        Ok(())
    }

    /// The streak of `name` if the engine has it failing.
    fn failing(&self, name: &str) -> Option<alertcore::policy::Streak> {
        match self.engine.store().state(name) {
            Ok(s) => s.and_then(|s| s.streak),
            Err(e) => {
                tracing::error!(unit = name, "cannot read the state: {}", chain(&e));
                None
            }
        }
    }

    /// A unit finished a run with success (a oneshot that passed; not `reset-failed`,
    /// which starts no run): the recovery of a unit the engine has failing, and the
    /// run's output where a rule asks for it (`on_success = "output"`).
    async fn passed(&mut self, path: &OwnedObjectPath, name: &str) -> Result<(), WatchError> {
        let streak = self.failing(name);
        let output = !self
            .engine
            .router()
            .output_targets(name, self.engine.host(), self.engine.now())
            .is_empty();
        if streak.is_none() && !output {
            return Ok(());
        }
        // the run the signal was about; the properties read now may describe a newer
        // one (on 252 a restart under `Restart=` passes through `inactive`, and the next
        // run has started, with its result reset, by the time they are read)
        let seen = self.invocations.get(path).cloned();
        let (run, unit) = self.read_run(path).await;
        if text(&unit, "ActiveState") != "inactive"
            || seen.is_some() && run.invocation_id != seen
            || run.service_result != "success"
        {
            return Ok(());
        }
        if streak.is_some_and(|s| {
            run.invocation_id
                .as_ref()
                .is_some_and(|id| !s.invocations.contains(id))
        }) {
            self.recovered(name).await;
        }
        if output {
            match self.engine.output(name, run.invocation_id).await {
                Ok(sent) if sent.is_empty() => {
                    tracing::info!(unit = name, "succeeded: its output was already sent");
                }
                Ok(sent) => {
                    tracing::info!(unit = name, "succeeded: output sent");
                    for d in sent.iter().filter(|d| !d.delivered()) {
                        tracing::warn!(unit = name, "{d}");
                    }
                }
                Err(e) => tracing::error!(unit = name, "cannot send the output: {}", chain(&e)),
            }
        }
        Ok(())
    }

    async fn recovered(&self, name: &str) {
        match self.engine.success(name).await {
            Ok(_) => tracing::info!(unit = name, "recovered"),
            Err(e) => tracing::error!(unit = name, "cannot record the recovery: {}", chain(&e)),
        }
    }

    /// How long until the next unit settles or timer is due (a day when none is).
    fn next_wake(&self) -> Duration {
        let now = Instant::now();
        let settle = self
            .settling
            .values()
            .map(|(_, at)| at.saturating_duration_since(now))
            .min();
        let timer = self
            .timers
            .next_due(self.config.timer_grace, realtime_now());
        settle
            .into_iter()
            .chain(timer)
            .min()
            .unwrap_or(Duration::from_secs(86_400))
    }

    /// Units that stayed up have recovered; timers past their grace did not fire.
    async fn deadlines(&mut self) {
        let now = Instant::now();
        let due: Vec<(OwnedObjectPath, Option<String>)> = self
            .settling
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(p, (id, _))| (p.clone(), id.clone()))
            .collect();
        for (path, id) in due {
            self.settling.remove(&path);
            let up = self.states.get(&path).is_some_and(|(a, _)| a == "active");
            let same_run = self.invocations.get(&path) == id.as_ref();
            if let (true, true, Some(name)) = (up, same_run, self.names.get(&path).cloned()) {
                self.recovered(&name).await;
            }
        }
        self.missed_timers().await;
    }

    /// What systemd records of the unit's latest run (but what started it), and the
    /// unit's properties now; what cannot be read is left out (the result is then
    /// `failed`).
    async fn read_run(
        &self,
        path: &OwnedObjectPath,
    ) -> (FailureReport, HashMap<String, OwnedValue>) {
        let service = self.all(path, SERVICE).await.unwrap_or_default();
        let unit = self.all(path, UNIT).await.unwrap_or_default();
        let get = |k: &str| service.get(k).cloned();
        let result = get("Result")
            .and_then(|v| String::try_from(v).ok())
            .unwrap_or_else(|| "failed".to_owned());
        let code = get("ExecMainCode").and_then(|v| i32::try_from(v).ok());
        let status = get("ExecMainStatus").and_then(|v| i32::try_from(v).ok());
        let mut report = FailureReport::new(result);
        let (code, status) = describe_exit(code, status);
        report.exit_code = code;
        report.exit_status = status;
        report.invocation_id = unit
            .get("InvocationID")
            .and_then(|v| Vec::<u8>::try_from(v.clone()).ok())
            .and_then(invocation_hex)
            .or_else(|| self.invocations.get(path).cloned());
        // systemd will start it again (`Restart=`): one run of a restart loop
        report.restarting = text(&unit, "SubState") == "auto-restart";
        (report, unit)
    }

    async fn get<T>(&self, path: &OwnedObjectPath, iface: &str, prop: &str) -> Result<T, WatchError>
    where
        T: TryFrom<OwnedValue>,
    {
        get(&self.conn, path, iface, prop).await
    }

    async fn all(
        &self,
        path: &OwnedObjectPath,
        iface: &str,
    ) -> Result<HashMap<String, OwnedValue>, WatchError> {
        all(&self.conn, path, iface).await
    }
}

/// Connects to `bus`.
async fn connect(bus: Bus) -> Result<Connection, WatchError> {
    match bus {
        Bus::System => ctx("connecting to the system bus", Connection::system().await),
        Bus::User => ctx("connecting to the session bus", Connection::session().await),
    }
}

/// The object path of a loaded unit.
async fn unit_path(conn: &Connection, name: &str) -> Result<OwnedObjectPath, WatchError> {
    let reply = ctx(
        &format!("looking up {name}"),
        conn.call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), "GetUnit", &(name,))
            .await,
    )?;
    ctx(&format!("looking up {name}"), reply.body().deserialize())
}

/// Property `prop` of `iface` at `path`.
async fn get<T>(
    conn: &Connection,
    path: &OwnedObjectPath,
    iface: &str,
    prop: &str,
) -> Result<T, WatchError>
where
    T: TryFrom<OwnedValue>,
{
    let reply = ctx(
        &format!("reading {prop} of {path}"),
        conn.call_method(Some(DEST), path, Some(PROPERTIES), "Get", &(iface, prop))
            .await,
    )?;
    let value: OwnedValue = ctx(&format!("reading {prop}"), reply.body().deserialize())?;
    T::try_from(value).map_err(|_| WatchError {
        what: format!("{prop} of {path}"),
        source: Box::new(zbus::Error::Failure("unexpected type".to_owned())),
    })
}

/// Every property of `iface` at `path`.
async fn all(
    conn: &Connection,
    path: &OwnedObjectPath,
    iface: &str,
) -> Result<HashMap<String, OwnedValue>, WatchError> {
    let reply = ctx(
        &format!("reading {iface} of {path}"),
        conn.call_method(Some(DEST), path, Some(PROPERTIES), "GetAll", &(iface,))
            .await,
    )?;
    ctx(&format!("reading {iface}"), reply.body().deserialize())
}

/// Text property `key` of `props`, empty when missing.
fn text(props: &HashMap<String, OwnedValue>, key: &str) -> String {
    props
        .get(key)
        .and_then(|v| String::try_from(v.clone()).ok())
        .unwrap_or_default()
}

/// `d` in µs, as systemd counts.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The object path and changed properties of a `PropertiesChanged` signal.
fn changed(msg: &zbus::Message) -> Option<(OwnedObjectPath, HashMap<String, OwnedValue>)> {
    let path = OwnedObjectPath::from(msg.header().path()?.to_owned());
    let (_, changed, _) = msg
        .body()
        .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
        .ok()?;
    Some((path, changed))
}

/// An invocation id as `systemctl show` prints it (hex); none for the all-zero id of a
/// unit that has not run.
fn invocation_hex(id: Vec<u8>) -> Option<String> {
    id.iter().any(|b| *b != 0).then(|| hex::encode(id))
}

/// `ExecMainCode`/`ExecMainStatus` (siginfo's `si_code` and status) as the handler's
/// `MONITOR_EXIT_CODE`/`MONITOR_EXIT_STATUS` say them: `exited` and the exit status,
/// `killed`/`dumped` and the signal's name.
fn describe_exit(code: Option<i32>, status: Option<i32>) -> (Option<String>, Option<String>) {
    match code {
        Some(1) => (Some("exited".into()), status.map(|s| s.to_string())),
        Some(c @ (2 | 3)) => (
            Some(if c == 2 { "killed" } else { "dumped" }.into()),
            status.map(signal_name),
        ),
        _ => (None, None),
    }
}

/// `TERM` for 15: Linux's signal numbers.
fn signal_name(n: i32) -> String {
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    usize::try_from(n)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| n.to_string(), |s| (*s).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_said_as_the_handler_says_them() {
        assert_eq!(
            describe_exit(Some(1), Some(3)),
            (Some("exited".into()), Some("3".into()))
        );
        assert_eq!(
            describe_exit(Some(2), Some(15)),
            (Some("killed".into()), Some("TERM".into()))
        );
        assert_eq!(
            describe_exit(Some(3), Some(11)),
            (Some("dumped".into()), Some("SEGV".into()))
        );
        assert_eq!(describe_exit(Some(0), Some(0)), (None, None));
        assert_eq!(signal_name(64), "64");
    }

    #[test]
    fn the_settings_are_read_with_located_errors() {
        let parse = |text: &str| {
            let c = Config::parse(text, "a.toml").unwrap();
            WatchConfig::from_config(&c).map_err(|e| e.to_string())
        };
        assert!(parse("").unwrap().is_none());
        assert!(parse("[systemd]\nwatch = false\n").unwrap().is_none());
        let c = parse("[systemd]\nwatch = true\n").unwrap().unwrap();
        assert_eq!(c.bus, Bus::System);
        assert!(c.watches("a.service") && !c.watches("a.timer"));
        let e = parse("[systemd]\nwatch = true\nunit = [\"x\"]\n").unwrap_err();
        assert!(
            e.starts_with("a.toml:3:1: [systemd]: unknown field `unit`"),
            "{e}"
        );
        let e = parse("[systemd]\nwatch = true\nbus = \"session\"\n").unwrap_err();
        assert!(e.contains("a.toml:3:"), "{e}");
        assert_eq!(c.stable_for, WatchConfig::DEFAULT_STABLE_FOR);
        assert!(c.timers.is_none() && !c.watches_timer("a.timer"));
        let c = parse("[systemd]\nwatch = true\ntimers = true\nstable_for = \"5s\"\n")
            .unwrap()
            .unwrap();
        assert!(c.watches_timer("a.timer") && !c.watches_timer("a.service"));
        assert_eq!(c.stable_for, Duration::from_secs(5));
        let c = parse("[systemd]\nwatch = true\ntimers = [\"b*.timer\"]\ntimer_grace = \"1m\"\n")
            .unwrap()
            .unwrap();
        assert!(c.watches_timer("backup.timer") && !c.watches_timer("a.timer"));
        assert_eq!(c.timer_grace, Duration::from_secs(60));
        let e = parse("[systemd]\nwatch = true\nstable_for = \"soon\"\n").unwrap_err();
        assert!(e.contains("a.toml:3:") && e.contains("stable_for"), "{e}");
        let e = parse("[systemd]\nwatch = true\ntimers = []\n").unwrap_err();
        assert!(
            e.contains("a.toml:3:") && e.contains("`timers` is empty"),
            "{e}"
        );
        let e = parse("[systemd]\nwatch = true\ntimers = 3\n").unwrap_err();
        assert!(
            e.contains("a.toml:3:") && e.contains("`true`, `false` or a list of timer patterns"),
            "{e}"
        );
    }

    #[test]
    fn the_handlers_are_never_watched() {
        let c = WatchConfig {
            bus: Bus::System,
            units: Patterns::parse(["*"]).unwrap(),
            exclude: Patterns::parse(["re:^noisy"]).unwrap(),
            stable_for: Duration::ZERO,
            timers: Some(Patterns::parse(["*.timer"]).unwrap()),
            timer_grace: Duration::ZERO,
        };
        assert!(c.watches_timer("backup.timer") && !c.watches_timer("noisy.timer"));
        assert!(c.watches("backup.service"));
        assert!(!c.watches("noisy-thing.service"));
        assert!(!c.watches("alertcore-failure@backup.service.service"));
        assert!(!c.watches("alertcore-success@backup.service.service"));
    }
}
