//! TLS set-ups shared by the client and the daemon: rustls with ring (it builds without
//! a C toolchain step) and, for verifying, the host's CA store, in which `SSL_CERT_FILE`
//! and `SSL_CERT_DIR` are honoured (a private CA for a self-hosted daemon goes there).

use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The crypto every TLS connection of lakefly uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

/// A client set-up that verifies servers against the host's CA store, made once per
/// process (the store is read then).
pub fn verifying_client() -> Result<Arc<ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            // Certificates the store cannot parse are left out; a connection that needs
            // one fails with the handshake's error, which names the problem.
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            let config = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS set-up: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// A client set-up that trusts no one, for connections that will not use TLS (an
/// `http://` URL through a connector that could do both): the CA store is not read.
pub fn plain_only_client() -> Result<Arc<ClientConfig>, String> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Makes ring the process's default crypto for rustls, once: reqwest, built without a
/// provider of its own, needs one for every client it makes, HTTPS or not.
pub fn install_default_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err means another one was installed first, which serves as well.
        let _ = crypto::ring::default_provider().install_default();
    });
}
