//! Which app a request's host name is for: `<app>.<domain>`, else a host name added to an
//! app (`lakefly certs add`), the exact name first, then a `*.` wildcard one label up.

use std::collections::HashMap;
use std::sync::RwLock;

/// The host names the edge routes.
#[derive(Debug)]
pub struct Hosts {
    /// Apps are `<app>.<domain>`.
    domain: String,
    /// Added names (lowercase) and their apps.
    added: RwLock<HashMap<String, String>>,
}

impl Hosts {
    /// Routes `<app>.<domain>` only, until names are added.
    pub fn new(domain: &str) -> Self {
        Hosts {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            added: RwLock::default(),
        }
    }

    /// The domain apps are served under.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The app a `Host` header (or URI authority) names, port and case ignored.
    pub fn app_for(&self, host: &str) -> Option<String> {
        let host = bare(host);
        if let Some(app) = app_under(&host, &self.domain) {
            return Some(app.to_string());
        }
        let added = self.added.read().unwrap_or_else(|p| p.into_inner());
        if added.is_empty() {
            return None;
        }
        added
            .get(&host)
            .or_else(|| {
                let (_, parent) = host.split_once('.')?;
                added.get(&format!("*.{parent}"))
            })
            .cloned()
    }

    /// Whether `hostname` is the domain or under it: such names are apps' own names.
    pub fn is_reserved(&self, hostname: &str) -> bool {
        hostname == self.domain || hostname.ends_with(&format!(".{}", self.domain))
    }

    /// The names added to `app` that name one host (not `*.` wildcards), sorted.
    pub fn exact_names_of(&self, app: &str) -> Vec<String> {
        let added = self.added.read().unwrap_or_else(|p| p.into_inner());
        let mut names: Vec<String> = added
            .iter()
            .filter(|(name, of)| *of == app && !name.starts_with("*."))
            .map(|(name, _)| name.clone())
            .collect();
        names.sort();
        names
    }

    /// Routes exactly these added names from now on.
    pub fn replace(&self, names: impl IntoIterator<Item = (String, String)>) {
        *self.added.write().unwrap_or_else(|p| p.into_inner()) = names.into_iter().collect();
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
        let app = |host: &str| hosts.app_for(host);
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
        let app = |host: &str| hosts.app_for(host);
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
    fn names_under_the_domain_are_reserved_for_apps() {
        let hosts = Hosts::new("Example.com.");
        assert!(hosts.is_reserved("example.com"));
        assert!(hosts.is_reserved("web.example.com"));
        assert!(hosts.is_reserved("*.example.com"));
        assert!(!hosts.is_reserved("notexample.com"));
        assert!(!hosts.is_reserved("www.example.org"));
    }
}
