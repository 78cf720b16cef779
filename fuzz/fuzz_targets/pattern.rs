//! Name patterns (globs and `re:` regexes): parsing never panics, keeps the source text,
//! and matching any name never panics (the regex size caps keep memory bounded; the
//! regex engine keeps time linear). A glob made of the name with every special
//! character escaped must match that name.
#![no_main]

use alertcore::rules::{Pattern, Patterns};
use libfuzzer_sys::fuzz_target;

// Input: the pattern, a NUL byte, the name (both UTF-8).
fuzz_target!(|data: &[u8]| {
    let Ok(data) = std::str::from_utf8(data) else {
        return;
    };
    let (text, name) = data.split_once('\0').unwrap_or((data, ""));
    if let Ok(pattern) = Pattern::parse(text) {
        assert_eq!(pattern.as_str(), text);
        assert_eq!(pattern.to_string(), text);
        let hit = pattern.matches(name);
        let list = Patterns::from(pattern);
        assert_eq!(list.matches_any(name), hit);
        assert_eq!(list.first_match(name).is_some(), hit);
    }

    if !name.is_empty() {
        let mut escaped = String::with_capacity(name.len() * 2);
        for (i, c) in name.chars().enumerate() {
            // A leading `re:` would make it a regex; `\r` is a literal `r`.
            if "*?[]{},\\".contains(c) || (i == 0 && name.starts_with("re:")) {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        let literal = Pattern::parse(&escaped)
            .unwrap_or_else(|e| panic!("escaped {name:?} as {escaped:?}: {e}"));
        assert!(literal.matches(name), "{escaped:?} vs {name:?}");
    }
});
