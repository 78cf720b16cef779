//! Recording a heartbeat's signals and telling the engine what they mean.
//!
//! Every process that touches a heartbeat evaluates it the same way: `alertctl ping`
//! after recording its signal, the daemon at each deadline and for each signal it
//! hears of, `alertctl flush` from the flush timer. An evaluation reads the newest
//! signals from the store, [`assess`]es them, and reconciles the engine with the
//! result: a problem not yet reported becomes a failure whose invocation id names it
//! (`late:<deadline>`, `run:<signal id>`, `overrun:<signal id>`), so the engine,
//! which keeps the ids of its streak, records it once however many evaluators race
//! (inside its own transaction); a heartbeat back up ends the streak it opened.

use std::collections::HashMap;
use std::sync::Arc;

use alertcore::store::blocking;
use alertcore::{
    Engine, EngineError, FailureReport, Signal, SourceState, Store, StoreError, Timestamp,
};
use serde::{Deserialize, Serialize};

use super::assess::{Assessment, Standing, assess, kind};
use super::spec::Heartbeat;

/// The source kind of heartbeat rows in the store.
pub const SOURCE_KIND: &str = "heartbeat";
/// How many of its newest signals a heartbeat keeps, and is judged from.
pub const KEEP: usize = 1_000;
/// How much of a signal's body is kept, in bytes.
pub const BODY_CAP: usize = 10_000;

/// What an evaluation found and told the engine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Evaluation {
    /// Where the heartbeat stands.
    pub assessment: Assessment,
    /// The failure or success the engine recorded for it, if any.
    pub recorded: Option<Recorded>,
}

/// An event an evaluation recorded, with what the engine did with it.
#[derive(Debug, Clone)]
pub enum Recorded {
    /// A failure: a problem not reported before.
    Failure(alertcore::Report),
    /// A success: the heartbeat is up again.
    Success(alertcore::Report),
}

impl Recorded {
    /// What the engine did.
    pub fn report(&self) -> &alertcore::Report {
        match self {
            Self::Failure(r) | Self::Success(r) => r,
        }
    }
}

/// What the store keeps of a heartbeat besides its signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HeartbeatState {
    /// When it was first configured (or created by a ping): its first run is expected
    /// one period (or the next scheduled time) after it.
    pub since: Timestamp,
    /// It is not in the config: a ping of an unknown name created it (`[http]
    /// create_on_ping`), and it lives until a config names it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub created_on_ping: bool,
}

/// The rows of `heartbeats` in the store, by name; the ones seen now for the first time
/// are saved with `now` (a configured heartbeat once created by a ping is the config's
/// from now on). With `forget` (the daemon's start and reload), the rows of heartbeats
/// neither configured nor created by a ping are deleted, and the returned map has the
/// rows created by a ping too.
///
/// # Errors
/// A [`StoreError`] reading or writing the rows.
pub fn first_seen(
    store: &dyn Store,
    heartbeats: &[Heartbeat],
    now: Timestamp,
    forget: bool,
) -> Result<HashMap<String, HeartbeatState>, StoreError> {
    if heartbeats.is_empty() && !forget {
        return Ok(HashMap::new());
    }
    let mut seen = saved(store)?;
    let mut changed = Vec::new();
    for hb in heartbeats {
        let state = match seen.get(&hb.name) {
            None => HeartbeatState {
                since: now,
                created_on_ping: false,
            },
            Some(s) if s.created_on_ping => HeartbeatState {
                created_on_ping: false,
                ..*s
            },
            Some(_) => continue,
        };
        changed.push(row(&hb.name, state, now)?);
        seen.insert(hb.name.clone(), state);
    }
    store.save_sources(&changed)?;
    let configured = |name: &str| heartbeats.iter().any(|h| h.name == name);
    if forget {
        let keep: Vec<&str> = seen
            .iter()
            .filter(|(name, s)| s.created_on_ping || configured(name))
            .map(|(name, _)| name.as_str())
            .collect();
        store.forget_sources(SOURCE_KIND, &keep)?;
        seen.retain(|name, s| s.created_on_ping || configured(name));
    } else {
        seen.retain(|name, _| configured(name));
    }
    Ok(seen)
}

/// Saves a heartbeat created by a ping of an unknown name, at `now`.
///
/// # Errors
/// A [`StoreError`].
pub fn save_created(store: &dyn Store, name: &str, now: Timestamp) -> Result<(), StoreError> {
    let state = HeartbeatState {
        since: now,
        created_on_ping: true,
    };
    store.save_sources(&[row(name, state, now)?])
}

