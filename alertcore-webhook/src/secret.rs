//! Secrets named by `*_env` / `*_file` keys, read when a webhook is sent.

use std::fmt;
use std::path::PathBuf;

use alertcore::{BuildError, NotifyError};

use crate::KIND;

/// Where a secret comes from. It is read at every delivery, so a rotated token or key is
/// picked up without rebuilding the notifier, and the value is never kept in the notifier.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Secret {
    /// An environment variable; `key` is the config key that named it (`token_env`).
    Env { key: &'static str, var: String },
    /// A file; one trailing newline is not part of the secret.
    File { key: &'static str, path: PathBuf },
}

impl fmt::Debug for Secret {
    /// Where the secret is, never what it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env { var, .. } => write!(f, "Env({var:?})"),
            Self::File { path, .. } => write!(f, "File({:?})", path.display()),
        }
    }
}

impl Secret {
    /// The source named by the pair of keys `{name}_env` / `{name}_file`, if any.
    pub(crate) fn from_keys(
        env_key: &'static str,
        env: Option<&String>,
        file_key: &'static str,
        file: Option<&PathBuf>,
    ) -> Result<Option<Self>, BuildError> {
        match (env, file) {
            (Some(_), Some(_)) => Err(BuildError::key(
                file_key,
                format!("set one of `{env_key}` and `{file_key}`, not both"),
            )),
            (Some(var), None) if var.is_empty() => {
                Err(BuildError::key(env_key, format!("`{env_key}` is empty")))
            }
            (Some(var), None) => Ok(Some(Self::Env {
                key: env_key,
                var: var.clone(),
            })),
            (None, Some(path)) => Ok(Some(Self::File {
                key: file_key,
                path: path.clone(),
            })),
            (None, None) => Ok(None),
        }
    }

    /// The secret. Errors say where it was looked for, never what was found.
    pub(crate) fn read(&self) -> Result<String, NotifyError> {
        let value = match self {
            Self::Env { key, var } => std::env::var(var).map_err(|e| {
                let why = match e {
                    std::env::VarError::NotPresent => "is not set",
                    std::env::VarError::NotUnicode(_) => "is not valid UTF-8",
                };
                NotifyError::config(KIND, format!("{key}: environment variable {var} {why}"))
            })?,
            Self::File { key, path } => {
                let mut text = std::fs::read_to_string(path).map_err(|e| {
                    NotifyError::config(KIND, format!("{key}: cannot read {}: {e}", path.display()))
                })?;
                // `echo secret > file` leaves a newline that is not part of the secret.
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        if value.is_empty() {
            let source = match self {
                Self::Env { key, var } => format!("{key}: environment variable {var}"),
                Self::File { key, path } => format!("{key}: {}", path.display()),
            };
            return Err(NotifyError::config(KIND, format!("{source} is empty")));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_secret_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        let s = Secret::from_keys("token_env", None, "token_file", Some(&path))
            .unwrap()
            .unwrap();
        assert_eq!(s.read().unwrap(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        let e = s.read().unwrap_err().to_string();
        assert!(e.contains("token_file") && e.contains("is empty"), "{e}");
    }

    #[test]
    fn missing_variable_is_a_config_error_without_the_value() {
        let s = Secret::from_keys(
            "hmac_secret_env",
            Some(&"ALERTCORE_WEBHOOK_TEST_SURELY_UNSET".to_owned()),
            "hmac_secret_file",
            None,
        )
        .unwrap()
        .unwrap();
        let e = s.read().unwrap_err();
        assert!(!e.is_retryable());
        assert!(matches!(e, NotifyError::Config { .. }), "{e:?}");
        assert!(e.to_string().contains("is not set"), "{e}");
        assert_eq!(
            format!("{s:?}"),
            "Env(\"ALERTCORE_WEBHOOK_TEST_SURELY_UNSET\")"
        );
    }

    #[test]
    fn both_or_empty_sources_are_refused() {
        let (var, path) = ("X".to_owned(), PathBuf::from("/x"));
        let e = Secret::from_keys("token_env", Some(&var), "token_file", Some(&path)).unwrap_err();
        assert_eq!(e.offending_key(), Some("token_file"));
        let e =
            Secret::from_keys("token_env", Some(&String::new()), "token_file", None).unwrap_err();
        assert_eq!(e.offending_key(), Some("token_env"));
        assert_eq!(
            Secret::from_keys("token_env", None, "token_file", None).unwrap(),
            None
        );
    }
}
