//! Running an entry through the chains ([`Chains`]): which steps matched, what the
//! actions did to the [`State`], and what is left to do outside (alerts, programs).

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use alertcore::Severity;
use regex::SetMatches;

use crate::entry::Entry;
use crate::spec::{Chains, Class, JournalConfig, What};
use crate::state::{Pending, State};

/// An alert an entry caused: a failure (or success) of a service for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The service.
    pub service: String,
    /// Warning or critical.
    pub severity: Severity,
    /// The alert's message.
    pub message: String,
    /// A success instead of a failure.
    pub recovery: bool,
    /// The entry's cursor and the step: the failure's invocation id, so an entry
    /// handled again after a crash is not alerted twice.
    pub id: Option<String>,
}

/// What one step did with the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The chain's index.
    pub chain: usize,
    /// The step's index.
    pub step: usize,
    /// A filter that matched, or an action that acted.
    pub matched: bool,
    /// What an action did, in words.
    pub did: Option<String>,
}

/// What an entry did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Alerts for the engine, in order.
    pub alerts: Vec<Alert>,
    /// Programs queued in the state (exec, ban) to run once it is saved.
    pub queued: usize,
    /// A `drop` step took it.
    pub dropped: bool,
    /// A `report` step classified it.
    pub reported: bool,
    /// Every step it went through, in order: only from a [`Runner::traced`] runner.
    pub trace: Vec<Hit>,
}

/// Settings an action needs beside its step.
#[derive(Debug, Clone)]
pub struct Actions {
    /// The nftables program.
    pub nft: String,
    /// The ban sets' table.
    pub table: String,
    /// IPv4 set.
    pub set4: String,
    /// IPv6 set.
    pub set6: String,
    /// Whether entries no chain dropped or reported go in the report's third part.
    pub collect_other: bool,
}

impl Actions {
    /// From `[journal]`.
    pub fn of(config: &JournalConfig) -> Self {
        Self {
            nft: config.nft.display().to_string(),
            table: config.ban_table.clone(),
            set4: config.ban_set.clone(),
            set6: config.ban_set6.clone(),
            collect_other: config.report.is_some(),
        }
    }

    /// The nft program that adds `address` to its set for `secs`, described as `what`.
    pub fn ban(&self, address: IpAddr, secs: u64, what: String) -> Pending {
        let set = if address.is_ipv4() {
            &self.set4
        } else {
            &self.set6
        };
        let mut argv = vec![self.nft.clone(), "add".into(), "element".into()];
        argv.extend(self.table.split_whitespace().map(str::to_owned));
        argv.push(set.clone());
        argv.push(format!("{{ {address} timeout {secs}s }}"));
        Pending {
            argv,
            env: Vec::new(),
            timeout_ms: NFT_TIMEOUT_MS,
            what,
        }
    }
}

/// How long an `nft` call may take.
const NFT_TIMEOUT_MS: u64 = 30_000;

/// The flow out of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// On to the next entry chain.
    Next,
    /// The entry's way ends.
    Stop,
}

/// Per-entry scratch: the prefilter results by field.
struct Scratch {
    sets: Vec<(String, SetMatches)>,
    rewritten: HashSet<String>,
}

/// Users of this system, from `/etc/passwd`, read again when it changes.
#[derive(Debug, Default)]
pub struct Users {
    read: Option<(SystemTime, HashSet<String>)>,
}

impl Users {
    fn exists(&mut self, name: &str) -> bool {
        let path = "/etc/passwd";
        let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let fresh = matches!((&self.read, mtime), (Some((t, _)), Some(m)) if *t == m);
        if !fresh {
            let names = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split(':').next())
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
            self.read = Some((mtime.unwrap_or(SystemTime::UNIX_EPOCH), names));
        }
        self.read.as_ref().is_some_and(|(_, n)| n.contains(name))
    }
}

/// Runs entries through chains, keeping what they remember in a [`State`].
#[derive(Debug)]
pub struct Runner<'a> {
    chains: &'a Chains,
    actions: &'a Actions,
    users: Users,
    trace: bool,
}

