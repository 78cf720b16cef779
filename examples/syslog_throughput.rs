//! Syslog messages per second through the notifier, over UDP and over a unix datagram
//! socket, next to a plain socket loop that sends the same bytes: the floor.
//!
//! ```text
//! cargo run --release --example syslog_throughput
//! N=200000 ROUNDS=5 cargo run --release --example syslog_throughput
//! ```
//!
//! Each transport gets a receiver thread that drains its socket and counts datagrams (a
//! unix datagram sender blocks when the receiver falls behind, a UDP sender does not and
//! loses what the receiver's buffer cannot hold: `received` says how many arrived). The
//! notifier runs on a current-thread runtime, as in `alertctl`, and formats every message
//! afresh (subject, structured data, timestamp). Two floors, from a blocking socket: the
//! plain loop sends one of the notifier's messages, captured by the receiver, `N` times;
//! the formatted loop sends the same bytes with a fresh timestamp, one `format!` per
//! message. Each round measures all three in that order; the last line per transport has
//! the medians: `transport=udp plain_msgs_per_s=.. formatted_msgs_per_s=..
//! notifier_msgs_per_s=.. ratio=..` (notifier / plain) `ratio_formatted=..`.

use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use alertcore::{Context, EventKind, Failure, FailureReport, Notification, Notifier, Timestamp};
use alertcore_syslog::SyslogNotifier;

/// How a receiver thread reports.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    sample: Mutex<Option<Vec<u8>>>,
}

impl Received {
    fn got(&self, bytes: &[u8]) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut sample = self.sample.lock().unwrap_or_else(|e| e.into_inner());
        if sample.is_none() {
            *sample = Some(bytes.to_vec());
        }
    }
}

