//! What the chains remember between entries and across restarts: counters, the report's
//! items, bans, actions not yet run, and the cursor. Each change marks its row, and
//! [`State::checkpoint`] hands the changed rows over to be saved in one transaction
//! with the cursor of the last entry that made them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use alertcore::{SourceState, Store, StoreError, Timestamp};
use serde::{Deserialize, Serialize};

use crate::spec::Class;

/// Source kinds of the rows.
pub(crate) const CURSOR: &str = "journal-cursor";
pub(crate) const COUNTER: &str = "journal-counter";
pub(crate) const REPORT: &str = "journal-report";
pub(crate) const BAN: &str = "journal-ban";
pub(crate) const ACTION: &str = "journal-action";
pub(crate) const REPORT_SENT: &str = "journal-report-sent";

/// Distinct lines kept per report part; beyond, lines are only counted.
pub const REPORT_DISTINCT: usize = 5000;
/// Hits a counter keeps at most (the oldest go first).
pub const COUNTER_HITS: usize = 10_000;
/// Per report part, the entries of lines beyond [`REPORT_DISTINCT`].
pub(crate) const REPORT_MORE: &str = "journal-report-more";

/// One counter of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    /// When each hit within the window happened (ms), oldest first.
    pub hits: VecDeque<i64>,
    /// How long a hit counts (ms); `None`: until a reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    /// Raises before this (ms) are ignored: the grace after a reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<i64>,
}

impl Counter {
    /// Whether it counts nothing and holds no grace at `at` (ms): it is then the same
    /// as no counter, and forgotten.
    fn idle(&self, at: i64) -> bool {
        self.hits.is_empty() && self.grace_until.is_none_or(|g| g <= at)
    }

    fn prune(&mut self, at: i64) {
        if let Some(w) = self.window {
            while self.hits.front().is_some_and(|h| *h <= at - w) {
                self.hits.pop_front();
            }
        }
    }
}

/// One line of the report: how often, first and last time, a representative message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// How many entries.
    pub count: u64,
    /// The first one's time (ms).
    pub first: i64,
    /// The last one's time (ms).
    pub last: i64,
    /// The first one's message.
    pub message: String,
}

/// A program an action runs: saved before it runs, deleted after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Killed after so long (ms).
    pub timeout_ms: u64,
    /// What it is for, in logs.
    pub what: String,
}

/// The chains' memory.
#[derive(Debug, Default)]
pub struct State {
    counters: HashMap<(String, String), Counter>,
    report: HashMap<(Class, String), Item>,
    report_distinct: HashMap<Class, usize>,
    report_more: HashMap<Class, u64>,
    dirty_more: HashSet<Class>,
    bans: HashMap<String, i64>,
    pending: BTreeMap<String, Pending>,
    cursor: Option<String>,
    /// The newest entry time seen (ms), and the one counters were last swept at.
    latest: i64,
    swept: i64,
    report_sent: Option<i64>,
    next_action: u64,
    dirty_counters: HashSet<(String, String)>,
    dirty_report: HashSet<(Class, String)>,
    dirty_bans: HashSet<String>,
    new_pending: Vec<String>,
    done_pending: Vec<String>,
    cursor_dirty: bool,
    report_sent_dirty: bool,
}

fn class_of(name: &str) -> Class {
    match name {
        "important" => Class::Important,
        "interesting" => Class::Interesting,
        _ => Class::Other,
    }
}

fn split_name(name: &str) -> (&str, &str) {
    name.split_once('\t').unwrap_or((name, ""))
}

impl State {
    /// What the store has.
    ///
    /// # Errors
    /// A [`StoreError`]; a row that does not parse is [`StoreError::Corrupt`].
    pub fn load(store: &dyn Store) -> Result<Self, StoreError> {
        fn parse<T: serde::de::DeserializeOwned>(row: &SourceState) -> Result<T, StoreError> {
            serde_json::from_str(&row.state)
                .map_err(|e| StoreError::Corrupt(format!("{} row {:?}: {e}", row.kind, row.name)))
        }
        let mut s = Self::default();
        if let Some(row) = store.sources(CURSOR)?.into_iter().next() {
            s.cursor = Some(row.state);
        }
        for row in store.sources(COUNTER)? {
            let (c, k) = split_name(&row.name);
            s.counters
                .insert((c.to_owned(), k.to_owned()), parse(&row)?);
        }
        for row in store.sources(REPORT)? {
            let (c, k) = split_name(&row.name);
            let class = class_of(c);
            *s.report_distinct.entry(class).or_default() += 1;
            s.report.insert((class, k.to_owned()), parse(&row)?);
        }
        for row in store.sources(REPORT_MORE)? {
            s.report_more.insert(class_of(&row.name), parse(&row)?);
        }
        for row in store.sources(BAN)? {
            s.bans.insert(row.name.clone(), parse(&row)?);
        }
        if let Some(row) = store.sources(REPORT_SENT)?.into_iter().next() {
            s.report_sent = row.state.parse().ok();
        }
        for row in store.sources(ACTION)? {
            let n: u64 = row.name.parse().unwrap_or(0);
            s.next_action = s.next_action.max(n + 1);
            s.pending.insert(row.name.clone(), parse(&row)?);
        }
        Ok(s)
    }

