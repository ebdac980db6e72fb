//! `protocol = "https"` health checks: TLS to the machine's port (rustls with ring, as
//! the edge uses), then one HTTP/1.1 request over it with hyper. As Fly's checks do, the
//! certificate is verified, against the host's CA store (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` are honoured), for `tls_server_name`, else for 127.0.0.1, unless
//! `tls_skip_verify = true`.

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

use crate::config::model::Check;

/// How much of an answer's body is read (what the check's output shows is shorter).
const BODY_LIMIT: usize = 16 * 1024;

/// Runs `check` once against the machine's `port`: whether it passed, and what it saw.
pub async fn check(check: &Check, port: u16, timeout: Duration) -> (bool, String) {
    let path = super::health::target(check);
    let url = format!("https://127.0.0.1:{port}{path}");
    match tokio::time::timeout(timeout, exchange(check, port, &path)).await {
        Ok(Ok((status, body))) => (
            (200..300).contains(&status),
            format!("{status} {url}: {}", body.trim()),
        ),
        Ok(Err(e)) => (false, format!("{url}: {e}")),
        Err(_) => (false, format!("{url}: no answer within {timeout:?}")),
    }
}

/// The handshake and the request: the status and the start of the body.
async fn exchange(check: &Check, port: u16, path: &str) -> Result<(u16, String), String> {
    let named = check
        .extra
        .get("tls_server_name")
        .and_then(|name| name.as_str());
    let server_name = match named {
        Some(name) => ServerName::try_from(name.to_string())
            .map_err(|e| format!("tls_server_name {name:?}: {e}"))?,
        None => ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()),
    };
    let host = named.unwrap_or("127.0.0.1").to_string();
    let skip = check.tls_skip_verify == Some(true);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let tls = TlsConnector::from(config(skip)?)
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    // Ends when the request is done and the sender dropped.
    tokio::spawn(conn);
    let mut request = http::Request::builder()
        .method(super::health::method(check))
        .uri(path)
        .header(http::header::HOST, host)
        .header(http::header::USER_AGENT, "lakefly-health-check");
    for (name, value) in &check.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("the check's request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    // The status decides. Of the body, what arrives is shown: many servers end a body that
    // runs to the connection's close without TLS's close_notify, which reads as an error.
    let mut body = response.into_body();
    let mut seen = Vec::new();
    while seen.len() < BODY_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    seen.extend_from_slice(data);
                }
            }
            Some(Err(e)) if seen.is_empty() => {
                return Ok((status, format!("(body unread: {e})")));
            }
            Some(Err(_)) | None => break,
        }
    }
    Ok((status, String::from_utf8_lossy(&seen).into_owned()))
}

/// The client set-up, made once: verifying against the host's CA store, or (`skip`) not
/// at all.
fn config(skip: bool) -> Result<Arc<ClientConfig>, String> {
    if !skip {
        return crate::tls::verifying_client();
    }
    static SKIPPING: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    SKIPPING
        .get_or_init(|| {
            let provider = crate::tls::provider();
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS set-up: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// `tls_skip_verify = true`: any certificate is taken, though the handshake's signatures
/// are still checked (the connection is encrypted, to an unknown party).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        crypto::verify_tls12_signature(
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
        crypto::verify_tls13_signature(
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
