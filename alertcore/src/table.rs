//! A notifier's config table, as its factory gets it: [`Table`], read into the
//! transport's own config struct with errors that name the offending key; splitting off
//! the keys common to every notifier; a redacted copy for display.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::error::BuildError;

/// The keys of one `[notifiers.NAME]` table. A [`NotifierFactory`](crate::NotifierFactory)
/// gets the ones its type reads, and `type`: the keys every notifier shares (the format's
/// and the delivery settings) are taken out before, and [`Table::deserialize`] skips
/// `type`.
///
/// Its `Debug` shows it redacted ([`Table::redacted`]).
#[derive(Clone, Default, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct Table(toml::Table);

impl Table {
    /// A table from TOML text (`url = "..."` lines): for tests, and programs that build
    /// a notifier from text of their own.
    ///
    /// # Errors
    /// A [`BuildError`] with TOML's message when the text is not TOML.
    pub fn parse(text: &str) -> Result<Self, BuildError> {
        text.parse::<toml::Table>()
            .map(Self)
            .map_err(|e| BuildError::new(e.message().trim_end()))
    }

    /// Reads the table (without its `type` key) into `T`, the transport's config struct
    /// (`#[serde(deny_unknown_fields)]` makes a misspelt key an error).
    ///
    /// # Errors
    /// A [`BuildError`] naming the offending key for unknown and missing fields and wrong
    /// types, so the config error points at its line.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, BuildError> {
        from_table(&self.0)
    }

    /// Takes `keys` out and reads them as `T`; returns `T` and the rest.
    ///
    /// # Errors
    /// As for [`Table::deserialize`].
    pub fn split<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<(T, Table), BuildError> {
        split_keys(&self.0, keys).map(|(t, rest)| (t, Self(rest)))
    }

    /// The keys, in the order written.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Whether the table has no keys.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A copy fit for display: secret-looking keys (other than the `*_env`, `*_file` and
    /// `*_credential` pointers) and every value of a `headers` table are replaced, and
    /// URLs keep only their scheme, user and host.
    #[must_use]
    pub fn redacted(&self) -> Table {
        Self(redact(&self.0))
    }
}

impl From<toml::Table> for Table {
    /// The table of a config section read by another crate (a `[[checks]]` entry, say).
    fn from(table: toml::Table) -> Self {
        Self(table)
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact(&self.0), f)
    }
}

/// Deserialises a notifier's table (minus its `type` key) into its config struct.
///
/// # Errors
/// A [`BuildError`] naming the offending key for unknown fields and wrong types.
pub(crate) fn from_table<T: DeserializeOwned>(table: &toml::Table) -> Result<T, BuildError> {
    let mut t = table.clone();
    t.remove("type");
    serde_path_to_error::deserialize(toml::Value::Table(t)).map_err(|e| {
        // the path names the key for every error (a wrong type too), where serde's
        // message alone names it only for unknown and missing fields
        let path = e.path().to_string();
        let mut b = BuildError::from_toml(e.into_inner());
        if b.key.is_none() && path != "." {
            let top = path.split(['.', '[']).next().unwrap_or(&path).to_owned();
            b.message = format!("`{path}`: {}", b.message);
            b.key = Some(top);
        }
        b
    })
}

/// Takes `keys` out of a notifier's `table` and reads them as `T` (keys common to every
/// notifier type, such as the format's); returns `T` and the rest of the table, which
/// the type's factory then reads.
///
/// # Errors
/// A [`BuildError`] naming the bad key.
pub(crate) fn split_keys<T: DeserializeOwned>(
    table: &toml::Table,
    keys: &[&str],
) -> Result<(T, toml::Table), BuildError> {
    let mut rest = table.clone();
    let mut mine = toml::Table::new();
    for key in keys {
        if let Some(v) = rest.remove(*key) {
            mine.insert((*key).to_owned(), v);
        }
    }
    Ok((from_table(&mine)?, rest))
}

/// Words that mark a key as holding a secret (matched case-insensitively).
const SECRET_WORDS: [&str; 6] = ["password", "secret", "token", "passphrase", "key", "auth"];

