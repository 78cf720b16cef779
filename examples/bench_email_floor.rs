//! The floor of `bench/run.sh`'s target 2: the least a short-lived process can do to
//! record one event in SQLite and mail one alert. It records the row exactly as
//! `examples/bench_floor.rs` does (the pragmas and the close of `SqliteStore`, one
//! `BEGIN IMMEDIATE` transaction that reads a row and inserts one), then sends one
//! message in one plain SMTP session over a `std::net::TcpStream`, one command at a time
//! as lettre does (greeting, `EHLO`, `MAIL FROM`, `RCPT TO`, `DATA`, the message, `.`,
//! `QUIT`), each reply read and checked. The message is a file (the benchmark passes the
//! alert the sink received from `alertctl`, so both send the same bytes). No SMTP
//! library, no async runtime, no TLS, no config, no message to build: whatever
//! `alertctl failure` with an email notifier costs beyond this is ours.
//!
//! ```sh
//! cargo build --release --example bench_email_floor
//! target/release/examples/bench_email_floor --init floor.db
//! target/release/examples/bench_email_floor floor.db 127.0.0.1:2525 alert.eml \
//!     alertcore@example.org ops@example.org
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

#[path = "floor/sqlite.rs"]
mod sqlite;
use sqlite::{init, record};

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// One SMTP session on `stream`.
struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Session {
    fn connect(address: &str) -> Result<Self> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut session = Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        session.expect(220)?;
        Ok(session)
    }

    /// Reads one reply (all its lines) and checks its code.
    fn expect(&mut self, code: u16) -> Result<()> {
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err("the server closed the connection".into());
            }
            let got: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("bad reply {line:?}"))?;
            if got != code {
                return Err(format!("expected {code}, got {line:?}").into());
            }
            // `250-...` continues, `250 ...` ends the reply
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }

    fn command(&mut self, command: &str, code: u16) -> Result<()> {
        self.writer.write_all(command.as_bytes())?;
        self.writer.write_all(b"\r\n")?;
        self.expect(code)
    }

    /// `DATA`, the message with CRLF line ends and dot-stuffing, and its end.
    fn data(&mut self, message: &str) -> Result<()> {
        self.command("DATA", 354)?;
        let mut out = Vec::with_capacity(message.len() + 64);
        for line in message.lines() {
            if line.starts_with('.') {
                out.push(b'.');
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.writer.write_all(&out)?;
        self.expect(250)
    }
}

fn run(db: &str, address: &str, message: &str, from: &str, to: &str) -> Result<()> {
    record(db, "floor.service")?;
    let message = std::fs::read_to_string(message)?;
    let mut smtp = Session::connect(address)?;
    smtp.command("EHLO bench", 250)?;
    smtp.command(&format!("MAIL FROM:<{from}>"), 250)?;
    smtp.command(&format!("RCPT TO:<{to}>"), 250)?;
    smtp.data(&message)?;
    smtp.command("QUIT", 221)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [flag, path] if flag == "--init" => init(path).map_err(Into::into),
        [db, address, message, from, to] => run(db, address, message, from, to),
        _ => {
            eprintln!(
                "usage: bench_email_floor --init DB | bench_email_floor DB HOST:PORT MESSAGE FROM TO"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_email_floor: {e}");
            ExitCode::FAILURE
        }
    }
}
