//! `[notifiers.NAME] type = "email"`: the keys, the URL shorthand and their validation.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alertcore::NotifyError;
use alertcore::transport::Journal;
use alertcore::transport::SecretSource;
use alertcore::transport::one_line;
use alertcore::transport::redact_url;
use alertcore::{BuildError, Table};
use lettre::message::Mailbox;
use lettre::transport::smtp::client::Certificate;
use lettre::transport::smtp::extension::ClientId;
use serde::{Deserialize, Deserializer};

use crate::KIND;
use crate::notifier::{EmailNotifier, Transport};
use crate::sendmail::Sendmail;
use crate::smtp::{Auth, LazyTls, Smtp};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_JOURNAL_LINES: usize = 50;
const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";

/// How mail leaves the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Mode {
    /// Talk SMTP to the server named by `url` (the default).
    #[default]
    Smtp,
    /// Hand the message to a local `sendmail` program on its standard input.
    Sendmail,
}

/// The configuration of an [`EmailNotifier`]: the keys of a `type = "email"` table.
///
/// Read it from the table with [`EmailConfig::from_table`], or start from
/// [`EmailNotifier::builder`] and set keys with the methods of the same names. Every key
/// is documented, with an example, in the crate documentation.
///
/// The password is never part of it: only where to read it (`password_env`,
/// `password_file`, `password_credential`), and it is read when a connection is opened.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    mode: Mode,
    url: Option<String>,
    from: Option<String>,
    to: Vec<String>,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    password_credential: Option<String>,
    ca_file: Option<PathBuf>,
    #[serde(deserialize_with = "alertcore::duration::deserialize")]
    timeout: Duration,
    allow_plaintext_dangerous: bool,
    #[serde(deserialize_with = "deserialize_command")]
    sendmail_command: Option<Vec<String>>,
    journal_lines: usize,
}

impl Default for EmailConfig {
    /// SMTP mode, no server, sender or recipients yet; `timeout = "30s"`,
    /// `journal_lines = 50`.
    fn default() -> Self {
        Self {
            mode: Mode::Smtp,
            url: None,
            from: None,
            to: Vec::new(),
            username: None,
            password_env: None,
            password_file: None,
            password_credential: None,
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
            allow_plaintext_dangerous: false,
            sendmail_command: None,
            journal_lines: DEFAULT_JOURNAL_LINES,
        }
    }
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The url is redacted: a password written into it is refused by `build`, but
        // this config may be printed before that.
        f.debug_struct("EmailConfig")
            .field("mode", &self.mode)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("from", &self.from)
            .field("to", &self.to)
            .field("username", &self.username)
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("password_credential", &self.password_credential)
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .field("allow_plaintext_dangerous", &self.allow_plaintext_dangerous)
            .field("sendmail_command", &self.sendmail_command)
            .field("journal_lines", &self.journal_lines)
            .finish_non_exhaustive()
    }
}

/// `sendmail_command`: a program path, or an array of the program and its arguments.
fn deserialize_command<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Command {
        Program(String),
        Argv(Vec<String>),
    }
    let argv = match Command::deserialize(d).map_err(|_| {
        serde::de::Error::custom(
            "`sendmail_command` must be a program path or an array of program and arguments",
        )
    })? {
        Command::Program(p) => vec![p],
        Command::Argv(v) => v,
    };
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err(serde::de::Error::custom(
            "`sendmail_command` must name a program",
        ));
    }
    Ok(Some(argv))
}

impl EmailConfig {
    /// Reads a `[notifiers.NAME]` table (its `type` key is ignored).
    ///
    /// # Errors
    /// A [`BuildError`] naming the key for unknown keys and values of the wrong type.
    pub fn from_table(table: &Table) -> Result<Self, BuildError> {
        table.deserialize()
    }

    /// `mode`: [`Mode::Smtp`] (default) or [`Mode::Sendmail`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// `url`: `smtp://host[:port][?tls=starttls|none]` or `smtps://host[:port]`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// `from`: the sender, `addr@example.org` or `Name <addr@example.org>`.
    pub fn from(mut self, from: impl Into<String>) -> Self {
        self.from = Some(from.into());
        self
    }

