//! One journal entry as `journalctl -o json` prints it.

use std::collections::HashMap;
use std::fmt;

use alertcore::Timestamp;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// A journal entry: its fields by name, each a string.
///
/// journalctl prints a field that is not valid UTF-8 (or holds control characters) as
/// an array of bytes: it is decoded lossily here. A field journald holds more than
/// once is an array of values: the first is kept. A field larger than journalctl's
/// limit without `--all` is `null`: it is left out (the follower passes `--all`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    fields: HashMap<String, String>,
}

impl Entry {
    /// Reads one line of `journalctl -o json`.
    ///
    /// # Errors
    /// The JSON error, when the line is not a JSON object.
    pub fn parse(line: &str) -> Result<Self, String> {
        let raw: HashMap<String, Field> = serde_json::from_str(line).map_err(|e| e.to_string())?;
        Ok(Self {
            fields: raw
                .into_iter()
                .filter_map(|(k, v)| v.0.map(|v| (k, v)))
                .collect(),
        })
    }

    /// An entry of these fields (tests, `alertctl journal test --file`).
    pub fn from_fields<K: Into<String>, V: Into<String>>(
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    /// Sets `field` (a regex capture).
    pub fn set(&mut self, field: &str, value: &str) {
        match self.fields.get_mut(field) {
            Some(v) => value.clone_into(v),
            None => {
                self.fields.insert(field.to_owned(), value.to_owned());
            }
        }
    }

    /// Every field, in no particular order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// journalctl's cursor of the entry (`__CURSOR`).
    pub fn cursor(&self) -> Option<&str> {
        self.get("__CURSOR")
    }

    /// When journald received the entry (`__REALTIME_TIMESTAMP`, microseconds), or
    /// `None` without it.
    pub fn time(&self) -> Option<Timestamp> {
        let micros: u64 = self.get("__REALTIME_TIMESTAMP")?.parse().ok()?;
        Some(Timestamp::from_millis(i64::try_from(micros / 1000).ok()?))
    }

    /// `MESSAGE`, or the empty string.
    pub fn message(&self) -> &str {
        self.get("MESSAGE").unwrap_or("")
    }
}

/// One field's value as journalctl prints it: a string, an array of bytes, an array of
/// values, a number (never, but harmless) or `null`.
struct Field(Option<String>);

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a journal field: a string, an array of bytes or of values, or null")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(Field(Some(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Field, E> {
        Ok(Field(Some(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Field, E> {
        Ok(Field(Some(v.to_string())))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Field, E> {
        Ok(Field(Some(v.to_string())))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Field, E> {
        Ok(Field(Some(v.to_string())))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Field, E> {
        Ok(Field(Some(v.to_string())))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Field, E> {
        Ok(Field(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Field, E> {
        Ok(Field(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
        // bytes, or several values (each a string or bytes): the bytes decoded, the
        // first of several values kept
        let mut bytes = Vec::new();
        let mut first: Option<Option<String>> = None;
        while let Some(item) = seq.next_element::<Item>()? {
            match item {
                Item::Byte(b) => bytes.push(b),
                Item::Value(v) => {
                    if first.is_none() {
                        first = Some(v);
                    }
                }
            }
        }
        Ok(Field(match first {
            Some(v) => v,
            None => Some(String::from_utf8_lossy(&bytes).into_owned()),
        }))
    }
}

/// One element of an array field: a byte, or one of several values.
enum Item {
    Byte(u8),
    Value(Option<String>),
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ItemVisitor;
        impl<'de> Visitor<'de> for ItemVisitor {
            type Value = Item;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte or a value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
                // a number outside 0..=255 is no byte: kept as text
                Ok(u8::try_from(v).map_or_else(|_| Item::Value(Some(v.to_string())), Item::Byte))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item, E> {
                Ok(u8::try_from(v).map_or_else(|_| Item::Value(Some(v.to_string())), Item::Byte))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item, E> {
                Ok(Item::Value(Some(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Item, E> {
                Ok(Item::Value(Some(v.to_string())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
                Ok(Item::Value(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Item, E> {
                Ok(Item::Value(Some(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
                Ok(Item::Value(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
                // one of several values, itself bytes
                FieldVisitor.visit_seq(seq).map(|f| Item::Value(f.0))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Item::Value(None))
            }
        }
        d.deserialize_any(ItemVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_bytes_several_values_and_null() {
        // what journalctl prints: bytes for a non-UTF-8 value, an array for a field
        // given twice, null for one over its size limit
        let e = Entry::parse(
            r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1700000000123456","MESSAGE":[104,105,255,10],"TAG":["a","b"],"BIN2":[[104,105],"x"],"BIG":null,"N":3}"#,
        )
        .expect("parses");
        assert_eq!(e.cursor(), Some("s=1;i=2"));
        assert_eq!(e.time(), Some(Timestamp::from_millis(1_700_000_000_123)));
        assert_eq!(e.message(), "hi\u{fffd}\n");
        assert_eq!(e.get("TAG"), Some("a"));
        assert_eq!(e.get("BIN2"), Some("hi"));
        assert_eq!(e.get("BIG"), None);
        assert_eq!(e.get("N"), Some("3"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for line in [
            "",
            "[]",
            "{",
            "null",
            "{\"A\":{\"b\":1}}",
            "{\"A\":[1,{\"x\":2}]}",
        ] {
            let _ = Entry::parse(line);
        }
        assert!(Entry::parse("not json").is_err());
        assert!(Entry::parse("[1,2]").is_err());
    }
}