/// A copy of a notifier table fit for display: secret-looking keys (other than the
/// `*_env` / `*_file` pointers) are replaced, every value of a `headers` table is
/// replaced, and URLs keep only their scheme, user and host.
pub(crate) fn redact(table: &toml::Table) -> toml::Table {
    table
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let pointer = lower.ends_with("_env")
                || lower.ends_with("_file")
                || lower.ends_with("_credential");
            let secret = !pointer && SECRET_WORDS.iter().any(|w| lower.contains(w));
            let v = match v {
                _ if secret => toml::Value::String("<redacted>".to_owned()),
                toml::Value::String(s) => toml::Value::String(redact_url(s)),
                toml::Value::Table(t) if lower == "headers" => toml::Value::Table(
                    t.keys()
                        .map(|h| (h.clone(), toml::Value::String("<redacted>".to_owned())))
                        .collect(),
                ),
                toml::Value::Table(t) => toml::Value::Table(redact(t)),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// Masks what in a URL may be a secret: the password of `scheme://user:password@host`,
/// and the path and query, which for webhooks often are the credential.
pub fn redact_url(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:<redacted>@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = &rest[authority_end..];
    let tail = if tail.is_empty() || tail == "/" || !matches!(scheme, "http" | "https") {
        // smtp://host:587?tls=starttls: the query is configuration, not a secret
        tail.to_owned()
    } else {
        "/<redacted>".to_owned()
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_type_names_the_key() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct T {
            max_size: u32,
            #[serde(default, with = "crate::duration")]
            timeout: std::time::Duration,
        }
        let t = Table::parse("type = \"x\"\nmax_size = \"big\"").unwrap();
        let e = t.deserialize::<T>().unwrap_err();
        assert_eq!(e.offending_key(), Some("max_size"));
        assert!(e.to_string().starts_with("`max_size`: invalid type"), "{e}");
        let t = Table::parse("max_size = 1\ntimeout = \"soon\"").unwrap();
        let e = t.deserialize::<T>().unwrap_err();
        assert_eq!(e.offending_key(), Some("timeout"));
        assert!(e.to_string().contains("invalid duration \"soon\""), "{e}");
    }

    #[test]
    fn text_that_is_not_toml_is_an_error_not_a_panic() {
        for text in ["url = ", "[a", "x = \"unterminated", "= 1", "a = 1\na = 2"] {
            let e = Table::parse(text).unwrap_err();
            assert!(!e.to_string().is_empty(), "{text:?}");
            assert_eq!(e.offending_key(), None, "{text:?}: {e}");
        }
        assert!(Table::parse("").unwrap().is_empty());
    }

    #[test]
    fn split_takes_its_keys_and_leaves_the_rest() {
        #[derive(Debug, serde::Deserialize)]
        struct Mine {
            a: u32,
        }
        let t = Table::parse("type = \"x\"\na = 1\nb = 2").unwrap();
        let (mine, rest): (Mine, Table) = t.split(&["a"]).unwrap();
        assert_eq!(mine.a, 1);
        assert_eq!(rest.keys().collect::<Vec<_>>(), ["type", "b"]);
    }

    fn shown(t: &Table) -> String {
        let s = toml::to_string(&t.redacted()).unwrap();
        assert_eq!(
            format!("{t:?}"),
            format!("{:?}", t.redacted()),
            "Debug is redacted"
        );
        s
    }

    #[test]
    fn redaction_masks_secrets_but_not_pointers() {
        let t = Table::parse(
            "url = \"smtp://bob:hunter2@mail.example:587?tls=starttls\"\npassword_env = \"PW\"\ntoken = \"abc\"\n",
        )
        .unwrap();
        let r = shown(&t);
        assert!(!r.contains("hunter2") && !r.contains("abc"), "{r}");
        assert!(
            r.contains("smtp://bob:<redacted>@mail.example:587?tls=starttls"),
            "{r}"
        );
        assert!(r.contains("password_env = \"PW\""), "{r}");
    }

    #[test]
    fn redaction_covers_headers_keys_and_webhook_paths() {
        let t = Table::parse(
            "url = \"https://hooks.example.org/services/T0/B0/XYZ?k=1\"\napi_Key = \"k1\"\nAuthorization = \"Bearer b1\"\n[headers]\nX-Custom = \"h1\"\n",
        )
        .unwrap();
        let r = shown(&t);
        for leak in ["XYZ", "k1", "b1", "h1", "k=1"] {
            assert!(!r.contains(leak), "{leak} in {r}");
            assert!(!format!("{t:?}").contains(leak), "{leak} in Debug");
        }
        assert!(r.contains("https://hooks.example.org/<redacted>"), "{r}");
        assert!(r.contains("X-Custom"), "{r}");
    }
}
