//! Text with `{{ FIELD }}` placeholders, filled from an entry's fields: counter keys,
//! alert service names and messages, report lines, action arguments.

use crate::entry::Entry;

/// A parsed template: literal text and field names. A field the entry lacks is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Field(String),
}

impl Text {
    /// Parses `source`.
    ///
    /// # Errors
    /// An unclosed `{{` or an empty or malformed field name.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("`{{{{` without `}}}}` in {source:?}"))?;
            let name = after[..close].trim();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`{{{{ {name} }}}}` in {source:?}: a placeholder is one field name (letters, digits, `_`)"
                ));
            }
            parts.push(Part::Field(name.to_owned()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// `{{ FIELD }}`: just the field.
    pub fn field(name: &str) -> Self {
        Self {
            parts: vec![Part::Field(name.to_owned())],
        }
    }

    /// Whether it is the empty text.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The text with `entry`'s fields filled in.
    pub fn render(&self, entry: &Entry) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(s) => out.push_str(s),
                Part::Field(f) => out.push_str(entry.get(f).unwrap_or("")),
            }
        }
        out
    }

    /// The fields it names.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            Part::Literal(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_fields_and_leaves_missing_ones_empty() {
        let t = Text::parse("ban {{ ip }} ({{_COMM}}) {{ nope }}.").expect("parses");
        let e = Entry::from_fields([("ip", "192.0.2.7"), ("_COMM", "sshd")]);
        assert_eq!(t.render(&e), "ban 192.0.2.7 (sshd) .");
        assert_eq!(t.fields().collect::<Vec<_>>(), ["ip", "_COMM", "nope"]);
    }

    #[test]
    fn malformed_placeholders_are_errors() {
        assert!(Text::parse("a {{ ip").is_err());
        assert!(Text::parse("a {{ }}").is_err());
        assert!(Text::parse("a {{ ip | upper }}").is_err());
        assert_eq!(
            Text::parse("no fields")
                .expect("ok")
                .render(&Entry::default()),
            "no fields"
        );
    }
}
