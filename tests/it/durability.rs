//! Issue 5, "never lose an alert", end to end through `alertctl` processes on one state
//! file:
//!
//! - 500 handler processes released at the same instant on one state file (50 units
//!   failing 5-11 times each, one unit 103 times): every process exits 0, every event is
//!   stored and counted, nobody sees `database is locked`, and after a flush each unit
//!   has had exactly one failure alert, delivered once;
//! - 1400 failure/success/flush processes against a loopback webhook receiver, with
//!   SIGKILL at random points and receiver outages: the file stays sound, every event a
//!   process accepted is stored, and after the crash every notification is delivered,
//!   more than once only where its sender was killed while sending it;
//! - the first use of a new state file while another process writes to it does not
//!   fail either: the handler waits for the writer, as for any other.
//!
//! A row whose sender was killed stays leased for `delivery_timeout` (120 s in
//! `alertctl`, not configurable) + 60 s. The recovery flush runs with `--now` an hour
//! ahead, as the flush timer would run a few minutes later, instead of waiting.
//!
//! The random choices (units, events, which processes to kill and after how long) come
//! from a seed printed at the start; `DURABILITY_SEED=N` makes the same choices again
//! (where a kill lands still depends on timing). A run that outlasts a send lease fails
//! rather than check less: it could not tell a lawful second copy from a wrong one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alertcore::Timestamp;
use serde_json::Value;

use crate::cli::{Ctl, failure_args, integrity, text, wait_until};

/// What no process may ever print: the store is meant to queue writers, not fail them.
const LOCKED: &str = "database is locked";

// ---------------------------------------------------------------------------------------
// Helpers

/// splitmix64: reproducible from the printed seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let seed = std::env::var("DURABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("durability: DURABILITY_SEED={seed}");
    seed
}

fn now_ms() -> i64 {
    Timestamp::from_system_time(SystemTime::now()).as_millis()
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn open(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open the state file");
    conn.busy_timeout(Duration::from_secs(30))
        .expect("busy_timeout");
    conn
}

/// Runs `alertctl flush` (with `extra` global options) until `alertctl outbox` is empty;
/// every run must exit 0. Returns how many flushes it took.
fn flush_until_empty(ctl: &Ctl, extra: &[&str]) -> usize {
    let mut args = extra.to_vec();
    args.push("flush");
    for round in 1..=20 {
        let out = ctl.run(&args);
        assert_eq!(out.status.code(), Some(0), "flush: {}", text(&out));
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains(LOCKED),
            "{}",
            text(&out)
        );
        let open = ctl.json(&["outbox", "--json"]);
        if open.as_array().is_some_and(Vec::is_empty) {
            return round;
        }
    }
    panic!(
        "the outbox is still not empty after 20 flushes: {:#}",
        ctl.json(&["outbox", "--json"])
    );
}

