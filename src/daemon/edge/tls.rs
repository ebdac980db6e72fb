//! TLS on the edge. A `[[services.ports]]` port whose handlers include `tls` (Fly's
//! `handlers = ["tls", "http"]` on 443) terminates TLS with the certificate that
//! `lakeflyd --edge-tls-cert` and `--edge-tls-key` name, then serves HTTP when `http` is
//! among its handlers (with `X-Forwarded-Proto: https`), else passes the plaintext on to
//! a machine as raw TCP. Without a certificate such a port is reported and left out.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, pki_types};
use tokio_rustls::TlsAcceptor;

use self::pki_types::pem::PemObject;
use self::pki_types::{CertificateDer, PrivateKeyDer};
use super::routes::Route;
use super::EdgeState;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PEM files of the edge's certificate.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the edge's certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read as PEM.
    #[error("cannot read the edge's TLS {what} {}: {detail}", path.display())]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The certificate file has no certificate in it.
    #[error("{} holds no certificate (a PEM block `-----BEGIN CERTIFICATE-----`)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the pair.
    #[error("the edge's TLS key {} cannot serve the certificate {}: {detail}", key.display(), cert.display())]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        detail: String,
    },
}

/// The edge's TLS set-ups: one offering HTTP/1.1 by ALPN, one offering nothing (a raw TCP
/// port must not refuse a client that asks for another protocol). Both take their
/// certificate from one place, which [`EdgeTls::reload`] swaps.
pub struct EdgeTls {
    files: TlsFiles,
    current: Arc<CurrentCert>,
    http: TlsAcceptor,
    raw: TlsAcceptor,
}

/// The certificate new handshakes get: replaced whole on a reload, while a handshake
/// under way keeps the one it started with.
#[derive(Debug)]
struct CurrentCert(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

impl EdgeTls {
    /// Reads the certificate and key `files` name.
    pub fn load(files: &TlsFiles) -> Result<EdgeTls, TlsError> {
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(read_pair(files)?))));
        let config = |alpn: &[&[u8]]| -> Result<TlsAcceptor, TlsError> {
            let mut config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Unusable {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                    detail: e.to_string(),
                })?
                .with_no_client_auth()
                .with_cert_resolver(current.clone());
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        Ok(EdgeTls {
            http: config(&[b"http/1.1"])?,
            raw: config(&[])?,
            current,
            files: files.clone(),
        })
    }

    /// Reads the files again (a renewed certificate): handshakes from now on use what
    /// they hold. When they cannot be used, the certificate served so far stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = Arc::new(read_pair(&self.files)?);
        *self
            .current
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = pair;
        Ok(())
    }

    /// The files the certificate comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// The crypto the edge's TLS uses: ring, which builds without a C toolchain step.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and key `files` name, checked to belong together.
fn read_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let read = |what, path: &PathBuf, e: pki_types::pem::Error| TlsError::Read {
        what,
        path: path.clone(),
        detail: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| read("certificate", &files.cert, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read("key", &files.key, e))?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Unusable {
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail: e.to_string(),
    })
}

/// Serves one connection accepted on a TLS port of `app`: HTTP when `http`, else the
/// plaintext spliced to a machine of `route`.
pub async fn serve(
    state: Arc<EdgeState>,
    stream: TcpStream,
    peer: SocketAddr,
    (app, port): (String, u16),
    route: Arc<Route>,
    http: bool,
) {
    // Routes with TLS ports are only applied when the edge has a certificate.
    let Some(tls) = &state.tls else {
        return;
    };
    let acceptor = if http { &tls.http } else { &tls.raw }.clone();
    let _open = state.open_connection();
    let _ = stream.set_nodelay(true);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "edge: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "edge: TLS handshake timed out");
            return;
        }
    };
    if http {
        super::serve_hyper(state, stream, peer, Some((app, port)), super::Scheme::Https).await;
    } else {
        super::tcp::splice(state, route, None, stream).await;
    }
}
