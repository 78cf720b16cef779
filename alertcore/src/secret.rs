//! Secrets named in a notifier table: an environment variable (`*_env`), a file
//! (`*_file`) or a systemd credential (`*_credential`).
//!
//! A config never holds a secret itself, only where to find it. Each secret has exactly
//! one source. A credential is the file `$CREDENTIALS_DIRECTORY/NAME` that systemd
//! provides to a unit with `LoadCredential=NAME:/path` (or `SetCredential=`,
//! `LoadCredentialEncrypted=`, `ImportCredential=`): it is readable only by that unit's
//! processes, on a non-swappable file system, and outside the unit it does not exist.
//!
//! ```
//! use alertcore::transport::SecretSource;
//!
//! let token = SecretSource::choose(
//!     ("token_env", None),
//!     ("token_file", None),
//!     ("token_credential", Some("hook-token")),
//! )
//! .unwrap()
//! .unwrap();
//! assert_eq!(token.key(), "token_credential");
//! // Debug says where the secret is, never what it is.
//! assert_eq!(format!("{token:?}"), "Credential(\"hook-token\")");
//! // Outside a systemd unit with that credential, reading it fails, naming the key.
//! # if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
//! let e = token.read().unwrap_err();
//! assert!(e.to_string().starts_with("token_credential: $CREDENTIALS_DIRECTORY is not set"));
//! # }
//! ```

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{BuildError, NotifyError};

/// The environment variable systemd sets to the directory of a unit's credentials.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Where a secret comes from; `key` is the config key that named it (`token_file`).
///
/// It holds no secret: [`SecretSource::read`] reads it each time, so a rotated secret
/// is picked up without rebuilding the notifier.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretSource {
    /// An environment variable (`*_env`).
    Env {
        /// The config key, e.g. `password_env`.
        key: &'static str,
        /// The variable's name.
        var: String,
    },
    /// A file (`*_file`); one trailing newline is not part of the secret.
    File {
        /// The config key, e.g. `password_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A systemd credential (`*_credential`): `$CREDENTIALS_DIRECTORY/NAME`; one trailing
    /// newline is not part of the secret.
    Credential {
        /// The config key, e.g. `password_credential`.
        key: &'static str,
        /// The credential's name, as in `LoadCredential=NAME:...`.
        name: String,
    },
}

impl fmt::Debug for SecretSource {
    /// Where the secret is, never what it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env { var, .. } => write!(f, "Env({var:?})"),
            Self::File { path, .. } => write!(f, "File({:?})", path.display()),
            Self::Credential { name, .. } => write!(f, "Credential({name:?})"),
        }
    }
}

/// A secret could not be read. The message says where it was looked for, never what
/// was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SecretError {
    key: &'static str,
    message: String,
}

impl SecretError {
    /// The config key that named the secret's source.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// What went wrong, without the key.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// As a delivery error of transport `kind` (a secret read at send time): a
    /// configuration error, never retried.
    pub fn into_notify_error(self, kind: &'static str) -> NotifyError {
        NotifyError::config(kind, self.to_string())
    }
}

impl From<SecretError> for BuildError {
    /// A secret read when the notifier is built (a URL): an error pointing at its key.
    fn from(e: SecretError) -> Self {
        BuildError::key(e.key, e)
    }
}

