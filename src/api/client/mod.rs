//! The typed HTTP client of the `/v1` API. Every failure is a [`ClientError`] that says
//! which daemon and what happened: unreachable, too slow, an API error with its code, or
//! an answer that is not what the API sends.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{
    AddHostname, App, AppStatus, CreateApp, DeployRequest, Health, Hostname, LogEntry, Machine,
    Release,
};

mod error;

pub use error::origin;
pub use error::root_cause;
pub use error::ClientError;
pub(super) use error::{decode, refusal, snippet};

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogsQuery {
    /// Only lines after this id.
    pub after: Option<u64>,
    /// At most this many (the newest).
    pub limit: usize,
    /// Only this machine's (or a job run's, `job:NAME#RUN`).
    pub machine: Option<String>,
    /// Only this process group's.
    pub process: Option<String>,
    /// Only this job's runs'.
    pub job: Option<String>,
}

/// How long a request may take before it is abandoned.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request answered once machines have stopped or become healthy may take (a
/// stop waits for the app's `kill_timeout`, a scale-up for health checks): the daemon
/// bounds those itself, so this only ends a wait on a daemon that never answers.
pub(super) const MACHINES_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection is kept for the next request: well under the 75 s
/// after which lakeflyd closes an idle one, so no request is sent into that close.
pub const POOL_IDLE: Duration = Duration::from_secs(30);

/// A routed name (`host` or `host/path`) as one segment of a request path: its `/` and
/// `%` encoded, so the daemon reads back the name as given.
fn name_segment(name: &str) -> String {
    name.replace('%', "%25").replace('/', "%2F")
}

/// `path` with the query `pairs` that have a value, each URL-encoded (a job run's log
/// source holds `#`, which would end the query raw).
pub(super) fn with_query(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    match query.finish() {
        query if query.is_empty() => path.to_string(),
        query => format!("{path}?{query}"),
    }
}

/// Whether `base` is an `https://` URL.
pub fn is_https(base: &str) -> bool {
    base.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

/// A reqwest client builder for requests to the daemon at `base`: the same rustls set-up
/// as the rest of lakefly (ring, the host's CA store, read only when TLS may be spoken),
/// the environment's proxy unless `base` is this host's loopback, lakefly's user agent.
pub(super) fn builder_for(base: &str) -> Result<reqwest::ClientBuilder, String> {
    crate::tls::install_default_provider();
    let tls = if may_speak_tls(base) {
        crate::tls::verifying_client()
    } else {
        crate::tls::plain_only_client()
    }?;
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.as_ref().clone())
        .user_agent(concat!("lakefly/", env!("CARGO_PKG_VERSION")));
    if crate::proxy_env::is_loopback(base) {
        builder = builder.no_proxy();
    }
    Ok(builder)
}

/// Whether requests to `base` may meet TLS: an `https://` daemon, or an `http://` one on
/// another host, where a proxy in front of it may redirect to `https://`. Only plain HTTP
/// to this host's loopback (the local daemon) is known never to.
fn may_speak_tls(base: &str) -> bool {
    is_https(base) || !crate::proxy_env::is_loopback(base)
}

/// `Bearer <token>`, marked sensitive so no debug output of a request shows it.
pub fn bearer(token: &crate::secret::Secret) -> Option<reqwest::header::HeaderValue> {
    let mut value = Vec::with_capacity(7 + token.expose().len());
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(token.expose());
    let mut header = reqwest::header::HeaderValue::from_bytes(&value).ok()?;
    zeroize::Zeroize::zeroize(&mut value);
    header.set_sensitive(true);
    Some(header)
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    pub(super) timeout: Duration,
    token: Option<crate::secret::Secret>,
}

impl Client {
    /// A client of the daemon at `base` (`http://127.0.0.1:4280`).
    pub fn new(base: &str) -> Result<Self, ClientError> {
        Self::build(base, TIMEOUT, None)
    }

    /// A client that presents `token` (`Authorization: Bearer`) with every request.
    pub fn with_token(
        base: &str,
        token: Option<crate::secret::Secret>,
    ) -> Result<Self, ClientError> {
        Self::build(base, TIMEOUT, token)
    }

    /// A client whose requests give up after `timeout`.
    pub fn with_timeout(base: &str, timeout: Duration) -> Result<Self, ClientError> {
        Self::build(base, timeout, None)
    }

