//! `alertctl`: the command-line front end of alertcore, as a library.
//!
//! The stock `alertctl` binary is [`main_with`]`(`[`default_registry`]`())`. A program
//! that links a notifier crate of its own (one that registers its type with
//! [`alertcore::submit_notifier!`]) gets the whole command line, every subcommand, with
//! that type selectable in the config file, from a binary of a few lines:
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! // use my_notifier as _; // links the crate, so that its `submit_notifier!` is found
//!
//! fn main() -> ExitCode {
//!     alertctl::main_with(alertctl::default_registry())
//! }
//! ```
//!
//! `examples/jsonl-alertctl/` in the repository is such a binary, with its notifier
//! crate in `examples/jsonl-notifier/`.

mod cli;
mod daemon;
mod explain;
mod heartbeat;
mod hold;
mod http;
mod install;
mod journal;
mod report;
mod status;
mod systemd;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use alertcore::{
    Clock, Config, ConfigError, Engine, FailureReport, MemoryStore, Registry, Report, Severity,
    SqliteStore, Store, Timestamp, chain,
};
use clap::Parser;

use crate::cli::{Cli, Command, ConfigCommand, JournalCommand};

const DEFAULT_CONFIG: &str = "/etc/alertcore/alertcore.toml";

/// A handler that hangs holds its systemd job, and systemd merges the next failure of
/// the same unit into it; give up on a silent transport well before that matters.
const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// An error with the exit code it maps to.
#[derive(Debug)]
struct Fail {
    code: u8,
    message: String,
}

impl Fail {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }
    fn other(e: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            code: 1,
            message: chain(e),
        }
    }
}

impl From<ConfigError> for Fail {
    fn from(e: ConfigError) -> Self {
        Self::usage(chain(&e))
    }
}

/// Runs the `alertctl` command line with the notifier types of `registry`: parses
/// `std::env::args_os()`, runs the subcommand and returns its exit code, as the stock
/// binary does.
///
/// Exit codes: 0 recorded (and delivered, or deliberately suppressed); 1 anything else;
/// 2 a usage or configuration error (including the command-line errors, after clap
/// has printed them); 3 recorded, but a delivery failed. `--help` and `--version` print
/// and return 0. Errors are reported on stderr, prefixed `alertctl:`.
///
/// `registry` decides which `type = "..."` a config may name: start from
/// [`default_registry`] to keep the stock types and any linked crate's, and add more
/// with [`Registry::with`].
pub fn main_with(registry: Registry) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // what `Cli::parse()` does, without leaving the process from a library:
            // help and version on stdout with 0, usage errors on stderr with 2
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("alertctl: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli, &registry)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("alertctl: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// The notifier types the stock `alertctl` knows: the core's built-in ones (`console`,
/// `exec`, `file`), those of the transports enabled by this package's features
/// (`email`, `webhook`, `syslog`; all on by default), and every type a linked crate
/// registered with [`alertcore::submit_notifier!`] ([`Registry::with_linked`]).
///
/// A linked type replaces a stock one of the same name.
#[must_use]
pub fn default_registry() -> Registry {
    let registry = Registry::new();
    #[cfg(feature = "email")]
    let registry = registry.with(alertcore_email::FACTORY);
    #[cfg(feature = "webhook")]
    let registry = registry.with(alertcore_webhook::FACTORY);
    #[cfg(feature = "syslog")]
    let registry = registry.with(alertcore_syslog::FACTORY);
    registry.with_linked()
}

fn load_config(cli: &Cli) -> Result<(Config, Option<PathBuf>), Fail> {
    match &cli.config {
        Some(path) => Ok((Config::load(path)?, Some(path.clone()))),
        None if Path::new(DEFAULT_CONFIG).exists() => {
            let path = PathBuf::from(DEFAULT_CONFIG);
            Ok((Config::load(&path)?, Some(path)))
        }
        None => Ok((Config::default(), None)),
    }
}

/// `--state` / `ALERTCORE_STATE`, then `[state] path`, then the systemd, root and user defaults.
fn state_path(cli: &Cli, config: &Config) -> Result<PathBuf, Fail> {
    if let Some(p) = cli.state.clone().or_else(|| config.state.path.clone()) {
        return Ok(p);
    }
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY") {
        // systemd passes one path per StateDirectory= entry, separated by ':'
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        if !first.is_empty() {
            return Ok(Path::new(&first).join("state.db"));
        }
    }
    if is_root() {
        return Ok(PathBuf::from("/var/lib/alertcore/state.db"));
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")))
        .ok_or_else(|| Fail::usage("no state file: set --state, ALERTCORE_STATE or HOME"))?;
    Ok(base.join("alertcore/state.db"))
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn open_store(cli: &Cli, config: &Config) -> Result<Arc<dyn Store>, Fail> {
    let path = state_path(cli, config)?;
    let store = SqliteStore::open(&path).map_err(|e| Fail::other(&e))?;
    Ok(Arc::new(store))
}

/// The state file for reading only: an in-memory store when it does not exist yet,
/// so a question (`alertctl test`) never creates one.
fn open_store_readonly(cli: &Cli, config: &Config) -> Result<Arc<dyn Store>, Fail> {
    let path = state_path(cli, config)?;
    if !path.exists() {
        return Ok(Arc::new(MemoryStore::new()));
    }
    open_store(cli, config)
}

fn build_engine(cli: &Cli, config: &Config, registry: &Registry) -> Result<Engine, Fail> {
    build_engine_on(cli, config, registry, open_store(cli, config)?, true)
}

/// The engine of `config` over `store`; `one_shot` for a process that handles one event
/// and exits (its store calls then run on the async thread, with no blocking pool).
fn build_engine_on(
    cli: &Cli,
    config: &Config,
    registry: &Registry,
    store: Arc<dyn Store>,
    one_shot: bool,
) -> Result<Engine, Fail> {
    let notifiers = config.build_notifiers(registry)?;
    let router = config.build_router(&notifiers)?;
    let mut builder = Engine::builder(store)
        .policy(config.policy.clone())
        .router(router)
        .delivery_timeout(DELIVERY_TIMEOUT)
        .store_inline(one_shot)
        .maintenance(config.build_maintenance()?)
        .dependencies(alertcore_checks::dependencies(config)?)
        .inhibits(config.build_inhibits()?)
        .flapping(config.flapping)
        .configured(notifiers);
    if let Some(host) = &config.host {
        builder = builder.host(host.clone());
    }
    if let Some(now) = cli.now {
        builder = builder.clock(Arc::new(FixedClock(now)));
    }
    Ok(builder.build())
}

/// The clock behind `--now`.
#[derive(Debug)]
struct FixedClock(Timestamp);

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
    }
}