    /// The cursor of the last entry handled.
    pub fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    /// The entry with this cursor has been handled.
    pub fn advance(&mut self, cursor: &str) {
        // (once per entry: the string is reused)
        let c = self.cursor.get_or_insert_default();
        c.clear();
        c.push_str(cursor);
        self.cursor_dirty = true;
    }

    /// An entry of time `at` (ms) is being handled: counters whose hits are all older
    /// than their windows by then are forgotten at the next checkpoint, so a key seen
    /// once (an address scanning once) does not stay for ever.
    pub fn seen(&mut self, at: i64) {
        self.latest = self.latest.max(at);
    }

    /// Whether there is anything to save.
    pub fn dirty(&self) -> bool {
        self.cursor_dirty
            || self.report_sent_dirty
            || !self.dirty_counters.is_empty()
            || !self.dirty_report.is_empty()
            || !self.dirty_more.is_empty()
            || !self.dirty_bans.is_empty()
            || !self.new_pending.is_empty()
            || !self.done_pending.is_empty()
    }

    /// The hits of `counter` for `key` at `at` (ms).
    pub fn count(&mut self, counter: &str, key: &str, at: i64) -> u64 {
        let k = (counter.to_owned(), key.to_owned());
        match self.counters.get_mut(&k) {
            Some(c) => {
                let before = c.hits.len();
                c.prune(at);
                if c.hits.len() != before {
                    self.dirty_counters.insert(k);
                }
                c.hits.len() as u64
            }
            None => 0,
        }
    }

    /// One hit at `at` (ms), kept for `window` (ms); none within a grace.
    pub fn raise(&mut self, counter: &str, key: &str, window: Option<i64>, at: i64) -> u64 {
        let k = (counter.to_owned(), key.to_owned());
        let c = self.counters.entry(k.clone()).or_default();
        c.window = window;
        c.prune(at);
        if c.grace_until.is_some_and(|g| at < g) {
            return c.hits.len() as u64;
        }
        c.grace_until = None;
        if c.hits.len() >= COUNTER_HITS {
            c.hits.pop_front();
        }
        c.hits.push_back(at);
        let n = c.hits.len() as u64;
        self.dirty_counters.insert(k);
        n
    }

    /// Back to zero at `at`, raises ignored for `grace` (ms).
    pub fn reset(&mut self, counter: &str, key: &str, grace: Option<i64>, at: i64) {
        let k = (counter.to_owned(), key.to_owned());
        let c = self.counters.entry(k.clone()).or_default();
        c.hits.clear();
        c.grace_until = grace.map(|g| at.saturating_add(g));
        self.dirty_counters.insert(k);
    }

    /// One entry more for the report's `class`, grouped by `key`.
    pub fn report(&mut self, class: Class, key: &str, message: &str, at: i64) {
        let k = (class, key.to_owned());
        if !self.report.contains_key(&k)
            && self
                .report_distinct
                .get(&class)
                .is_some_and(|n| *n >= REPORT_DISTINCT)
        {
            *self.report_more.entry(class).or_default() += 1;
            self.dirty_more.insert(class);
            return;
        }
        match self.report.get_mut(&k) {
            Some(item) => {
                item.count += 1;
                item.first = item.first.min(at);
                item.last = item.last.max(at);
            }
            None => {
                *self.report_distinct.entry(class).or_default() += 1;
                self.report.insert(
                    k.clone(),
                    Item {
                        count: 1,
                        first: at,
                        last: at,
                        message: message.to_owned(),
                    },
                );
            }
        }
        self.dirty_report.insert(k);
    }

    /// The report's lines of `class`, most frequent first, and the count of lines
    /// beyond the distinct ones kept.
    pub fn items(&self, class: Class) -> (Vec<&Item>, u64) {
        let mut list: Vec<&Item> = self
            .report
            .iter()
            .filter(|((c, _), _)| *c == class)
            .map(|(_, i)| i)
            .collect();
        list.sort_by(|a, b| b.count.cmp(&a.count).then(a.first.cmp(&b.first)));
        (list, self.report_more.get(&class).copied().unwrap_or(0))
    }

