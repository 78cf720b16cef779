//! The HTTP client, built on first use.
//!
//! Building a reqwest client with the system's root certificates costs 3-8 ms here,
//! about as much as the rest of an `alertctl failure` run. So the client is built only
//! when a webhook is actually sent (a run that decides not to alert never pays), and the
//! system roots are loaded only for `https://` URLs, once per process.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::sync::OnceCell;

use crate::error::WebhookError;

/// How the client connects; everything else is per request.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// Whether the URL is `https://` (only then are root certificates loaded).
    pub(crate) https: bool,
    /// Extra trusted CA certificates from `ca_file`.
    pub(crate) extra_roots: Vec<CertificateDer<'static>>,
    /// `tls_insecure_skip_verify_dangerous`.
    pub(crate) insecure: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
}

/// A reqwest client made on first use and then shared by every delivery of the notifier
/// (so connections are kept alive and reused).
#[derive(Debug)]
pub(crate) struct LazyClient {
    settings: ClientSettings,
    cell: OnceCell<reqwest::Client>,
}

impl LazyClient {
    pub(crate) fn new(settings: ClientSettings) -> Self {
        Self {
            settings,
            cell: OnceCell::new(),
        }
    }

    /// The client, built now if this is the first delivery.
    pub(crate) async fn get(&self) -> Result<&reqwest::Client, WebhookError> {
        self.cell
            .get_or_try_init(|| async { build(&self.settings, || system_roots().clone()) })
            .await
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client for `s`; `system_roots` is called only when they are needed.
fn build(
    s: &ClientSettings,
    system_roots: impl FnOnce() -> RootCertStore,
) -> Result<reqwest::Client, WebhookError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| WebhookError::Client(format!("TLS setup: {e}")))?;
    let tls = if s.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if s.https {
            roots = system_roots();
            let (added, _) = roots.add_parsable_certificates(s.extra_roots.iter().cloned());
            if roots.is_empty() || (added == 0 && !s.extra_roots.is_empty()) {
                return Err(WebhookError::Client(
                    "no usable CA certificates: install the system's (Debian: ca-certificates) \
                     or name a PEM file in ca_file"
                        .to_owned(),
                ));
            }
        }
        // For http:// URLs the store stays empty: nothing is verified because nothing
        // is encrypted, and redirects (which could lead to https) are not followed.
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(s.connect_timeout)
        .timeout(s.timeout)
        // A redirected POST turns into a GET without the body (301-303), so following
        // one would report success for an alert nobody received.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("alertcore/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| WebhookError::Client(alertcore::chain(&e.without_url())))
}

/// The system's trusted roots, read once per process (the slow part of a TLS client).
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!(error = %e, "skipping unreadable system certificates");
        }
        let mut roots = RootCertStore::empty();
        let (_, bad) = roots.add_parsable_certificates(found.certs);
        if bad > 0 {
            tracing::debug!(count = bad, "skipping unparsable system certificates");
        }
        roots
    })
}

/// The certificates of a PEM file (for `ca_file`), checked when the notifier is built.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    let mut store = RootCertStore::empty();
    let (_, bad) = store.add_parsable_certificates(certs.iter().cloned());
    if bad > 0 {
        return Err(format!(
            "{}: {bad} certificate(s) cannot be used as a CA",
            path.display()
        ));
    }
    Ok(certs)
}

/// `tls_insecure_skip_verify_dangerous = true`: any certificate for any name is
/// accepted. Handshake signatures are still checked, so the connection is encrypted to
/// whoever holds the key of the certificate shown, which may be anyone.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        let e = read_ca_file(&empty).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        let e = read_ca_file(&dir.path().join("missing.pem")).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }

    /// The module doc's promise: the system's roots (the slow part) are read for an
    /// `https://` URL that verifies certificates, and for nothing else.
    #[tokio::test]
    async fn system_roots_are_read_only_for_verified_https() {
        let http = ClientSettings {
            https: false,
            extra_roots: Vec::new(),
            insecure: false,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        let not_wanted = || -> RootCertStore { panic!("the system roots were read") };
        build(&http, not_wanted).unwrap();
        let insecure = ClientSettings {
            https: true,
            insecure: true,
            ..http.clone()
        };
        build(&insecure, not_wanted).unwrap();
        // with https they are read: with none there, and no ca_file, there is no client
        let https = ClientSettings {
            https: true,
            ..http
        };
        let e = build(&https, RootCertStore::empty).unwrap_err();
        assert!(e.to_string().contains("no usable CA certificates"), "{e}");
    }
}