impl<'a> Runner<'a> {
    /// A runner of `chains`.
    pub fn new(chains: &'a Chains, actions: &'a Actions) -> Self {
        Self {
            chains,
            actions,
            users: Users::default(),
            trace: false,
        }
    }

    /// The same, keeping in each [`Outcome::trace`] every step an entry went through
    /// (what `alertctl journal test` shows; the daemon does without).
    #[must_use]
    pub fn traced(mut self) -> Self {
        self.trace = true;
        self
    }

    /// Runs `entry` through the chains, changing `state` (counters, report lines,
    /// bans, queued programs). Counters and report lines count at `at` (ms: the entry's
    /// time); bans run from `now` (ms).
    pub fn run(&mut self, entry: &mut Entry, state: &mut State, at: i64, now: i64) -> Outcome {
        let mut out = Outcome::default();
        // (an entry stamped in the future does not age every counter at once)
        state.seen(at.min(now));
        let mut scratch = Scratch {
            sets: Vec::new(),
            rewritten: HashSet::new(),
        };
        for &c in &self.chains.entry {
            if self.chain(c, entry, state, (at, now), &mut out, &mut scratch) == Flow::Stop {
                break;
            }
        }
        if self.actions.collect_other && !out.dropped && !out.reported {
            let ident = entry
                .get("SYSLOG_IDENTIFIER")
                .or_else(|| entry.get("_COMM"))
                .unwrap_or("")
                .to_owned();
            let message = format!("{ident}: {}", entry.message());
            state.report(Class::Other, &shape(&message), &message, at);
        }
        out
    }

    fn chain(
        &mut self,
        c: usize,
        entry: &mut Entry,
        state: &mut State,
        (at, now): (i64, i64),
        out: &mut Outcome,
        scratch: &mut Scratch,
    ) -> Flow {
        let chains = self.chains;
        let trace = self.trace;
        for (i, step) in chains.chains[c].steps.iter().enumerate() {
            // (`did` is only worded when traced)
            let mut hit = |matched, did| {
                if trace {
                    out.trace.push(Hit {
                        chain: c,
                        step: i,
                        matched,
                        did,
                    });
                }
            };
            if step.what.is_filter() {
                let matched = self.filter(&step.what, entry, state, at, scratch);
                hit(matched, None);
                if !matched {
                    return match step.otherwise {
                        Some(o) => self.chain(o, entry, state, (at, now), out, scratch),
                        None => Flow::Next,
                    };
                }
                continue;
            }
            let flow = match &step.what {
                What::Drop => {
                    out.dropped = true;
                    hit(true, trace.then(|| "dropped".into()));
                    Flow::Stop
                }
                What::Jump(t) => {
                    hit(
                        true,
                        trace.then(|| format!("jump to {}", chains.chains[*t].name)),
                    );
                    self.chain(*t, entry, state, (at, now), out, scratch)
                }
                other => {
                    let did = self.act(other, (c, i), entry, state, (at, now), out);
                    if trace {
                        out.trace.push(Hit {
                            chain: c,
                            step: i,
                            matched: true,
                            did: Some(did),
                        });
                    }
                    Flow::Next
                }
            };
            if flow == Flow::Stop || step.stop {
                return Flow::Stop;
            }
        }
        Flow::Next
    }