/// One socket to send to: the address for the notifier and a plain sender.
enum Target {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = env_or("N", 100_000)?;
    let rounds: usize = env_or("ROUNDS", 3)?;
    let dir = tempfile::tempdir()?;
    for transport in ["udp", "unix"] {
        run(transport, n, rounds, dir.path())?;
    }
    Ok(())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn run(
    transport: &str,
    n: u64,
    rounds: usize,
    dir: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let received = Arc::new(Received::default());
    let (address, target) = match transport {
        "udp" => {
            let rx = UdpSocket::bind("127.0.0.1:0")?;
            let port = rx.local_addr()?.port();
            rx.set_nonblocking(true)?;
            let r = received.clone();
            std::thread::spawn(move || drain(|buf| rx.recv(buf), &r));
            let tx = UdpSocket::bind("127.0.0.1:0")?;
            tx.connect(("127.0.0.1", port))?;
            (format!("udp://127.0.0.1:{port}"), Target::Udp(tx))
        }
        _ => {
            let path = dir.join("bench.sock");
            let rx = UnixDatagram::bind(&path)?;
            rx.set_nonblocking(true)?;
            let r = received.clone();
            std::thread::spawn(move || drain(|buf| rx.recv(buf), &r));
            let tx = UnixDatagram::unbound()?;
            tx.connect(&path)?;
            (format!("unix://{}", path.display()), Target::Unix(tx))
        }
    };
    let notifier = SyslogNotifier::builder().address(address).build()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let start = Timestamp::from_millis(1_763_700_000_000);
    let failures: Vec<Failure> = (0..3u64)
        .map(|i| {
            Failure::from_report(
                &FailureReport::new("exit-code")
                    .exit_code("exited")
                    .exit_status("1")
                    .invocation_id(format!("{i:032x}")),
                "web1",
                start.saturating_add(Duration::from_secs(60 * i)),
            )
        })
        .collect();
    let alert = Notification::new("backup.service", EventKind::Failure, "web1")
        .failures(failures)
        .streak(7, start)
        .sequence(42);
    let ctx = Context::new("syslog");

    let notify = |count: u64| -> Result<Duration, Box<dyn std::error::Error>> {
        runtime.block_on(async {
            let t = Instant::now();
            for _ in 0..count {
                notifier.notify(&alert, &ctx).await?;
            }
            Ok(t.elapsed())
        })
    };

    // One message through the notifier gives the bytes the plain loop sends.
    notify(1)?;
    let sample = wait_sample(&received)?;
    let send = |bytes: &[u8]| -> std::io::Result<usize> {
        match &target {
            Target::Udp(s) => s.send(bytes),
            Target::Unix(s) => s.send(bytes),
        }
    };
    let plain = |count: u64| -> std::io::Result<Duration> {
        let t = Instant::now();
        for _ in 0..count {
            send(&sample)?;
        }
        Ok(t.elapsed())
    };
    // The same bytes, but each message formatted afresh with the current time, by one
    // `format!` of precomputed parts: what any sender of such messages cannot avoid.
    let text = String::from_utf8(sample.clone())?;
    let ts_start = text.find("1 ").map_or(0, |i| i + 2);
    let (head, tail) = (&text[..ts_start], &text[(ts_start + 27).min(text.len())..]);
    let formatted = |count: u64| -> std::io::Result<Duration> {
        let t = Instant::now();
        for _ in 0..count {
            let ts = humantime::format_rfc3339_micros(SystemTime::now());
            send(format!("{head}{ts}{tail}").as_bytes())?;
        }
        Ok(t.elapsed())
    };
    // Warm-up of every path.
    plain(n / 10)?;
    formatted(n / 10)?;
    notify(n / 10)?;

    let (mut plain_rates, mut formatted_rates, mut notifier_rates) =
        (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let c0 = received.count.load(Ordering::Relaxed);
        let p = rate(n, plain(n)?);
        let c1 = settle(&received, c0, n);
        let f = rate(n, formatted(n)?);
        let c2 = settle(&received, c1, n);
        let q = rate(n, notify(n)?);
        let c3 = settle(&received, c2, n);
        println!(
            "round={round} transport={transport} n={n} bytes={} plain_msgs_per_s={p:.0} \
             formatted_msgs_per_s={f:.0} notifier_msgs_per_s={q:.0} ratio={:.2} \
             received={}/{}/{}",
            sample.len(),
            q / p,
            c1 - c0,
            c2 - c1,
            c3 - c2
        );
        plain_rates.push(p);
        formatted_rates.push(f);
        notifier_rates.push(q);
    }
    let p = median(&mut plain_rates);
    let f = median(&mut formatted_rates);
    let q = median(&mut notifier_rates);
    println!(
        "transport={transport} n={n} rounds={rounds} bytes={} plain_msgs_per_s={p:.0} \
         formatted_msgs_per_s={f:.0} notifier_msgs_per_s={q:.0} ratio={:.2} \
         ratio_formatted={:.2}",
        sample.len(),
        q / p,
        q / f
    );
    Ok(())
}

/// Empties a non-blocking socket, spinning. A receiver blocked in `recv` would have to be
/// woken for every datagram, and that wake-up, paid by the sender in its `send`, costs a
/// slow sender more than a fast one (whose receiver never sleeps): the loops would
/// measure scheduling instead of their own work. A receiver that naps instead lets the
/// unix socket's queue (`net.unix.max_dgram_qlen`, 10 here) fill, and then every sender
/// waits on it.
fn drain(mut recv: impl FnMut(&mut [u8]) -> std::io::Result<usize>, received: &Received) {
    let mut buf = vec![0u8; 65_536];
    loop {
        while let Ok(len) = recv(&mut buf) {
            received.got(&buf[..len]);
        }
        std::thread::yield_now();
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    // Precision: n is far below 2^52.
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    n / d.as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn wait_sample(received: &Received) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Some(s) = received
            .sample
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(s);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err("the receiver got nothing from the notifier".to_owned())
}

/// Waits (briefly) until the receiver has drained what was sent, and returns its count.
fn settle(received: &Received, before: u64, sent: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        let now = received.count.load(Ordering::Relaxed);
        if now - before >= sent || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