/// Creates the state file (schema, WAL mode) before the processes start (the first use
/// of a new file by several processes at once has a test of its own,
/// [`a_new_state_file_waits_for_a_concurrent_writer`], and the 500 handlers start on a
/// new file).
fn create_state_file(ctl: &Ctl) {
    let out = ctl.run(&["outbox", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mode: String = open(&ctl.state())
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
}

/// `consecutive_failures` per service, from `alertctl status --json`.
fn consecutive_failures(ctl: &Ctl) -> BTreeMap<String, u64> {
    let status = ctl.json(&["status", "--json"]);
    status["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| {
            (
                s["service"].as_str().expect("service").to_owned(),
                s["consecutive_failures"].as_u64().expect("count"),
            )
        })
        .collect()
}

/// Rows of the failures table per service.
fn failure_rows(state: &Path) -> BTreeMap<String, u64> {
    let conn = open(state);
    let mut stmt = conn
        .prepare("SELECT service, count(*) FROM failures GROUP BY service")
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .expect("query")
        .map(|r| r.map(|(s, n)| (s, n.unsigned_abs())))
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// One row of the outbox (the notification log), as the store has it.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    service: String,
    notifier: String,
    kind: String,
    streak: i64,
    sequence: i64,
    status: String,
    attempts: i64,
    lease_ms: Option<i64>,
    /// The invocation ids in the row's failure-history snapshot.
    history: Vec<String>,
}

fn rows(state: &Path) -> Vec<Row> {
    let conn = open(state);
    let mut stmt = conn
        .prepare(
            "SELECT id, service, notifier, kind, streak, sequence, status, attempts, lease_ms,
                    history
             FROM notifications ORDER BY id",
        )
        .expect("prepare");
    stmt.query_map([], |r| {
        let history: Option<String> = r.get(9)?;
        let history: Value = history
            .map(|h| serde_json::from_str(&h).expect("history JSON"))
            .unwrap_or(Value::Null);
        Ok(Row {
            id: r.get(0)?,
            service: r.get(1)?,
            notifier: r.get(2)?,
            kind: r.get(3)?,
            streak: r.get(4)?,
            sequence: r.get(5)?,
            status: r.get(6)?,
            attempts: r.get(7)?,
            lease_ms: r.get(8)?,
            history: history
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f["invocation_id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

// ---------------------------------------------------------------------------------------
// 500 handlers at once

/// Wraps `inner` in `sh`, which waits for EOF on its stdin before it `exec`s `inner`:
/// every process gets the read end of one pipe, so closing the write end starts them
/// all at the same instant.
fn gated(inner: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("read -r _ ; exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

#[test]
fn five_hundred_handlers_at_once_lose_nothing_and_alert_once_per_streak() {
    let log_dir = tempfile::tempdir().expect("tempdir");
    let log = log_dir.path().join("alerts.log");
    let ctl = Ctl::with_config(&format!(
        "host = \"durability\"\n\n[notifiers.log]\ntype = \"file\"\npath = {}\n\
         subject = \"ALERT {{{{ event }}}} {{{{ service }}}} {{{{ sequence }}}}\"\n",
        toml_string(&log.display().to_string())
    ));
    // no create_state_file: the 500 handlers are the first to use the file
    let out_dir = ctl.dir.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");

    // 50 units failing 5-11 times each, and one unit failing in the other 103 processes
    const PROCESSES: usize = 500;
    let mut expected: BTreeMap<String, u64> = (0..50)
        .map(|i| (format!("unit-{i:02}.service"), 5 + i % 7))
        .collect();
    let hot = PROCESSES as u64 - expected.values().sum::<u64>();
    assert_eq!(hot, 103);
    expected.insert("hot.service".to_owned(), hot);
    // interleaved, so that the hot unit is not all at the end of the spawn order (all
    // wait at the gate, but the scheduler may still start them roughly in order)
    let mut jobs: Vec<String> = Vec::new();
    let mut left = expected.clone();
    while jobs.len() < PROCESSES {
        for (unit, n) in &mut left {
            if *n > 0 {
                *n -= 1;
                jobs.push(unit.clone());
                if unit == "hot.service" && *n > 0 {
                    *n -= 1;
                    jobs.push(unit.clone());
                }
            }
        }
    }
    assert_eq!(jobs.len(), PROCESSES);

    let (gate_r, gate_w) = std::io::pipe().expect("pipe");
    let mut children = Vec::with_capacity(PROCESSES);
    for (i, unit) in jobs.iter().enumerate() {
        let invocation = format!("inv-{i:03}");
        let inner =
            ctl.command(&[failure_args(unit), vec!["--invocation-id", &invocation]].concat());
        let child = gated(&inner)
            .stdin(gate_r.try_clone().expect("dup the gate"))
            .stdout(File::create(out_dir.join(format!("{i}.out"))).expect("stdout file"))
            .stderr(File::create(out_dir.join(format!("{i}.err"))).expect("stderr file"))
            .spawn()
            .expect("spawn sh");
        children.push(child);
    }
    drop(gate_r);
    let started = Instant::now();
    drop(gate_w); // go
    let deadline = started + Duration::from_secs(300);
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; PROCESSES];
    while statuses.iter().any(Option::is_none) {
        for (child, status) in children.iter_mut().zip(&mut statuses) {
            if status.is_none() {
                *status = child.try_wait().expect("try_wait");
            }
        }
        if Instant::now() > deadline {
            for c in &mut children {
                let _ = c.kill();
                let _ = c.wait();
            }
            panic!("500 handlers did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "durability: 500 handlers took {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut bad = Vec::new();
    for (i, status) in statuses.iter().enumerate() {
        let stderr = std::fs::read_to_string(out_dir.join(format!("{i}.err"))).unwrap_or_default();
        let stdout = std::fs::read_to_string(out_dir.join(format!("{i}.out"))).unwrap_or_default();
        if status.and_then(|s| s.code()) != Some(0) || stderr.contains(LOCKED) {
            bad.push(format!(
                "process {i} ({}): {status:?}\n--- stdout\n{stdout}--- stderr\n{stderr}",
                jobs[i]
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of 500 handlers failed (exit code not 0, or `{LOCKED}`); the first:\n{}",
        bad.len(),
        bad.iter().take(3).cloned().collect::<Vec<_>>().join("\n")
    );

    // every event stored and counted: the streak's count, and each process's own
    // failure (its invocation id) in the history of its unit
    assert_eq!(consecutive_failures(&ctl), expected, "status --json");
    assert_eq!(failure_rows(&ctl.state()), expected, "failures table");
    let stored: BTreeSet<(String, String)> = {
        let conn = open(&ctl.state());
        let mut stmt = conn
            .prepare("SELECT service, invocation_id FROM failures")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let sent: BTreeSet<(String, String)> = jobs
        .iter()
        .enumerate()
        .map(|(i, unit)| (unit.clone(), format!("inv-{i:03}")))
        .collect();
    assert_eq!(stored, sent, "the failures table");

    // whatever a concurrency cap left pending goes out now; then nothing is open
    flush_until_empty(&ctl, &[]);

    // exactly one failure alert per unit, delivered once
    let lines = std::fs::read_to_string(&log).expect("the alert file");
    let mut alerts: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut sequences = BTreeSet::new();
    for line in lines.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        assert!(
            words.len() == 5 && words[1] == "ALERT",
            "unexpected line {line:?}"
        );
        alerts
            .entry(words[3].to_owned())
            .or_default()
            .push(words[2]);
        assert!(sequences.insert(words[4]), "sequence twice: {line:?}");
    }
    let want: BTreeMap<String, Vec<&str>> = expected
        .keys()
        .map(|u| (u.clone(), vec!["failure"]))
        .collect();
    assert_eq!(alerts, want, "one failure alert per unit:\n{lines}");
    let rows = rows(&ctl.state());
    assert_eq!(rows.len(), expected.len(), "{rows:#?}");
    for r in &rows {
        assert_eq!(
            (r.kind.as_str(), r.status.as_str(), r.attempts),
            ("failure", "delivered", 1),
            "{r:?}"
        );
    }
    assert_eq!(integrity(&ctl.state()), "ok");
}

// ---------------------------------------------------------------------------------------
// SIGKILL at random points

const UP: u8 = 0;
/// Answers 503 (retryable), records nothing.
const UNAVAILABLE: u8 = 1;
/// Closes every connection at once, as a crashed receiver would.
const DEAD: u8 = 2;

#[derive(Debug, Default)]
struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    /// The bodies of the requests answered 200, in order.
    seen: Mutex<Vec<Value>>,
    /// Requests refused while not [`UP`].
    refused: AtomicUsize,
}

/// A webhook receiver on 127.0.0.1 (one thread per connection, `Connection: close`)
/// that records a body before it answers 200, so an alert the sender saw delivered was
/// recorded here.
struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(&stream, &s));
            }
        });
        Self {
            port,
            shared,
            thread: Some(thread),
        }
    }

    fn set_mode(&self, mode: u8) {
        self.shared.mode.store(mode, Ordering::SeqCst);
    }

    fn seen(&self) -> Vec<Value> {
        self.shared.seen.lock().expect("lock").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // wake the accept loop
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: &TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = stream.set_nodelay(true);
    if shared.mode.load(Ordering::SeqCst) == DEAD {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let mut w = stream;
    if shared.mode.load(Ordering::SeqCst) == UP {
        let v = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        shared.seen.lock().expect("lock").push(v);
        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    } else {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let _ = w.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Failure,
    Success,
    Flush,
}

/// One `alertctl` process of the run.
#[derive(Debug)]
struct Run {
    n: usize,
    unit: String,
    what: What,
    invocation: String,
    /// Killed by our SIGKILL (rather than exiting first).
    killed: bool,
    code: Option<i32>,
    stderr: String,
}

impl Run {
    /// The process said it recorded the event (0, or 3: recorded, a delivery failed).
    fn accepted(&self) -> bool {
        !self.killed && matches!(self.code, Some(0 | 3))
    }
}

/// How long `alertctl` leases a row it sends: its `delivery_timeout` (120 s, fixed) +
/// 60 s (`Engine::send_lease`).
const SEND_LEASE: Duration = Duration::from_secs(180);

const EVENTS: usize = 1400;
const WORKERS: usize = 4;
const UNITS_PER_WORKER: usize = 2;
/// Percent of processes sent SIGKILL after a random 0-40 ms.
const KILL_PERCENT: u64 = 15;
/// Event numbers during which the receiver answers 503, then is dead.
const UNAVAILABLE_FROM: usize = 300;
const UNAVAILABLE_UNTIL: usize = 420;
const DEAD_FROM: usize = 900;
const DEAD_UNTIL: usize = 1000;

/// One worker: its own units (so each unit's events are in order), events numbered from
/// the shared counter until [`EVENTS`].
fn drive(
    ctl: &Ctl,
    receiver: &Receiver,
    counter: &AtomicUsize,
    worker: usize,
    seed: u64,
) -> Vec<Run> {
    let mut rng = Rng(seed ^ (worker as u64).wrapping_mul(0xA076_1D64_78BD_642F));
    let logs = ctl.dir.path().join("logs");
    let units: Vec<String> = (0..UNITS_PER_WORKER)
        .map(|u| format!("crash-{worker}-{u}.service"))
        .collect();
    let mut runs = Vec::new();
    loop {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if n >= EVENTS {
            return runs;
        }
        match n {
            UNAVAILABLE_FROM => receiver.set_mode(UNAVAILABLE),
            DEAD_FROM => receiver.set_mode(DEAD),
            UNAVAILABLE_UNTIL | DEAD_UNTIL => receiver.set_mode(UP),
            _ => {}
        }
        let unit = units[rng.below(units.len() as u64) as usize].clone();
        let what = match rng.below(100) {
            0..5 => What::Flush,
            5..45 => What::Success,
            _ => What::Failure,
        };
        let invocation = format!("inv-{n:05}");
        let args: Vec<&str> = match what {
            What::Failure => [failure_args(&unit), vec!["--invocation-id", &invocation]].concat(),
            What::Success => vec!["success", &unit],
            What::Flush => vec!["flush"],
        };
        let err_path = logs.join(format!("{n}.err"));
        let mut child = ctl
            .command(&args)
            .stdout(Stdio::null())
            .stderr(File::create(&err_path).expect("stderr file"))
            .spawn()
            .expect("spawn alertctl");
        if rng.below(100) < KILL_PERCENT {
            std::thread::sleep(Duration::from_millis(rng.below(40)));
            let _ = child.kill(); // SIGKILL
        }
        let status = wait_until(
            &mut child,
            Instant::now() + Duration::from_secs(90),
            &format!("alertctl {args:?}"),
        );
        runs.push(Run {
            n,
            unit,
            what,
            invocation,
            killed: status.signal() == Some(9),
            code: status.code(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        });
    }
}

#[test]
fn sigkill_at_random_points_loses_no_event_and_no_alert() {
    let seed = seed();
    let receiver = Receiver::start();
    // `a` has the default `max_concurrent` (8): a killed sender's lease holds one of its
    // slots until the lease ends, so after 8 such kills `a` sends nothing more until the
    // restart. `b` has room for every kill, so its rows are sent (and killed) all run long.
    let hook = |name: &str, extra: &str| {
        format!(
            "[notifiers.{name}]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{}/{name}\"\n\
             timeout = \"10s\"\n{extra}",
            receiver.port
        )
    };
    let ctl = Ctl::with_config(&format!(
        "host = \"durability\"\n\n{}\n{}",
        hook("a", ""),
        hook("b", "max_concurrent = 1000\n")
    ));
    std::fs::create_dir(ctl.dir.path().join("logs")).expect("mkdir");
    create_state_file(&ctl);

    // the run
    let started = Instant::now();
    let counter = AtomicUsize::new(0);
    let mut runs: Vec<Run> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (ctl, receiver, counter) = (&ctl, &receiver, &counter);
                s.spawn(move || drive(ctl, receiver, counter, w, seed))
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    });
    receiver.set_mode(UP);
    runs.sort_by_key(|r| r.n);
    let killed = runs.iter().filter(|r| r.killed).count();
    eprintln!(
        "durability: {EVENTS} processes ({killed} killed) in {:.1} s, {} deliveries seen, {} refused",
        started.elapsed().as_secs_f64(),
        receiver.seen().len(),
        receiver.shared.refused.load(Ordering::SeqCst),
    );
    let ctx = format!("DURABILITY_SEED={seed}");
    assert!(
        killed >= EVENTS / 50,
        "too few processes were killed: {killed} ({ctx})"
    );
    assert!(
        receiver.shared.refused.load(Ordering::SeqCst) > 0,
        "the outages refused nothing ({ctx})"
    );

    // every process that was not killed recorded its event; a failed delivery is
    // retryable (the receiver was only down); nobody saw a locked database
    for r in &runs {
        let say = || format!("{r:#?} ({ctx})");
        assert!(!r.stderr.contains(LOCKED), "{}", say());
        assert!(!r.stderr.contains("panicked"), "{}", say());
        if r.killed {
            continue;
        }
        assert!(matches!(r.code, Some(0 | 3)), "{}", say());
        if r.code == Some(3) {
            assert!(
                r.stderr.contains("will retry") && !r.stderr.contains("not delivered ("),
                "{}",
                say()
            );
        }
    }

    // the file as the crashes left it
    let state = ctl.state();
    assert_eq!(integrity(&state), "ok", "{ctx}");

    // Rows leased now were being sent by a killed process (every process has ended):
    // the only ones that may reach the receiver twice, as long as no lease has run out
    // yet. A run that outlasts a lease cannot tell a lawful second copy from a wrong
    // one, so it fails here rather than check less.
    let snapshot = now_ms();
    let took = started.elapsed();
    assert!(
        took < SEND_LEASE - Duration::from_secs(30),
        "the run took {took:?}, too close to a send lease ({SEND_LEASE:?}) to tell which \
         copies may come twice: run it on a less loaded machine ({ctx})"
    );
    let in_flight: BTreeSet<i64> = rows(&state)
        .iter()
        .filter(|r| r.status == "pending" && r.lease_ms.is_some_and(|l| l > snapshot))
        .map(|r| {
            let lease = r.lease_ms.unwrap_or_default();
            assert!(
                lease < snapshot + 3_600_000,
                "a lease longer than the hour the recovery flush looks ahead: {r:?}"
            );
            r.id
        })
        .collect();
    let pending = |notifier: &str| {
        let all = rows(&state);
        let mine = all.iter().filter(|r| r.notifier == notifier);
        let n = mine.clone().filter(|r| r.status == "pending").count();
        let leased = mine.filter(|r| in_flight.contains(&r.id)).count();
        format!("{notifier}: {n} pending, {leased} of them leased by killed senders")
    };
    eprintln!(
        "durability: at the end of the run: {}; {}",
        pending("a"),
        pending("b")
    );

    // a flush now sends what is due, and leaves the leased rows alone
    let seen_before = receiver.seen().len();
    let out = ctl.run(&["flush"]);
    assert_eq!(out.status.code(), Some(0), "{} ({ctx})", text(&out));
    let still: Vec<Row> = rows(&state)
        .into_iter()
        .filter(|r| in_flight.contains(&r.id))
        .filter(|r| r.status == "pending" && r.lease_ms.is_some_and(|l| l > snapshot))
        .collect();
    assert_eq!(
        still.iter().map(|r| r.id).collect::<BTreeSet<_>>(),
        in_flight,
        "a flush took leased rows ({ctx})"
    );
    for body in &receiver.seen()[seen_before..] {
        assert!(
            !still
                .iter()
                .any(|r| body["notifier"] == r.notifier.as_str() && body["sequence"] == r.sequence),
            "a leased row was sent: {body} ({ctx})"
        );
    }

    // the restart: the flush timer, an hour later, sends everything left
    let later = Timestamp::from_millis(now_ms() + 3_600_000).to_string();
    let rounds = flush_until_empty(&ctl, &["--now", &later]);
    eprintln!(
        "durability: recovered in {rounds} flushes; total {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(integrity(&state), "ok", "{ctx}");

    // every notification delivered, and seen by the receiver: exactly once, or (sent by
    // a killed process and again after the restart) twice
    let all = rows(&state);
    let keyed: HashMap<(String, i64), &Row> = all
        .iter()
        .map(|r| ((r.notifier.clone(), r.sequence), r))
        .collect();
    assert_eq!(
        keyed.len(),
        all.len(),
        "(notifier, sequence) is not unique ({ctx})"
    );
    let mut times: HashMap<i64, usize> = HashMap::new();
    for body in receiver.seen() {
        let key = (
            body["notifier"].as_str().unwrap_or_default().to_owned(),
            body["sequence"].as_i64().unwrap_or(-1),
        );
        let row = keyed.get(&key).unwrap_or_else(|| {
            panic!("the receiver got an alert that is not in the outbox: {body} ({ctx})")
        });
        assert_eq!(
            (body["service"].as_str(), body["event"].as_str()),
            (Some(row.service.as_str()), Some(row.kind.as_str())),
            "{body} ({ctx})"
        );
        *times.entry(row.id).or_default() += 1;
    }
    let mut duplicates = 0;
    for r in &all {
        assert_eq!(r.status, "delivered", "{r:?} ({ctx})");
        let n = times.get(&r.id).copied().unwrap_or(0);
        assert!(n >= 1, "delivered but never received: {r:?} ({ctx})");
        duplicates += n - 1;
        assert!(
            n == 1 || (n == 2 && in_flight.contains(&r.id)),
            "received {n} times but not in flight when its sender was killed: {r:?} ({ctx})"
        );
    }
    assert!(
        duplicates <= killed,
        "{duplicates} extra copies from {killed} killed processes ({ctx})"
    );
    assert!(
        all.iter().any(|r| r.attempts >= 2),
        "no row was ever retried: the outages did not test the retry path ({ctx})"
    );
    eprintln!(
        "durability: {} notifications, {duplicates} received twice (sender killed)",
        all.len()
    );

    // one failure alert and at most one recovery per streak and notifier
    let mut per_streak: BTreeMap<(&str, &str, i64, &str), usize> = BTreeMap::new();
    for r in &all {
        assert!(matches!(r.kind.as_str(), "failure" | "recovery"), "{r:?}");
        *per_streak
            .entry((&r.service, &r.notifier, r.streak, &r.kind))
            .or_default() += 1;
    }
    let twice: Vec<_> = per_streak.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "more than one alert per streak: {twice:?} ({ctx})"
    );

    // every accepted event is in the store: a failure in its streak's history (the
    // failures table while it lasts, the recovery's snapshot after it ended)
    let conn = open(&state);
    let mut stored: HashMap<String, BTreeSet<String>> = HashMap::new();
    {
        let mut stmt = conn
            .prepare("SELECT service, invocation_id FROM failures")
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .expect("query");
        for row in rows {
            let (service, inv) = row.expect("row");
            stored.entry(service).or_default().extend(inv);
        }
    }
    let mut recovered: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in all.iter().filter(|r| r.kind == "recovery") {
        recovered
            .entry(r.service.clone())
            .or_default()
            .extend(r.history.iter().cloned());
    }
    for r in runs
        .iter()
        .filter(|r| r.what == What::Failure && r.accepted())
    {
        let found = stored
            .get(&r.unit)
            .is_some_and(|s| s.contains(&r.invocation))
            || recovered
                .get(&r.unit)
                .is_some_and(|s| s.contains(&r.invocation));
        assert!(
            found,
            "an accepted failure is not in the store: {r:#?} ({ctx})"
        );
    }
    // ... and a success that ended a streak (nothing but failures since an accepted
    // failure) sent a recovery with that failure in its history
    let mut by_unit: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.what != What::Flush) {
        by_unit.entry(&r.unit).or_default().push(r);
    }
    let mut checked_successes = 0;
    for (unit, events) in &by_unit {
        let mut last_failure: Option<&Run> = None;
        for r in events {
            match r.what {
                What::Failure if r.accepted() => last_failure = Some(r),
                What::Success => {
                    if r.accepted()
                        && let Some(f) = last_failure
                    {
                        checked_successes += 1;
                        assert!(
                            recovered
                                .get(*unit)
                                .is_some_and(|s| s.contains(&f.invocation)),
                            "an accepted success did not end the streak of {f:#?}: {r:#?} ({ctx})"
                        );
                    }
                    // killed or not, it may have ended the streak
                    last_failure = None;
                }
                _ => {}
            }
        }
    }
    assert!(checked_successes > 0, "{ctx}");
    // the state and the history agree (both written in one transaction)
    let counts = consecutive_failures(&ctl);
    let history = failure_rows(&state);
    for (unit, n) in &counts {
        assert_eq!(
            history.get(unit).copied().unwrap_or(0),
            *n,
            "{unit}: state and failures table disagree ({ctx})"
        );
    }
    eprintln!(
        "durability: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------
// The first use of a new state file

/// `SqliteStore::open` switches a new file to WAL with `PRAGMA journal_mode = WAL`,
/// which SQLite answers with SQLITE_BUSY at once, without the busy handler, while
/// another connection holds a write lock (a concurrent handler switching or migrating
/// the same new file). So when several handlers are the first to use a state file (a
/// fresh install, a boot where many units fail at once), some exit 1 with `database is
/// locked` and their events were lost (the 500-process test lost 142 of 500 that way in
/// about one run in ten) until the switch waited like `busy_timeout` does.
///
/// Here the other handler is a connection holding `BEGIN IMMEDIATE` on the new file: the
/// handler must wait for it (as it does for any other writer) and record the event.
#[test]
fn a_new_state_file_waits_for_a_concurrent_writer() {
    let ctl = Ctl::new();
    let other = open(&ctl.state());
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("hold the write lock");
    let mut child = ctl
        .command(&failure_args("first.service"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn alertctl");
    // While the lock is held the event cannot be recorded: the handler either waits
    // (right) or gives up (the bug). Hold it for 2 s or until the handler has ended.
    let held = Instant::now() + Duration::from_secs(2);
    while Instant::now() < held && child.try_wait().expect("try_wait").is_none() {
        std::thread::sleep(Duration::from_millis(10));
    }
    other.execute_batch("ROLLBACK").expect("release the lock");
    let status = wait_until(
        &mut child,
        Instant::now() + Duration::from_secs(90),
        "alertctl failure",
    );
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        consecutive_failures(&ctl).get("first.service"),
        Some(&1),
        "{stderr}"
    );
}

/// A state file written before an outbox row's payload was the whole `Notification`
/// (`tests/fixtures/outbox-c405e3d.sql` says how it was made): its two pending rows are
/// delivered by this version, each with everything the old process decided (host, event
/// time, sequence, streak, history, rule, fallback and collapse marks), not with what
/// the new config or the new process would say.
#[test]
fn outbox_rows_of_the_previous_schema_are_delivered_after_an_upgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("alerts.log");
    let config = format!(
        "host = \"new-host\"\n\
         \n\
         [notifiers.flaky]\n\
         type = \"file\"\n\
         path = {log}\n\
         \n\
         [notifiers.agent]\n\
         type = \"file\"\n\
         path = {log}\n\
         format = \"json\"\n\
         \n\
         [[rules]]\n\
         services = \"backup.service\"\n\
         notify = [\"flaky\"]\n\
         \n\
         [[rules]]\n\
         services = \"db.service\"\n\
         notify = [\"agent\"]\n",
        log = toml_string(&log.display().to_string())
    );
    let rule_lines: Vec<u64> = (1..)
        .zip(config.lines())
        .filter(|(_, l)| *l == "[[rules]]")
        .map(|(n, _)| n)
        .collect();
    let ctl = Ctl::with_config(&config);
    open(&ctl.state())
        .execute_batch(include_str!("../fixtures/outbox-c405e3d.sql"))
        .expect("load the old state file");
    for id in ["2", "4"] {
        let out = ctl.run(&["outbox", "retry", id]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = ctl.run(&["flush"]);
    assert!(out.status.success(), "{}", text(&out));

    let sent: BTreeMap<String, Value> = std::fs::read_to_string(&log)
        .expect("the file notifier wrote")
        .lines()
        .map(|line| {
            let (_, json) = line.split_once(' ').expect("time, then the document");
            let doc: Value = serde_json::from_str(json).expect("the json format");
            (doc["service"].as_str().expect("service").to_owned(), doc)
        })
        .collect();
    assert_eq!(sent.len(), 2, "{sent:#?}");

    let handed = &sent["backup.service"];
    assert_eq!(handed["notifier"], "agent");
    assert_eq!(handed["event"], "failure");
    assert_eq!(handed["host"], "old-host");
    assert_eq!(handed["time_ms"], 1_796_592_449_748_i64);
    assert_eq!(handed["streak_start_ms"], 1_796_592_449_748_i64);
    assert_eq!(handed["streak_id"], 1);
    assert_eq!(handed["sequence"], 1);
    assert_eq!(handed["rule"]["index"], 1);
    assert_eq!(handed["rule"]["line"], rule_lines[0]);
    assert_eq!(handed["fallback_for"]["notifier"], "flaky");
    assert!(
        handed["fallback_for"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("/nonexistent/agent")),
        "{handed:#}"
    );
    assert_eq!(handed["collapsed"], false);
    assert_eq!(handed["failures"].as_array().map(Vec::len), Some(1));
    assert_eq!(handed["failures"][0]["exit_status"], "3");
    assert_eq!(handed["failures"][0]["message"], "disk full");

    let recovery = &sent["db.service"];
    assert_eq!(recovery["event"], "recovery");
    assert_eq!(recovery["event_word"], "FAILED AND RECOVERED");
    assert_eq!(recovery["collapsed"], true);
    assert_eq!(recovery["host"], "old-host");
    assert_eq!(recovery["time_ms"], 1_796_592_449_822_i64);
    assert_eq!(recovery["streak_start_ms"], 1_796_592_449_768_i64);
    assert_eq!(recovery["sequence"], 3);
    assert_eq!(recovery["rule"]["index"], 2);
    assert_eq!(recovery["rule"]["line"], rule_lines[1]);
    assert_eq!(recovery["failures"][0]["result"], "timeout");

    // both rows are delivered; the failed and the collapsed rows were left alone
    let outbox = ctl.json(&["outbox", "--json"]);
    let left: Vec<(i64, String)> = outbox
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap_or(0),
                r["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(left, [(1, "failed".to_owned())], "{outbox:#}");
}