    /// `to`: adds a recipient.
    pub fn to(mut self, to: impl Into<String>) -> Self {
        self.to.push(to.into());
        self
    }

    /// `username`: log in with SMTP AUTH as this user.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// `password_env`: the environment variable holding the AUTH password.
    pub fn password_env(mut self, var: impl Into<String>) -> Self {
        self.password_env = Some(var.into());
        self
    }

    /// `password_file`: the file holding the AUTH password (one trailing newline is
    /// ignored).
    pub fn password_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.password_file = Some(path.into());
        self
    }

    /// `password_credential`: the systemd credential holding the AUTH password,
    /// `$CREDENTIALS_DIRECTORY/NAME` (from `LoadCredential=NAME:/path` in the unit; one
    /// trailing newline is ignored).
    pub fn password_credential(mut self, name: impl Into<String>) -> Self {
        self.password_credential = Some(name.into());
        self
    }

    /// `ca_file`: a PEM file of CA certificates to trust besides the system's.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// `timeout`: the limit for one delivery, connection included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `allow_plaintext_dangerous`: permit `tls=none` to a host that is not loopback,
    /// sending the mail (and the password, with AUTH) readable by anyone on the path.
    pub fn allow_plaintext_dangerous(mut self, allow: bool) -> Self {
        self.allow_plaintext_dangerous = allow;
        self
    }

    /// `sendmail_command`: the program and its arguments for [`Mode::Sendmail`]
    /// (default `/usr/sbin/sendmail`).
    pub fn sendmail_command<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sendmail_command = Some(argv.into_iter().map(Into::into).collect());
        self
    }

    /// `journal_lines`: how many journal lines of the failed run to include (default
    /// 50; 0 leaves the excerpt out).
    pub fn journal_lines(mut self, n: usize) -> Self {
        self.journal_lines = n;
        self
    }

    /// Validates the configuration and builds the notifier. Nothing is sent and no
    /// connection is opened; the password is read when the first connection is.
    ///
    /// # Errors
    /// A [`BuildError`] naming the key at fault: a bad or missing address, a malformed
    /// `url`, plain text to a remote host, an unreadable `ca_file`, keys that do not
    /// fit the `mode`.
    pub fn build(self) -> Result<EmailNotifier, BuildError> {
        let from = match &self.from {
            Some(f) => parse_mailbox(f).map_err(|e| BuildError::key("from", e))?,
            None => {
                return Err(BuildError::key(
                    "from",
                    "missing `from` (the sender address)",
                ));
            }
        };
        if self.to.is_empty() {
            return Err(BuildError::key(
                "to",
                "missing `to` (a list of recipient addresses)",
            ));
        }
        let to = self
            .to
            .iter()
            .map(|t| parse_mailbox(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BuildError::key("to", e))?;
        if self.timeout.is_zero() {
            return Err(BuildError::key("timeout", "`timeout` must be more than 0s"));
        }
        let transport = match self.mode {
            Mode::Smtp => Transport::Smtp(Box::new(self.smtp()?)),
            Mode::Sendmail => Transport::Sendmail(self.sendmail()?),
        };
        Ok(EmailNotifier {
            from,
            to,
            timeout: self.timeout,
            journal_lines: self.journal_lines,
            journal: Journal::new(),
            transport,
        })
    }

    fn smtp(&self) -> Result<Smtp, BuildError> {
        if self.sendmail_command.is_some() {
            return Err(BuildError::key(
                "sendmail_command",
                "`sendmail_command` only applies with mode = \"sendmail\"",
            ));
        }
        let Some(url) = &self.url else {
            return Err(BuildError::key(
                "url",
                "missing `url` (e.g. \"smtp://mail.example.org\"), or set mode = \"sendmail\"",
            ));
        };
        let url = SmtpUrl::parse(url).map_err(|e| BuildError::key("url", e))?;
        if url.tls == TlsMode::None && !url.is_loopback() && !self.allow_plaintext_dangerous {
            return Err(BuildError::key(
                "url",
                format!(
                    "refusing plain-text SMTP to {}, which is not a loopback address: use \
                     STARTTLS (the default) or smtps://, or set allow_plaintext_dangerous = true",
                    url.host
                ),
            ));
        }
        let username = match (&url.username, &self.username) {
            (Some(_), Some(_)) => {
                return Err(BuildError::key(
                    "username",
                    "the user name is given both in `url` and in `username`; keep one",
                ));
            }
            (Some(u), None) | (None, Some(u)) => Some(u.clone()),
            (None, None) => None,
        };
        let password = SecretSource::choose(
            ("password_env", self.password_env.as_deref()),
            ("password_file", self.password_file.as_deref()),
            ("password_credential", self.password_credential.as_deref()),
        )?
        .map(PasswordSource);
        let auth = match (username, password) {
            (Some(username), Some(password)) => Some(Auth { username, password }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(BuildError::key(
                    "username",
                    "a `username` needs `password_env`, `password_file` or `password_credential`",
                ));
            }
            (None, Some(password)) => {
                return Err(BuildError::key(
                    password.0.key(),
                    "a password needs a `username` (or a user in the url: smtp://user@host)",
                ));
            }
        };
        let tls = match url.tls {
            TlsMode::None => {
                if self.ca_file.is_some() {
                    return Err(BuildError::key(
                        "ca_file",
                        "`ca_file` has no effect with tls=none",
                    ));
                }
                None
            }
            TlsMode::StartTls | TlsMode::Implicit => Some(self.tls_parameters(&url.host)?),
        };
        Ok(Smtp::new(
            url.host,
            url.port,
            url.tls,
            tls,
            auth,
            hello_name(),
        ))
    }

    fn tls_parameters(&self, host: &str) -> Result<LazyTls, BuildError> {
        let ca = self.ca_file.as_deref().map(read_ca).transpose()?;
        Ok(LazyTls::new(host.to_owned(), ca))
    }

    fn sendmail(&self) -> Result<Sendmail, BuildError> {
        let smtp_only = [
            ("url", self.url.is_some()),
            ("username", self.username.is_some()),
            ("password_env", self.password_env.is_some()),
            ("password_file", self.password_file.is_some()),
            ("password_credential", self.password_credential.is_some()),
            ("ca_file", self.ca_file.is_some()),
            ("allow_plaintext_dangerous", self.allow_plaintext_dangerous),
        ];
        if let Some((key, _)) = smtp_only.iter().find(|(_, set)| *set) {
            return Err(BuildError::key(
                *key,
                format!("`{key}` does not apply with mode = \"sendmail\""),
            ));
        }
        let argv = self
            .sendmail_command
            .clone()
            .unwrap_or_else(|| vec![DEFAULT_SENDMAIL.to_owned()]);
        Ok(Sendmail::new(argv))
    }
}

