//! Where an app can be reached, as URLs for people: its host-routed HTTP (and HTTPS) under
//! `<app>.<domain>` and its own host names, then each `[[services.ports]]` port by scheme.
//! Read from the routes the edge actually serves, so a port that could not be bound or a
//! release without an `http_service` is not advertised.

use std::net::SocketAddr;

use super::routes::{AppRoutes, PortRoute};

/// Where the edge listens, and the names that reach one app.
pub struct Listening<'a> {
    /// Host-routed HTTP.
    pub http: SocketAddr,
    /// Host-routed HTTPS, when served.
    pub https: Option<SocketAddr>,
    /// `<app>.<domain>` first, then the app's own exact host names, and `host/path` for
    /// paths under a host routed to it.
    pub names: &'a [String],
}

/// The URLs of an app served with `routes`: none when it serves nothing.
pub fn urls(routes: &AppRoutes, at: &Listening<'_>) -> Vec<String> {
    let mut urls = Vec::new();
    if routes.http.is_some() {
        for name in at.names {
            urls.push(url("http", name, at.http.port()));
            if let Some(https) = at.https {
                urls.push(url("https", name, https.port()));
            }
        }
    }
    // Ports are the app's alone, reached through any name of the host: the app's own
    // name says which app it is.
    let Some(name) = at.names.first() else {
        return urls;
    };
    for (&port, route) in &routes.ports {
        let scheme = match route {
            PortRoute::Http(_) => "http",
            PortRoute::Https(_) => "https",
            PortRoute::Tcp(..) => "tcp",
            PortRoute::TlsTcp(_) => "tls",
        };
        urls.push(url(scheme, name, port));
    }
    for &port in routes.udp.keys() {
        urls.push(url("udp", name, port));
    }
    urls
}

/// `scheme://host:port/` (`/path/` for a `host/path` name), without a port that is the
/// scheme's default and without the path for schemes that have none.
fn url(scheme: &str, name: &str, port: u16) -> String {
    let (host, path) = crate::config::names::split_route(name);
    let path = path.unwrap_or_default();
    match (scheme, port) {
        ("http", 80) | ("https", 443) => format!("{scheme}://{host}{path}/"),
        ("http" | "https", port) => format!("{scheme}://{host}:{port}{path}/"),
        (scheme, port) => format!("{scheme}://{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::routes::{from_config, tests::config};
    use super::*;

    fn routes_of(toml: &str) -> AppRoutes {
        from_config("shop", &config(toml), Path::new("/nonexistent"))
    }

    #[test]
    fn an_http_service_is_listed_under_every_name_then_ports_by_scheme() {
        let routes = routes_of(
            r#"
            app = "shop"
            [http_service]
              internal_port = 8080
            [[services]]
              internal_port = 5432
              [[services.ports]]
                port = 8001
                handlers = ["http"]
              [[services.ports]]
                port = 5433
            "#,
        );
        let names = [
            "shop.localhost".to_string(),
            "shop.example.com".to_string(),
            "example.com/shop".to_string(),
        ];
        let at = Listening {
            http: "127.0.0.1:4281".parse().expect("addr"),
            https: Some("127.0.0.1:443".parse().expect("addr")),
            names: &names,
        };
        assert_eq!(
            urls(&routes, &at),
            [
                "http://shop.localhost:4281/",
                "https://shop.localhost/",
                "http://shop.example.com:4281/",
                "https://shop.example.com/",
                "http://example.com:4281/shop/",
                "https://example.com/shop/",
                "tcp://shop.localhost:5433",
                "http://shop.localhost:8001/",
            ]
        );
    }

    #[test]
    fn an_app_without_services_has_no_url() {
        let routes = routes_of("app = \"shop\"\n[processes]\nworker = \"python3 w.py\"\n");
        let names = ["shop.localhost".to_string()];
        let at = Listening {
            http: "0.0.0.0:80".parse().expect("addr"),
            https: None,
            names: &names,
        };
        assert!(urls(&routes, &at).is_empty());
    }
}
