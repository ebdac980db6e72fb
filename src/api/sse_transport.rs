//! eventsource-client's transport over reqwest: the live event stream is requested with
//! the same client set-up as every other request to the daemon (rustls and the CA store,
//! the environment's proxy except for loopback, HTTPS through a proxy by `CONNECT`),
//! rather than with a second HTTP stack of its own.

use bytes::Bytes;
use futures_util::StreamExt;
use launchdarkly_sdk_transport::{ByteStream, HttpTransport, ResponseFuture, TransportError};
use sync_wrapper::{SyncFuture, SyncStream};

/// Requests made with a reqwest client.
#[derive(Clone)]
pub(super) struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    /// Requests made with `client`, whose settings (timeouts, proxy, TLS) they keep.
    pub(super) fn new(client: reqwest::Client) -> Self {
        ReqwestTransport { client }
    }
}

impl HttpTransport for ReqwestTransport {
    fn request(&self, request: http::Request<Option<Bytes>>) -> ResponseFuture {
        let client = self.client.clone();
        let exchange = async move {
            let request = reqwest::Request::try_from(request.map(Option::unwrap_or_default))
                .map_err(TransportError::new)?;
            let response = client.execute(request).await.map_err(TransportError::new)?;
            let mut head = http::Response::builder().status(response.status());
            if let Some(headers) = head.headers_mut() {
                headers.extend(response.headers().clone());
            }
            let body = response
                .bytes_stream()
                .map(|chunk| chunk.map_err(TransportError::new));
            // The transport's types must be `Sync`; reqwest's future and stream are only
            // `Send`, which these wrappers make enough (they are only ever polled).
            let body: ByteStream = Box::pin(SyncStream::new(body));
            head.body(body).map_err(TransportError::new)
        };
        Box::pin(SyncFuture::new(exchange))
    }
}
