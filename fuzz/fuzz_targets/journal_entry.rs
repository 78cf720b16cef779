//! A line of `journalctl -o json` (any bytes: strings, arrays of bytes, repeated fields,
//! `null`, garbage) read as a journal entry, then run through chains that touch every
//! filter and action on fields it may or may not have. Any line may be rejected; none
//! may panic.
#![no_main]

use std::sync::OnceLock;

use alertcore_journal::chain::{Actions, Runner};
use alertcore_journal::{Entry, JournalConfig, State};
use libfuzzer_sys::fuzz_target;

const CHAINS: &str = r#"
[journal.report]

[journal.chains]
a = [
  { in = { SYSLOG_IDENTIFIER = ["sshd", "sshd-session"] }, else = "b" },
  { regex = { MESSAGE = 'from (?P<ip>\S+)' } },
  { in_network = { ip = ["10.0.0.0/8", "::/0"] } },
  { counter_raise = "c", key = "{{ ip }}{{ MESSAGE }}", window = "1m" },
  { when_counter = "c", key = "{{ ip }}{{ MESSAGE }}", at_least = 2 },
  { ban = "{{ ip }}", for = "1h" },
  { counter_reset = "c", key = "{{ ip }}", grace = "1m" },
  { alert = "x-{{ ip }}", message = "{{ MESSAGE }}" },
]
b = [
  { priority = 3, else = "c" },
  { greater = { _PID = 1 } },
  { lower = { _PID = 99999 } },
  { user_exists = "_COMM" },
  { report = "important", message = "{{ MESSAGE }}" },
]
c = [
  { regex = { MESSAGE = '(?P<n>\d+)' } },
  { exec = ["/bin/true", "{{ n }}"] },
  { drop = true },
]
"#;

fn config() -> &'static JournalConfig {
    static C: OnceLock<JournalConfig> = OnceLock::new();
    C.get_or_init(|| {
        let c = alertcore::Config::parse(CHAINS, "fuzz.toml").expect("the fuzz chains parse");
        JournalConfig::from_config(&c)
            .expect("the fuzz chains build")
            .expect("a [journal]")
    })
}

fuzz_target!(|line: &str| {
    let Ok(mut entry) = Entry::parse(line) else {
        return;
    };
    let config = config();
    let actions = Actions::of(config);
    let mut runner = Runner::new(&config.chains, &actions);
    let mut state = State::default();
    let at = entry.time().map_or(0, alertcore::Timestamp::as_millis);
    runner.run(&mut entry, &mut state, at, at);
    runner.run(&mut entry, &mut state, at, at);
    let _ = state.checkpoint(alertcore::Timestamp::from_millis(at));
});
