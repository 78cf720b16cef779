//! TLS client configurations, one builder for the `tcp` kind's `tls = true`, the `http`
//! kind's https and the `tls` kind: the ring provider, the system's roots or a
//! `ca_file`'s instead, and for the `tls` kind a verifier that lets the handshake finish
//! whatever the certificate so its expiry can be reported, and verifies afterwards.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The trust anchors of a check: a `ca_file`'s certificates, or else the system's.
#[derive(Debug, Clone)]
pub(crate) struct Trust {
    roots: Arc<RootCertStore>,
    /// Why nothing can be verified (no system roots and no `ca_file`): said at run time,
    /// as an unknown outcome, since the config is not what is wrong.
    problem: Option<String>,
}

impl Trust {
    /// The roots of `ca_file` (instead of the system's), or the system's.
    ///
    /// # Errors
    /// Why `ca_file` cannot be used (for a [`BuildError`](alertcore::BuildError) on it).
    pub(crate) fn new(ca_file: Option<&Path>) -> Result<Self, String> {
        match ca_file {
            Some(path) => {
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(read_ca_file(path)?);
                Ok(Self {
                    roots: Arc::new(roots),
                    problem: None,
                })
            }
            None => {
                let roots = system_roots();
                let problem = roots.is_empty().then(|| {
                    "no trusted CA certificates: install the system's (Debian: \
                     ca-certificates) or name a PEM file in ca_file"
                        .to_owned()
                });
                Ok(Self {
                    roots: Arc::clone(roots),
                    problem,
                })
            }
        }
    }

    /// No roots at all: for plain `http://`, where nothing is encrypted.
    pub(crate) fn empty() -> Self {
        Self {
            roots: Arc::new(RootCertStore::empty()),
            problem: None,
        }
    }

    /// Why no certificate can be verified, if that is so.
    pub(crate) fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// A config that verifies the server's certificate against these roots.
    ///
    /// # Errors
    /// rustls's, should the ring provider support no protocol version.
    pub(crate) fn client_config(&self) -> Result<ClientConfig, String> {
        Ok(ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(Arc::clone(&self.roots))
            .with_no_client_auth())
    }

    /// A config whose handshake succeeds whatever the certificate (its signature over
    /// the handshake is still checked), and the verifier to judge the certificate with
    /// afterwards ([`Inspector::verify`]).
    ///
    /// # Errors
    /// rustls's, should the ring provider support no protocol version.
    pub(crate) fn inspector(&self) -> Result<Inspector, String> {
        let provider = provider();
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::clone(&self.roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| format!("TLS setup: {e}"))?;
        let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptThenJudge(provider)))
            .with_no_client_auth();
        Ok(Inspector {
            config: Arc::new(config),
            verifier,
        })
    }
}

/// A handshake config that shows any certificate, and the real verifier to judge it.
#[derive(Debug, Clone)]
pub(crate) struct Inspector {
    pub(crate) config: Arc<ClientConfig>,
    verifier: Arc<WebPkiServerVerifier>,
}

impl Inspector {
    /// Verifies the chain a server presented for `name` at `now`, as a client using
    /// these roots would have.
    ///
    /// # Errors
    /// rustls's verdict on the certificate.
    pub(crate) fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return Err(rustls::Error::NoCertificatesPresented);
        };
        self.verifier
            .verify_server_cert(end_entity, intermediates, name, &[], now)
            .map(|_| ())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The system's trusted roots, read once per process (the slow part of a TLS client).
fn system_roots() -> &'static Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
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
        Arc::new(roots)
    })
}

/// The certificates of a PEM file (for `ca_file`), checked when the check is built.
///
/// # Errors
/// Why the file cannot be used: unreadable, not PEM, no certificate, not a CA.
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

/// A `server_name` (or the address standing for it): a DNS name or an IP address.
///
/// # Errors
/// Why it is neither.
pub(crate) fn server_name(name: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(super::bare_host(name).to_owned())
        .map_err(|e| format!("{name:?} is not a DNS name or IP address ({e})"))
}

/// Why a certificate is not trusted, in words: rustls's, with the common cases plainer.
pub(crate) fn untrusted_reason(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "issued by an unknown certificate authority (no chain to a trusted root)".to_owned()
            }
            CertificateError::BadSignature => "bad signature in its chain".to_owned(),
            CertificateError::NotValidForName => "not valid for the server name".to_owned(),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "a certificate in its chain has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "a certificate in its chain is not valid yet".to_owned()
            }
            CertificateError::Revoked => "revoked".to_owned(),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "not a TLS server certificate (its extended key usage does not allow it)".to_owned()
            }
            other => other.to_string(),
        },
        rustls::Error::NoCertificatesPresented => "the server presented no certificate".to_owned(),
        other => other.to_string(),
    }
}

/// Whether `e` says only that a certificate's validity period does not cover the time.
pub(crate) fn is_time_error(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
        )
    )
}

/// Accepts any certificate, so the handshake finishes and the certificate can be looked
/// at and judged afterwards with [`Inspector::verify`]. The handshake signatures are
/// still verified: the server holds the key of the certificate it shows.
#[derive(Debug)]
struct AcceptThenJudge(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptThenJudge {
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
#[allow(clippy::unwrap_used)]
pub(crate) mod testing {
    //! Certificates made at test time, and a TLS server on 127.0.0.1 showing one.

    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A certificate authority, its PEM file written into a temporary directory.
    pub(crate) struct Ca {
        pub(crate) issuer: CertifiedIssuer<'static, KeyPair>,
        pub(crate) pem_file: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Ca {
        pub(crate) fn new(name: &str) -> Self {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let issuer =
                CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let pem_file = dir.path().join("ca.pem");
            std::fs::write(&pem_file, issuer.pem()).unwrap();
            Self {
                issuer,
                pem_file,
                _dir: dir,
            }
        }

        /// A server certificate for `names`, valid from `from` (seconds from now) to
        /// `until`, and its key.
        pub(crate) fn leaf(
            &self,
            names: &[&str],
            from: i64,
            until: i64,
        ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
            let mut params =
                CertificateParams::new(names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                    .unwrap();
            params.distinguished_name.push(DnType::CommonName, names[0]);
            params.not_before = at(from).into();
            params.not_after = at(until).into();
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            (cert.der().clone(), key)
        }
    }

    fn at(offset: i64) -> SystemTime {
        let now = SystemTime::now();
        if offset >= 0 {
            now + Duration::from_secs(offset.unsigned_abs())
        } else {
            now - Duration::from_secs(offset.unsigned_abs())
        }
    }

    /// Serves TLS with `chain` on 127.0.0.1 until dropped: each connection gets the
    /// handshake, then `reply` (if any) after reading what the client sends first.
    /// Returns the port.
    pub(crate) async fn serve(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        reply: Option<&'static [u8]>,
    ) -> (u16, tokio::task::JoinHandle<()>) {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Some(reply) = reply {
                        let mut buf = [0u8; 1024];
                        let _ = tls.read(&mut buf).await;
                        let _ = tls.write_all(reply).await;
                    }
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, task)
    }
}
