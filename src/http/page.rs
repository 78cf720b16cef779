//! `GET /status`: the status page. Plain server-rendered HTML, no script and no
//! external asset, readable on a phone, refreshed by the browser every 30 seconds.

use std::fmt::Write as _;

use alertcore::Timestamp;
use alertcore::policy::Outcome;
use alertcore::transport::html_escape as esc;
use alertcore::transport::plural;
use alertcore_checks::heartbeat::Standing;

use crate::status::StatusOut;

/// How often the page reloads itself, in seconds.
const REFRESH: u32 = 30;

const STYLE: &str = "\
body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;max-width:60em;padding:.5em 1em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em;border-bottom:1px solid #ccc}\
.wrap{overflow-x:auto}table{border-collapse:collapse;width:100%}\
td,th{text-align:left;padding:.3em .5em;border-bottom:1px solid #eee;vertical-align:top}\
.bad{color:#b00020;font-weight:600}.warn{color:#8a5a00;font-weight:600}.ok{color:#1b7f3b}\
li{margin:.4em 0}.muted{color:#666;font-size:.9em}";

/// `2026-12-07T03:00:00Z (2h 5m ago)`.
fn when(t: Timestamp, now: Timestamp) -> String {
    let ago = now.saturating_duration_since(t);
    let ago = std::time::Duration::from_secs(ago.as_secs());
    if t > now {
        let ahead = t.saturating_duration_since(now);
        let ahead = std::time::Duration::from_secs(ahead.as_secs());
        format!("{t} (in {})", alertcore::duration::format(ahead))
    } else {
        format!("{t} ({} ago)", alertcore::duration::format(ago))
    }
}

fn opt(t: Option<Timestamp>, now: Timestamp) -> String {
    t.map_or_else(|| "never".to_owned(), |t| when(t, now))
}

