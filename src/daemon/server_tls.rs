//! Certificates lakeflyd serves (the edge's `--edge-tls-cert`, the API's
//! `--api-tls-cert`): read from PEM files, checked to match their key, and swapped whole
//! when SIGHUP asks for them to be read again.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, pki_types};
use tokio_rustls::TlsAcceptor;

use self::pki_types::pem::PemObject;
use self::pki_types::{CertificateDer, PrivateKeyDer};
use crate::tls::provider;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the server side of a TLS handshake on `stream`, within the handshake timeout;
/// a failed or slow one is logged for `who` (`edge`, `API`) and gives `None`.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    who: &'static str,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "{who}: TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "{who}: TLS handshake timed out");
            None
        }
    }
}

/// The PEM files of a certificate lakeflyd serves.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Whose it is, for messages: `edge` or `API`.
    pub role: &'static str,
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The pair a `--*-tls-cert` and `--*-tls-key` flag name, when both were given (the
    /// flags require each other).
    pub fn given(
        role: &'static str,
        cert: &Option<PathBuf>,
        key: &Option<PathBuf>,
    ) -> Option<Self> {
        Some(TlsFiles {
            role,
            cert: cert.clone()?,
            key: key.clone()?,
        })
    }
}

/// Why a certificate lakeflyd was given cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read as PEM.
    #[error("cannot read the {role}'s TLS {what} {}: {detail}", path.display())]
    Read {
        /// Whose certificate.
        role: &'static str,
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
        /// Whose certificate.
        role: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the pair.
    #[error("the {role}'s TLS key {} cannot serve the certificate {}: {detail}", key.display(), cert.display())]
    Unusable {
        /// Whose certificate.
        role: &'static str,
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        detail: String,
    },
}

impl TlsError {
    /// Whose certificate it is: `edge` or `API`.
    pub fn role(&self) -> &'static str {
        match self {
            TlsError::Read { role, .. }
            | TlsError::Unusable { role, .. }
            | TlsError::NoCertificate { role, .. } => role,
        }
    }
}

/// TLS set-ups for one certificate: one offering HTTP/1.1 by ALPN, one offering nothing
/// (a raw TCP port must not refuse a client that asks for another protocol). Both take
/// their certificate from one place, which [`ServerTls::reload`] swaps.
pub struct ServerTls {
    files: TlsFiles,
    current: Arc<CurrentCert>,
    /// HTTP/1.1 only (the API).
    http: TlsAcceptor,
    /// HTTP/2 or HTTP/1.1 (the edge's HTTPS ports).
    web: TlsAcceptor,
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

impl ServerTls {
    /// Reads the certificate and key `files` name.
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        let current = Arc::new(CurrentCert(RwLock::new(Arc::new(read_pair(files)?))));
        let config = |alpn: &[&[u8]]| -> Result<TlsAcceptor, TlsError> {
            let mut config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Unusable {
                    role: files.role,
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                    detail: e.to_string(),
                })?
                .with_no_client_auth()
                .with_cert_resolver(current.clone());
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        Ok(ServerTls {
            http: config(&[b"http/1.1"])?,
            web: config(&[b"h2", b"http/1.1"])?,
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

    /// The set-up offering HTTP/1.1.
    pub fn http(&self) -> TlsAcceptor {
        self.http.clone()
    }

    /// The set-up offering HTTP/2, then HTTP/1.1: the edge's HTTPS ports, where browsers
    /// and gRPC-web clients expect HTTP/2 as Fly's edge gives it.
    pub fn web(&self) -> TlsAcceptor {
        self.web.clone()
    }

    /// The set-up offering no application protocol, for raw TCP.
    pub fn raw(&self) -> TlsAcceptor {
        self.raw.clone()
    }
}

/// The certificate chain and key `files` name, checked to belong together.
fn read_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let read = |what, path: &PathBuf, e: pki_types::pem::Error| TlsError::Read {
        role: files.role,
        what,
        path: path.clone(),
        detail: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| read("certificate", &files.cert, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            role: files.role,
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read("key", &files.key, e))?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Unusable {
        role: files.role,
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail: e.to_string(),
    })
}