/// A failure or success to record.
enum Event<'a> {
    Failure(&'a cli::FailureArgs),
    Success(&'a str),
}

async fn record(cli: &Cli, engine: &Engine, event: &Event<'_>) -> Result<u8, Fail> {
    // as the unit name is read, so that `MONITOR_UNIT` compares equal to it
    let env = |k: &str| std::env::var_os(k).map(|v| cli::unit_name(&v));
    // (`passed`: the unit of a run that passed)
    let (what, r, passed) = match event {
        Event::Failure(args) => {
            let report = systemd::failure_report(args, &env);
            let report = triggered(engine, &args.unit, report).await;
            ("failure", engine.failure(&args.unit, report).await, None)
        }
        Event::Success(unit) => match systemd::failure_in_success(unit, &env) {
            Some(report) => (
                "failure (the success handler was started for a failed run)",
                engine
                    .failure(unit, triggered(engine, unit, report).await)
                    .await,
                None,
            ),
            None => ("success", engine.success(unit).await, Some(*unit)),
        },
    };
    let r = r.map_err(|e| Fail::other(&e))?;
    if let Some(path) = &cli.trace
        && let Err(e) = explain::append_trace(path, engine, what, &r)
    {
        eprintln!(
            "alertctl: cannot append to the trace file {}: {e}",
            path.display()
        );
    }
    let mut code = print_report(what, &r);
    // a run that passed, whose output a rule sends (`on_success = "output"`)
    // (the run's id may cost a `systemctl show`: only then)
    if let Some(unit) = passed
        && !engine
            .router()
            .output_targets(unit, engine.host(), engine.now())
            .is_empty()
    {
        match engine.output(unit, systemd::run_id(unit, &env)).await {
            Ok(sent) => code = code.max(print_deliveries(&sent, |_| true)),
            Err(e) => {
                eprintln!("alertctl: cannot send the output: {}", chain(&e));
                code = code.max(1);
            }
        }
    }
    // then what is due in the outbox for the notifiers this event touched (retries of
    // earlier alerts, notifications queued behind one of them)
    let touched: Vec<String> = r
        .decisions
        .iter()
        .filter(|d| d.send_kind().is_some())
        .map(|d| d.notifier.clone())
        .collect();
    match engine.flush_only(&touched).await {
        Ok(more) => Ok(code.max(print_deliveries(&more, |_| true))),
        Err(e) => {
            eprintln!("alertctl: cannot flush the outbox: {}", chain(&e));
            Ok(code.max(1))
        }
    }
}

/// How long a handler waits for the manager to say what started a run: the alert
/// goes out without it rather than late.
const TRIGGER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `report` with what started the run, when a rule matches on it (`trigger`): asked
/// of the system manager over D-Bus, or of the user's when not run as root.
async fn triggered(engine: &Engine, unit: &str, mut report: FailureReport) -> FailureReport {
    if engine.router().uses_trigger() && report.trigger.is_none() {
        let bus = if rustix::process::geteuid().is_root() {
            alertcore_systemd::Bus::System
        } else {
            alertcore_systemd::Bus::User
        };
        let ask = alertcore_systemd::find_trigger(bus, unit);
        report.trigger = tokio::time::timeout(TRIGGER_TIMEOUT, ask)
            .await
            .ok()
            .flatten();
    }
    report
}

/// Records the event although the config is broken, so it is not lost: with the
/// built-in defaults (console notifier, default state path) and the config error as the
/// result, exit code 2. The next event, with the config mended, alerts as configured.
async fn record_despite(cli: &Cli, registry: &Registry, event: &Event<'_>, error: Fail) -> Fail {
    eprintln!("alertctl: {}", error.message);
    let fallback = Config::default();
    match build_engine(cli, &fallback, registry) {
        Ok(engine) => {
            if let Err(f) = record(cli, &engine, event).await {
                eprintln!("alertctl: {}", f.message);
            }
        }
        Err(f) => eprintln!("alertctl: {}", f.message),
    }
    Fail::usage(
        "the event was recorded with the built-in defaults because of the config error above",
    )
}

async fn run(cli: Cli, registry: &Registry) -> Result<u8, Fail> {
    let event = match &cli.command {
        Command::Failure(args) => Some(Event::Failure(args)),
        Command::Success { unit } => Some(Event::Success(unit)),
        _ => None,
    };
    if let Some(event) = event {
        let engine =
            load_config(&cli).and_then(|(config, _)| build_engine(&cli, &config, registry));
        return match engine {
            Ok(engine) => record(&cli, &engine, &event).await,
            Err(f) if f.code == 2 => Err(record_despite(&cli, registry, &event, f).await),
            Err(f) => Err(f),
        };
    }
    if let Command::Run { once: false, .. } = cli.command {
        return daemon::run(&cli, registry).await;
    }
    if let Command::Generate(what) = &cli.command {
        return generate(what);
    }
    // wiring needs no config
    if let Command::Systemd(action) = &cli.command {
        return install::run(action);
    }
    let (config, config_path) = match (load_config(&cli), &cli.command) {
        (Err(f), Command::Ping(args)) if f.code == 2 => {
            return Err(heartbeat::record_despite(&cli, None, args, f));
        }
        (loaded, _) => loaded?,
    };
    match &cli.command {
        // handled above
        Command::Failure(_) | Command::Success { .. } => Ok(0),
        Command::Status { unit, json } => {
            let engine = build_engine(&cli, &config, registry)?;
            let heartbeats = alertcore_checks::heartbeat::heartbeats(&config)?;
            status::status(&engine, &heartbeats, unit.as_deref(), *json)
                .map_err(|e| Fail::other(&e))?;
            Ok(0)
        }
        Command::Report {
            what: Some(_),
            since,
            json,
            send,
        } => {
            let engine = build_engine(&cli, &config, registry)?;
            journal::report(&engine, &config, *since, *json, send).await
        }
        Command::Report { json, send, .. } => {
            let engine = build_engine(&cli, &config, registry)?;
            report::report(&engine, *json, send).await
        }
        Command::History { unit, json } => {
            let store = open_store(&cli, &config)?;
            status::history(store.as_ref(), unit, *json).map_err(|e| Fail::other(&e))?;
            Ok(0)
        }
        Command::Clear { units, all } => {
            let store = open_store(&cli, &config)?;
            let units = if *all {
                let states = store.states().map_err(|e| Fail::other(&e))?;
                states.into_iter().map(|(name, _)| name).collect()
            } else {
                units.clone()
            };
            for unit in &units {
                let had = store.clear(unit).map_err(|e| Fail::other(&e))?;
                println!("{unit}: {}", if had { "cleared" } else { "no state" });
            }
            Ok(0)
        }
        Command::Test(args) => {
            let store: Arc<dyn Store> = if args.fresh {
                Arc::new(MemoryStore::new())
            } else {
                open_store_readonly(&cli, &config)?
            };
            let engine = build_engine_on(&cli, &config, registry, store, true)?;
            explain::test(&engine, args).map_err(Fail::usage)?;
            Ok(0)
        }
        Command::Journal(JournalCommand::Test(args)) => journal::test(&config, args).await,
        Command::Config(ConfigCommand::Check) => {
            daemon::init_logging();
            let notifiers = config.build_notifiers(registry)?;
            let names: Vec<&str> = notifiers.iter().map(|n| n.name.as_str()).collect();
            let router = config.build_router(&notifiers)?;
            let checks = alertcore_checks::checks(&config)?;
            let heartbeats = alertcore_checks::heartbeat::heartbeats(&config)?;
            config.build_maintenance()?;
            config.build_inhibits()?;
            config.build_report(&names)?;
            alertcore_systemd::WatchConfig::from_config(&config)?;
            let journal = alertcore_journal::JournalConfig::from_config(&config)?;
            alertcore_checks::dependencies(&config)?;
            // a chain that can never match is no error: the config works, the chain does not
            for w in journal.iter().flat_map(|j| &j.chains.warnings) {
                eprintln!("warning: {w}");
            }
            let origin = config_path.map_or_else(
                || "built-in defaults".to_owned(),
                |p| p.display().to_string(),
            );
            println!(
                "{origin}: ok ({} notifiers: {}; {}; {}; {})",
                names.len(),
                names.join(", "),
                alertcore::transport::plural(router.rules().len(), "rule"),
                alertcore::transport::plural(checks.len(), "check"),
                alertcore::transport::plural(heartbeats.len(), "heartbeat")
            );
            Ok(0)
        }
        Command::Config(ConfigCommand::Dump) => {
            daemon::init_logging();
            let notifiers = config.build_notifiers(registry)?;
            let router = config.build_router(&notifiers)?;
            let checks = alertcore_checks::checks(&config)?;
            let heartbeats = alertcore_checks::heartbeat::heartbeats(&config)?;
            let state = state_path(&cli, &config)?;
            print!(
                "{}",
                status::dump(&config, &notifiers, &router, &checks, &heartbeats, &state)
            );
            Ok(0)
        }
        Command::NotifyTest { notifier } => notify_test(&config, registry, notifier).await,
        // handled before the config is read
        Command::Run { once: false, .. } | Command::Generate(_) | Command::Systemd(_) => Ok(0),
        Command::Run { once: true, notify } => daemon::once(&cli, registry, &config, *notify).await,
        Command::Flush => {
            let engine = build_engine(&cli, &config, registry)?;
            // what the heartbeats' deadlines say, then what is due
            let judged = heartbeat::evaluate_all(&engine, &config).await?;
            let sent = engine.flush().await.map_err(|e| Fail::other(&e))?;
            if sent.is_empty() {
                println!("nothing due in the outbox");
            }
            Ok(judged.max(print_deliveries(&sent, |_| true)))
        }
        Command::Ping(args) => heartbeat::ping(&cli, &config, registry, args).await,
        Command::Silence(action) => {
            let engine = build_engine(&cli, &config, registry)?;
            hold::silence(&engine, action)
        }
        Command::Ack {
            service,
            comment,
            notify,
        } => {
            let engine = build_engine(&cli, &config, registry)?;
            hold::ack(&engine, service, comment.clone(), *notify).await
        }
        Command::Outbox { action, json } => {
            let store = open_store(&cli, &config)?;
            let now = cli.now.unwrap_or_else(|| alertcore::SystemClock.now());
            status::outbox(store.as_ref(), action.as_ref(), *json, now).map_err(|e| Fail::other(&e))
        }
    }
}

/// `alertctl generate man DIR | completions SHELL`: from the same definitions as
/// `--help`, so a package's man pages and completions never drift from it.
fn generate(what: &cli::GenerateCommand) -> Result<u8, Fail> {
    use clap::CommandFactory as _;
    let cmd = Cli::command();
    match what {
        cli::GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(dir).map_err(|e| Fail::other(&e))?;
            let write = |cmd: clap::Command, name: &str| -> Result<(), Fail> {
                let mut out = Vec::new();
                clap_mangen::Man::new(cmd)
                    .render(&mut out)
                    .map_err(|e| Fail::other(&e))?;
                std::fs::write(dir.join(format!("{name}.1")), out).map_err(|e| Fail::other(&e))
            };
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let name = format!("alertctl-{}", sub.get_name());
                write(sub.clone().name(name.clone()), &name)?;
            }
            write(cmd, "alertctl")?;
            Ok(0)
        }
        cli::GenerateCommand::Completions { shell } => {
            let mut cmd = cmd;
            clap_complete::generate(*shell, &mut cmd, "alertctl", &mut std::io::stdout());
            Ok(0)
        }
    }
}

