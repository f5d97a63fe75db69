//! TLS and HTTP/2 for tests: a certificate authority made per test (rcgen),
//! its files on disk for a server's config, and real clients (rustls, hyper's
//! HTTP/1.1 and HTTP/2 clients) that trust it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{Response, PATIENCE};

/// A certificate authority made for one test.
pub struct TestCa {
    pub certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let certificate = params.self_signed(&key).unwrap();
        TestCa { certificate, key }
    }

    /// A server certificate for `host` and its key, both PEM.
    pub fn sign_server(&self, host: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .unwrap();
        (certificate.pem(), key.serialize_pem())
    }
}

/// A CA and a server certificate for 127.0.0.1, written to a directory of
/// the test's own (removed when dropped).
pub struct Pki {
    pub ca: TestCa,
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "tidings-tls-{name}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = TestCa::new(&format!("tidings test CA {name}"));
        std::fs::write(dir.join("ca.pem"), ca.certificate.pem()).unwrap();
        let pki = Pki { ca, dir };
        pki.issue("server");
        pki
    }

    /// Signs a new certificate for 127.0.0.1 as `<stem>.pem` and `<stem>.key`.
    pub fn issue(&self, stem: &str) {
        let (certificate, key) = self.ca.sign_server("127.0.0.1");
        std::fs::write(self.dir.join(format!("{stem}.pem")), certificate).unwrap();
        std::fs::write(self.dir.join(format!("{stem}.key")), key).unwrap();
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A client that trusts this CA and offers `alpn`.
    pub fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        connector(&self.ca_file(), alpn)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A rustls client (ring) trusting the CA in `ca_file` and offering `alpn`.
pub fn connector(ca_file: &Path, alpn: &[&[u8]]) -> TlsConnector {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|name| name.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr` (certificate name 127.0.0.1).
pub async fn tls_connect(connector: &TlsConnector, addr: SocketAddr) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake")
}

/// The DER of the certificate the server presented on `stream`.
pub fn peer_certificate(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().expect("certificate")[0].to_vec()
}

/// One HTTP/1.1 GET over an established connection (TLS or not).
pub async fn get_over<T>(io: T, addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    super::request_over(io, addr, "GET", path, headers).await
}

/// An HTTP/2 connection (hyper's client), on which each `get` opens a
/// stream; the connection ends when this is dropped.
pub struct H2 {
    sender: http2::SendRequest<Empty<Bytes>>,
    authority: String,
    scheme: &'static str,
    connection: tokio::task::JoinHandle<()>,
}

impl H2 {
    /// HTTP/2 over `io`: TLS that negotiated `h2`, or plain TCP (h2c by
    /// prior knowledge).
    pub async fn handshake<T>(io: T, addr: SocketAddr, tls: bool) -> H2
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .expect("h2 handshake");
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        H2 {
            sender,
            authority: addr.to_string(),
            scheme: if tls { "https" } else { "http" },
            connection,
        }
    }

    /// A GET on a new stream of this connection; dropping the response's
    /// body resets that stream only.
    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        let uri = format!("{}://{}{path}", self.scheme, self.authority);
        let mut builder = http::Request::builder().uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Empty::<Bytes>::new()).expect("request");
        tokio::time::timeout(PATIENCE, self.sender.ready())
            .await
            .expect("a stream slot in time")
            .expect("connection open");
        let response = tokio::time::timeout(PATIENCE, self.sender.send_request(request))
            .await
            .expect("response head in time")
            .expect("response");
        assert_eq!(response.version(), http::Version::HTTP_2);
        let (parts, body) = response.into_parts();
        Response {
            status: parts.status,
            headers: parts.headers,
            body: Some(body),
            // The connection outlives each stream: nothing to abort.
            connection: tokio::spawn(async {}),
        }
    }

    /// Whether the server has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl Drop for H2 {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
