//! Which app a request is for, by its host name and path: a path added under the host
//! name (`lakefly certs add www.example.com/discovery`), the longest first; else
//! `<app>.<domain>`; else a host name added to an app (`lakefly certs add`). The exact
//! name is looked at before a `*.` wildcard one label up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::config::names::{path_is_under, split_route};

/// The host names the edge routes.
#[derive(Debug)]
pub struct Hosts {
    /// Apps are `<app>.<domain>`.
    domain: String,
    /// Added names and their apps.
    added: RwLock<Added>,
    /// Whether any path is added: without one, `<app>.<domain>` is answered without the
    /// lock, which every edge thread would otherwise take for every request.
    any_path: AtomicBool,
}

/// The names added to apps, as the edge looks them up.
#[derive(Debug, Default)]
struct Added {
    /// Whole host names (lowercase) and their apps.
    hosts: HashMap<String, String>,
    /// Per host name, the paths under it routed to apps, the longest first.
    paths: HashMap<String, Vec<(String, String)>>,
}

impl Added {
    /// The app a path under `host` is routed to, by the longest path that holds it.
    fn by_path(&self, host: &str, path: &str) -> Option<&String> {
        self.paths
            .get(host)?
            .iter()
            .find(|(prefix, _)| path_is_under(path, prefix))
            .map(|(_, app)| app)
    }
}

impl Hosts {
    /// Routes `<app>.<domain>` only, until names are added.
    pub fn new(domain: &str) -> Self {
        Hosts {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            added: RwLock::default(),
            any_path: AtomicBool::new(false),
        }
    }

    /// The domain apps are served under.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The app a request is for: its `Host` header (or URI authority, or a TLS client's
    /// name; port and case ignored) and its path (`None` when there is no request yet).
    pub fn app_for(&self, host: &str, path: Option<&str>) -> Option<String> {
        let host = bare(host);
        if !self.any_path.load(Ordering::Acquire) {
            if let Some(app) = app_under(&host, &self.domain) {
                return Some(app.to_string());
            }
        }
        let added = self.added.read().unwrap_or_else(|p| p.into_inner());
        let by_path = |name: &str| path.and_then(|path| added.by_path(name, path));
        if let Some(app) = by_path(&host) {
            return Some(app.clone());
        }
        if let Some(app) = app_under(&host, &self.domain) {
            return Some(app.to_string());
        }
        if let Some(app) = added.hosts.get(&host) {
            return Some(app.clone());
        }
        let (_, parent) = host.split_once('.')?;
        let wildcard = format!("*.{parent}");
        by_path(&wildcard)
            .or_else(|| added.hosts.get(&wildcard))
            .cloned()
    }

    /// Whether `hostname` is the domain or under it: such names are apps' own names (a
    /// path under one may still be routed to another app).
    pub fn is_reserved(&self, hostname: &str) -> bool {
        hostname == self.domain || hostname.ends_with(&format!(".{}", self.domain))
    }

    /// The names added to `app` that name one host (not `*.` wildcards), with the path
    /// after the host for paths routed to it, sorted.
    pub fn exact_names_of(&self, app: &str) -> Vec<String> {
        let added = self.added.read().unwrap_or_else(|p| p.into_inner());
        let hosts = added.hosts.iter().map(|(name, of)| (name.clone(), of));
        let paths = added.paths.iter().flat_map(|(host, paths)| {
            paths
                .iter()
                .map(move |(path, of)| (format!("{host}{path}"), of))
        });
        let mut names: Vec<String> = hosts
            .chain(paths)
            .filter(|(name, of)| *of == app && !name.starts_with("*."))
            .map(|(name, _)| name)
            .collect();
        names.sort();
        names
    }

    /// Routes exactly these added names (`host` or `host/path`) from now on.
    pub fn replace(&self, names: impl IntoIterator<Item = (String, String)>) {
        let mut added = Added::default();
        for (name, app) in names {
            match split_route(&name) {
                (host, Some(path)) => added
                    .paths
                    .entry(host.to_string())
                    .or_default()
                    .push((path.to_string(), app)),
                (_, None) => {
                    added.hosts.insert(name, app);
                }
            }
        }
        for paths in added.paths.values_mut() {
            paths.sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        }
        let any_path = !added.paths.is_empty();
        *self.added.write().unwrap_or_else(|p| p.into_inner()) = added;
        self.any_path.store(any_path, Ordering::Release);
    }
}

