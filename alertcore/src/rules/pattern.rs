//! Name matchers for routing rules: globs, or regular expressions written `re:...`.

use std::fmt;
use std::str::FromStr;

use regex::{Regex, RegexBuilder};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// Cap on a pattern's compiled program (the `regex` crate's `size_limit`). Real patterns
/// need a few KiB; this leaves room for long alternations while bounding memory.
const SIZE_LIMIT: usize = 1 << 20;
/// Cap on the lazy DFA cache of one pattern (the `regex` crate's `dfa_size_limit`).
const DFA_SIZE_LIMIT: usize = 1 << 20;
/// How deeply `{...}` may nest in a glob.
const MAX_BRACE_DEPTH: usize = 16;
/// How much of a pattern an error message quotes.
const QUOTE_MAX_CHARS: usize = 60;

/// A service or host name matcher: a glob, or a regex when written `re:...`.
///
/// A glob is anchored and case-sensitive: `web-*` matches `web-1` but not `my-web-1`.
/// `*` matches any run of characters (including none), `?` exactly one character,
/// `[abc]` / `[a-z]` one character of a set, `[!a-z]` (or `[^a-z]`) one character not in
/// it, `{a,b}` either alternative (alternatives may contain globs and nest), and `\`
/// makes the next character literal (so `\re:x` is the glob for the name `re:x`). A `,`
/// outside `{...}` is an error rather than a literal comma, because neither unit names
/// nor host names contain commas: the author almost certainly meant a list, which is an
/// array of patterns (or `{a,b}`).
///
/// `re:REGEX` is a regular expression in the `regex` crate's syntax, searched for
/// **unanchored**, like xymon's `%regex`: `re:web` matches `my-web-1`; write `re:^web$`
/// for a whole-name match. It is case-sensitive unless it says `(?i)`.
///
/// Globs are translated to regexes, and the `regex` crate matches in time linear in the
/// input, so no pattern can make matching blow up. The compiled size is capped, so a
/// hostile config cannot make us allocate without bound either.
///
/// Two patterns are equal when their source text is.
///
/// ```
/// # use alertcore::rules::Pattern;
/// let p = Pattern::parse("db-{main,replica}-?.service").unwrap();
/// assert!(p.matches("db-main-1.service"));
/// assert!(!p.matches("db-main-10.service"));
/// let r = Pattern::parse("re:^backup-[0-9]+").unwrap();
/// assert!(r.matches("backup-42.timer"));
/// ```
#[derive(Clone)]
pub struct Pattern {
    source: String,
    matcher: Matcher,
}

#[derive(Clone)]
enum Matcher {
    /// `*`: everything.
    Any,
    /// A glob without wildcards (escapes resolved): plain string equality.
    Literal(String),
    /// Everything else.
    Regex(Regex),
}

impl Pattern {
    /// Parses a glob, or a regex when `text` starts with `re:`.
    ///
    /// # Errors
    /// A message quoting the pattern and saying what is wrong with it: an empty pattern,
    /// an unclosed `[` or `{`, a reversed range, a `,` outside braces, the `regex` crate's
    /// message for a bad regex, or a pattern whose compiled form is too large.
    pub fn parse(text: &str) -> Result<Self, String> {
        let matcher = if let Some(re) = text.strip_prefix("re:") {
            if re.is_empty() {
                return Err("empty regex after \"re:\"; to match every name write \"*\"".to_owned());
            }
            Matcher::Regex(build_regex(re).map_err(|e| match e {
                regex::Error::CompiledTooBig(limit) => format!(
                    "regex {} is too large (compiled form over {limit} bytes)",
                    quote(text)
                ),
                e => format!("invalid regex {}: {e}", quote(text)),
            })?)
        } else {
            if text.is_empty() {
                return Err("empty pattern; to match every name write \"*\"".to_owned());
            }
            match translate_glob(text).map_err(|e| format!("invalid glob {}: {e}", quote(text)))? {
                Glob::Literal(s) => Matcher::Literal(s),
                Glob::Any => Matcher::Any,
                Glob::Regex(re) => Matcher::Regex(build_regex(&re).map_err(|e| match e {
                    regex::Error::CompiledTooBig(limit) => format!(
                        "glob {} is too large (compiled form over {limit} bytes)",
                        quote(text)
                    ),
                    // The translation only emits valid syntax; should that ever be wrong,
                    // say so rather than panic.
                    e => format!("glob {} could not be compiled: {e}", quote(text)),
                })?),
            }
        };
        Ok(Self {
            source: text.to_owned(),
            matcher,
        })
    }

