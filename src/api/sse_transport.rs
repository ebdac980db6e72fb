//! eventsource-client's transport over reqwest: the live event stream is requested with
//! the same client set-up as every other request to the daemon (rustls and the CA store,
//! the environment's proxy except for loopback, HTTPS through a proxy by `CONNECT`),
//! rather than with a second HTTP stack of its own.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyDataStream;
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
            // Head as it came; the body as the stream of its data, reqwest's read timeout
            // still on it.
            Ok(http::Response::from(response).map(|body| {
                let data =
                    BodyDataStream::new(body).map(|chunk| chunk.map_err(TransportError::new));
                // The transport's types must be `Sync`; reqwest's future and body are only
                // `Send`, which these wrappers make enough (they are only ever polled).
                Box::pin(SyncStream::new(data)) as ByteStream
            }))
        };
        Box::pin(SyncFuture::new(exchange))
    }
}
