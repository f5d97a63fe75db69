//! TLS for client connections: the certificate chain and key read from the
//! configuration's PEM files, ALPN (`h2`, then `http/1.1`), and a certificate
//! that [`Server::reload_tls`](crate::Server::reload_tls) replaces without
//! touching established connections.
//!
//! The server uses ring through its own [`CryptoProvider`], never the
//! process-wide default, so a host that installed another provider for its
//! own clients keeps it and the server behaves the same either way.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{Error as PemError, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::error::{Error, Result};

/// The ALPN names a server offers, most preferred first.
const H2: &[u8] = b"h2";
const HTTP_1_1: &[u8] = b"http/1.1";

/// A server's TLS: the acceptors for its connections and the certificate in
/// service.
pub(crate) struct Tls {
    /// Offers `h2` (when HTTP/2 is on) and `http/1.1`.
    acceptor: TlsAcceptor,
    /// Offers `http/1.1` only: a refused connection gets its raw HTTP/1.1
    /// answer whatever the client would have preferred.
    http1_acceptor: TlsAcceptor,
    certificate: Arc<Certificate>,
    provider: Arc<CryptoProvider>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

/// The certificate every new handshake is given; swapped whole.
#[derive(Debug)]
struct Certificate(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl Tls {
    /// TLS with the chain in `cert_path` and the key in `key_path`, offering
    /// HTTP/2 if `http2`; a file that is missing, holds no certificate or
    /// key, or a key that does not match the certificate is
    /// [`Error::InvalidConfig`].
    pub(crate) fn new(cert_path: &Path, key_path: &Path, http2: bool) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load(cert_path, key_path, &provider)?;
        let certificate = Arc::new(Certificate(ArcSwap::from_pointee(loaded)));
        let config = |alpn: Vec<Vec<u8>>| -> Result<TlsAcceptor> {
            let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|err| Error::InvalidConfig(format!("TLS: {err}")))?
                .with_no_client_auth()
                .with_cert_resolver(Arc::clone(&certificate) as Arc<dyn ResolvesServerCert>);
            config.alpn_protocols = alpn;
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        let offered = if http2 {
            vec![H2.to_vec(), HTTP_1_1.to_vec()]
        } else {
            vec![HTTP_1_1.to_vec()]
        };
        Ok(Tls {
            acceptor: config(offered)?,
            http1_acceptor: config(vec![HTTP_1_1.to_vec()])?,
            certificate,
            provider,
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        })
    }

    /// Reads the certificate and key files again and serves the new pair to
    /// every new handshake; connections already open keep theirs. A pair
    /// that does not load leaves the one in service and says why.
    pub(crate) fn reload(&self) -> Result<()> {
        let loaded = load(&self.cert_path, &self.key_path, &self.provider)?;
        self.certificate.0.store(Arc::new(loaded));
        Ok(())
    }

    /// The acceptor for an admitted connection.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The acceptor for a connection that is refused with an HTTP/1.1 answer.
    pub(crate) fn http1_acceptor(&self) -> &TlsAcceptor {
        &self.http1_acceptor
    }
}

/// Whether a handshake chose HTTP/2.
pub(crate) fn negotiated_h2(protocol: Option<&[u8]>) -> bool {
    protocol == Some(H2)
}

/// What is wrong with a PEM file, in words (rustls's own message shows the
/// section markers as byte lists).
fn pem_problem(err: &PemError) -> String {
    match err {
        PemError::MissingSectionEnd { .. } => {
            "is not valid PEM (a section is not closed)".to_owned()
        }
        PemError::IllegalSectionStart { .. } => {
            "is not valid PEM (a malformed BEGIN line)".to_owned()
        }
        PemError::Base64Decode(_) => "is not valid PEM (bad base64)".to_owned(),
        other => format!("is not valid PEM ({other})"),
    }
}

fn load(cert_path: &Path, key_path: &Path, provider: &CryptoProvider) -> Result<CertifiedKey> {
    let invalid =
        |path: &Path, why: String| Error::InvalidConfig(format!("TLS {}: {why}", path.display()));
    let cert_pem = std::fs::read(cert_path).map_err(|err| invalid(cert_path, err.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| invalid(cert_path, pem_problem(&err)))?;
    if chain.is_empty() {
        return Err(invalid(cert_path, "holds no PEM certificate".to_owned()));
    }
    let key_pem = std::fs::read(key_path).map_err(|err| invalid(key_path, err.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| match err {
        PemError::NoItemsFound => invalid(key_path, "holds no PEM private key".to_owned()),
        other => invalid(key_path, pem_problem(&other)),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|err| {
        Error::InvalidConfig(format!(
            "TLS: the key in {} does not serve the certificate in {} ({err})",
            key_path.display(),
            cert_path.display()
        ))
    })
}
