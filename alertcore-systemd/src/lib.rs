//! Watching systemd over D-Bus (`[systemd] watch = true` in `alertctl run`): every
//! unit's failures and recoveries become the same events the `OnFailure=` handler
//! records, with no per-unit wiring.
//!
//! The [`Watcher`] subscribes to the manager's signals and follows each unit's
//! `ActiveState` (`PropertiesChanged` on `org.freedesktop.systemd1.Unit`; no polling):
//!
//! - a unit entering `failed` is an [`Engine::failure`] with what systemd records of the
//!   run: `Result`, `ExecMainCode`/`ExecMainStatus` (as `exited`/`killed`/`dumped` and
//!   the status or signal name, as the handler's `MONITOR_*` variables say them) and its
//!   `InvocationID`. The engine counts a run once by its invocation id, so a unit that
//!   also has the handler in `OnFailure=` is not counted twice, and a failure seen again
//!   (the boot sweep after a restart of the daemon) is not alerted again;
//! - a unit the engine has failing that becomes `active`, or `inactive` after a new run
//!   whose `Result` is `success` (a oneshot that passed; not `reset-failed`, which starts
//!   no run), is an [`Engine::success`]. Other transitions cost one lookup of a name and,
//!   for units the engine does not have failing, nothing else;
//! - at start, the **boot sweep**: every unit already `failed` is reported as above.
//!
//! Which units: `units` (patterns as in `[[rules]]`, default `["*.service"]`), minus
//! `exclude` and, always, alertcore's own handler units (`alertcore-failure@*`,
//! `alertcore-success@*`: their failure is logged by systemd, and alerting about it
//! through them would loop). `bus = "user"` watches the calling user's manager instead
//! of the system's.

use std::collections::HashMap;
use std::sync::Arc;

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
}

impl WatchConfig {
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
            Ok(Some(Self {
                bus: spec.bus.unwrap_or(Bus::System),
                units,
                exclude: spec.exclude,
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
}

/// Follows one manager's units and tells the engine (see the crate documentation).
#[derive(Debug)]
pub struct Watcher {
    config: WatchConfig,
    engine: Arc<Engine>,
    conn: Connection,
    /// Object path → unit name, as learnt.
    names: HashMap<OwnedObjectPath, String>,
    /// Object path → the `ActiveState` last seen: systemd sends a unit's properties on
    /// any change (a start job queued on a failed unit repeats `failed`, with the new
    /// run's invocation id already set), so only a change of state is acted on.
    states: HashMap<OwnedObjectPath, String>,
    /// Object path → the invocation id of its latest run, from the same signals (a
    /// oneshot that passed may be unloaded before its properties can be asked for).
    invocations: HashMap<OwnedObjectPath, String>,
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
        let conn = match config.bus {
            Bus::System => ctx("connecting to the system bus", Connection::system().await)?,
            Bus::User => ctx("connecting to the session bus", Connection::session().await)?,
        };
        Ok(Self {
            config,
            engine,
            conn,
            names: HashMap::new(),
            states: HashMap::new(),
            invocations: HashMap::new(),
        })
    }

    /// Subscribes, sweeps the units already failed, then follows every change until the
    /// connection ends (or the task is aborted).
    ///
    /// # Errors
    /// When subscribing or listing the units fails, or the stream ends.
    pub async fn run(mut self) -> Result<(), WatchError> {
        let rule = ctx(
            "building the match rule",
            MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .interface(PROPERTIES)
                .and_then(|b| b.member("PropertiesChanged"))
                .and_then(|b| b.path_namespace("/org/freedesktop/systemd1/unit"))
                .and_then(|b| b.arg(0, UNIT))
                .map(zbus::match_rule::Builder::build),
        )?;
        let mut stream = ctx(
            "adding the match rule",
            MessageStream::for_match_rule(rule, &self.conn, Some(4096)).await,
        )?;
        ctx(
            "subscribing to the manager",
            self.conn
                .call_method(Some(DEST), MANAGER_PATH, Some(MANAGER), "Subscribe", &())
                .await,
        )?;
        self.sweep().await?;
        tracing::info!("watching systemd's units");
        while let Some(msg) = stream.next().await {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("systemd watch: a bad message: {e}");
                    continue;
                }
            };
            let Some(path) = msg
                .header()
                .path()
                .map(|p| OwnedObjectPath::from(p.to_owned()))
            else {
                continue;
            };
            let Ok((_, changed, _)) = msg
                .body()
                .deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
            else {
                continue;
            };
            if let Some(id) = changed
                .get("InvocationID")
                .and_then(|v| Vec::<u8>::try_from(v.clone()).ok())
                .and_then(invocation_hex)
            {
                self.invocations.insert(path.clone(), id);
            }
            let Some(state) = changed
                .get("ActiveState")
                .and_then(|v| String::try_from(v.clone()).ok())
            else {
                continue;
            };
            if let Err(e) = self.changed(&path, &state).await {
                tracing::warn!("systemd watch: {}", chain(&e));
            }
            // an inactive unit has nothing more to tell until it starts again: forget
            // it, so transient units (`systemd-run`, scopes) do not pile up here
            if state == "inactive" {
                self.names.remove(&path);
                self.states.remove(&path);
                self.invocations.remove(&path);
            }
        }
        Err(WatchError {
            what: "the bus connection ended".to_owned(),
            source: Box::new(zbus::Error::Failure("end of stream".to_owned())),
        })
    }

