//! The custom binary end to end: a config selects the linked `jsonl` type, and events
//! recorded through the stock command line reach it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A scratch directory with a config file and a state file for the binary.
struct Ctl {
    dir: tempfile::TempDir,
}

impl Ctl {
    fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("alertcore.toml"), config).expect("write the config");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn config(&self) -> PathBuf {
        self.path("alertcore.toml")
    }

    /// Runs the binary with this config and state, and nothing from the environment
    /// that would change what it reads (as `tests/it/cli.rs` does for the stock one).
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jsonl-alertctl"));
        for var in [
            "ALERTCORE_CONFIG",
            "ALERTCORE_STATE",
            "ALERTCORE_NOW",
            "ALERTCORE_TRACE",
            "STATE_DIRECTORY",
        ] {
            cmd.env_remove(var);
        }
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MONITOR_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--config")
            .arg(self.config())
            .arg("--state")
            .arg(self.path("state.db"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run jsonl-alertctl")
    }
}

fn text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON documents in the file, one per line.
fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read the jsonl file");
    assert!(text.ends_with('\n'), "every line ends: {text:?}");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect()
}

#[test]
fn failure_and_recovery_reach_the_linked_jsonl_notifier() {
    let dir = tempfile::tempdir().expect("temp dir");
    let alerts = dir.path().join("alerts.jsonl");
    let ctl = Ctl::new(&format!(
        "[notifiers.audit]\ntype = \"jsonl\"\npath = {:?}\n",
        alerts.to_str().expect("UTF-8 temp path")
    ));

    let out = ctl.run(&["config", "check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("audit"),
        "{}",
        text(&out)
    );

    let out = ctl.run(&[
        "failure",
        "backup.service",
        "--result",
        "exit-code",
        "--exit-code",
        "exited",
        "--exit-status",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let docs = lines(&alerts);
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["service"], "backup.service", "{}", docs[0]);
    assert_eq!(docs[0]["event"], "failure", "{}", docs[0]);
    assert_eq!(docs[0]["failures"][0]["exit_status"], "3", "{}", docs[0]);

    let out = ctl.run(&["success", "backup.service"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let docs = lines(&alerts);
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert_eq!(docs[1]["service"], "backup.service", "{}", docs[1]);
    assert_eq!(docs[1]["event"], "recovery", "{}", docs[1]);
}

#[test]
fn every_subcommand_of_the_stock_cli_is_there() {
    let ctl = Ctl::new("");
    let out = ctl.run(&["--help"]);
    assert!(out.status.success(), "{}", text(&out));
    let help = String::from_utf8_lossy(&out.stdout);
    let mut commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    commands.sort_unstable();
    // the commands README.md documents for `alertctl`
    let mut documented = [
        "failure",
        "success",
        "status",
        "history",
        "clear",
        "config",
        "notify-test",
        "flush",
        "outbox",
        "test",
        "run",
        "ping",
        "silence",
        "ack",
        "report",
        "systemd",
        "journal",
    ];
    documented.sort_unstable();
    assert_eq!(commands, documented, "{help}");
}

#[test]
fn an_unknown_type_is_a_located_config_error() {
    let ctl = Ctl::new("[notifiers.ops]\ntype = \"pagr\"\n");
    let location = format!("{}:", ctl.config().display());
    for args in [
        &["config", "check"][..],
        &["failure", "backup.service", "--result", "exit-code"],
    ] {
        let out = ctl.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        // file:line:col: what is wrong
        let (_, rest) = stderr
            .split_once(&location)
            .unwrap_or_else(|| panic!("{args:?}: no {location}: {}", text(&out)));
        let mut parts = rest.splitn(3, ':');
        let (line, col) = (parts.next(), parts.next());
        assert!(
            [line, col]
                .iter()
                .all(|p| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))),
            "{args:?}: not file:line:col: {}",
            text(&out)
        );
        // and the type this binary links is among those it knows
        let (_, known) = stderr
            .split_once("unknown type \"pagr\"")
            .unwrap_or_else(|| panic!("{args:?}: {}", text(&out)));
        assert!(known.contains("jsonl"), "{args:?}: {}", text(&out));
    }
}
