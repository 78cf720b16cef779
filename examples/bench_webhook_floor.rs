//! The floor of `bench/webhook.sh` (a): the least a short-lived process can do to record
//! one event in SQLite and POST one webhook. It records the row exactly as
//! `examples/bench_floor.rs` does (the pragmas and the close of `SqliteStore`, one
//! `BEGIN IMMEDIATE` transaction that reads a row and inserts one), then sends one HTTP/1.1 POST of a small
//! JSON body over a plain `std::net::TcpStream` and reads the status line. No HTTP
//! library, no async runtime, no TLS, no config: whatever `alertctl failure` with a
//! webhook notifier costs beyond this is ours.
//!
//! ```sh
//! cargo build --release --example bench_webhook_floor
//! target/release/examples/bench_webhook_floor --init floor.db
//! target/release/examples/bench_webhook_floor floor.db http://127.0.0.1:8080/floor
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

#[path = "floor/sqlite.rs"]
mod sqlite;
use sqlite::{init, record};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// `http://host:port/path` only: the floor does not do TLS.
fn post(url: &str, body: &str) -> Result<u16> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("the floor speaks plain http:// only")?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = TcpStream::connect(authority)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = format!(
        "POST /{path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    // read the rest, as a client that checks the answer would
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest)?;
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {status:?}"))?;
    Ok(code)
}

fn run(db: &str, url: &str) -> Result<()> {
    let key = "floor.service";
    let now = record(db, key)?;
    let body = format!(
        "{{\"version\":\"1\",\"event\":\"failure\",\"service\":\"{key}\",\"host\":\"bench\",\
         \"severity\":\"critical\",\"time\":{now}}}"
    );
    let code = post(url, &body)?;
    if !(200..300).contains(&code) {
        return Err(format!("the server answered {code}").into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, path] if flag == "--init" => init(path).map_err(Into::into),
        [db, url] => run(db, url),
        _ => {
            eprintln!("usage: bench_webhook_floor --init DB | bench_webhook_floor DB URL");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_webhook_floor: {e}");
            ExitCode::FAILURE
        }
    }
}
