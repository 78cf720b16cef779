//! The whole config path: TOML parsing, `[policy]`, `[[rules]]`, templates, then building
//! every notifier with the built-in factories and the router over them, then every `[[checks]]` entry and the
//! `[journal]` chains. Any input may be rejected; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(config) = alertcore::Config::parse(text, "fuzz.toml") else {
        return;
    };
    // Building checks the notifier tables; it opens no file and starts no process.
    // Then the router: rules, formats and their templates, the time zone.
    if let Ok(notifiers) = config.build_notifiers(&alertcore::Registry::new()) {
        let _ = config.build_router(&notifiers);
    }
    // and every check (it builds probes: no connection, no process)
    let _ = alertcore_checks::checks(&config);
    // and the journal chains (regexes compiled, jumps resolved; nothing started)
    let _ = alertcore_journal::JournalConfig::from_config(&config);
});