    /// The boot sweep: every watched unit already failed, as if it failed now.
    async fn sweep(&mut self) -> Result<(), WatchError> {
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
            "listing the failed units",
            self.conn
                .call_method(
                    Some(DEST),
                    MANAGER_PATH,
                    Some(MANAGER),
                    "ListUnitsFiltered",
                    &(vec!["failed"],),
                )
                .await,
        )?;
        let units: Listed = ctx("reading the failed units", reply.body().deserialize())?;
        for (name, .., path, _, _, _) in units {
            self.names.insert(path.clone(), name.clone());
            self.states.insert(path.clone(), "failed".to_owned());
            if self.config.watches(&name)
                && let Err(e) = self.failed(&path, &name).await
            {
                tracing::warn!("systemd watch: {}", chain(&e));
            }
        }
        Ok(())
    }

    /// `path`'s `ActiveState` became `state`.
    async fn changed(&mut self, path: &OwnedObjectPath, state: &str) -> Result<(), WatchError> {
        let before = self.states.insert(path.clone(), state.to_owned());
        if before.as_deref() == Some(state) || !matches!(state, "failed" | "active" | "inactive") {
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
        match state {
            "failed" => self.failed(path, &name).await,
            _ => self.maybe_recovered(path, &name, state).await,
        }
    }

    /// Reports the failed run of `name`.
    async fn failed(&self, path: &OwnedObjectPath, name: &str) -> Result<(), WatchError> {
        let report = self.run_of(path).await;
        match self.engine.failure(name, report).await {
            Ok(r) if r.duplicate => {
                tracing::info!(
                    unit = name,
                    "failed: this run's failure was already recorded"
                );
            }
            Ok(r) => {
                tracing::info!(unit = name, "failed ({} in streak)", r.failures);
                for d in r.deliveries.iter().filter(|d| !d.delivered()) {
                    tracing::warn!(unit = name, "{d}");
                }
            }
            Err(e) => tracing::error!(unit = name, "cannot record the failure: {}", chain(&e)),
        }
        Ok(())
    }

    /// A unit the engine has failing that is active again, or that finished a new run
    /// with success, recovered.
    async fn maybe_recovered(
        &self,
        path: &OwnedObjectPath,
        name: &str,
        state: &str,
    ) -> Result<(), WatchError> {
        let streak = match self.engine.store().state(name) {
            Ok(s) => s.and_then(|s| s.streak),
            Err(e) => {
                tracing::error!(unit = name, "cannot read the state: {}", chain(&e));
                return Ok(());
            }
        };
        let Some(streak) = streak else {
            return Ok(());
        };
        if state == "inactive" {
            // a run that passed, not `reset-failed` (which keeps the failed invocation)
            let run = self.run_of(path).await;
            let new_run = run
                .invocation_id
                .as_ref()
                .or_else(|| self.invocations.get(path))
                .is_some_and(|id| !streak.invocations.contains(id));
            if run.service_result != "success" || !new_run {
                return Ok(());
            }
        }
        match self.engine.success(name).await {
            Ok(_) => tracing::info!(unit = name, "recovered"),
            Err(e) => tracing::error!(unit = name, "cannot record the recovery: {}", chain(&e)),
        }
        Ok(())
    }

    /// What systemd records of the unit's latest run; what cannot be read is left out
    /// (the result is then `failed`).
    async fn run_of(&self, path: &OwnedObjectPath) -> FailureReport {
        let service = self.all(path, SERVICE).await.unwrap_or_default();
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
        report.invocation_id = match self.get::<Vec<u8>>(path, UNIT, "InvocationID").await {
            Ok(id) => invocation_hex(id),
            Err(_) => None,
        }
        .or_else(|| self.invocations.get(path).cloned());
        report
    }

    async fn get<T>(&self, path: &OwnedObjectPath, iface: &str, prop: &str) -> Result<T, WatchError>
    where
        T: TryFrom<OwnedValue>,
    {
        let reply = ctx(
            &format!("reading {prop} of {path}"),
            self.conn
                .call_method(Some(DEST), path, Some(PROPERTIES), "Get", &(iface, prop))
                .await,
        )?;
        let value: OwnedValue = ctx(&format!("reading {prop}"), reply.body().deserialize())?;
        T::try_from(value).map_err(|_| WatchError {
            what: format!("{prop} of {path}"),
            source: Box::new(zbus::Error::Failure("unexpected type".to_owned())),
        })
    }

    async fn all(
        &self,
        path: &OwnedObjectPath,
        iface: &str,
    ) -> Result<HashMap<String, OwnedValue>, WatchError> {
        let reply = ctx(
            &format!("reading {iface} of {path}"),
            self.conn
                .call_method(Some(DEST), path, Some(PROPERTIES), "GetAll", &(iface,))
                .await,
        )?;
        ctx(&format!("reading {iface}"), reply.body().deserialize())
    }
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
    }

    #[test]
    fn the_handlers_are_never_watched() {
        let c = WatchConfig {
            bus: Bus::System,
            units: Patterns::parse(["*"]).unwrap(),
            exclude: Patterns::parse(["re:^noisy"]).unwrap(),
        };
        assert!(c.watches("backup.service"));
        assert!(!c.watches("noisy-thing.service"));
        assert!(!c.watches("alertcore-failure@backup.service.service"));
        assert!(!c.watches("alertcore-success@backup.service.service"));
    }
}