    fn filter(
        &mut self,
        what: &What,
        entry: &mut Entry,
        state: &mut State,
        at: i64,
        scratch: &mut Scratch,
    ) -> bool {
        match what {
            What::Fields(list) => list.iter().all(|(field, values)| {
                entry
                    .get(field)
                    .is_some_and(|v| values.iter().any(|x| x == v))
            }),
            What::Regex(list) => {
                let mut captures: Vec<(String, String)> = Vec::new();
                for (field, re, index) in list {
                    let Some(value) = entry.get(field) else {
                        return false;
                    };
                    if !scratch.rewritten.contains(field)
                        && let Some(set) = self.chains.prefilter.get(field)
                    {
                        let known = scratch.sets.iter().position(|(f, _)| f == field);
                        let pos = known.unwrap_or_else(|| {
                            scratch.sets.push((field.clone(), set.matches(value)));
                            scratch.sets.len() - 1
                        });
                        if !scratch.sets[pos].1.matched(*index) {
                            return false;
                        }
                    }
                    let Some(caps) = re.captures(value) else {
                        return false;
                    };
                    for name in re.capture_names().flatten() {
                        if let Some(m) = caps.name(name) {
                            captures.push((name.to_owned(), m.as_str().to_owned()));
                        }
                    }
                }
                for (k, v) in captures {
                    scratch.sets.retain(|(f, _)| *f != k);
                    scratch.rewritten.insert(k.clone());
                    entry.set(&k, &v);
                }
                true
            }
            What::Priority(max) => entry
                .get("PRIORITY")
                .and_then(|p| p.trim().parse::<u8>().ok())
                .is_some_and(|p| p <= *max),
            What::Greater(list) => list
                .iter()
                .all(|(f, n)| number(entry.get(f)).is_some_and(|v| v > *n)),
            What::Lower(list) => list
                .iter()
                .all(|(f, n)| number(entry.get(f)).is_some_and(|v| v < *n)),
            What::InNetwork(list) => list.iter().all(|(f, nets)| {
                entry
                    .get(f)
                    .and_then(|v| v.trim().parse::<IpAddr>().ok())
                    .is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
            }),
            What::UserExists(f) => entry.get(f).is_some_and(|u| self.users.exists(u)),
            What::WhenCounter {
                counter,
                key,
                at_least,
            } => state.count(counter, &key.render(entry), at) >= *at_least,
            _ => false,
        }
    }