    /// Whether `name` matches: the whole name for a glob, anywhere in it for `re:`.
    pub fn matches(&self, name: &str) -> bool {
        match &self.matcher {
            Matcher::Any => true,
            Matcher::Literal(s) => s == name,
            Matcher::Regex(re) => re.is_match(name),
        }
    }

    /// The pattern as written, `re:` prefix included.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether this is a `re:` regex rather than a glob.
    pub fn is_regex(&self) -> bool {
        self.source.starts_with("re:")
    }
}

fn build_regex(re: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(re)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
}

/// A glob after translation.
enum Glob {
    Any,
    Literal(String),
    Regex(String),
}

/// Translates a glob into an anchored regex (or recognises the two trivial cases).
/// Errors are messages without the pattern itself; the caller adds it.
fn translate_glob(glob: &str) -> Result<Glob, String> {
    if glob == "*" {
        return Ok(Glob::Any);
    }
    // `(?s)` so that `*` and `?` match every character, newline included.
    let mut out = String::with_capacity(glob.len() * 2 + 16);
    out.push_str(r"(?s)\A(?:");
    let mut literal = String::new();
    let mut is_literal = true;
    // The character positions of the open braces, for the "unclosed" message.
    let mut braces: Vec<usize> = Vec::new();
    let mut chars = glob.chars().enumerate().peekable();
    while let Some((pos, c)) = chars.next() {
        match c {
            '*' => {
                is_literal = false;
                while chars.next_if(|&(_, c)| c == '*').is_some() {}
                out.push_str(".*");
            }
            '?' => {
                is_literal = false;
                out.push('.');
            }
            '[' => {
                is_literal = false;
                translate_class(pos, &mut chars, &mut out)?;
            }
            '{' => {
                is_literal = false;
                if braces.len() >= MAX_BRACE_DEPTH {
                    return Err(format!(
                        "'{{' at character {} nests deeper than {MAX_BRACE_DEPTH} levels",
                        pos + 1
                    ));
                }
                braces.push(pos);
                out.push_str("(?:");
            }
            ',' if !braces.is_empty() => out.push('|'),
            ',' => {
                return Err(format!(
                    "',' at character {} is outside {{...}}; list several patterns as an \
                     array [\"a\", \"b\"] or write {{a,b}} (\\, is a literal comma)",
                    pos + 1
                ));
            }
            '}' => {
                if braces.pop().is_none() {
                    return Err(format!(
                        "'}}' at character {} has no matching '{{' (\\}} is a literal brace)",
                        pos + 1
                    ));
                }
                out.push(')');
            }
            '\\' => {
                let Some((_, escaped)) = chars.next() else {
                    return Err("it ends with a lone '\\'".to_owned());
                };
                push_escaped(&mut out, escaped);
                literal.push(escaped);
            }
            c => {
                push_escaped(&mut out, c);
                literal.push(c);
            }
        }
    }
    if let Some(pos) = braces.last() {
        return Err(format!("'{{' at character {} is never closed", pos + 1));
    }
    if is_literal {
        return Ok(Glob::Literal(literal));
    }
    out.push_str(r")\z");
    Ok(Glob::Regex(out))
}

