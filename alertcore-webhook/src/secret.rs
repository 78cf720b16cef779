//! Secrets named by `*_env` / `*_file` / `*_credential` keys, read when a webhook is sent.

use std::fmt;
use std::path::PathBuf;

use alertcore::transport::SecretSource;
use alertcore::{BuildError, NotifyError};

use crate::KIND;

/// Where a secret comes from. It is read at every delivery, so a rotated token or key is
/// picked up without rebuilding the notifier, and the value is never kept in the notifier.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(SecretSource);

impl fmt::Debug for Secret {
    /// Where the secret is, never what it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Secret {
    /// The source named by the keys `{name}_env` / `{name}_file` / `{name}_credential`,
    /// each given with its value; `None` if none is set.
    pub(crate) fn from_keys(
        env: (&'static str, Option<&String>),
        file: (&'static str, Option<&PathBuf>),
        credential: (&'static str, Option<&String>),
    ) -> Result<Option<Self>, BuildError> {
        SecretSource::choose(
            (env.0, env.1.map(String::as_str)),
            (file.0, file.1.map(PathBuf::as_path)),
            (credential.0, credential.1.map(String::as_str)),
        )
        .map(|s| s.map(Self))
    }

    /// The config key that named the source (`token_credential`).
    pub(crate) fn key(&self) -> &'static str {
        self.0.key()
    }

    /// The secret. Errors say where it was looked for, never what was found.
    pub(crate) fn read(&self) -> Result<String, NotifyError> {
        self.0.read().map_err(|e| e.into_notify_error(KIND))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Option<&String> = None;

    #[test]
    fn file_secret_loses_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        let s = Secret::from_keys(
            ("token_env", NONE),
            ("token_file", Some(&path)),
            ("token_credential", NONE),
        )
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
            (
                "hmac_secret_env",
                Some(&"ALERTCORE_WEBHOOK_TEST_SURELY_UNSET".to_owned()),
            ),
            ("hmac_secret_file", None),
            ("hmac_secret_credential", NONE),
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
    fn a_credential_outside_systemd_is_a_config_error_naming_the_key() {
        let s = Secret::from_keys(
            ("token_env", NONE),
            ("token_file", None),
            ("token_credential", Some(&"hook-token".to_owned())),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.key(), "token_credential");
        assert_eq!(format!("{s:?}"), "Credential(\"hook-token\")");
        if std::env::var_os("CREDENTIALS_DIRECTORY").is_none() {
            let e = s.read().unwrap_err();
            assert!(matches!(e, NotifyError::Config { .. }), "{e:?}");
            assert!(
                e.to_string()
                    .contains("token_credential: $CREDENTIALS_DIRECTORY is not set"),
                "{e}"
            );
        }
    }

    #[test]
    fn several_or_empty_sources_are_refused() {
        let (var, path, cred) = ("X".to_owned(), PathBuf::from("/x"), "c".to_owned());
        let e = Secret::from_keys(
            ("token_env", Some(&var)),
            ("token_file", Some(&path)),
            ("token_credential", NONE),
        )
        .unwrap_err();
        assert_eq!(e.offending_key(), Some("token_file"));
        let e = Secret::from_keys(
            ("token_env", NONE),
            ("token_file", Some(&path)),
            ("token_credential", Some(&cred)),
        )
        .unwrap_err();
        assert_eq!(e.offending_key(), Some("token_credential"));
        let e = Secret::from_keys(
            ("token_env", Some(&String::new())),
            ("token_file", None),
            ("token_credential", NONE),
        )
        .unwrap_err();
        assert_eq!(e.offending_key(), Some("token_env"));
        assert_eq!(
            Secret::from_keys(
                ("token_env", NONE),
                ("token_file", None),
                ("token_credential", NONE)
            )
            .unwrap(),
            None
        );
    }
}
