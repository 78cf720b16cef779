//! The check kinds: each turns its config table into a [`Probe`] that runs one check.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use alertcore::{BuildError, Table};

use crate::outcome::Outcome;

mod command;
mod dns;
mod file;
mod http;
mod net;
mod ping;
mod tcp;
mod tls;
mod unit;

/// One configured check of some kind, ready to run.
#[async_trait::async_trait]
pub trait Probe: Send + Sync + fmt::Debug {
    /// The kind's name (`tcp`, `http`, ...).
    fn kind(&self) -> &'static str;

    /// Runs the check once. It returns within `timeout` (a probe that cannot finish
    /// by then stops its work, a command's whole process group included, and returns
    /// [`Outcome::timed_out`]).
    async fn run(&self, timeout: Duration) -> Outcome;
}

/// `check`'s outcome, or [`Outcome::timed_out`] if it takes longer than `timeout`.
pub(crate) async fn bounded(
    timeout: Duration,
    check: impl std::future::Future<Output = Outcome>,
) -> Outcome {
    tokio::time::timeout(timeout, check)
        .await
        .unwrap_or_else(|_| Outcome::timed_out(timeout))
}

/// A config value written as one item or a list of them (`expect = "a"` or
/// `expect = ["a", "b"]`).
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            Self::One(v) => vec![v],
            Self::Many(v) => v,
        }
    }
}

/// What a kind's builder knows besides its own table.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct BuildContext<'a> {
    /// The address of the check's `host` (`[hosts.NAME] address`), if it names one:
    /// the default target of the network kinds, and what `{host}` stands for in a
    /// command's arguments and an HTTP URL.
    pub host: Option<&'a str>,
}

impl<'a> BuildContext<'a> {
    /// A context for a check with `host`'s address.
    pub fn new(host: Option<&'a str>) -> Self {
        Self { host }
    }

    /// `text` with every `{host}` replaced by the host's address (in brackets for an
    /// IPv6 address in a `url`, as URLs write it).
    ///
    /// # Errors
    /// A [`BuildError`] on `key` when `text` names `{host}` and the check has no host.
    pub fn expand(&self, key: &str, text: &str) -> Result<String, BuildError> {
        if !text.contains("{host}") {
            return Ok(text.to_owned());
        }
        match self.host {
            Some(h) if key == "url" && h.parse::<std::net::Ipv6Addr>().is_ok() => {
                Ok(text.replace("{host}", &format!("[{h}]")))
            }
            Some(h) => Ok(text.replace("{host}", h)),
            None => Err(BuildError::key(
                key,
                "uses {host} but the check names no `host`",
            )),
        }
    }

    /// The target address: `address` if given, else the host's.
    ///
    /// # Errors
    /// A [`BuildError`] on `address` when neither is given.
    pub fn address(&self, address: Option<&str>) -> Result<String, BuildError> {
        match (address, self.host) {
            (Some(a), _) => self.expand("address", a),
            (None, Some(h)) => Ok(h.to_owned()),
            (None, None) => Err(BuildError::key(
                "address",
                "missing `address` (or a `host` whose address to use)",
            )),
        }
    }
}

/// The kinds this build knows.
pub const KINDS: [&str; 8] = [
    "command", "tcp", "http", "tls", "dns", "ping", "file", "unit",
];

/// Builds a probe of `kind` from `table` (the check's table without the keys common
/// to every kind).
///
/// # Errors
/// A [`BuildError`] naming the bad key, or the unknown kind.
pub fn build(
    kind: &str,
    table: &Table,
    ctx: &BuildContext<'_>,
) -> Result<Arc<dyn Probe>, BuildError> {
    match kind {
        "command" => command::build(table, ctx),
        "tcp" => tcp::build(table, ctx),
        "http" => http::build(table, ctx),
        "tls" => tls::build(table, ctx),
        "dns" => dns::build(table, ctx),
        "ping" => ping::build(table, ctx),
        "file" => file::build(table, ctx),
        "unit" => unit::build(table, ctx),
        other => Err(BuildError::key(
            "kind",
            format!("unknown kind {other:?} (one of: {})", KINDS.join(", ")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_expands_into_urls_and_arguments() {
        let v4 = BuildContext::new(Some("192.0.2.7"));
        let v6 = BuildContext::new(Some("2001:db8::7"));
        let none = BuildContext::new(None);
        let url = "http://{host}:8080/health";
        assert_eq!(
            v4.expand("url", url).ok().as_deref(),
            Some("http://192.0.2.7:8080/health")
        );
        assert_eq!(
            v6.expand("url", url).ok().as_deref(),
            Some("http://[2001:db8::7]:8080/health")
        );
        // an argument takes the address as is
        assert_eq!(
            v6.expand("command", "-H{host}").ok().as_deref(),
            Some("-H2001:db8::7")
        );
        let e = none.expand("url", url).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("names no `host`")));
        assert_eq!(
            none.expand("url", "http://x/").ok().as_deref(),
            Some("http://x/")
        );
    }
}