/// The page for `out`, as `host` sees it at `now`.
pub(crate) fn render(out: &StatusOut, host: &str, now: Timestamp) -> String {
    let failing: Vec<_> = out.services.iter().filter(|s| s.failing).collect();
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH}\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>alertcore on {host}: {n} failing</title><style>{STYLE}</style></head><body>\
         <h1>alertcore on {host}</h1>\
         <p class=\"{cls}\" id=\"summary\">{n} failing · {checks} · {hbs} · {pending} pending or failed</p>",
        host = esc(host),
        n = failing.len(),
        cls = if failing.is_empty() { "ok" } else { "bad" },
        checks = plural(out.checks.len(), "check"),
        hbs = plural(out.heartbeats.len(), "heartbeat"),
        pending = match out.outbox_pending + out.outbox_failed {
            1 => "1 delivery".to_owned(),
            n => format!("{n} deliveries"),
        },
    );

    h.push_str("<section id=\"failing\"><h2>Failing</h2>");
    if failing.is_empty() {
        h.push_str("<p class=\"ok\">Nothing is failing.</p>");
    } else {
        h.push_str("<ul>");
        for s in &failing {
            let alerted: Vec<String> = s
                .notifiers
                .iter()
                .map(|r| format!("{} ({})", esc(&r.notifier), r.outcome.as_str()))
                .collect();
            let _ = write!(
                h,
                "<li class=\"failing\" data-service=\"{name}\"><span class=\"bad\">{name}</span> \
                 <span class=\"severity\">{sev}</span> since {since}, {n} failures<br>\
                 <span class=\"message\">{msg}</span><br><span class=\"muted\">alerted: {alerted}</span></li>",
                name = esc(&s.service),
                sev = s.severity.map_or("", |v| v.as_str()),
                since = opt(s.failing_since, now),
                n = s.consecutive_failures,
                msg = esc(s.last_message.as_deref().unwrap_or("")),
                alerted = if alerted.is_empty() {
                    "nobody yet".to_owned()
                } else {
                    alerted.join(", ")
                },
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");

    if !out.heartbeats.is_empty() {
        h.push_str(
            "<section id=\"heartbeats\"><h2>Heartbeats</h2><div class=\"wrap\"><table>\
             <tr><th>name</th><th>state</th><th>last success</th><th>late after</th></tr>",
        );
        for hb in &out.heartbeats {
            let a = &hb.assessment;
            let (state, cls, what) = match &a.standing {
                Standing::New => ("new", "muted", "no run yet".to_owned()),
                Standing::Up => ("up", "ok", "up".to_owned()),
                Standing::Down(p) => ("down", "bad", format!("{}: {}", p.result, p.message)),
            };
            let running = a
                .running_since
                .map(|t| {
                    format!(
                        "<br><span class=\"muted\">running since {}</span>",
                        when(t, now)
                    )
                })
                .unwrap_or_default();
            let _ = write!(
                h,
                "<tr class=\"heartbeat\" data-name=\"{name}\" data-state=\"{state}\"><td>{name}</td>\
                 <td class=\"{cls}\">{what}{running}</td><td>{last}</td><td>{deadline}</td></tr>",
                name = esc(&hb.name),
                what = esc(&what),
                last = opt(a.last_success, now),
                deadline = opt(a.deadline, now),
            );
        }
        h.push_str("</table></div></section>");
    }

    if !out.checks.is_empty() {
        h.push_str(
            "<section id=\"checks\"><h2>Checks</h2><div class=\"wrap\"><table>\
             <tr><th>name</th><th>status</th><th>last run</th><th>next run</th></tr>",
        );
        for c in &out.checks {
            let st = &c.state;
            let (status, message) = st.last.as_ref().map_or(("pending", ""), |l| {
                (l.outcome.status.as_str(), l.outcome.message.as_str())
            });
            let cls = match status {
                "ok" => "ok",
                "warning" | "unknown" => "warn",
                "pending" => "muted",
                _ => "bad",
            };
            let _ = write!(
                h,
                "<tr class=\"check\" data-name=\"{name}\" data-status=\"{status}\"><td>{name} \
                 <span class=\"muted\">{kind}</span></td><td class=\"{cls}\">{upper}{failing}: \
                 {msg}</td><td>{last}</td><td>{next}</td></tr>",
                name = esc(&c.name),
                kind = esc(&st.kind),
                upper = status.to_uppercase(),
                failing = if st.is_failing() { " (failing)" } else { "" },
                msg = esc(message),
                last = opt(st.last.as_ref().map(|l| l.at), now),
                next = opt(st.next_run, now),
            );
        }
        h.push_str("</table></div></section>");
    }

    h.push_str("<section id=\"outbox\"><h2>Deliveries pending or failed</h2>");
    if out.outbox.is_empty() {
        h.push_str("<p class=\"ok\">None: everything was delivered.</p>");
    } else {
        h.push_str(
            "<div class=\"wrap\"><table><tr><th>#</th><th>what</th><th>state</th><th>last error</th></tr>",
        );
        for r in &out.outbox {
            let state = match (r.status, r.next_attempt) {
                (Outcome::Pending, Some(t)) => format!("pending, next try {}", when(t, now)),
                (Outcome::Pending, None) => "pending".to_owned(),
                (s, _) => s.as_str().to_owned(),
            };
            let _ = write!(
                h,
                "<tr class=\"delivery\" data-status=\"{status}\"><td>{id}</td><td>{kind} of {service} \
                 to {notifier}<br><span class=\"muted\">{attempts} attempts since {created}</span></td>\
                 <td class=\"{cls}\">{state}</td><td>{error}</td></tr>",
                status = r.status.as_str(),
                id = r.id,
                kind = r.kind,
                service = esc(&r.service),
                notifier = esc(&r.notifier),
                attempts = r.attempts,
                created = when(r.created, now),
                cls = if r.status == Outcome::Failed {
                    "bad"
                } else {
                    "warn"
                },
                state = esc(&state),
                error = esc(r.error.as_deref().unwrap_or("")),
            );
        }
        h.push_str("</table></div>");
    }
    h.push_str("</section>");
    let _ = write!(
        h,
        "<p class=\"muted\">{now}; this page reloads every {REFRESH} s. \
         <a href=\"/api/v1/status\">JSON</a> · <a href=\"/metrics\">metrics</a></p></body></html>"
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
