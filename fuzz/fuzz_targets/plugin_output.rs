//! A Nagios plugin's output as `command` checks read it: the message, the long output and
//! the performance data. A plugin may print anything; nothing may panic, and every datum
//! parsed prints back as one that parses to the same label.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (message, long, perfdata) = alertcore_checks::perfdata::parse_plugin_output(text);
    assert!(
        !message.contains('\n'),
        "the message is one line: {message:?}"
    );
    let _ = long;
    for datum in &perfdata {
        let again = alertcore_checks::perfdata::parse_perfdata(&datum.to_string());
        assert_eq!(again.len(), 1, "{datum:?} printed as {datum}");
        assert_eq!(again[0].label, datum.label);
    }
});
