//! Certificates lakeflyd serves (the edge's `--edge-tls-cert`, which may be given for
//! several names, the API's `--api-tls-cert`): read from PEM files, checked to match
//! their key, chosen by the name a client asks for (SNI), and swapped whole when SIGHUP
//! asks for them to be read again.

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
    /// The pairs the `--*-tls-cert` and `--*-tls-key` flags name, each certificate with
    /// the key given in the same place (the flags require each other).
    pub fn given(
        role: &'static str,
        certs: &[PathBuf],
        keys: &[PathBuf],
    ) -> Result<Vec<Self>, TlsError> {
        if certs.len() != keys.len() {
            return Err(TlsError::Unpaired {
                role,
                certs: certs.len(),
                keys: keys.len(),
            });
        }
        Ok(certs
            .iter()
            .zip(keys)
            .map(|(cert, key)| TlsFiles {
                role,
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect())
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
    /// Certificates and keys were not given in pairs.
    #[error(
        "{certs} --{}-tls-cert given with {keys} --{}-tls-key: each certificate needs its key",
        flag(role),
        flag(role)
    )]
    Unpaired {
        /// Whose certificates.
        role: &'static str,
        /// How many certificates.
        certs: usize,
        /// How many keys.
        keys: usize,
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
            | TlsError::NoCertificate { role, .. }
            | TlsError::Unpaired { role, .. } => role,
        }
    }
}

/// The flag prefix of a role: `edge`, `api`.
fn flag(role: &str) -> String {
    role.to_ascii_lowercase()
}

/// TLS set-ups for a set of certificates: one offering HTTP/1.1 by ALPN, one HTTP/2 and
/// HTTP/1.1, one offering nothing (a raw TCP port must not refuse a client that asks for
/// another protocol). All take their certificates from one place, which
/// [`ServerTls::reload`] swaps.
pub struct ServerTls {
    files: Vec<TlsFiles>,
    current: Arc<CurrentCerts>,
    /// HTTP/1.1 only (the API).
    http: TlsAcceptor,
    /// HTTP/2 or HTTP/1.1 (the edge's HTTPS ports).
    web: TlsAcceptor,
    raw: TlsAcceptor,
}

/// The certificates new handshakes get, in the order given: replaced whole on a reload,
/// while a handshake under way keeps the one it started with.
#[derive(Debug)]
struct CurrentCerts(RwLock<Arc<Vec<Arc<CertifiedKey>>>>);

impl CurrentCerts {
    fn get(&self) -> Arc<Vec<Arc<CertifiedKey>>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl ResolvesServerCert for CurrentCerts {
    /// The first certificate that covers the name the client asks for, else the first.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.get();
        let chosen = match (hello.server_name(), certs.len()) {
            (Some(name), 2..) => certs.iter().find(|c| covers(c, name)),
            _ => None,
        };
        chosen.or(certs.first()).cloned()
    }
}

/// When the leaf certificate of `key` expires (Unix seconds).
fn expiry_of(key: &CertifiedKey) -> Option<i64> {
    key.cert
        .first()
        .and_then(|leaf| super::tls_expiry::not_after(leaf))
}

/// Whether the leaf certificate of `key` is valid for the DNS name `name`.
fn covers(key: &CertifiedKey, name: &str) -> bool {
    let (Some(leaf), Ok(name)) = (key.cert.first(), pki_types::ServerName::try_from(name)) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
}

impl ServerTls {
    /// Reads the certificates and keys `files` name; `None` when there are none.
    pub fn load(files: Vec<TlsFiles>) -> Result<Option<ServerTls>, TlsError> {
        let certs = files.iter().map(read_pair).collect::<Result<Vec<_>, _>>()?;
        let Some(first) = files.first() else {
            return Ok(None);
        };
        let current = Arc::new(CurrentCerts(RwLock::new(Arc::new(certs))));
        let config = |alpn: &[&[u8]]| -> Result<TlsAcceptor, TlsError> {
            let mut config = rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Unusable {
                    role: first.role,
                    cert: first.cert.clone(),
                    key: first.key.clone(),
                    detail: e.to_string(),
                })?
                .with_no_client_auth()
                .with_cert_resolver(current.clone());
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        let (http, web, raw) = (
            config(&[b"http/1.1"])?,
            config(&[b"h2", b"http/1.1"])?,
            config(&[])?,
        );
        let tls = ServerTls {
            http,
            web,
            raw,
            current,
            files,
        };
        tls.warn_of_expiry();
        Ok(Some(tls))
    }

    /// Logs a warning for each certificate that has expired or expires soon.
    fn warn_of_expiry(&self) {
        let now = chrono::Utc::now().timestamp();
        for (files, expires) in self.expiries() {
            let warning = expires.and_then(|at| super::tls_expiry::warning(files, at, now));
            if let Some(warning) = warning {
                tracing::warn!("{warning}");
            }
        }
    }

    /// Each certificate's files and when its leaf expires (Unix seconds).
    pub fn expiries(&self) -> Vec<(&TlsFiles, Option<i64>)> {
        let certs = self.current.get();
        self.files
            .iter()
            .zip(certs.iter())
            .map(|(files, key)| (files, expiry_of(key)))
            .collect()
    }

    /// Reads the files again (renewed certificates): handshakes from now on use what
    /// they hold. When one cannot be used, all the certificates served so far stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certs = self
            .files
            .iter()
            .map(read_pair)
            .collect::<Result<Vec<_>, _>>()?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(certs);
        self.warn_of_expiry();
        Ok(())
    }

    /// The files the certificates come from.
    pub fn files(&self) -> &[TlsFiles] {
        &self.files
    }

    /// The files of the certificate served to clients asking for `hostname` (a `*.`
    /// wildcard asks for any name one label under it), if one covers it, with when that
    /// certificate expires (Unix seconds).
    pub fn covering(&self, hostname: &str) -> Option<(&TlsFiles, Option<i64>)> {
        // Any name under a wildcard stands for all of them: only a wildcard
        // certificate covers this one.
        let name = match hostname.strip_prefix("*.") {
            Some(parent) => format!("lakefly-any-name.{parent}"),
            None => hostname.to_string(),
        };
        let certs = self.current.get();
        let at = certs.iter().position(|c| covers(c, &name))?;
        self.files
            .get(at)
            .map(|files| (files, expiry_of(&certs[at])))
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
fn read_pair(files: &TlsFiles) -> Result<Arc<CertifiedKey>, TlsError> {
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
    let pair = CertifiedKey::from_der(certs, key, &provider()).map_err(|e| TlsError::Unusable {
        role: files.role,
        cert: files.cert.clone(),
        key: files.key.clone(),
        detail: e.to_string(),
    })?;
    Ok(Arc::new(pair))
}