fn read_ca(path: &Path) -> Result<Vec<u8>, BuildError> {
    let pem = std::fs::read(path)
        .map_err(|e| BuildError::key("ca_file", format!("cannot read {}: {e}", path.display())))?;
    // lettre accepts a file with no certificate at all, which would trust nothing extra
    // and fail later with a puzzling "unknown issuer".
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(BuildError::key(
            "ca_file",
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    // parsed now so a bad file is a config error; kept as PEM for the TLS set-up
    Certificate::from_pem(&pem).map_err(|e| {
        BuildError::key(
            "ca_file",
            format!("{}: {}", path.display(), alertcore::chain(&e)),
        )
    })?;
    Ok(pem)
}

/// `addr@example.org` or `Name <addr@example.org>`.
fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    s.parse::<Mailbox>()
        .map_err(|e| format!("invalid address {:?}: {e}", one_line(s)))
}

/// The EHLO name: this host's name when it is a plausible domain, else `localhost`.
fn hello_name() -> ClientId {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let plausible = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ClientId::Domain(if plausible {
        host
    } else {
        "localhost".to_owned()
    })
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsMode {
    /// Plain text throughout.
    None,
    /// Plain text until `STARTTLS`, which must succeed.
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// A parsed `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SmtpUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: TlsMode,
    pub(crate) username: Option<String>,
}

impl SmtpUrl {
    /// Parses `smtp://[user@]host[:port][?tls=starttls|required|none]` and
    /// `smtps://[user@]host[:port]`.
    ///
    /// Without `tls=`, a loopback host (`localhost`, `127.0.0.0/8`, `::1`) gets plain text
    /// and any other host STARTTLS. The port defaults to 25 for plain text, 587 for
    /// STARTTLS and 465 for `smtps://`.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let shown = redact_url(s);
        let u = url::Url::parse(s).map_err(|e| format!("invalid url {shown:?}: {e}"))?;
        let implicit = match u.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => {
                return Err(format!(
                    "unsupported url scheme {other:?}: use smtp:// or smtps://"
                ));
            }
        };
        let host = match u.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err(format!("url {shown:?} has no host")),
        };
        if host.is_empty() {
            return Err(format!("url {shown:?} has no host"));
        }
        if u.password().is_some() {
            return Err(
                "the url must not contain a password: use password_env or password_file".to_owned(),
            );
        }
        let username = (!u.username().is_empty())
            .then(|| percent_decode(u.username()))
            .transpose()
            .map_err(|e| format!("url user name: {e}"))?;
        if !matches!(u.path(), "" | "/") || u.fragment().is_some() {
            return Err(format!(
                "url {shown:?} has a path or fragment; only ?tls= may follow the host"
            ));
        }
        let mut tls = None;
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "tls" if tls.is_none() => tls = Some(v.into_owned()),
                "tls" => return Err("`tls` is given twice in the url".to_owned()),
                other => {
                    return Err(format!(
                        "unknown url parameter {other:?}; the only one is tls=starttls|required|none"
                    ));
                }
            }
        }
        let loopback = is_loopback(&host);
        let tls = match (implicit, tls.as_deref()) {
            (true, None | Some("required")) => TlsMode::Implicit,
            (true, Some(other)) => {
                return Err(format!(
                    "smtps:// always uses TLS from the first byte; tls={other} does not apply \
                     (for STARTTLS write smtp://...?tls=starttls)"
                ));
            }
            (false, Some("starttls" | "required")) => TlsMode::StartTls,
            (false, Some("none")) => TlsMode::None,
            (false, None) if loopback => TlsMode::None,
            (false, None) => TlsMode::StartTls,
            (false, Some(other)) => {
                return Err(format!(
                    "unknown tls={other}: use tls=starttls (alias required) or tls=none"
                ));
            }
        };
        let port = u.port().unwrap_or(match tls {
            TlsMode::None => 25,
            TlsMode::StartTls => 587,
            TlsMode::Implicit => 465,
        });
        Ok(Self {
            host,
            port,
            tls,
            username,
        })
    }

    pub(crate) fn is_loopback(&self) -> bool {
        is_loopback(&self.host)
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Decodes `%XX` escapes (the url crate leaves the user name encoded).
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "bad %-escape".to_owned())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "not UTF-8".to_owned())
}