    fn build(
        base: &str,
        timeout: Duration,
        token: Option<crate::secret::Secret>,
    ) -> Result<Self, ClientError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(value) = token.as_ref().and_then(bearer) {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let unreachable = |detail: String| ClientError::Unreachable {
            url: base.to_string(),
            proxy: None,
            detail,
        };
        let http = builder_for(base)
            .map_err(unreachable)?
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .pool_idle_timeout(POOL_IDLE)
            .build()
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            timeout,
            token,
        })
    }

    /// The token this client presents, for other connections to the same daemon (SSE).
    pub fn token(&self) -> Option<&crate::secret::Secret> {
        self.token.as_ref()
    }

    /// The daemon's address.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(Method::GET, "/health", None::<&()>).await
    }

    /// `GET /status` (LSH): what the daemon holds, at a glance.
    pub async fn daemon_status(&self) -> Result<super::jobs::DaemonStatus, ClientError> {
        self.call(Method::GET, "/status", None::<&()>).await
    }

    /// `POST /v1/apps`.
    pub async fn create_app(&self, name: &str) -> Result<App, ClientError> {
        let body = CreateApp {
            name: name.to_string(),
        };
        self.call(Method::POST, "/v1/apps", Some(&body)).await
    }

    /// `GET /v1/apps`.
    pub async fn apps(&self) -> Result<Vec<App>, ClientError> {
        self.call(Method::GET, "/v1/apps", None::<&()>).await
    }

    /// `DELETE /v1/apps/{name}`.
    /// Answers once the app's machines have stopped.
    pub async fn destroy_app(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{name}");
        (self
            .send(Method::DELETE, &path, None::<&()>, MACHINES_TIMEOUT)
            .await)
            .map(|_| ())
    }

    /// `GET /v1/apps/{name}/status`.
    pub async fn status(&self, app: &str) -> Result<AppStatus, ClientError> {
        self.call(Method::GET, &format!("/v1/apps/{app}/status"), None::<&()>)
            .await
    }

    /// `GET /v1/apps/{app}/machines`.
    pub async fn machines(&self, app: &str) -> Result<Vec<Machine>, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/apps/{app}/machines"),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/apps/{app}/machines/{id}/{action}` (`start`, `stop`, `restart`): answers
    /// once it is done, a stop after up to the app's `kill_timeout`.
    pub async fn machine_action(
        &self,
        app: &str,
        id: &str,
        action: &str,
    ) -> Result<Machine, ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}/{action}");
        let (url, status, bytes) =
            (self.send(Method::POST, &path, None::<&()>, MACHINES_TIMEOUT)).await?;
        decode(url, status, &bytes)
    }

    /// `GET /v1/apps/{app}/logs`: lines after `after` (or the newest `limit` lines).
    pub async fn logs(&self, app: &str, query: &LogsQuery) -> Result<Vec<LogEntry>, ClientError> {
        let path = with_query(
            &format!("/v1/apps/{app}/logs"),
            &[
                ("limit", Some(query.limit.to_string())),
                ("after", query.after.map(|after| after.to_string())),
                ("machine", query.machine.clone()),
                ("process", query.process.clone()),
                ("job", query.job.clone()),
            ],
        );
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/apps/{app}/releases/{version}/config`: the config a release runs.
    pub async fn release_config(
        &self,
        app: &str,
        version: u64,
    ) -> Result<crate::config::AppConfig, ClientError> {
        let path = format!("/v1/apps/{app}/releases/{version}/config");
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// `GET /v1/machines/{id}`: a machine by its id alone; its `app` says whose.
    pub async fn find_machine(&self, id: &str) -> Result<Machine, ClientError> {
        self.call(Method::GET, &format!("/v1/machines/{id}"), None::<&()>)
            .await
    }

    /// `GET /v1/apps/{app}/machines/{id}`.
    pub async fn machine(&self, app: &str, id: &str) -> Result<Machine, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/apps/{app}/machines/{id}"),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/apps/{name}`, or `None` when there is no such app.
    pub async fn app(&self, name: &str) -> Result<Option<App>, ClientError> {
        match self
            .call(Method::GET, &format!("/v1/apps/{name}"), None::<&()>)
            .await
        {
            Ok(app) => Ok(Some(app)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/apps/{app}/deploys`: the new release's version.
    pub async fn deploy(&self, app: &str, request: &DeployRequest) -> Result<u64, ClientError> {
        let url = format!("/v1/apps/{app}/deploys");
        self.post_for_version(&url, request).await
    }

    /// `POST /v1/apps/{app}/rollbacks`: the new release's version.
    pub async fn rollback(&self, app: &str, version: Option<u64>) -> Result<u64, ClientError> {
        let url = format!("/v1/apps/{app}/rollbacks");
        let body = super::types::RollbackRequest { version };
        self.post_for_version(&url, &body).await
    }

    /// `POST /v1/apps/{app}/cancels`: cancels the release rolling out (`version`, when
    /// given); returns its version. It ends failed soon after (its `deploy.failed` event).
    pub async fn cancel_release(
        &self,
        app: &str,
        version: Option<u64>,
    ) -> Result<u64, ClientError> {
        let url = format!("/v1/apps/{app}/cancels");
        let body = super::types::CancelRequest { version };
        self.post_for_version(&url, &body).await
    }

    /// `POST /v1/apps/{app}/scale`: sets machine counts, answering once they are in place
    /// (new machines healthy, removed ones stopped), with the groups whose count changed.
    pub async fn scale(
        &self,
        app: &str,
        counts: std::collections::BTreeMap<String, u32>,
    ) -> Result<std::collections::BTreeMap<String, super::types::ScaleChange>, ClientError> {
        let body = super::types::ScaleRequest { counts };
        let path = format!("/v1/apps/{app}/scale");
        let (url, status, bytes) = self
            .send(Method::POST, &path, Some(&body), MACHINES_TIMEOUT)
            .await?;
        decode(url, status, &bytes)
    }

    /// `GET /v1/apps/{app}/jobs`.
    pub async fn jobs(&self, app: &str) -> Result<Vec<super::jobs::Job>, ClientError> {
        self.call(Method::GET, &format!("/v1/apps/{app}/jobs"), None::<&()>)
            .await
    }

    /// `POST /v1/apps/{app}/jobs`.
    pub async fn create_job(
        &self,
        app: &str,
        spec: &super::jobs::JobSpec,
    ) -> Result<super::jobs::Job, ClientError> {
        self.call(Method::POST, &format!("/v1/apps/{app}/jobs"), Some(spec))
            .await
    }

    /// `POST /v1/jobs/{id}/{trigger|start|stop}`.
    pub async fn job_action(&self, id: u64, action: &str) -> Result<super::jobs::Job, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/jobs/{id}/{action}"),
            None::<&()>,
        )
        .await
    }

    /// `DELETE /v1/jobs/{id}`: a job made through the API, with its runs.
    pub async fn delete_job(&self, id: u64) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &format!("/v1/jobs/{id}"))
            .await
    }

    /// `GET /v1/jobs/{id}/runs`, newest first.
    pub async fn job_runs(
        &self,
        id: u64,
        limit: u32,
    ) -> Result<Vec<super::jobs::JobRun>, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/jobs/{id}/runs?limit={limit}"),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/apps/{app}/scale`: each group of the current release.
    pub async fn scale_show(
        &self,
        app: &str,
    ) -> Result<Vec<super::types::GroupScale>, ClientError> {
        self.call(Method::GET, &format!("/v1/apps/{app}/scale"), None::<&()>)
            .await
    }

    /// `POST /v1/apps/{app}/secrets`.
    pub async fn update_secrets(
        &self,
        app: &str,
        request: &super::types::SecretsRequest,
    ) -> Result<super::types::SecretsChanged, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/apps/{app}/secrets"),
            Some(request),
        )
        .await
    }

    /// `GET /v1/apps/{app}/secrets`: names, digests, status.
    pub async fn secrets(&self, app: &str) -> Result<Vec<super::types::SecretInfo>, ClientError> {
        self.call(Method::GET, &format!("/v1/apps/{app}/secrets"), None::<&()>)
            .await
    }

    /// `POST /v1/apps/{app}/secrets/deploy`.
    pub async fn deploy_secrets(
        &self,
        app: &str,
    ) -> Result<super::types::SecretsChanged, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/apps/{app}/secrets/deploy"),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/apps/{app}/certs`: the host names routed to the app.
    pub async fn hostnames(&self, app: &str) -> Result<Vec<Hostname>, ClientError> {
        self.call(Method::GET, &format!("/v1/apps/{app}/certs"), None::<&()>)
            .await
    }

    /// `GET /v1/apps/{app}/certs/{hostname}`.
    pub async fn hostname(&self, app: &str, hostname: &str) -> Result<Hostname, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/apps/{app}/certs/{}", name_segment(hostname)),
            None::<&()>,
        )
        .await
    }

    /// `POST /v1/apps/{app}/certs`: routes `hostname` to the app.
    pub async fn add_hostname(&self, app: &str, hostname: &str) -> Result<Hostname, ClientError> {
        let body = AddHostname {
            hostname: hostname.to_string(),
        };
        self.call(Method::POST, &format!("/v1/apps/{app}/certs"), Some(&body))
            .await
    }

    /// `DELETE /v1/apps/{app}/certs/{hostname}`.
    pub async fn remove_hostname(&self, app: &str, hostname: &str) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{app}/certs/{}", name_segment(hostname));
        self.call_empty(Method::DELETE, &path).await
    }

    /// `GET /v1/apps/{app}/releases`, newest first.
    pub async fn releases(&self, app: &str, limit: usize) -> Result<Vec<Release>, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/apps/{app}/releases?limit={limit}"),
            None::<&()>,
        )
        .await
    }

    /// `DELETE /v1/apps/{app}/machines/{id}`: answers once it has stopped.
    pub async fn destroy_machine(&self, app: &str, id: &str) -> Result<(), ClientError> {
        let path = format!("/v1/apps/{app}/machines/{id}");
        (self
            .send(Method::DELETE, &path, None::<&()>, MACHINES_TIMEOUT)
            .await)
            .map(|_| ())
    }

    pub(super) async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (url, status, bytes) = self.send(method, path, body, self.timeout).await?;
        decode(url, status, &bytes)
    }

    /// POSTs a request answered with a release's version (one it started, or cancels).
    async fn post_for_version<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<u64, ClientError> {
        let answer: serde_json::Value = self.call(Method::POST, path, Some(body)).await?;
        answer["version"]
            .as_u64()
            .ok_or_else(|| ClientError::BadResponse {
                url: format!("{}{path}", self.base),
                status: 202,
                detail: "no version in the answer".into(),
            })
    }

    async fn call_empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        (self.send(method, path, None::<&()>, self.timeout).await).map(|_| ())
    }

    /// Sends a request that may take up to `timeout`; a non-2xx answer becomes an error.
    pub(super) async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<(String, StatusCode, bytes::Bytes), ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.exchange(url, request, timeout).await
    }

    /// Sends a prepared request that may take up to `timeout`; a non-2xx answer becomes an
    /// error.
    pub(super) async fn exchange(
        &self,
        url: String,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<(String, StatusCode, bytes::Bytes), ClientError> {
        let response = (request.timeout(timeout).send())
            .await
            .map_err(|e| self.transport_error(&url, e, timeout))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&url, e, timeout))?;
        if status.is_success() {
            return Ok((url, status, bytes));
        }
        Err(refusal(url, status, &bytes))
    }

    /// What a failed request is, `timeout` being the limit it was sent with.
    pub(super) fn transport_error(
        &self,
        url: &str,
        e: reqwest::Error,
        timeout: Duration,
    ) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout {
                url: url.to_string(),
                timeout,
            }
        } else if e.is_connect() {
            ClientError::Unreachable {
                url: self.base.clone(),
                proxy: crate::proxy_env::proxy_for(&self.base),
                detail: root_cause(&e),
            }
        } else {
            ClientError::BadResponse {
                url: url.to_string(),
                status: e.status().map_or(0, |s| s.as_u16()),
                detail: root_cause(&e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_speak_tls;

    #[test]
    fn only_plain_http_to_loopback_skips_the_ca_store() {
        assert!(!may_speak_tls("http://127.0.0.1:4280"));
        assert!(!may_speak_tls("http://localhost:4280"));
        assert!(may_speak_tls("https://127.0.0.1:4280"));
        // A proxy in front of a remote daemon may redirect to https://.
        assert!(may_speak_tls("http://deploy.example.com:4280"));
        assert!(may_speak_tls("https://deploy.example.com"));
    }
}
