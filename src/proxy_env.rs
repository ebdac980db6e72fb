//! Whether lakefly's HTTP requests go through the proxy the environment names
//! (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, less `NO_PROXY`): yes to other hosts, so a
//! remote daemon behind a company proxy is reached as curl or flyctl reach it; never to
//! this host's loopback, which Go's net/http (and so flyctl) never proxies either. A proxy
//! cannot reach the loopback of the host that asked, so a request sent through it fails
//! as if the local daemon, or a machine being health-checked, were down.

use std::net::IpAddr;
use std::time::Duration;

/// Whether `url` names this host's loopback: `localhost` or a loopback address
/// (`127.0.0.0/8`, `::1`), as Go's net/http tells it.
pub fn is_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    // The URL parser lowercases names and keeps an IPv6 address in brackets.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare == "localhost",
    }
}

/// The proxy a request for `url` goes through, as `scheme://host:port` without any
/// credentials it was given with, for messages: reqwest's choice from the environment
/// (the variable for the URL's scheme, else `ALL_PROXY`, less `NO_PROXY`), except that
/// this host's loopback never goes through one. `None` also for a URL that is not one.
pub fn proxy_for(url: &str) -> Option<String> {
    if is_loopback(url) {
        return None;
    }
    let uri: http::Uri = url.parse().ok()?;
    let intercept = hyper_util::client::proxy::matcher::Matcher::from_env().intercept(&uri)?;
    // The matcher keeps credentials apart from this URI.
    let proxy = intercept.uri();
    Some(format!(
        "{}://{}{}",
        proxy.scheme_str().unwrap_or("http"),
        proxy.host().unwrap_or_default(),
        proxy.port().map(|p| format!(":{p}")).unwrap_or_default()
    ))
}

/// A client for the daemon's plain-HTTP calls to its own machines on 127.0.0.1 (health
/// checks, job calls): never through a proxy, and without reading the host's CA store,
/// which nothing it calls needs.
pub fn loopback_client(timeout: Duration) -> Result<reqwest::Client, String> {
    crate::tls::install_default_provider();
    let tls = crate::tls::plain_only_client()?;
    reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .tls_backend_preconfigured(tls.as_ref().clone())
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_names_and_addresses_are_told_from_other_hosts() {
        for url in [
            "http://127.0.0.1:4280",
            "http://127.8.9.10/",
            "http://[::1]:4280/v1/apps",
            "http://localhost:4280",
            "http://LOCALHOST",
            "http://127.3.2.1",
            "http://[::1]:4280/",
        ] {
            assert!(is_loopback(url), "{url} is loopback");
        }
        for url in [
            // A name under `localhost` is not taken for this host on its say-so.
            "https://hello.localhost:8443/",
            "http://10.0.0.7:4280",
            "http://10.0.0.5:4280",
            "http://example.com",
            "http://[2001:db8::1]:4280",
            "https://deploy.example.com",
            "http://localhost.example.com",
            "http://notlocalhost",
            "http://[::2]:4280",
            "not a url",
        ] {
            assert!(!is_loopback(url), "{url} is not loopback");
        }
    }
}