impl SecretSource {
    /// The source named by one secret's three keys, each given as `(key, value)`:
    /// `None` when none is set.
    ///
    /// # Errors
    /// A [`BuildError`] naming the key at fault when more than one is set, the variable
    /// name is empty, or the credential name is not a plain file name.
    pub fn choose(
        env: (&'static str, Option<&str>),
        file: (&'static str, Option<&Path>),
        credential: (&'static str, Option<&str>),
    ) -> Result<Option<Self>, BuildError> {
        let given: Vec<&'static str> = [
            (env.0, env.1.is_some()),
            (file.0, file.1.is_some()),
            (credential.0, credential.1.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect();
        if let [first, second, ..] = given.as_slice() {
            return Err(BuildError::key(
                *second,
                format!("`{first}` and `{second}` are both set: a secret has one source, keep one"),
            ));
        }
        if let (key, Some(var)) = env {
            if var.is_empty() || var.contains(['=', '\0']) {
                return Err(BuildError::key(
                    key,
                    format!("`{key}` must name an environment variable"),
                ));
            }
            return Ok(Some(Self::Env {
                key,
                var: var.to_owned(),
            }));
        }
        if let (key, Some(path)) = file {
            if path.as_os_str().is_empty() {
                return Err(BuildError::key(key, format!("`{key}` is empty")));
            }
            return Ok(Some(Self::File {
                key,
                path: path.to_owned(),
            }));
        }
        if let (key, Some(name)) = credential {
            check_credential_name(name).map_err(|why| BuildError::key(key, why))?;
            return Ok(Some(Self::Credential {
                key,
                name: name.to_owned(),
            }));
        }
        Ok(None)
    }

    /// The config key that named this source.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Env { key, .. } | Self::File { key, .. } | Self::Credential { key, .. } => key,
        }
    }

    /// Reads the secret now. A credential is looked up in `$CREDENTIALS_DIRECTORY`.
    ///
    /// # Errors
    /// A [`SecretError`] naming the key and where the secret was looked for: the
    /// variable is unset or not UTF-8, the file or credential is missing or unreadable,
    /// `$CREDENTIALS_DIRECTORY` is not set, or the secret is empty.
    pub fn read(&self) -> Result<String, SecretError> {
        self.read_in(std::env::var_os(CREDENTIALS_DIRECTORY).as_deref())
    }

    /// [`SecretSource::read`] with the credentials directory given (tests cannot set
    /// environment variables safely).
    fn read_in(&self, credentials_dir: Option<&OsStr>) -> Result<String, SecretError> {
        let key = self.key();
        let err = |message: String| SecretError { key, message };
        let value = match self {
            Self::Env { var, .. } => std::env::var(var).map_err(|e| {
                let why = match e {
                    std::env::VarError::NotPresent => "is not set",
                    std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                };
                err(format!("environment variable {var} {why}"))
            })?,
            Self::File { path, .. } => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
                without_final_newline(text)
            }
            Self::Credential { name, .. } => {
                let Some(dir) = credentials_dir.filter(|d| !d.is_empty()) else {
                    return Err(err(format!(
                        "${CREDENTIALS_DIRECTORY} is not set, so credential {name:?} cannot \
                         be read: it exists only inside a systemd unit with \
                         LoadCredential={name}:/path/to/file (or SetCredential=)"
                    )));
                };
                let path = Path::new(dir).join(name);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    let hint = if e.kind() == std::io::ErrorKind::NotFound {
                        format!(": add LoadCredential={name}:/path/to/file to the unit")
                    } else {
                        String::new()
                    };
                    err(format!(
                        "cannot read credential {name:?} ({}): {e}{hint}",
                        path.display()
                    ))
                })?;
                without_final_newline(text)
            }
        };
        if value.is_empty() {
            let source = match self {
                Self::Env { var, .. } => format!("environment variable {var}"),
                Self::File { path, .. } => path.display().to_string(),
                Self::Credential { name, .. } => format!("credential {name:?}"),
            };
            return Err(err(format!("{source} is empty")));
        }
        Ok(value)
    }
}