/// Prints one line per decision and delivery; the exit code says whether all went out.
fn print_report(what: &str, r: &Report) -> u8 {
    println!(
        "{}: {what} recorded ({} in streak)",
        r.service,
        alertcore::transport::plural(r.failures, "failure")
    );
    for d in &r.decisions {
        println!("  {}: {}", d.notifier, d.action);
    }
    for w in &r.waiting {
        println!("  {w}");
    }
    print_deliveries(&r.deliveries, |d| d.from_outbox)
}

/// Reports failed deliveries on stderr (and, where `show` says so, delivered ones on
/// stdout); 3 if any failed.
pub(crate) fn print_deliveries(
    deliveries: &[alertcore::Delivery],
    show: impl Fn(&alertcore::Delivery) -> bool,
) -> u8 {
    let mut code = 0;
    for d in deliveries {
        if d.delivered() {
            if show(d) {
                println!("  {d}");
            }
        } else {
            // with nowhere else to go, this line is the meta-alert: it says LOST
            code = 3;
            eprintln!("alertctl: {d}");
        }
    }
    code
}

/// Sends a made-up warning through one notifier, with a fresh in-memory state and the
/// default policy, so neither the state file nor the configured threshold gets in the way.
async fn notify_test(config: &Config, registry: &Registry, name: &str) -> Result<u8, Fail> {
    let notifiers = config.build_notifiers(registry)?;
    let names: Vec<String> = notifiers.iter().map(|n| n.name.clone()).collect();
    let Some(n) = notifiers.into_iter().find(|n| n.name == name) else {
        return Err(Fail::usage(format!(
            "no notifier named {name:?} (configured: {})",
            names.join(", ")
        )));
    };
    let mut builder = Engine::builder(Arc::new(MemoryStore::new())).configured([n]);
    if let Some(host) = &config.host {
        builder = builder.host(host.clone());
    }
    let report = FailureReport::new("exit-code")
        .exit_code("exited")
        .exit_status("1")
        .severity(Severity::Warning)
        .message("test alert from `alertctl notify-test`; no action needed");
    let r = builder
        .build()
        .failure("alertctl-notify-test.service", report)
        .await
        .map_err(|e| Fail::other(&e))?;
    Ok(print_report("test failure", &r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_registry_is_the_stock_one() {
        let kinds = default_registry().kinds();
        for kind in ["console", "exec", "file"] {
            assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
        }
        // a transport comes with its feature, and only with it (CI also runs this
        // test with --no-default-features)
        for (kind, built) in [
            ("email", cfg!(feature = "email")),
            ("webhook", cfg!(feature = "webhook")),
            ("syslog", cfg!(feature = "syslog")),
        ] {
            assert_eq!(kinds.contains(&kind), built, "{kind}: {kinds:?}");
        }
        // a notifier crate's type comes only with a binary that links it
        // (examples/jsonl-alertctl)
        assert!(!kinds.contains(&"jsonl"), "{kinds:?}");
    }
}