    fn act(
        &mut self,
        what: &What,
        (chain, step): (usize, usize),
        entry: &Entry,
        state: &mut State,
        (at, now): (i64, i64),
        out: &mut Outcome,
    ) -> String {
        match what {
            What::Alert {
                service,
                severity,
                message,
                recovery,
            } => {
                let service = service.render(entry);
                let message = message.render(entry);
                let id = entry.cursor().map(|c| format!("{c}#{chain}.{step}"));
                let did = if *recovery {
                    format!("recovery of {service}")
                } else {
                    format!("{} alert for {service}: {message}", severity.as_str())
                };
                out.alerts.push(Alert {
                    service,
                    severity: *severity,
                    message,
                    recovery: *recovery,
                    id,
                });
                did
            }
            What::CounterRaise {
                counter,
                key,
                window,
            } => {
                let key = key.render(entry);
                let n = state.raise(counter, &key, window.map(millis), at);
                format!("counter {counter}[{key}] = {n}")
            }
            What::CounterReset {
                counter,
                key,
                grace,
            } => {
                let key = key.render(entry);
                state.reset(counter, &key, grace.map(millis), at);
                format!("counter {counter}[{key}] reset")
            }
            What::Report { class, message } => {
                let line = message.render(entry);
                state.report(*class, &line, &line, at);
                out.reported = true;
                format!("report ({}): {line}", class.as_str())
            }
            What::Exec { argv, timeout } => {
                let argv: Vec<String> = argv.iter().map(|a| a.render(entry)).collect();
                let did = format!("exec {}", argv.join(" "));
                state.queue(Pending {
                    env: entry
                        .fields()
                        .filter(|(k, v)| {
                            !k.is_empty()
                                && !k.contains('=')
                                && !v.contains('\0')
                                && !k.contains('\0')
                        })
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    what: did.clone(),
                    argv,
                });
                out.queued += 1;
                did
            }
            What::Ban { address, duration } => {
                let text = address.render(entry);
                let Ok(ip) = text.trim().parse::<IpAddr>() else {
                    return format!("no ban: {text:?} is not an IP address");
                };
                // a ban runs from when it is made, as the set's timeout does (an entry
                // read from a backlog is banned for the whole time too)
                state.ban(&ip.to_string(), now.saturating_add(millis(*duration)));
                let did = format!("ban {ip} for {}", alertcore::duration::format(*duration));
                state.queue(self.actions.ban(ip, duration.as_secs().max(1), did.clone()));
                out.queued += 1;
                did
            }
            _ => String::new(),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn number(v: Option<&str>) -> Option<f64> {
    v?.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A line's shape for the report's third part: every run of digits as `#`, so lines
/// that differ only in numbers (PIDs, ports, counts) count as one.
pub fn shape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_digits = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alertcore::Config;

    pub(crate) const SSHD: &str = r#"
[journal.chains]
sshd = [
  { in = { SYSLOG_IDENTIFIER = ["sshd", "sshd-session"] } },
  { regex = { MESSAGE = '^Failed \S+ for (invalid user )?\S+ from (?P<ip>\S+) port' } },
  { counter_raise = "sshd", key = "{{ ip }}", window = "10m" },
  { when_counter = "sshd", key = "{{ ip }}", at_least = 5 },
  { ban = "{{ ip }}", for = "1h" },
  { counter_reset = "sshd", key = "{{ ip }}", grace = "1h" },
  { alert = "sshd-ban", message = "banned {{ ip }} for 1h after 5 failed logins" },
]
"#;

    pub(crate) fn config(text: &str) -> JournalConfig {
        let c = Config::parse(text, "t.toml").expect("config parses");
        JournalConfig::from_config(&c)
            .expect("journal config")
            .expect("a [journal]")
    }

    fn failed(ident: &str, ip: &str, at_s: i64) -> Entry {
        Entry::from_fields([
            ("SYSLOG_IDENTIFIER", ident.to_owned()),
            (
                "MESSAGE",
                format!("Failed password for root from {ip} port 4242 ssh2"),
            ),
            ("__CURSOR", format!("c{at_s}")),
            ("__REALTIME_TIMESTAMP", (at_s * 1_000_000).to_string()),
        ])
    }

    /// The important part's lines and counts, sorted.
    fn important_lines(state: &State) -> Vec<(&str, u64)> {
        let mut lines: Vec<(&str, u64)> = state
            .items(Class::Important)
            .0
            .iter()
            .map(|i| (i.message.as_str(), i.count))
            .collect();
        lines.sort_unstable();
        lines
    }

    fn run_all(c: &JournalConfig, entries: Vec<Entry>, state: &mut State) -> Vec<Outcome> {
        let actions = Actions::of(c);
        let mut r = Runner::new(&c.chains, &actions).traced();
        entries
            .into_iter()
            .map(|mut e| {
                let at = e.time().expect("time").as_millis();
                r.run(&mut e, state, at, at)
            })
            .collect()
    }

    /// Idle counters are forgotten by the newest entry time seen, but never beyond
    /// now: one entry stamped a year ahead does not make every counter's hits old.
    #[test]
    fn an_entry_from_the_future_ages_no_counter() {
        let c = config(SSHD);
        let actions = Actions::of(&c);
        let mut r = Runner::new(&c.chains, &actions);
        let mut state = State::default();
        let now = 1000 * 1000;
        let mut e = failed("sshd", "192.0.2.7", 1000);
        r.run(&mut e, &mut state, now, now);
        let year = 365 * 86_400 * 1000;
        let mut odd = Entry::from_fields([("MESSAGE", "from the future")]);
        r.run(&mut odd, &mut state, now + year, now + 2000);
        let _ = state.checkpoint(alertcore::Timestamp::from_millis(now + 2000));
        assert_eq!(state.count("sshd", "192.0.2.7", now + 2000), 1);
    }

    #[test]
    fn five_failed_logins_in_ten_minutes_ban_once_and_alert_once() {
        let c = config(SSHD);
        let mut state = State::default();
        // both names Debian's OpenSSH logs under; one address 5 times in 8 minutes,
        // another 4 times
        let mut entries = Vec::new();
        for i in 0..5 {
            let ident = if i % 2 == 0 { "sshd" } else { "sshd-session" };
            entries.push(failed(ident, "192.0.2.7", 1000 + i * 120));
            if i < 4 {
                entries.push(failed("sshd", "198.51.100.9", 1001 + i * 120));
            }
        }
        let out = run_all(&c, entries, &mut state);
        let alerts: Vec<&Alert> = out.iter().flat_map(|o| &o.alerts).collect();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0].service, "sshd-ban");
        assert_eq!(
            alerts[0].message,
            "banned 192.0.2.7 for 1h after 5 failed logins"
        );
        assert_eq!(out.iter().map(|o| o.queued).sum::<usize>(), 1);
        let queued = state.pending();
        assert_eq!(queued.len(), 1);
        assert_eq!(
            queued[0].1.argv,
            [
                "nft",
                "add",
                "element",
                "inet",
                "alertcore",
                "banned4",
                "{ 192.0.2.7 timeout 3600s }"
            ]
        );
        // the counter was reset by the ban; the other address still has 4
        assert_eq!(state.count("sshd", "192.0.2.7", 1_500_000), 0);
        assert_eq!(state.count("sshd", "198.51.100.9", 1_500_000), 4);
        // 5 hits spread over more than the window never reach 5 at once
        let mut late = State::default();
        let spread: Vec<Entry> = (0..5)
            .map(|i| failed("sshd", "203.0.113.1", 2000 + i * 200))
            .collect();
        let out = run_all(&c, spread, &mut late);
        assert!(out.iter().all(|o| o.alerts.is_empty()));
        assert_eq!(late.count("sshd", "203.0.113.1", 2800 * 1000), 3);
    }

    #[test]
    fn other_entries_pass_the_chain_untouched() {
        let c = config(SSHD);
        let mut state = State::default();
        let e = Entry::from_fields([
            ("SYSLOG_IDENTIFIER", "sshd"),
            (
                "MESSAGE",
                "Accepted publickey for root from 192.0.2.7 port 1 ssh2",
            ),
            ("__REALTIME_TIMESTAMP", "1000000"),
        ]);
        let out = run_all(&c, vec![e], &mut state);
        assert_eq!(out[0].trace.len(), 2);
        assert!(out[0].trace[0].matched && !out[0].trace[1].matched);
        assert!(!state.dirty());
    }

    #[test]
    fn jumps_return_else_does_not_and_drop_and_stop_end_the_way() {
        let c = config(
            r#"
[journal.report]
at = "06:00"

[journal.chains]
first = [
  { equals = { A = "x" }, else = "notx" },
  { jump = "sub" },
  { report = "interesting", message = "after jump {{ A }}" },
]
second = [
  { report = "important", message = "second saw {{ A }}", stop = true },
  { report = "important", message = "never" },
]
sub = [
  { equals = { B = "drop" } },
  { drop = true },
]
notx = [
  { report = "important", message = "not x: {{ A }}" },
]
"#,
        );
        assert_eq!(
            c.chains
                .entry
                .iter()
                .map(|&i| c.chains.chains[i].name.as_str())
                .collect::<Vec<_>>(),
            ["first", "second"]
        );
        let mut state = State::default();
        let e = |a: &str, b: &str| {
            Entry::from_fields([("A", a), ("B", b), ("__REALTIME_TIMESTAMP", "5000000")])
        };
        let out = run_all(
            &c,
            vec![e("x", "keep"), e("x", "drop"), e("y", "-"), e("z", "-")],
            &mut state,
        );
        assert!(!out[0].dropped && out[0].reported);
        assert!(out[1].dropped && !out[1].reported);
        assert_eq!(
            important_lines(&state),
            [
                ("not x: y", 1),
                ("not x: z", 1),
                ("second saw x", 1),
                ("second saw y", 1),
                ("second saw z", 1)
            ]
        );
        let (interesting, _) = state.items(Class::Interesting);
        assert_eq!(interesting.len(), 1);
        assert_eq!(interesting[0].message, "after jump x");
        // nothing reached the third part: every entry was reported or dropped
        assert!(state.items(Class::Other).0.is_empty());
    }

    #[test]
    fn filters_priority_numbers_networks_users_and_counters_with_grace() {
        let c = config(
            r#"
[journal.chains]
p = [ { priority = "err" }, { report = "important", message = "p{{ PRIORITY }}" } ]
g = [ { greater = { N = 10 } }, { lower = { N = 20 } }, { report = "important", message = "g{{ N }}" } ]
n = [ { in_network = { IP = ["10.0.0.0/8", "2001:db8::/32"] } }, { report = "important", message = "n{{ IP }}" } ]
u = [ { user_exists = "U" }, { report = "important", message = "u{{ U }}" } ]
c = [
  { equals = { C = "hit" } },
  { counter_raise = "c", window = "1h" },
  { when_counter = "c", at_least = 2 },
  { counter_reset = "c", grace = "10s" },
  { report = "important", message = "c reached" },
]
"#,
        );
        let mut state = State::default();
        let e = |k: &str, v: &str, t: i64| {
            Entry::from_fields([
                (k.to_owned(), v.to_owned()),
                ("__REALTIME_TIMESTAMP".into(), (t * 1_000_000).to_string()),
            ])
        };
        let entries = vec![
            e("PRIORITY", "3", 1),
            e("PRIORITY", "4", 1),
            e("PRIORITY", "x", 1),
            e("N", "15", 1),
            e("N", "25", 1),
            e("N", "ten", 1),
            e("IP", "10.1.2.3", 1),
            e("IP", "11.1.2.3", 1),
            e("IP", "2001:db8::1", 1),
            e("IP", "::ffff:10.0.0.1", 1),
            e("IP", "not an ip", 1),
            e("U", "root", 1),
            e("U", "no-such-user-here", 1),
            // two hits reach 2 and reset; two within the grace do not count; two after do
            e("C", "hit", 100),
            e("C", "hit", 101),
            e("C", "hit", 105),
            e("C", "hit", 106),
            e("C", "hit", 112),
            e("C", "hit", 113),
        ];
        run_all(&c, entries, &mut state);
        assert_eq!(
            important_lines(&state),
            [
                ("c reached", 2),
                ("g15", 1),
                ("n10.1.2.3", 1),
                ("n2001:db8::1", 1),
                ("n::ffff:10.0.0.1", 1),
                ("p3", 1),
                ("uroot", 1),
            ]
        );
    }

    #[test]
    fn captures_become_fields_and_the_prefilter_skips_patterns_that_cannot_match() {
        let c = config(
            r#"
[journal.chains]
a = [
  { regex = { MESSAGE = '^user (?P<who>\w+) logged in' } },
  { regex = { who = '^adm' } },
  { report = "important", message = "admin {{ who }}" },
]
b = [
  { regex = { MESSAGE = 'disk (?P<dev>sd\w+) failed' } },
  { report = "important", message = "disk {{ dev }}" },
]
"#,
        );
        assert_eq!(c.chains.prefilter["MESSAGE"].len(), 2);
        assert_eq!(c.chains.prefilter["who"].len(), 1);
        let mut state = State::default();
        let e = |m: &str| Entry::from_fields([("MESSAGE", m), ("__REALTIME_TIMESTAMP", "1000000")]);
        run_all(
            &c,
            vec![
                e("user admin logged in"),
                e("user bob logged in"),
                e("disk sdb failed"),
                e("nothing here"),
            ],
            &mut state,
        );
        let (important, _) = state.items(Class::Important);
        let mut lines: Vec<&str> = important.iter().map(|i| i.message.as_str()).collect();
        lines.sort_unstable();
        assert_eq!(lines, ["admin admin", "disk sdb"]);
    }

    #[test]
    fn the_third_part_counts_lines_by_shape() {
        let c = config(
            "[journal.report]\n[journal.chains]\nx = [ { equals = { A = \"1\" } }, { drop = true } ]\n",
        );
        let mut state = State::default();
        let e = |m: &str, t: i64| {
            Entry::from_fields([
                ("SYSLOG_IDENTIFIER", "cron".to_owned()),
                ("MESSAGE", m.to_owned()),
                ("__REALTIME_TIMESTAMP", (t * 1_000_000).to_string()),
            ])
        };
        run_all(
            &c,
            vec![
                e("job 12 ran in 3s", 10),
                e("job 13 ran in 45s", 20),
                e("odd line", 30),
            ],
            &mut state,
        );
        let (other, more) = state.items(Class::Other);
        assert_eq!(more, 0);
        assert_eq!(other.len(), 2);
        assert_eq!(
            (other[0].message.as_str(), other[0].count),
            ("cron: job 12 ran in 3s", 2)
        );
        assert_eq!((other[0].first, other[0].last), (10_000, 20_000));
        assert_eq!(shape("a1b22c333"), "a#b#c#");
    }
}
