//! `alertctl journal test`: the chains over real entries, nothing done.

use std::io::{BufRead, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alertcore::Config;
use alertcore_journal::chain::Actions;
use alertcore_journal::follow::Follow;
use alertcore_journal::{Entry, JournalConfig, Outcome, ReportConfig, Runner};
use serde_json::json;

use crate::Fail;
use crate::cli::JournalTestArgs;

/// The config's `[journal]`, or a usage error without one.
fn journal_config(config: &Config) -> Result<JournalConfig, Fail> {
    JournalConfig::from_config(config)?.ok_or_else(|| {
        Fail::usage("the config has no [journal] table: there are no chains to test")
    })
}

/// The journal's entries of the last `span`, read as the daemon reads them, each
/// handed to `each`.
async fn read_span(
    journal: &JournalConfig,
    span: Duration,
    each: impl FnMut(&mut Entry),
) -> Result<(), Fail> {
    let since = SystemTime::now()
        .checked_sub(span)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let follow = Follow::of(journal);
    alertcore_journal::watch::read_each(&follow, &format!("since=@{since}"), each)
        .await
        .map_err(|e| Fail {
            code: 1,
            message: format!("cannot read the journal: {e}"),
        })
}

pub(crate) async fn test(config: &Config, args: &JournalTestArgs) -> Result<u8, Fail> {
    let journal = journal_config(config)?;
    let entries = match &args.file {
        Some(path) => read_file(path)?,
        None => {
            let mut list = Vec::new();
            read_span(&journal, args.since, |e| list.push(e.clone())).await?;
            list
        }
    };
    let now = alertcore::Timestamp::from_system_time(SystemTime::now());
    let results = alertcore_journal::dry_run(&journal, entries, now);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        writeln!(out, "{}", to_json(&journal, &results))
    } else {
        write!(out, "{}", to_text(&journal, &results, args.all))
    };
    written.map_err(|e| Fail::other(&e))?;
    Ok(0)
}

/// Entries from a file of `journalctl -o json` lines (`-`: stdin).
fn read_file(path: &std::path::Path) -> Result<Vec<Entry>, Fail> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path)
            .map_err(|e| Fail::usage(format!("cannot read {}: {e}", path.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line.map_err(|e| Fail::usage(format!("cannot read {}: {e}", path.display())))?;
        let line = String::from_utf8_lossy(&line);
        if line.trim().is_empty() {
            continue;
        }
        let entry = Entry::parse(&line).map_err(|e| {
            Fail::usage(format!(
                "{}:{}: not a journal entry: {e}",
                path.display(),
                i + 1
            ))
        })?;
        out.push(entry);
    }
    Ok(out)
}

fn step_name(journal: &JournalConfig, chain: usize, step: usize) -> String {
    format!("{} step {}", journal.chains.chains[chain].name, step + 1)
}

fn to_text(journal: &JournalConfig, results: &[(Entry, Outcome)], all: bool) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let mut shown = 0;
    let (mut alerts, mut actions, mut dropped, mut reported) = (0, 0, 0, 0);
    for (entry, out) in results {
        alerts += out.alerts.len();
        actions += out.queued;
        dropped += usize::from(out.dropped);
        reported += usize::from(out.reported);
        let acted = out.trace.iter().any(|h| h.did.is_some());
        if !all && !acted {
            continue;
        }
        shown += 1;
        let when = entry
            .time()
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        let who = entry
            .get("SYSLOG_IDENTIFIER")
            .or_else(|| entry.get("_COMM"))
            .unwrap_or("-");
        let _ = writeln!(s, "{when} {who}: {}", entry.message());
        for h in &out.trace {
            let name = step_name(journal, h.chain, h.step);
            match (&h.did, h.matched) {
                (Some(did), _) => {
                    let _ = writeln!(s, "  {name}: {did}");
                }
                (None, true) => {
                    let _ = writeln!(s, "  {name}: matched");
                }
                (None, false) => {
                    let _ = writeln!(s, "  {name}: no match");
                }
            }
        }
    }
    let _ = writeln!(
        s,
        "{} read, {shown} shown; would have: {}, {}, {} dropped, {} reported",
        if results.len() == 1 {
            "1 entry".to_owned()
        } else {
            format!("{} entries", results.len())
        },
        alertcore::transport::plural(alerts, "alert"),
        alertcore::transport::plural(actions, "program run"),
        dropped,
        reported
    );
    s
}

fn to_json(journal: &JournalConfig, results: &[(Entry, Outcome)]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = results
        .iter()
        .map(|(entry, out)| {
            json!({
                "cursor": entry.cursor(),
                "time": entry.time().map(|t| t.to_string()),
                "identifier": entry.get("SYSLOG_IDENTIFIER"),
                "message": entry.message(),
                "steps": out.trace.iter().map(|h| json!({
                    "chain": journal.chains.chains[h.chain].name,
                    "step": h.step + 1,
                    "matched": h.matched,
                    "did": h.did,
                })).collect::<Vec<_>>(),
                "alerts": out.alerts.iter().map(|a| json!({
                    "service": a.service,
                    "severity": a.severity.as_str(),
                    "message": a.message,
                    "recovery": a.recovery,
                })).collect::<Vec<_>>(),
                "dropped": out.dropped,
                "reported": out.reported,
            })
        })
        .collect();
    json!({ "entries": list })
}

/// `alertctl report journal [--since D] [--json] [--send N]...`: the lines collected for
/// the next daily report, or (with `since`) what the chains make of that span; sent
/// through `send` when given: 0, or 3 when a send failed.
pub(crate) async fn report(
    engine: &alertcore::Engine,
    config: &Config,
    since: Option<Duration>,
    json: bool,
    send: &[String],
) -> Result<u8, Fail> {
    crate::report::check_send(engine, send)?;
    let journal = journal_config(config)?;
    let max_lines = journal
        .report
        .as_ref()
        .map_or(ReportConfig::MAX_LINES, |r| r.max_lines);
    let now = engine.now();
    let digest = match since {
        Some(span) => {
            // the chains' report lines of that span, nothing done (the third part too:
            // it is what a report is for)
            let mut actions = Actions::of(&journal);
            actions.collect_other = true;
            let mut runner = Runner::new(&journal.chains, &actions);
            let mut state = alertcore_journal::State::default();
            read_span(&journal, span, |e| {
                let at = e.time().unwrap_or(now).as_millis();
                runner.run(e, &mut state, at, now.as_millis());
            })
            .await?;
            alertcore_journal::report::digest(&state, now.saturating_sub(span), now, max_lines)
        }
        None => {
            let state = alertcore_journal::State::load(engine.store().as_ref())
                .map_err(|e| Fail::other(&e))?;
            let last = state
                .report_sent()
                .map_or(now, alertcore::Timestamp::from_millis);
            alertcore_journal::report::digest(&state, last, now, max_lines)
        }
    };
    let text = if json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&digest).unwrap_or_default()
        )
    } else {
        digest.text(&|t| t.to_string())
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Fail::other(&e))?;
    if send.is_empty() {
        return Ok(0);
    }
    let sent = alertcore_journal::watch::send_digest(engine, send, digest).await;
    Ok(if sent == send.len() { 0 } else { 3 })
}