fn row(name: &str, state: HeartbeatState, now: Timestamp) -> Result<SourceState, StoreError> {
    let json = serde_json::to_string(&state)
        .map_err(|e| StoreError::Task(format!("encoding a heartbeat's state: {e}")))?;
    Ok(SourceState::new(SOURCE_KIND, name, json, now))
}

/// Each heartbeat's row, by name.
fn saved(store: &dyn Store) -> Result<HashMap<String, HeartbeatState>, StoreError> {
    Ok(store
        .sources(SOURCE_KIND)?
        .into_iter()
        .filter_map(|row| Some((row.name, serde_json::from_str(&row.state).ok()?)))
        .collect())
}

/// Every heartbeat's assessment at `now`, from the store, writing nothing (`alertctl
/// status`): one never seen before is judged as first seen now.
///
/// # Errors
/// A [`StoreError`] reading the store.
pub fn assess_stored(
    store: &dyn Store,
    heartbeats: &[Heartbeat],
    now: Timestamp,
) -> Result<Vec<Assessment>, StoreError> {
    if heartbeats.is_empty() {
        return Ok(Vec::new());
    }
    let seen = saved(store)?;
    heartbeats
        .iter()
        .map(|hb| {
            let since = seen.get(&hb.name).map_or(now, |s| s.since);
            Ok(assess(hb, &store.signals(&hb.name, KEEP)?, since, now))
        })
        .collect()
}

/// Records `signal` (a signal of `hb`; its body capped to [`BODY_CAP`]), then
/// [`evaluate`]s `hb`. Returns the signal's id and the assessment.
///
/// # Errors
/// [`EngineError::Store`] if the signal could not be recorded (then nothing else
/// happened), or the evaluation failed (the signal is recorded: the next evaluation,
/// anyone's, tells the engine).
pub async fn record(
    engine: &Engine,
    hb: &Heartbeat,
    since: Timestamp,
    mut signal: Signal,
) -> Result<(i64, Evaluation), EngineError> {
    if let Some(body) = &mut signal.body {
        cap(body, BODY_CAP);
    }
    let success = signal.kind == kind::SUCCESS
        || (signal.kind == kind::EXIT && signal.exit_status == Some(0));
    let store = Arc::clone(engine.store());
    let id = blocking(move || store.record_signal(&signal, KEEP)).await?;
    Ok((id, reconcile(engine, hb, since, success).await?))
}

/// Judges `hb` now from its stored signals and tells the engine what is new: a
/// problem not reported yet is a failure (once: see the module documentation); a
/// heartbeat up again ends the failure streak a heartbeat opened.
///
/// # Errors
/// [`EngineError::Store`] reading the signals or recording the event.
pub async fn evaluate(
    engine: &Engine,
    hb: &Heartbeat,
    since: Timestamp,
) -> Result<Evaluation, EngineError> {
    reconcile(engine, hb, since, false).await
}

/// [`evaluate`]; `success`: a success was just signalled, which ends any streak of
/// the heartbeat's name (as `alertctl success` would), not only one it opened.
async fn reconcile(
    engine: &Engine,
    hb: &Heartbeat,
    since: Timestamp,
    success: bool,
) -> Result<Evaluation, EngineError> {
    let store = Arc::clone(engine.store());
    let name = hb.name.clone();
    let (signals, state) = blocking(move || {
        let signals = store.signals(&name, KEEP)?;
        let state = store.state(&name)?;
        Ok((signals, state))
    })
    .await?;
    let now = engine.now();
    let assessment = assess(hb, &signals, since, now);
    let streak = state.and_then(|s| s.streak);
    let recorded = match &assessment.standing {
        Standing::Down(problem) => {
            let reported = streak
                .as_ref()
                .is_some_and(|s| s.invocations.contains(&problem.key));
            if !reported {
                let mut report = FailureReport::new(problem.result)
                    .severity(hb.severity)
                    .kind(SOURCE_KIND)
                    .message(problem.message.as_str())
                    .invocation_id(problem.key.as_str());
                if let Some(host) = &hb.host {
                    report = report.host(host.as_str());
                }
                Some(Recorded::Failure(engine.failure(&hb.name, report).await?))
            } else {
                None
            }
        }
        Standing::Up | Standing::New => {
            let ours = streak
                .as_ref()
                .is_some_and(|s| s.kind.as_deref() == Some(SOURCE_KIND));
            if ours || (success && streak.is_some()) {
                Some(Recorded::Success(engine.success(&hb.name).await?))
            } else {
                None
            }
        }
    };
    Ok(Evaluation {
        assessment,
        recorded,
    })
}

/// Cuts `s` to at most `max` bytes, at a character boundary.
pub(super) fn cap(s: &mut String, max: usize) {
    s.truncate(s.floor_char_boundary(max));
}
