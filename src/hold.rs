//! `alertctl silence add|list|expire` and `alertctl ack`.

use alertcore::hold::{Matchers, Silence};
use alertcore::rules::Patterns;
use alertcore::{Engine, Timestamp};
use serde::Serialize;

use crate::Fail;
use crate::cli::SilenceCommand;

/// Who runs this: the user behind `sudo`, else the login name, else the uid.
pub(crate) fn invoking_user() -> String {
    for var in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            return v;
        }
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next())
                .map(|uid| format!("uid {uid}"))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    silence: &'a Silence,
    active: bool,
}

/// `alertctl silence ...`.
pub(crate) fn silence(engine: &Engine, action: &SilenceCommand) -> Result<u8, Fail> {
    let store = engine.store();
    let now = engine.now();
    let router = engine.router();
    match action {
        SilenceCommand::Add {
            services,
            hosts,
            severity,
            duration,
            until,
            start,
            comment,
        } => {
            let patterns = |list: &[String], what: &str| {
                Patterns::parse(list).map_err(|e| Fail::usage(format!("--{what}: {e}")))
            };
            let matchers = Matchers::new(
                patterns(services, "service")?,
                patterns(hosts, "host")?,
                *severity,
            );
            let starts = match start {
                Some(t) => router
                    .parse_time(t)
                    .map_err(|e| Fail::usage(format!("--start: {e}")))?,
                None => now,
            };
            let ends = match (duration, until) {
                (Some(d), _) => starts.saturating_add(*d),
                (None, Some(t)) => router
                    .parse_time(t)
                    .map_err(|e| Fail::usage(format!("--until: {e}")))?,
                (None, None) => return Err(Fail::usage("give --for DURATION or --until TIME")),
            };
            if ends <= starts || ends <= now {
                return Err(Fail::usage(
                    "the silence would be over before it starts: its end must be after its start and after now",
                ));
            }
            let silence = Silence::new(
                matchers,
                (starts, ends),
                comment.as_str(),
                invoking_user(),
                now,
            );
            let id = store.add_silence(&silence).map_err(|e| Fail::other(&e))?;
            println!(
                "silence {id}: {} from {} until {} ({}): {}",
                silence.matchers,
                router.local_time(starts),
                router.local_time(ends),
                silence.created_by,
                silence.comment
            );
            Ok(0)
        }
        SilenceCommand::List { all, json } => {
            let from = if *all {
                Timestamp::from_millis(i64::MIN)
            } else {
                now
            };
            let list = store.silences(from).map_err(|e| Fail::other(&e))?;
            if *json {
                let out: Vec<Listed<'_>> = list
                    .iter()
                    .map(|s| Listed {
                        silence: s,
                        active: s.active_at(now),
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
                return Ok(0);
            }
            if list.is_empty() {
                println!("no silences");
            }
            for s in &list {
                let state = if s.active_at(now) {
                    "active"
                } else if s.ends <= now {
                    "ended"
                } else {
                    "pending"
                };
                println!(
                    "{} {state}: {} from {} until {} (by {}: {})",
                    s.id,
                    s.matchers,
                    router.local_time(s.starts),
                    router.local_time(s.ends),
                    s.created_by,
                    s.comment
                );
            }
            Ok(0)
        }
        SilenceCommand::Expire { id } => {
            if store
                .expire_silence(*id, now)
                .map_err(|e| Fail::other(&e))?
            {
                println!(
                    "silence {id} ended: alerts it held go out at the next flush if still failing"
                );
                Ok(0)
            } else {
                eprintln!("alertctl: no silence {id} that has not ended");
                Ok(1)
            }
        }
    }
}

/// `alertctl ack SERVICE [--comment TEXT] [--notify]`: 1 if the service is not
/// failing, 3 if a notice was not delivered.
pub(crate) async fn ack(
    engine: &Engine,
    service: &str,
    comment: Option<String>,
    notify: bool,
) -> Result<u8, Fail> {
    let by = invoking_user();
    let Some(deliveries) = engine
        .ack(service, &by, comment, notify)
        .await
        .map_err(|e| Fail::other(&e))?
    else {
        eprintln!("alertctl: {service} is not failing: nothing to acknowledge");
        return Ok(1);
    };
    println!("{service}: acknowledged by {by}: no more reminders of this failure");
    Ok(crate::print_deliveries(&deliveries, |_| true))
}
