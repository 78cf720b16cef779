//! Time windows (`"Mon-Fri 08:00-18:00"`): parsing never panics; the canonical text parses
//! back to an equal window and is a fixed point; evaluating any instant in a few awkward
//! zones (DST, half-hour DST, +14:00, a fractional offset) never panics.
#![no_main]

use std::sync::OnceLock;

use alertcore::rules::{TimeWindow, TimeWindows};
use jiff::tz::TimeZone;
use libfuzzer_sys::fuzz_target;

fn zones() -> &'static [TimeZone] {
    static ZONES: OnceLock<Vec<TimeZone>> = OnceLock::new();
    ZONES.get_or_init(|| {
        let mut zones = vec![TimeZone::UTC];
        for name in [
            "Europe/Berlin",
            "America/St_Johns",
            "Australia/Lord_Howe",
            "Pacific/Kiritimati",
            "Pacific/Apia",
        ] {
            // Missing from a minimal tzdata: fuzz the others rather than fail.
            if let Ok(tz) = TimeZone::get(name) {
                zones.push(tz);
            }
        }
        zones
    })
}

// Input: 8 bytes of instant (i64 little-endian, ms since the epoch), 1 byte picking the
// zone, then the window text (UTF-8), so that seeds are easy to write by hand.
fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<9>() else {
        return;
    };
    let ms = i64::from_le_bytes(head[..8].try_into().expect("8 bytes"));
    let zone = head[8];
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let Ok(window) = TimeWindow::parse(text) else {
        return;
    };
    let canonical = window.to_string();
    let again = TimeWindow::parse(&canonical)
        .unwrap_or_else(|e| panic!("{text:?} printed as {canonical:?}, which fails: {e}"));
    assert_eq!(again, window, "{text:?} printed as {canonical:?}");
    assert_eq!(again.to_string(), canonical, "{text:?}");

    let zones = zones();
    let tz = &zones[usize::from(zone) % zones.len()];
    let inside = window.contains_ms(ms, tz);
    let windows = TimeWindows::from(window.clone());
    assert_eq!(windows.contains_any_ms(ms, tz), inside);
    if window.is_always() {
        assert!(inside, "{canonical:?} at {ms}");
    }
});