    /// Forgets the report's lines (it was sent).
    pub fn clear_report(&mut self) {
        for k in self.report.keys() {
            self.dirty_report.insert(k.clone());
        }
        self.report.clear();
        self.report_distinct.clear();
        self.dirty_more
            .extend(self.report_more.drain().map(|(c, _)| c));
    }

    /// When the last report was sent (ms), or since when lines are collected.
    pub fn report_sent(&self) -> Option<i64> {
        self.report_sent
    }

    /// The report was sent at `at` (ms): the next one covers what comes after.
    pub fn set_report_sent(&mut self, at: i64) {
        self.report_sent = Some(at);
        self.report_sent_dirty = true;
    }

    /// `address` is banned until `until` (ms).
    pub fn ban(&mut self, address: &str, until: i64) {
        self.bans.insert(address.to_owned(), until);
        self.dirty_bans.insert(address.to_owned());
    }

    /// The bans still running at `at` (ms); expired ones are forgotten.
    pub fn bans(&mut self, at: i64) -> Vec<(String, i64)> {
        let expired: Vec<String> = self
            .bans
            .iter()
            .filter(|(_, until)| **until <= at)
            .map(|(a, _)| a.clone())
            .collect();
        for a in expired {
            self.bans.remove(&a);
            self.dirty_bans.insert(a);
        }
        let mut list: Vec<(String, i64)> = self.bans.iter().map(|(a, u)| (a.clone(), *u)).collect();
        list.sort();
        list
    }

    /// Queues a program to run once this state is saved; returns its id.
    pub fn queue(&mut self, action: Pending) -> String {
        let id = format!("{:020}", self.next_action);
        self.next_action += 1;
        self.pending.insert(id.clone(), action);
        self.new_pending.push(id.clone());
        id
    }

    /// Every queued program, oldest first, with its id.
    pub fn pending(&self) -> Vec<(String, Pending)> {
        self.pending
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The program `id` has run.
    pub fn ran(&mut self, id: &str) {
        if self.pending.remove(id).is_some() {
            self.new_pending.retain(|x| x != id);
            self.done_pending.push(id.to_owned());
        }
    }

    /// The rows changed since the last checkpoint, to save in one transaction at `now`.
    pub fn checkpoint(&mut self, now: Timestamp) -> Vec<SourceState> {
        let mut rows = Vec::new();
        if std::mem::take(&mut self.cursor_dirty)
            && let Some(c) = &self.cursor
        {
            rows.push(SourceState::new(CURSOR, "cursor", c.clone(), now));
        }
        if std::mem::take(&mut self.report_sent_dirty)
            && let Some(at) = self.report_sent
        {
            rows.push(SourceState::new(REPORT_SENT, "last", at.to_string(), now));
        }
        let latest = self.latest;
        // (at most once per second of the entries' time: a checkpoint per alert does
        // not walk every counter each time)
        if latest >= self.swept.saturating_add(1000) {
            self.swept = latest;
            self.counters.retain(|k, c| {
                c.prune(latest);
                let idle = c.idle(latest);
                if idle {
                    self.dirty_counters.insert(k.clone());
                }
                !idle
            });
        }
        for k in std::mem::take(&mut self.dirty_counters) {
            let name = format!("{}\t{}", k.0, k.1);
            match self.counters.get(&k) {
                Some(c) if !c.idle(latest) => {
                    rows.push(SourceState::new(COUNTER, name, json(c), now));
                }
                _ => {
                    self.counters.remove(&k);
                    rows.push(SourceState::removed(COUNTER, name, now));
                }
            }
        }
        for k in std::mem::take(&mut self.dirty_report) {
            let name = format!("{}\t{}", k.0.as_str(), k.1);
            match self.report.get(&k) {
                Some(i) => rows.push(SourceState::new(REPORT, name, json(i), now)),
                None => rows.push(SourceState::removed(REPORT, name, now)),
            }
        }
        for c in std::mem::take(&mut self.dirty_more) {
            match self.report_more.get(&c) {
                Some(n) => rows.push(SourceState::new(
                    REPORT_MORE,
                    c.as_str(),
                    n.to_string(),
                    now,
                )),
                None => rows.push(SourceState::removed(REPORT_MORE, c.as_str(), now)),
            }
        }
        for a in std::mem::take(&mut self.dirty_bans) {
            match self.bans.get(&a) {
                Some(u) => rows.push(SourceState::new(BAN, a, u.to_string(), now)),
                None => rows.push(SourceState::removed(BAN, a, now)),
            }
        }
        for id in std::mem::take(&mut self.new_pending) {
            if let Some(p) = self.pending.get(&id) {
                rows.push(SourceState::new(ACTION, id, json(p), now));
            }
        }
        for id in std::mem::take(&mut self.done_pending) {
            rows.push(SourceState::removed(ACTION, id, now));
        }
        rows
    }
}

/// A row's JSON: plain structs of numbers and strings always serialize.
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alertcore::MemoryStore;

