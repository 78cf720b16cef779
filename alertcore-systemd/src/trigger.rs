//! What started a unit's run, from what systemd 252 records of it.
//!
//! systemd does not record who queued a start job. What it does record:
//! - each timer's last elapse (`LastTriggerUSecMonotonic`) and the units it triggers
//!   (the unit's `TriggeredBy=`);
//! - when the run left `inactive` (`InactiveExitTimestampMonotonic`; a restart under
//!   `Restart=` does not pass through `inactive`, so for a restart loop this is the
//!   loop's first start);
//! - when the manager finished starting up (`FinishTimestampMonotonic`, 0 before).
//!
//! A run that started at most [`TIMER_SLACK`] after one of its timers elapsed was
//! started by that timer: the timer queues the start job as it elapses, and the job
//! runs at once unless ordering dependencies hold it. A run that started before the
//! boot finished was started by the boot. Anything else is `other`: a `systemctl
//! start`, a dependency of another unit, a path or socket unit — systemd 252 keeps
//! nothing that tells these apart.

use std::collections::HashMap;
use std::time::Duration;

use alertcore::Trigger;
use zbus::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::{Bus, MANAGER, MANAGER_PATH, TIMER, UNIT, all, connect, get, micros, unit_path};

/// How long after its timer elapsed a run may start and still count as the timer's.
pub const TIMER_SLACK: Duration = Duration::from_secs(5);

/// What started a run that left `inactive` at `start`, all times in µs of
/// `CLOCK_MONOTONIC`: `timers` are the last elapses of the unit's timers (0: never),
/// `boot_finished` when the manager finished starting up (0: not yet). `None` when the
/// run's start is not known (0).
pub fn trigger_of(start: u64, timers: &[u64], boot_finished: u64) -> Option<Trigger> {
    if start == 0 {
        return None;
    }
    let slack = micros(TIMER_SLACK);
    Some(
        if timers
            .iter()
            .any(|&t| t != 0 && t <= start && start - t <= slack)
        {
            Trigger::Timer
        } else if boot_finished == 0 || start < boot_finished {
            Trigger::Boot
        } else {
            Trigger::Other
        },
    )
}

/// What started the latest run of `unit` (as the `OnFailure=` handler asks, once per
/// failure): asked of `bus`'s manager over D-Bus. `None` when it cannot be told.
pub async fn find_trigger(bus: Bus, unit: &str) -> Option<Trigger> {
    let conn = connect(bus).await.ok()?;
    let path = unit_path(&conn, unit).await.ok()?;
    let props = all(&conn, &path, UNIT).await.ok()?;
    of_run(&conn, &props, &mut 0).await
}

/// What started the run whose unit properties are `unit`; `boot_finished` caches the
/// manager's `FinishTimestampMonotonic` once it is set.
pub(crate) async fn of_run(
    conn: &Connection,
    unit: &HashMap<String, OwnedValue>,
    boot_finished: &mut u64,
) -> Option<Trigger> {
    let start = unit
        .get("InactiveExitTimestampMonotonic")
        .and_then(|v| u64::try_from(v.clone()).ok())?;
    let triggered_by = unit
        .get("TriggeredBy")
        .and_then(|v| Vec::<String>::try_from(v.clone()).ok())
        .unwrap_or_default();
    let mut timers = Vec::new();
    for timer in triggered_by.iter().filter(|u| u.ends_with(".timer")) {
        if let Ok(path) = unit_path(conn, timer).await
            && let Ok(t) = get::<u64>(conn, &path, TIMER, "LastTriggerUSecMonotonic").await
        {
            timers.push(t);
        }
    }
    if *boot_finished == 0 {
        let manager = OwnedObjectPath::try_from(MANAGER_PATH).ok()?;
        *boot_finished = get(conn, &manager, MANAGER, "FinishTimestampMonotonic")
            .await
            .unwrap_or(0);
    }
    trigger_of(start, &timers, *boot_finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;

    #[test]
    fn a_run_just_after_its_timer_is_the_timers() {
        let boot = 10 * S;
        assert_eq!(trigger_of(100 * S, &[99 * S], boot), Some(Trigger::Timer));
        assert_eq!(trigger_of(100 * S, &[95 * S], boot), Some(Trigger::Timer));
        // too long after, or before the timer elapsed
        assert_eq!(trigger_of(100 * S, &[94 * S], boot), Some(Trigger::Other));
        assert_eq!(trigger_of(100 * S, &[101 * S], boot), Some(Trigger::Other));
        // a timer that never elapsed, another timer that did
        assert_eq!(
            trigger_of(100 * S, &[0, 100 * S], boot),
            Some(Trigger::Timer)
        );
        assert_eq!(trigger_of(5 * S, &[], boot), Some(Trigger::Boot));
        assert_eq!(trigger_of(5 * S, &[], 0), Some(Trigger::Boot));
        assert_eq!(trigger_of(0, &[99 * S], boot), None);
    }
}