/// Translates the class whose `[` is at character `open`; `chars` is just past it.
fn translate_class(
    open: usize,
    chars: &mut std::iter::Peekable<impl Iterator<Item = (usize, char)>>,
    out: &mut String,
) -> Result<(), String> {
    let unclosed = || format!("'[' at character {} is never closed", open + 1);
    out.push('[');
    if chars.next_if(|&(_, c)| c == '!' || c == '^').is_some() {
        out.push('^');
    }
    let mut first = true;
    loop {
        let Some((_, c)) = chars.next() else {
            return Err(unclosed());
        };
        // A `]` right after `[` or `[!` is a member, not the end.
        if c == ']' && !first {
            break;
        }
        first = false;
        let lo = if c == '\\' {
            chars.next().ok_or_else(unclosed)?.1
        } else {
            c
        };
        // `a-z` is a range unless the `-` is last (`[a-]` holds `a` and `-`).
        let is_range = chars.next_if(|&(_, c)| c == '-').is_some();
        if !is_range {
            push_escaped(out, lo);
            continue;
        }
        match chars.next() {
            None => return Err(unclosed()),
            Some((_, ']')) => {
                push_escaped(out, lo);
                push_escaped(out, '-');
                break;
            }
            Some((_, hi)) => {
                let hi = if hi == '\\' {
                    chars.next().ok_or_else(unclosed)?.1
                } else {
                    hi
                };
                if lo > hi {
                    return Err(format!(
                        "range {lo}-{hi} in the '[' at character {} is reversed",
                        open + 1
                    ));
                }
                push_escaped(out, lo);
                out.push('-');
                push_escaped(out, hi);
            }
        }
    }
    out.push(']');
    Ok(())
}

/// Appends `c` to a regex so that it matches itself, inside or outside a class.
fn push_escaped(out: &mut String, c: char) {
    if regex_syntax_is_meta(c) {
        out.push('\\');
    }
    out.push(c);
}

/// The characters the `regex` crate lets (and, being special somewhere, wants) us escape:
/// the same set as `regex_syntax::is_meta_character`, which `regex::escape` uses.
fn regex_syntax_is_meta(c: char) -> bool {
    matches!(
        c,
        '\\' | '.'
            | '+'
            | '*'
            | '?'
            | '('
            | ')'
            | '|'
            | '['
            | ']'
            | '{'
            | '}'
            | '^'
            | '$'
            | '#'
            | '&'
            | '-'
            | '~'
    )
}

/// `text` in quotes for an error message, shortened if long.
fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_MAX_CHARS) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &text[..end], text.len()),
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

impl FromStr for Pattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for Pattern {
    type Error = String;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Pattern;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob or \"re:REGEX\" string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Pattern, E> {
                Pattern::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// Several patterns; a name matches when any one does.
///
/// Deserializes from one string (one pattern) or an array of strings; serializes as an
/// array. An empty list matches nothing: whether an absent or empty list means "no
/// filter" is for the rule that holds it to decide.
///
/// ```
/// # use alertcore::rules::Patterns;
/// let p: Patterns = serde_json::from_str(r#"["db-*", "re:^cache"]"#).unwrap();
/// assert_eq!(p.first_match("cache-2").map(|p| p.as_str()), Some("re:^cache"));
/// assert!(!p.matches_any("web"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Patterns(Vec<Pattern>);

impl Patterns {
    /// The list `patterns`.
    pub fn new(patterns: Vec<Pattern>) -> Self {
        Self(patterns)
    }

