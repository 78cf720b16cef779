//! Durations as people write them in config files: `"30s"`, `"5m"`, `"4h"`, `"1h 30m"`,
//! with serde support (`#[serde(with = "alertcore::duration")]`).
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses a duration string.
///
/// # Errors
/// A message naming the bad string and the accepted forms.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("invalid duration {s:?} ({e}); write e.g. \"30s\", \"5m\", \"4h\", \"1h 30m\"")
    })
}

/// Formats like `4h 30m`; zero as `0s`.
pub fn format(d: Duration) -> String {
    if d.is_zero() {
        "0s".to_owned()
    } else {
        humantime::format_duration(d).to_string()
    }
}

/// `#[serde(with)]` serializer.
///
/// # Errors
/// Those of the serializer.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// `#[serde(with)]` deserializer.
///
/// # Errors
/// A custom error for strings that are not durations.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

/// `#[serde(with = "alertcore::duration::positive")]` for a duration that must not be
/// zero (a period: zero would mean "all the time").
pub mod positive {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Serializes like [`super::serialize`].
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        super::serialize(d, s)
    }

    /// Deserializes like [`super::deserialize`], refusing zero.
    ///
    /// # Errors
    /// A custom error for strings that are not durations, or are zero.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = super::deserialize(d)?;
        if v.is_zero() {
            return Err(serde::de::Error::custom("must be longer than 0s"));
        }
        Ok(v)
    }
}

/// `#[serde(with = "alertcore::duration::option", default)]` for an optional duration
/// (a missing key is `None`; with `skip_serializing_if = "Option::is_none"`).
pub mod option {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Serializes `Some` like [`super::serialize`].
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes a present value like [`super::deserialize`].
    ///
    /// # Errors
    /// A custom error for strings that are not durations.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::deserialize(d).map(Some)
    }
}
