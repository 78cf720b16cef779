//! `alertctl ping`, and the heartbeats' part of `alertctl flush`.

use std::io::Read as _;

use alertcore::{Config, Engine, Registry, Signal, Timestamp};
use alertcore_checks::heartbeat::{
    self, Assessment, BODY_CAP, Heartbeat, Recorded, Standing, first_seen, kind, local,
};

use crate::cli::{Cli, PingArgs};
use crate::{Fail, build_engine, print_report};

/// `alertctl ping NAME [--start|--fail|--exit N|--log TEXT] [--rid ID] [--body TEXT]`.
pub(crate) async fn ping(
    cli: &Cli,
    config: &Config,
    registry: &Registry,
    args: &PingArgs,
) -> Result<u8, Fail> {
    let heartbeats = match heartbeat::heartbeats(config) {
        Ok(list) => list,
        Err(e) => return Err(record_despite(cli, Some(config), args, Fail::from(e))),
    };
    let Some(hb) = heartbeats.iter().find(|h| h.name == args.name) else {
        let names: Vec<&str> = heartbeats.iter().map(|h| h.name.as_str()).collect();
        return Err(Fail::usage(format!(
            "no heartbeat named {:?} (configured: {})",
            args.name,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )));
    };
    let engine = build_engine(cli, config, registry)?;
    let now = engine.now();
    let signal = signal(args, now)?;
    let what = signal.kind.clone();
    let since = first_seen(
        engine.store().as_ref(),
        std::slice::from_ref(hb),
        now,
        false,
    )
    .map_err(|e| Fail::other(&e))?
    .get(&hb.name)
    .map_or(now, |s| s.since);
    let (id, evaluation) = heartbeat::record(&engine, hb, since, signal)
        .await
        .map_err(|e| Fail::other(&e))?;
    println!(
        "{}: {what} recorded (signal {id}); {}",
        hb.name,
        standing(hb, &evaluation.assessment)
    );
    Ok(evaluation.recorded.as_ref().map_or(0, print_recorded))
}

/// Records the signal although the config is broken, so it is not lost: unjudged, in
/// the state file `config` names (the built-in defaults' when it could not be read);
/// the daemon or the next flush judges it once the config is mended. Exit code 2.
pub(crate) fn record_despite(
    cli: &Cli,
    config: Option<&Config>,
    args: &PingArgs,
    error: Fail,
) -> Fail {
    eprintln!("alertctl: {}", error.message);
    let fallback = Config::default();
    let recorded = crate::open_store(cli, config.unwrap_or(&fallback)).and_then(|store| {
        let now = cli
            .now
            .unwrap_or_else(|| Timestamp::from_system_time(std::time::SystemTime::now()));
        let mut signal = signal(args, now)?;
        if let Some(body) = &mut signal.body {
            body.truncate(body.floor_char_boundary(BODY_CAP));
        }
        store
            .record_signal(&signal, heartbeat::KEEP)
            .map_err(|e| Fail::other(&e))
    });
    match recorded {
        Ok(id) => Fail::usage(format!(
            "signal {id} was recorded without judging it because of the config error above"
        )),
        Err(f) => Fail::usage(format!("the signal was not recorded: {}", f.message)),
    }
}

/// The signal `args` describe, at `now`.
fn signal(args: &PingArgs, now: Timestamp) -> Result<Signal, Fail> {
    let name = args.name.as_str();
    let mut signal = if args.start {
        Signal::new(name, kind::START, now)
    } else if args.fail {
        Signal::new(name, kind::FAIL, now)
    } else if let Some(code) = args.exit {
        Signal::new(name, kind::EXIT, now).exit_status(code)
    } else if let Some(text) = &args.log {
        Signal::new(name, kind::LOG, now).body(text.as_str())
    } else {
        Signal::new(name, kind::SUCCESS, now)
    };
    if let Some(rid) = &args.rid {
        signal = signal.rid(rid.as_str());
    }
    match args.body.as_deref() {
        Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .take(BODY_CAP as u64)
                .read_to_end(&mut buf)
                .map_err(|e| Fail::other(&e))?;
            signal = signal.body(String::from_utf8_lossy(&buf).into_owned());
        }
        Some(text) => signal = signal.body(text),
        None => {}
    }
    Ok(signal)
}

/// `up, next expected by ...`, `DOWN (late): expected by ...`.
fn standing(hb: &Heartbeat, a: &Assessment) -> String {
    let by = a
        .deadline
        .map(|d| format!(", expected by {}", local(d, &hb.zone)))
        .unwrap_or_default();
    match &a.standing {
        Standing::New => format!("no run yet{by}"),
        Standing::Up => format!("up{}", by.replacen("expected", "next expected", 1)),
        Standing::Down(p) => format!("DOWN ({}): {}", p.result, p.message),
    }
}

/// Prints what the engine did with a recorded event; the exit code as `failure`'s.
fn print_recorded(recorded: &Recorded) -> u8 {
    match recorded {
        Recorded::Failure(r) => print_report("failure", r),
        Recorded::Success(r) => print_report("success", r),
    }
}

/// Judges every heartbeat of `config` now and tells the engine what is new (the flush
/// timer's share of the daemon's work): one line per event recorded.
pub(crate) async fn evaluate_all(engine: &Engine, config: &Config) -> Result<u8, Fail> {
    let heartbeats = heartbeat::heartbeats(config)?;
    if heartbeats.is_empty() {
        return Ok(0);
    }
    let now = engine.now();
    let seen = first_seen(engine.store().as_ref(), &heartbeats, now, false)
        .map_err(|e| Fail::other(&e))?;
    let mut code = 0;
    for hb in &heartbeats {
        let since = seen.get(&hb.name).map_or(now, |s| s.since);
        let evaluation = heartbeat::evaluate(engine, hb, since)
            .await
            .map_err(|e| Fail::other(&e))?;
        if let Some(recorded) = &evaluation.recorded {
            println!("{}: {}", hb.name, standing(hb, &evaluation.assessment));
            code = code.max(print_recorded(recorded));
        }
    }
    Ok(code)
}
