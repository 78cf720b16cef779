//! Duration strings (`"30s"`, `"1h 30m"`): parsing never panics, and what we print for a
//! parsed duration parses back to the same duration (`config dump` relies on it).
#![no_main]

use alertcore::duration::{format, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(d) = parse(text) else {
        return;
    };
    let printed = format(d);
    assert_eq!(parse(&printed), Ok(d), "{text:?} printed as {printed:?}");
});