/// `echo secret > file` leaves a newline that is not part of the secret.
fn without_final_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// A credential name is a file name in `$CREDENTIALS_DIRECTORY` (systemd refuses the
/// same names in `LoadCredential=`).
fn check_credential_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the credential name is empty".to_owned());
    }
    if name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(format!(
            "{name:?} is not a credential name: give the NAME of LoadCredential=NAME:/path, \
             not a path"
        ));
    }
    if name.len() > 255 {
        return Err("the credential name is longer than 255 bytes".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(name: &str) -> SecretSource {
        SecretSource::choose(
            ("token_env", None),
            ("token_file", None),
            ("token_credential", Some(name)),
        )
        .unwrap()
        .unwrap()
    }

    #[test]
    fn exactly_one_source() {
        let path = Some(Path::new("/x"));
        let cases = [
            (Some("V"), path, None, "token_file"),
            (Some("V"), None, Some("c"), "token_credential"),
            (None, path, Some("c"), "token_credential"),
            (Some("V"), path, Some("c"), "token_file"),
        ];
        for (env, file, cred, want) in cases {
            let e = SecretSource::choose(
                ("token_env", env),
                ("token_file", file),
                ("token_credential", cred),
            )
            .unwrap_err();
            assert_eq!(e.offending_key(), Some(want), "{e}");
            assert!(e.to_string().contains("are both set"), "{e}");
        }
        let none = SecretSource::choose(
            ("token_env", None),
            ("token_file", None),
            ("token_credential", None),
        );
        assert_eq!(none.unwrap(), None);
    }

    #[test]
    fn bad_names_are_refused_at_build() {
        for (env, cred, key) in [
            (Some(""), None, "token_env"),
            (Some("A=B"), None, "token_env"),
            (None, Some(""), "token_credential"),
            (None, Some("/etc/shadow"), "token_credential"),
            (None, Some(".."), "token_credential"),
            (None, Some("a/b"), "token_credential"),
        ] {
            let e = SecretSource::choose(("token_env", env), ("token_file", None), (key, cred))
                .unwrap_err();
            assert_eq!(e.offending_key(), Some(key), "{env:?} {cred:?}: {e}");
        }
    }

    #[test]
    fn credential_is_read_from_the_credentials_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook-token"), "s3cret-cred\n").unwrap();
        let s = credential("hook-token");
        assert_eq!(
            s.read_in(Some(dir.path().as_os_str())).unwrap(),
            "s3cret-cred"
        );
        assert_eq!(format!("{s:?}"), "Credential(\"hook-token\")");

        // no $CREDENTIALS_DIRECTORY (empty counts as unset): not inside such a unit
        for unset in [None, Some(OsStr::new(""))] {
            let e = s.read_in(unset).unwrap_err();
            assert_eq!(e.key(), "token_credential");
            let msg = e.to_string();
            assert!(
                msg.starts_with("token_credential: $CREDENTIALS_DIRECTORY is not set"),
                "{msg}"
            );
            assert!(msg.contains("LoadCredential=hook-token:"), "{msg}");
        }

        // the unit lacks this credential
        let e = credential("other")
            .read_in(Some(dir.path().as_os_str()))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("token_credential: cannot read credential \"other\" ("),
            "{e}"
        );
        assert!(e.contains("LoadCredential=other:"), "{e}");

        // empty
        std::fs::write(dir.path().join("empty"), "\r\n").unwrap();
        let e = credential("empty")
            .read_in(Some(dir.path().as_os_str()))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "token_credential: credential \"empty\" is empty");
    }

    #[test]
    fn errors_never_hold_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin");
        std::fs::write(&path, b"s3cret\xff").unwrap();
        let s = SecretSource::choose(
            ("password_env", None),
            ("password_file", Some(&path)),
            ("password_credential", None),
        )
        .unwrap()
        .unwrap();
        let e = s.read().unwrap_err();
        assert!(
            e.to_string().starts_with("password_file: cannot read "),
            "{e}"
        );
        assert!(!e.to_string().contains("s3cret"), "{e}");
        let n = e.into_notify_error("email");
        assert!(!n.is_retryable());
        assert!(matches!(n, NotifyError::Config { .. }), "{n:?}");

        let b: BuildError = credential("x").read_in(None).unwrap_err().into();
        assert_eq!(b.offending_key(), Some("token_credential"));
    }
}