/// Where the AUTH password comes from. Read at connection time, so a rotated secret is
/// picked up without rebuilding the notifier.
#[derive(Clone)]
pub(crate) struct PasswordSource(SecretSource);

impl fmt::Debug for PasswordSource {
    /// Where the password is, never what it is: `Env("VAR")`, `File("/path")`,
    /// `Credential("name")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PasswordSource {
    /// The password. Errors never include it, only where it was looked for.
    pub(crate) fn read(&self) -> Result<String, NotifyError> {
        self.0.read().map_err(|e| e.into_notify_error(KIND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> SmtpUrl {
        SmtpUrl::parse(s).unwrap()
    }

    #[test]
    fn url_shorthand_defaults() {
        let cases = [
            ("smtp://127.0.0.1", "127.0.0.1", 25, TlsMode::None),
            ("smtp://localhost:2525", "localhost", 2525, TlsMode::None),
            ("smtp://[::1]", "::1", 25, TlsMode::None),
            (
                "smtp://mail.example.org",
                "mail.example.org",
                587,
                TlsMode::StartTls,
            ),
            (
                "smtp://mail.example.org:25",
                "mail.example.org",
                25,
                TlsMode::StartTls,
            ),
            (
                "smtp://127.0.0.1?tls=starttls",
                "127.0.0.1",
                587,
                TlsMode::StartTls,
            ),
            (
                "smtp://127.0.0.1:1?tls=required",
                "127.0.0.1",
                1,
                TlsMode::StartTls,
            ),
            (
                "smtp://mail.example.org?tls=none",
                "mail.example.org",
                25,
                TlsMode::None,
            ),
            (
                "smtps://mail.example.org",
                "mail.example.org",
                465,
                TlsMode::Implicit,
            ),
            (
                "smtps://mail.example.org:4650/",
                "mail.example.org",
                4650,
                TlsMode::Implicit,
            ),
            (
                "smtps://10.0.0.1?tls=required",
                "10.0.0.1",
                465,
                TlsMode::Implicit,
            ),
        ];
        for (s, host, port, tls) in cases {
            let u = url(s);
            assert_eq!((u.host.as_str(), u.port, u.tls), (host, port, tls), "{s}");
            assert_eq!(u.username, None, "{s}");
        }
    }

    #[test]
    fn url_user_is_decoded() {
        assert_eq!(
            url("smtp://alerts%40example.org@mail.example.org:587?tls=starttls").username,
            Some("alerts@example.org".to_owned())
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        for (s, why) in [
            ("http://mail.example.org", "unsupported url scheme"),
            (
                "smtp://u:hunter2@mail.example.org",
                "must not contain a password",
            ),
            ("smtp://mail.example.org/inbox", "path"),
            ("smtp://mail.example.org?tls=maybe", "unknown tls=maybe"),
            (
                "smtp://mail.example.org?tsl=none",
                "unknown url parameter \"tsl\"",
            ),
            (
                "smtps://mail.example.org?tls=starttls",
                "smtps:// always uses TLS",
            ),
            ("smtp://", "no host"),
            ("mail.example.org", "invalid url"),
        ] {
            let e = SmtpUrl::parse(s).unwrap_err();
            assert!(e.contains(why), "{s}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    fn build(toml_text: &str) -> Result<EmailNotifier, BuildError> {
        let t = Table::parse(toml_text).unwrap();
        EmailConfig::from_table(&t)?.build()
    }

    fn build_err(toml_text: &str) -> (Option<String>, String) {
        let e = build(toml_text).unwrap_err();
        let msg = e.to_string();
        let key = e.offending_key().map(str::to_owned);
        (key, msg)
    }

    const OK: &str =
        "type = \"email\"\nfrom = \"alertcore@example.org\"\nto = [\"ops@example.org\"]\n";

    /// Where the notifier built from `keys` sends mail, and its timeout and journal
    /// lines, as its `Debug` shows them.
    fn built(keys: &str) -> String {
        let n = build(&format!("{OK}{keys}")).unwrap_or_else(|e| panic!("{keys}: {e}"));
        assert_eq!(n.from.to_string(), "alertcore@example.org");
        assert_eq!(n.to.len(), 1);
        format!("{:?} {:?} {}", n.transport, n.timeout, n.journal_lines)
    }

    /// The defaults and the URL rules of the README's table and examples.
    #[test]
    fn minimal_configs_build() {
        // loopback: plain text, the port given; timeout 30 s, 50 journal lines
        assert_eq!(
            built("url = \"smtp://127.0.0.1:2525\""),
            "Smtp(Smtp { server: \"127.0.0.1:2525\", tls: None, auth: None, .. }) 30s 50"
        );
        // any other host: STARTTLS, port 587
        assert_eq!(
            built("url = \"smtp://mail.example.org\""),
            "Smtp(Smtp { server: \"mail.example.org:587\", tls: StartTls, auth: None, .. }) 30s 50"
        );
        assert_eq!(
            built("mode = \"sendmail\""),
            "Sendmail(Sendmail { argv: [\"/usr/sbin/sendmail\"] }) 30s 50"
        );
        assert_eq!(
            built(
                "url = \"smtp://ops@mail.example.org\"\npassword_env = \"PW\"\ntimeout = \"5s\"\n\
                 journal_lines = 0"
            ),
            "Smtp(Smtp { server: \"mail.example.org:587\", tls: StartTls, \
             auth: Some(Auth { username: \"ops\", password: Env(\"PW\") }), .. }) 5s 0"
        );
        assert_eq!(
            built("mode = \"sendmail\"\nsendmail_command = [\"/usr/sbin/sendmail\", \"-oi\"]"),
            "Sendmail(Sendmail { argv: [\"/usr/sbin/sendmail\", \"-oi\"] }) 30s 50"
        );
    }

    #[test]
    fn typo_names_the_key() {
        let (key, msg) = build_err(&format!("{OK}url = \"smtp://127.0.0.1\"\ntimout = \"5s\""));
        assert_eq!(key.as_deref(), Some("timout"), "{msg}");
        assert!(msg.contains("unknown field `timout`"), "{msg}");
    }

    #[test]
    fn inline_password_is_not_a_key() {
        let (key, _) = build_err(&format!("{OK}url = \"smtp://127.0.0.1\"\npassword = \"x\""));
        assert_eq!(key.as_deref(), Some("password"));
    }

    #[test]
    fn invalid_configs_name_their_key() {
        let cases = [
            (
                "from = \"alertcore@example.org\"\nto = [\"a@b\"]\n",
                "url",
                "missing `url`",
            ),
            (
                "to = [\"a@example.org\"]\nurl = \"smtp://127.0.0.1\"",
                "from",
                "missing `from`",
            ),
            (
                "from = \"not an address\"\nto = [\"a@example.org\"]\nurl = \"smtp://127.0.0.1\"",
                "from",
                "invalid address",
            ),
            (
                "from = \"a@example.org\"\nurl = \"smtp://127.0.0.1\"",
                "to",
                "missing `to`",
            ),
            (
                "from = \"a@example.org\"\nto = [\"ok@example.org\", \"x\\r\\nBcc: e@example.org\"]\nurl = \"smtp://127.0.0.1\"",
                "to",
                "invalid address",
            ),
        ];
        for (text, want_key, want) in cases {
            let (key, msg) = build_err(text);
            assert_eq!(key.as_deref(), Some(want_key), "{text}: {msg}");
            assert!(msg.contains(want), "{text}: {msg}");
            assert!(!msg.contains('\n'), "{msg:?}");
        }
        let more = [
            (
                "url = \"smtp://mail.example.org?tls=none\"",
                "url",
                "refusing plain-text",
            ),
            (
                "url = \"smtp://mail.example.org\"\nusername = \"u\"",
                "username",
                "needs `password_env`",
            ),
            (
                "url = \"smtp://mail.example.org\"\npassword_env = \"PW\"",
                "password_env",
                "needs a `username`",
            ),
            (
                "url = \"smtp://u@mail.example.org\"\nusername = \"u\"\npassword_env = \"PW\"",
                "username",
                "both in `url`",
            ),
            (
                "url = \"smtp://u@mail.example.org\"\npassword_env = \"PW\"\npassword_file = \"/f\"",
                "password_file",
                "are both set",
            ),
            (
                "url = \"smtp://u@mail.example.org\"\npassword_env = \"PW\"\npassword_credential = \"smtp\"",
                "password_credential",
                "are both set",
            ),
            (
                "url = \"smtp://u@mail.example.org\"\npassword_credential = \"/etc/pw\"",
                "password_credential",
                "not a credential name",
            ),
            (
                "url = \"smtp://mail.example.org\"\npassword_credential = \"smtp\"",
                "password_credential",
                "needs a `username`",
            ),
            (
                "mode = \"sendmail\"\npassword_credential = \"smtp\"",
                "password_credential",
                "does not apply",
            ),
            (
                "url = \"smtp://127.0.0.1\"\nca_file = \"/nonexistent.pem\"",
                "ca_file",
                "no effect",
            ),
            (
                "url = \"smtp://mail.example.org\"\nca_file = \"/nonexistent.pem\"",
                "ca_file",
                "cannot read /nonexistent.pem",
            ),
            (
                "url = \"smtp://mail.example.org\"\nca_file = \"/etc/hostname\"",
                "ca_file",
                "holds no PEM certificate",
            ),
            (
                "url = \"smtp://mail.example.org\"\ntimeout = \"0s\"",
                "timeout",
                "more than 0s",
            ),
            (
                "url = \"smtp://mail.example.org\"\nsendmail_command = \"/bin/true\"",
                "sendmail_command",
                "only applies",
            ),
            (
                "mode = \"sendmail\"\nurl = \"smtp://127.0.0.1\"",
                "url",
                "does not apply",
            ),
            (
                "mode = \"sendmail\"\nsendmail_command = []",
                "sendmail_command",
                "must name a program",
            ),
            (
                "mode = \"sendmail\"\nsendmail_command = 5",
                "sendmail_command",
                "program path or an array",
            ),
            ("mode = \"pigeon\"", "mode", "unknown variant"),
        ];
        for (text, want_key, want) in more {
            let (key, msg) = build_err(&format!("{OK}{text}"));
            assert!(msg.contains(want), "{text}: {msg}");
            // serde's "unknown variant" message names the value, not the key
            let want_key = (!want_key.is_empty()).then_some(want_key);
            assert_eq!(key.as_deref(), want_key, "{text}: {msg}");
        }
    }

    #[test]
    fn debug_shows_where_mail_goes() {
        let n = build(&format!(
            "{OK}url = \"smtp://ops@mail.example.org\"\npassword_env = \"PW\""
        ))
        .unwrap();
        let d = format!("{n:?}");
        assert!(d.contains("mail.example.org:587"), "{d}");
        assert!(d.contains("Env(\"PW\")"), "{d}");
        assert!(d.ends_with(".. }"), "{d}");
        let n = build(&format!(
            "{OK}url = \"smtp://ops@mail.example.org\"\npassword_credential = \"smtp-password\""
        ))
        .unwrap();
        let d = format!("{n:?}");
        assert!(d.contains("Credential(\"smtp-password\")"), "{d}");
    }

    #[test]
    fn allow_plaintext_dangerous_permits_remote_plain_text() {
        let keys = "url = \"smtp://mail.example.org?tls=none\"";
        let (key, msg) = build_err(&format!("{OK}{keys}"));
        assert_eq!(key.as_deref(), Some("url"), "{msg}");
        // plain text: port 25
        assert_eq!(
            built(&format!("{keys}\nallow_plaintext_dangerous = true")),
            "Smtp(Smtp { server: \"mail.example.org:25\", tls: None, auth: None, .. }) 30s 50"
        );
    }

    #[test]
    fn debug_redacts_url_password() {
        let t = Table::parse(&format!("{OK}url = \"smtp://u:hunter2@mail.example.org\"")).unwrap();
        let c = EmailConfig::from_table(&t).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
        let e = c.build().unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    fn password(env: Option<&str>, file: Option<&Path>, cred: Option<&str>) -> PasswordSource {
        PasswordSource(
            SecretSource::choose(
                ("password_env", env),
                ("password_file", file),
                ("password_credential", cred),
            )
            .unwrap()
            .unwrap(),
        )
    }

    #[test]
    fn password_sources() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\r\n").unwrap();
        assert_eq!(password(None, Some(&file), None).read().unwrap(), "s3cret");
        std::fs::write(&file, "\n").unwrap();
        let e = password(None, Some(&file), None).read().unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");

        if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
            let e = password(None, None, Some("smtp")).read().unwrap_err();
            assert!(matches!(e, NotifyError::Config { .. }), "{e:?}");
            assert!(
                e.to_string()
                    .contains("password_credential: $CREDENTIALS_DIRECTORY is not set"),
                "{e}"
            );
        }

        let e = password(Some("ALERTCORE_EMAIL_TEST_SURELY_UNSET"), None, None)
            .read()
            .unwrap_err();
        assert!(matches!(e, NotifyError::Config { .. }), "{e:?}");
        assert!(e.to_string().contains("is not set"), "{e}");
        assert!(!e.is_retryable());
    }
}