    /// What a checkpoint saves, a load reads back the same; what was removed stays
    /// removed; lines beyond the cap are counted.
    #[test]
    fn a_checkpoint_round_trips_through_the_store() {
        let store = MemoryStore::new();
        let now = Timestamp::from_millis(1);
        let mut s = State::default();
        s.advance("c1");
        s.raise("sshd", "192.0.2.7", Some(600_000), 1000);
        s.raise("sshd", "192.0.2.7", Some(600_000), 2000);
        s.reset("x", "k", Some(5000), 3000);
        for i in 0..REPORT_DISTINCT + 3 {
            s.report(Class::Other, &format!("line {i}"), "m", 10);
        }
        s.report(Class::Important, "disk\tfailed", "disk failed", 20);
        s.ban("192.0.2.7", 99_000);
        let id = s.queue(Pending {
            argv: vec!["true".into()],
            env: vec![("A".into(), "b".into())],
            timeout_ms: 10,
            what: "t".into(),
        });
        s.set_report_sent(5);
        store.save_sources(&s.checkpoint(now)).expect("save");
        assert!(!s.dirty());

        let mut r = State::load(&store).expect("load");
        assert_eq!(r.cursor(), Some("c1"));
        assert_eq!(r.count("sshd", "192.0.2.7", 2500), 2);
        // the grace survives too: a raise within it does not count
        assert_eq!(r.raise("x", "k", None, 4000), 0);
        let (other, more) = r.items(Class::Other);
        assert_eq!((other.len(), more), (REPORT_DISTINCT, 3));
        assert_eq!(r.items(Class::Important).0[0].message, "disk failed");
        assert_eq!(r.bans(50_000), [("192.0.2.7".to_owned(), 99_000)]);
        assert_eq!(r.pending()[0].0, id);
        assert_eq!(r.report_sent(), Some(5));

        // a program run, the report sent, a ban expired: their rows go
        r.ran(&id);
        r.clear_report();
        assert!(r.bans(100_000).is_empty());
        store.save_sources(&r.checkpoint(now)).expect("save");
        let mut again = State::load(&store).expect("load");
        assert!(again.pending().is_empty());
        assert_eq!(again.items(Class::Other), (Vec::new(), 0));
        assert!(again.items(Class::Important).0.is_empty());
        assert!(again.bans(0).is_empty());
        assert_eq!(again.count("sshd", "192.0.2.7", 2500), 2);
    }

    /// A counter whose hits all left its window, or whose grace ended, is the same as
    /// none: its row goes at the next checkpoint once entries that late were seen, so
    /// keys seen once (a scan from many addresses) do not pile up in memory and store.
    #[test]
    fn counters_that_count_nothing_are_forgotten() {
        const MIN: i64 = 60_000;
        let store = MemoryStore::new();
        let now = Timestamp::from_millis(1);
        let mut s = State::default();
        s.raise("ufw", "192.0.2.1", Some(10 * MIN), 0);
        s.raise("ufw", "192.0.2.2", Some(10 * MIN), 5 * MIN);
        s.raise("total", "all", None, 0);
        s.reset("sshd", "192.0.2.3", Some(60 * MIN), 0);
        store.save_sources(&s.checkpoint(now)).expect("save");
        assert_eq!(store.sources(COUNTER).expect("rows").len(), 4);

        // 12 minutes on: the first hit is out of its window, the second not yet; the
        // grace runs on; a counter without a window counts until reset
        s.seen(12 * MIN);
        store.save_sources(&s.checkpoint(now)).expect("save");
        let names = |store: &MemoryStore| -> Vec<String> {
            let mut n: Vec<String> = store
                .sources(COUNTER)
                .expect("rows")
                .into_iter()
                .map(|r| r.name)
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names(&store),
            ["sshd\t192.0.2.3", "total\tall", "ufw\t192.0.2.2"]
        );
        // the grace ends at 60 minutes
        s.seen(61 * MIN);
        store.save_sources(&s.checkpoint(now)).expect("save");
        assert_eq!(names(&store), ["total\tall"]);
        assert_eq!(s.counters.len(), 1);
        // forgotten is the same as never seen: a raise counts from one, without grace
        assert_eq!(s.raise("sshd", "192.0.2.3", None, 61 * MIN), 1);
        assert_eq!(
            State::load(&store)
                .expect("load")
                .count("total", "all", 61 * MIN),
            1
        );
    }
}
