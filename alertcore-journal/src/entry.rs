//! One journal entry as `journalctl -o json` prints it.

use std::fmt::{self, Write as _};

use alertcore::Timestamp;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A journal entry: its fields by name, each a string.
///
/// journalctl prints a field that is not valid UTF-8 (or holds control characters) as
/// an array of bytes: it is decoded lossily here. A field journald holds more than
/// once is an array of values: the first is kept. A field larger than journalctl's
/// limit without `--all` is `null`: it is left out (the follower passes `--all`).
///
/// The names and values live in one buffer, so an entry read into again with
/// [`Entry::read`] costs no allocation once it has seen a line as long; a field is
/// found by a walk over some 30 names, which is cheaper than hashing them.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// Each field's name followed by its value.
    text: String,
    /// Per field: where its name starts, where its value starts and ends in `text`.
    /// A later field of the same name hides an earlier one.
    fields: Vec<(usize, usize, usize)>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        let mut a: Vec<_> = self.fields().collect();
        let mut b: Vec<_> = other.fields().collect();
        a.sort_unstable();
        b.sort_unstable();
        a == b
    }
}

impl Eq for Entry {}

impl Entry {
    /// Reads one line of `journalctl -o json`.
    ///
    /// # Errors
    /// The JSON error, when the line is not a JSON object.
    pub fn parse(line: &str) -> Result<Self, String> {
        let mut e = Self::default();
        e.read(line.as_bytes())?;
        Ok(e)
    }

    /// Reads one line of `journalctl -o json` into this entry, replacing what it held.
    ///
    /// # Errors
    /// The JSON error, when the line is not a JSON object of UTF-8 text (journalctl
    /// escapes every value that is not); the entry is then empty.
    pub fn read(&mut self, line: &[u8]) -> Result<(), String> {
        self.text.clear();
        self.fields.clear();
        let mut de = serde_json::Deserializer::from_slice(line);
        let read = de
            .deserialize_map(Fields(self))
            .and_then(|()| de.end())
            .map_err(|e| e.to_string());
        if read.is_err() {
            self.text.clear();
            self.fields.clear();
        }
        read
    }

    /// An entry of these fields (tests, `alertctl journal test --file`).
    pub fn from_fields<K: AsRef<str>, V: AsRef<str>>(
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut e = Self::default();
        for (k, v) in fields {
            e.set(k.as_ref(), v.as_ref());
        }
        e
    }

    fn find(&self, field: &str) -> Option<(usize, usize, usize)> {
        self.fields
            .iter()
            .rev()
            .find(|(k, v, _)| &self.text[*k..*v] == field)
            .copied()
    }

    /// The value of `field`.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.find(field).map(|(_, v, end)| &self.text[v..end])
    }

    /// Sets `field` (a regex capture).
    pub fn set(&mut self, field: &str, value: &str) {
        let k = self.text.len();
        self.text.push_str(field);
        self.text.push_str(value);
        self.fields.push((k, k + field.len(), self.text.len()));
    }

    /// Every field once, in no particular order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields
            .iter()
            .enumerate()
            .filter_map(|(i, &(k, v, end))| {
                let name = &self.text[k..v];
                let hidden = self.fields[i + 1..]
                    .iter()
                    .any(|(k2, v2, _)| &self.text[*k2..*v2] == name);
                (!hidden).then(|| (name, &self.text[v..end]))
            })
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

/// The object of one line, read into an [`Entry`].
struct Fields<'a>(&'a mut Entry);

impl<'de> Visitor<'de> for Fields<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a journal entry: an object of fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let e = self.0;
        loop {
            let k = e.text.len();
            if map.next_key_seed(Append(&mut e.text))?.is_none() {
                return Ok(());
            }
            let v = e.text.len();
            if map.next_value_seed(Value(&mut e.text))? {
                e.fields.push((k, v, e.text.len()));
            } else {
                e.text.truncate(k);
            }
        }
    }
}

/// A name, appended to the entry's text.
struct Append<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Append<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Append<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

/// A value, appended to the entry's text; `false` for one left out (`null`).
struct Value<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Value<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a journal field: a string, an array of bytes or of values, or null")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        self.0.push_str(v);
        Ok(true)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        let _ = write!(self.0, "{v}");
        Ok(true)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        let _ = write!(self.0, "{v}");
        Ok(true)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        let _ = write!(self.0, "{v}");
        Ok(true)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        let _ = write!(self.0, "{v}");
        Ok(true)
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        // bytes or several values: rare, so through the owned form
        Ok(match array(seq)? {
            Some(v) => {
                self.0.push_str(&v);
                true
            }
            None => false,
        })
    }
}

/// An array value: bytes, decoded lossily, or several values (each a string or
/// bytes), the first kept.
fn array<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Option<String>, A::Error> {
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
    Ok(match first {
        Some(v) => v,
        None => Some(String::from_utf8_lossy(&bytes).into_owned()),
    })
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
                array(seq).map(Item::Value)
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

    /// One entry read into again and again (the follower's) holds only the last
    /// line's fields; a set field hides the line's; a line that fails leaves it empty.
    #[test]
    fn an_entry_read_again_holds_only_the_new_line() {
        let mut e = Entry::default();
        e.read(br#"{"A":"1","B":"2"}"#).expect("parses");
        e.set("A", "3");
        assert_eq!(e.get("A"), Some("3"));
        let mut fields: Vec<_> = e.fields().collect();
        fields.sort_unstable();
        assert_eq!(fields, [("A", "3"), ("B", "2")]);
        e.read(br#"{"B":"x","C":null,"D":""}"#).expect("parses");
        assert_eq!(
            (e.get("A"), e.get("B"), e.get("C")),
            (None, Some("x"), None)
        );
        assert_eq!(e.get("D"), Some(""));
        assert_eq!(e, Entry::from_fields([("D", ""), ("B", "x")]));
        assert!(e.read(br#"{"A":"1","#).is_err());
        assert_eq!(e.fields().count(), 0);
        // journalctl escapes what is not UTF-8; raw bytes are a broken line
        assert!(e.read(b"{\"A\":\"\xff\"}").is_err());
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