    /// Parses each string with [`Pattern::parse`].
    ///
    /// # Errors
    /// The first bad pattern's message.
    pub fn parse<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Result<Self, String> {
        texts
            .into_iter()
            .map(|t| Pattern::parse(t.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether any pattern matches `name`.
    pub fn matches_any(&self, name: &str) -> bool {
        self.first_match(name).is_some()
    }

    /// The first pattern that matches `name`, for explaining a decision.
    pub fn first_match(&self, name: &str) -> Option<&Pattern> {
        self.0.iter().find(|p| p.matches(name))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many patterns there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The patterns in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Pattern> {
        self.0.iter()
    }

    /// The patterns as a slice.
    pub fn as_slice(&self) -> &[Pattern] {
        &self.0
    }
}

impl From<Vec<Pattern>> for Patterns {
    fn from(v: Vec<Pattern>) -> Self {
        Self(v)
    }
}

impl From<Pattern> for Patterns {
    fn from(p: Pattern) -> Self {
        Self(vec![p])
    }
}

impl FromIterator<Pattern> for Patterns {
    fn from_iter<I: IntoIterator<Item = Pattern>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Patterns {
    type Item = &'a Pattern;
    type IntoIter = std::slice::Iter<'a, Pattern>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for Patterns {
    type Item = Pattern;
    type IntoIter = std::vec::IntoIter<Pattern>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Patterns {
    /// The patterns in brackets, separated by `, `: `[db-*, re:^web]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(p.as_str())?;
        }
        f.write_str("]")
    }
}

impl Serialize for Patterns {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for p in &self.0 {
            seq.serialize_element(p)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Patterns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Patterns;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pattern string or an array of pattern strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Patterns, E> {
                Pattern::parse(v).map(Patterns::from).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Patterns, A::Error> {
                // Not `size_hint`-preallocated: a hostile hint must not allocate.
                let mut v = Vec::new();
                while let Some(p) = seq.next_element::<Pattern>()? {
                    v.push(p);
                }
                Ok(Patterns(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (pattern, name, matches?)
    const MATCH_CASES: &[(&str, &str, bool)] = &[
        // literals: anchored, case-sensitive
        ("nginx.service", "nginx.service", true),
        ("nginx.service", "nginx.servicex", false),
        ("nginx.service", "xnginx.service", false),
        ("nginx.service", "NGINX.service", false),
        ("nginx.service", "nginxXservice", false),
        // *
        ("*", "", true),
        ("*", "anything at all", true),
        ("*", "new\nline", true),
        ("db-*", "db-", true),
        ("db-*", "db-main", true),
        ("db-*", "my-db-main", false),
        ("*.timer", "backup.timer", true),
        ("*.timer", "backup.service", false),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("***", "", true),
        ("a**b", "ab", true),
        ("*@*.service", "getty@tty1.service", true),
        ("*@*.service", "getty.service", false),
        // ?
        ("web-?", "web-1", true),
        ("web-?", "web-", false),
        ("web-?", "web-12", false),
        ("web-?", "web-é", true),
        ("web-?", "web-\n", true),
        ("??", "日本", true),
        ("?", "日本", false),
        // classes
        ("web[12]", "web1", true),
        ("web[12]", "web3", false),
        ("web[0-9]", "web7", true),
        ("web[0-9]", "weba", false),
        ("web[!0-9]", "weba", true),
        ("web[!0-9]", "web7", false),
        ("web[^0-9]", "weba", true),
        ("web[^0-9]", "web7", false),
        ("x[]]", "x]", true),
        ("x[]]", "x[", false),
        ("x[!]]", "xa", true),
        ("x[!]]", "x]", false),
        ("x[a-]", "x-", true),
        ("x[a-]", "xa", true),
        ("x[a-]", "xb", false),
        ("x[-a]", "x-", true),
        ("x[\\]]", "x]", true),
        ("x[\\-z]", "x-", true),
        ("x[\\-z]", "xa", false),
        ("x[.]", "x.", true),
        ("x[.]", "xa", false),
        ("x[&&]", "x&", true),
        ("x[~~]", "x~", true),
        ("x[[]", "x[", true),
        ("x[\\\\]", "x\\", true),
        ("[a-cx-z]", "y", true),
        ("[a-cx-z]", "d", false),
        ("[é-ë]", "ê", true),
        ("[!a]", "\n", true),
        // braces
        ("{a,b}", "a", true),
        ("{a,b}", "b", true),
        ("{a,b}", "ab", false),
        ("{a,b}", "", false),
        ("x{,y}", "x", true),
        ("x{,y}", "xy", true),
        ("{}", "", true),
        ("{}", "x", false),
        ("db-{main,replica}-?.service", "db-replica-2.service", true),
        ("db-{main,replica}-?.service", "db-other-2.service", false),
        ("{web*,db-[0-9]}", "webserver", true),
        ("{web*,db-[0-9]}", "db-5", true),
        ("{web*,db-[0-9]}", "db-x", false),
        ("{a,{b,c}d}", "cd", true),
        ("{a,{b,c}d}", "c", false),
        // escapes and regex metacharacters as literals
        ("\\*", "*", true),
        ("\\*", "x", false),
        ("a\\,b", "a,b", true),
        ("\\{a\\}", "{a}", true),
        ("a.b", "a.b", true),
        ("a.b", "axb", false),
        ("a+b", "a+b", true),
        ("a+b", "aab", false),
        ("(x)|y$^", "(x)|y$^", true),
        ("a#b ~c", "a#b ~c", true),
        ("\\x", "x", true),
        (
            "systemd-fsck@dev-disk-by\\x2duuid-*.service",
            "systemd-fsck@dev-disk-by\\x2duuid-1.service",
            false,
        ),
        (
            "systemd-fsck@dev-disk-by\\\\x2duuid-*.service",
            "systemd-fsck@dev-disk-by\\x2duuid-1.service",
            true,
        ),
        // unicode
        ("café-*", "café-1", true),
        ("café-*", "cafe-1", false),
        ("日本*", "日本語", true),
        // regexes: unanchored search
        ("re:web", "my-web-1", true),
        ("re:^web", "my-web-1", false),
        ("re:^web-[0-9]+$", "web-42", true),
        ("re:^web-[0-9]+$", "web-42x", false),
        ("re:(?i)^NGINX", "nginx.service", true),
        ("re:^NGINX", "nginx.service", false),
        ("re:a{2,3}", "xaaay", true),
        ("re:a{2,3}", "xay", false),
        ("re:\\.timer$", "a.timer", true),
        ("re:\\.timer$", "atimer", false),
        ("re:.*", "", true),
        ("re:^$", "", true),
        ("re:re:", "re:x", true),
        ("re:^\\p{Greek}+$", "αβγ", true),
        // a glob that merely contains "re"
        ("re*", "regex", true),
        ("RE:x", "RE:x", true),
        ("\\re:x", "re:x", true),
        ("\\re:x", "re:xx", false),
    ];

    #[test]
    fn matching_table() {
        for &(pat, name, want) in MATCH_CASES {
            let p = Pattern::parse(pat).unwrap_or_else(|e| panic!("{pat:?}: {e}"));
            assert_eq!(p.matches(name), want, "{pat:?} on {name:?}");
            assert_eq!(p.as_str(), pat);
            assert_eq!(p.to_string(), pat);
        }
    }

    /// (pattern, a fragment the error message must contain)
    const ERROR_CASES: &[(&str, &str)] = &[
        ("", "empty pattern"),
        ("re:", "empty regex"),
        ("web[12", "'[' at character 4 is never closed"),
        ("[", "'[' at character 1 is never closed"),
        ("[!", "never closed"),
        ("[]", "never closed"),
        ("[a-", "never closed"),
        ("[a\\", "never closed"),
        ("[z-a]", "range z-a in the '[' at character 1 is reversed"),
        ("{a,b", "'{' at character 1 is never closed"),
        ("x{a,{b}", "'{' at character 2 is never closed"),
        ("a}", "'}' at character 2 has no matching '{'"),
        ("a,b", "',' at character 2 is outside {...}"),
        ("nginx,sshd", "array"),
        ("abc\\", "lone '\\'"),
        ("re:(", "invalid regex \"re:(\""),
        ("re:[z-a]", "invalid regex"),
        ("re:a{2,1}", "invalid regex"),
        ("re:\\", "invalid regex"),
        ("re:(?<n>a)(?<n>b)", "invalid regex"),
    ];

    #[test]
    fn error_table() {
        for &(pat, want) in ERROR_CASES {
            let e = Pattern::parse(pat).expect_err(pat);
            assert!(e.contains(want), "{pat:?}: {e:?} lacks {want:?}");
        }
    }

    #[test]
    fn errors_quote_the_pattern_but_not_all_of_a_huge_one() {
        let e = Pattern::parse("db-[").unwrap_err();
        assert!(e.starts_with("invalid glob \"db-[\": "), "{e}");
        let huge = format!("{}[", "a".repeat(100_000));
        let e = Pattern::parse(&huge).unwrap_err();
        assert!(e.len() < 300, "{} bytes", e.len());
        assert!(e.contains("(100001 bytes)"), "{e}");
    }

    #[test]
    fn braces_nest_only_so_deep() {
        let ok = format!(
            "{}x{}",
            "{".repeat(MAX_BRACE_DEPTH),
            "}".repeat(MAX_BRACE_DEPTH)
        );
        assert!(Pattern::parse(&ok).unwrap().matches("x"));
        let deep = format!("{}x{}", "{".repeat(10_000), "}".repeat(10_000));
        let e = Pattern::parse(&deep).unwrap_err();
        assert!(e.contains("nests deeper than"), "{e}");
    }

    #[test]
    fn huge_inputs_are_refused_or_fast() {
        // A long literal is a plain comparison.
        let lit = "a".repeat(1_000_000);
        assert!(Pattern::parse(&lit).unwrap().matches(&lit));
        // A regex whose compiled form is huge is refused, not built.
        let e = Pattern::parse("re:(?:\\w{100}){100}").unwrap_err();
        assert!(e.contains("too large"), "{e}");
        let glob = "[a-z]?".repeat(200_000);
        let e = Pattern::parse(&glob).unwrap_err();
        assert!(e.contains("too large"), "{e}");
        // The classic exponential-backtracking shapes stay linear.
        let p = Pattern::parse(&format!("{}c", "a*".repeat(50))).unwrap();
        assert!(!p.matches(&format!("{}b", "a".repeat(10_000))));
        let p = Pattern::parse("re:^(a+)+$").unwrap();
        assert!(!p.matches(&format!("{}b", "a".repeat(100_000))));
    }

    #[test]
    fn literal_and_any_fast_paths() {
        assert!(matches!(Pattern::parse("*").unwrap().matcher, Matcher::Any));
        assert!(matches!(
            Pattern::parse("a\\*b").unwrap().matcher,
            Matcher::Literal(ref s) if s == "a*b"
        ));
        assert!(matches!(
            Pattern::parse("a*b").unwrap().matcher,
            Matcher::Regex(_)
        ));
    }

    #[test]
    fn serde_round_trip() {
        let p: Pattern = serde_json::from_str("\"db-*\"").unwrap();
        assert_eq!(p.as_str(), "db-*");
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"db-*\"");
        let e = serde_json::from_str::<Pattern>("\"db-[\"").unwrap_err();
        assert!(e.to_string().contains("'[' at character 4"), "{e}");
        let e = serde_json::from_str::<Pattern>("3").unwrap_err();
        assert!(
            e.to_string().contains("a glob or \"re:REGEX\" string"),
            "{e}"
        );
    }

    #[test]
    fn patterns_from_string_or_array() {
        #[derive(Deserialize, Serialize)]
        struct Rule {
            services: Patterns,
        }
        let r: Rule = toml::from_str("services = \"db-*\"").unwrap();
        assert_eq!(r.services.len(), 1);
        assert!(r.services.matches_any("db-1"));
        let r: Rule = toml::from_str("services = [\"db-*\", \"re:^web\", \"cache\"]").unwrap();
        assert_eq!(r.services.len(), 3);
        assert_eq!(r.services.first_match("web-1").unwrap().as_str(), "re:^web");
        assert_eq!(r.services.first_match("db-web").unwrap().as_str(), "db-*");
        assert!(r.services.first_match("mail").is_none());
        assert_eq!(r.services.to_string(), "[db-*, re:^web, cache]");
        assert_eq!(
            toml::to_string(&r).unwrap(),
            "services = [\"db-*\", \"re:^web\", \"cache\"]\n"
        );
        let r: Rule = toml::from_str("services = []").unwrap();
        assert!(r.services.is_empty());
        assert!(!r.services.matches_any(""));
        let e = toml::from_str::<Rule>("services = [\"ok\", \"re:(\"]")
            .err()
            .unwrap();
        assert!(e.to_string().contains("invalid regex \"re:(\""), "{e}");
        let e = toml::from_str::<Rule>("services = 5").err().unwrap();
        assert!(
            e.to_string().contains("a pattern string or an array"),
            "{e}"
        );
        let e = toml::from_str::<Rule>("services = [5]").err().unwrap();
        assert!(e.to_string().contains("a glob or"), "{e}");
    }

    #[test]
    fn patterns_parse() {
        let p = Patterns::parse(["a", "b*"]).unwrap();
        assert_eq!(
            p.iter().map(Pattern::as_str).collect::<Vec<_>>(),
            ["a", "b*"]
        );
        assert!(Patterns::parse(["a", "["]).is_err());
        assert!(Patterns::default().is_empty());
    }

    /// A reference matcher for globs without braces or escapes, straight from the
    /// definition (exponential, so only for short inputs).
    fn reference(glob: &[char], name: &[char]) -> bool {
        match glob.split_first() {
            None => name.is_empty(),
            Some(('*', rest)) => (0..=name.len()).any(|i| reference(rest, &name[i..])),
            Some(('?', rest)) => !name.is_empty() && reference(rest, &name[1..]),
            Some(('[', rest)) => {
                let (neg, rest) = match rest.split_first() {
                    Some(('!', r)) => (true, r),
                    _ => (false, rest),
                };
                let close = 1 + rest[1..].iter().position(|&c| c == ']').unwrap();
                let (set, after) = (&rest[..close], &rest[close + 1..]);
                let Some((&c, name_rest)) = name.split_first() else {
                    return false;
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && reference(after, name_rest)
            }
            Some((&g, rest)) => name.first() == Some(&g) && reference(rest, &name[1..]),
        }
    }

    fn glob_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("*".to_owned()),
                Just("?".to_owned()),
                Just("a".to_owned()),
                Just("b".to_owned()),
                Just(".".to_owned()),
                "\\[!?[ab.][ab]?\\]",
                "\\[[ab]-[ab]\\]",
            ],
            0..8,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            if let Ok(p) = Pattern::parse(&s) {
                let _ = p.matches(&s);
                prop_assert_eq!(p.as_str(), s.as_str());
            }
        }

        #[test]
        fn parse_never_panics_on_glob_syntax(s in "[-*?\\[\\]{}!^,\\\\a-c:re]{0,24}") {
            if let Ok(p) = Pattern::parse(&s) {
                let _ = p.matches("abc");
            }
        }

        #[test]
        fn display_round_trips(s in any::<String>(), name in "[a-c.*]{0,6}") {
            if let Ok(p) = Pattern::parse(&s) {
                let q = Pattern::parse(&p.to_string()).unwrap();
                prop_assert_eq!(&q, &p);
                prop_assert_eq!(q.matches(&name), p.matches(&name));
            }
        }

        #[test]
        fn globs_agree_with_the_definition(glob in glob_strategy(), name in "[ab.]{0,7}") {
            // A reversed range is an error for us and an empty set in the reference.
            if let Ok(p) = Pattern::parse(&glob) {
                let g: Vec<char> = glob.chars().collect();
                let n: Vec<char> = name.chars().collect();
                prop_assert_eq!(p.matches(&name), reference(&g, &n), "{} on {}", glob, name);
            }
        }

        #[test]
        fn escaped_text_matches_itself_only(s in prop_oneof![any::<String>(), "re:[(*?a]{0,3}"]) {
            prop_assume!(!s.is_empty());
            let mut glob = String::new();
            for (i, c) in s.chars().enumerate() {
                // A leading `re:` would make it a regex; `\r` is a literal `r`.
                if "*?[]{},\\".contains(c) || (i == 0 && s.starts_with("re:")) {
                    glob.push('\\');
                }
                glob.push(c);
            }
            let p = Pattern::parse(&glob).unwrap();
            prop_assert!(p.matches(&s));
            let longer = format!("{s}x");
            prop_assert!(!p.matches(&longer));
        }
    }
}