/// A host name without its port or trailing dot, lowercase.
fn bare(host: &str) -> String {
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// `<app>` of `<app>.<domain>`.
fn app_under<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let app = host.strip_suffix(domain)?.strip_suffix('.')?;
    (!app.is_empty() && !app.contains('.')).then_some(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_comes_from_the_host_name_under_the_domain() {
        let hosts = Hosts::new("localhost");
        let app = |host: &str| hosts.app_for(host, Some("/"));
        assert_eq!(app("hello.localhost").as_deref(), Some("hello"));
        assert_eq!(app("Hello.LOCALHOST:4281").as_deref(), Some("hello"));
        assert_eq!(app("hello.localhost.").as_deref(), Some("hello"));
        assert_eq!(app("localhost"), None);
        assert_eq!(app("a.b.localhost"), None);
        assert_eq!(app("hello.example.com"), None);
        assert_eq!(app("hellolocalhost"), None);
    }

    #[test]
    fn added_names_route_exactly_then_by_wildcard() {
        let hosts = Hosts::new("apps.internal");
        hosts.replace([
            ("www.shop.test".to_string(), "shop".to_string()),
            ("*.shop.test".to_string(), "tenants".to_string()),
            ("api.example.com".to_string(), "api".to_string()),
        ]);
        let app = |host: &str| hosts.app_for(host, None);
        assert_eq!(app("WWW.shop.test:8080").as_deref(), Some("shop"));
        assert_eq!(app("acme.shop.test").as_deref(), Some("tenants"));
        // A wildcard covers one label, as in a certificate.
        assert_eq!(app("a.b.shop.test"), None);
        assert_eq!(app("shop.test"), None);
        assert_eq!(app("api.example.com.").as_deref(), Some("api"));
        assert_eq!(app("web.apps.internal").as_deref(), Some("web"));
        hosts.replace([]);
        assert_eq!(app("www.shop.test"), None);
    }

    #[test]
    fn paths_under_a_host_route_before_the_host_the_longest_first() {
        let hosts = Hosts::new("localhost");
        hosts.replace([
            ("www.shop.test".to_string(), "shop".to_string()),
            (
                "www.shop.test/discovery".to_string(),
                "discovery".to_string(),
            ),
            (
                "www.shop.test/discovery/admin".to_string(),
                "admin".to_string(),
            ),
            (
                "hello.localhost/discovery".to_string(),
                "discovery".to_string(),
            ),
            ("*.tenants.test/api".to_string(), "api".to_string()),
            ("*.tenants.test".to_string(), "tenants".to_string()),
        ]);
        let app = |host: &str, path: &str| hosts.app_for(host, Some(path));
        assert_eq!(app("www.shop.test", "/").as_deref(), Some("shop"));
        assert_eq!(
            app("www.shop.test", "/discovery").as_deref(),
            Some("discovery")
        );
        assert_eq!(
            app("WWW.shop.test:80", "/discovery/peers").as_deref(),
            Some("discovery")
        );
        assert_eq!(
            app("www.shop.test", "/discovery/admin/x").as_deref(),
            Some("admin")
        );
        assert_eq!(app("www.shop.test", "/discoveryx").as_deref(), Some("shop"));
        // A path under an app's own name goes elsewhere; the rest stays the app's.
        assert_eq!(
            app("hello.localhost", "/discovery/x").as_deref(),
            Some("discovery")
        );
        assert_eq!(app("hello.localhost", "/other").as_deref(), Some("hello"));
        assert_eq!(app("a.tenants.test", "/api/v1").as_deref(), Some("api"));
        assert_eq!(app("a.tenants.test", "/").as_deref(), Some("tenants"));
        // Without a request (a TLS client's name), the host's own app.
        assert_eq!(
            hosts.app_for("www.shop.test", None).as_deref(),
            Some("shop")
        );
        assert_eq!(
            hosts.exact_names_of("discovery"),
            ["hello.localhost/discovery", "www.shop.test/discovery"]
        );
        // Only paths under a host: the rest of it is no app's.
        hosts.replace([("api.test/v2".to_string(), "v2".to_string())]);
        assert_eq!(app("api.test", "/v2/x").as_deref(), Some("v2"));
        assert_eq!(app("api.test", "/v1/x"), None);
    }

    #[test]
    fn names_under_the_domain_are_reserved_for_apps() {
        let hosts = Hosts::new("Example.com.");
        assert!(hosts.is_reserved("example.com"));
        assert!(hosts.is_reserved("web.example.com"));
        assert!(hosts.is_reserved("*.example.com"));
        assert!(!hosts.is_reserved("notexample.com"));
        assert!(!hosts.is_reserved("www.example.org"));
    }
}
