//! The test certificates (`tests/fixtures/tls`) and TLS connections verified against them.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::TlsConnector;

/// The path of a file under `tests/fixtures/tls`.
pub fn fixture(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests/fixtures/tls", name]
        .iter()
        .collect();
    path.to_str().expect("a UTF-8 path").to_string()
}

/// The daemon flags that give the edge the test certificate (`*.localhost`, 127.0.0.1).
pub fn edge_flags() -> [String; 4] {
    [
        "--edge-tls-cert".into(),
        fixture("cert.pem"),
        "--edge-tls-key".into(),
        fixture("key.pem"),
    ]
}

/// A TLS connection to `127.0.0.1:port` verified against the test CAs as `host`,
/// offering the application protocols `alpn`.
pub async fn connect(port: u16, host: &str, alpn: &[&[u8]]) -> TlsStream<tokio::net::TcpStream> {
    let mut roots = RootCertStore::empty();
    for ca in ["ca.pem", "ca2.pem", "ca3.pem"] {
        let ca = CertificateDer::from_pem_file(fixture(ca)).expect("a test CA");
        roots.add(ca).expect("a usable CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the port is served");
    let name = ServerName::try_from(host.to_string()).expect("a server name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("a TLS handshake with a certificate the test CA signed")
}

/// Sends `request` over TLS to `127.0.0.1:port` as `host` and reads the whole answer;
/// also returns the certificate the server presented.
pub async fn exchange(port: u16, host: &str, request: &str) -> (String, CertificateDer<'static>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = connect(port, host, &[]).await;
    let presented = tls.get_ref().1.peer_certificates().expect("a certificate")[0].clone();
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(super::edge::DEADLINE, tls.read_to_string(&mut answer))
        .await
        .expect("the answer arrives in time")
        .expect("the answer reads to its end");
    (answer, presented)
}

/// An HTTP/2 connection in TLS to `127.0.0.1:port` as `host` (which must choose `h2`),
/// driven by a task of its own that ends with the connection.
pub async fn h2<B>(
    port: u16,
    host: &str,
    alpn: &[&[u8]],
) -> (
    hyper::client::conn::http2::SendRequest<B>,
    tokio::task::JoinHandle<hyper::Result<()>>,
)
where
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = connect(port, host, alpn).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("an HTTP/2 handshake");
    (sender, tokio::spawn(conn))
}
