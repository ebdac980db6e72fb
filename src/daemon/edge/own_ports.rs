//! `[[services.ports]]` on a port the edge itself listens on: the standard fly.toml's
//! `port = 80` (`handlers = ["http"]`) with lakeflyd's edge on :80, or `port = 443`
//! (`["tls", "http"]`) with `--edge-https` on :443. Binding it again could only fail, and
//! every app asking for it would take it from the others; the edge already serves every
//! app there by Host, as nginx serves its virtual hosts on one port. So such a port is
//! left to the edge, and the app reached there by its names.

use super::public_ports::PublicPort;
use super::routes::{AppRoutes, PortRoute};
use super::EdgeError;

/// The ports the edge's own listeners hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct OwnPorts {
    /// The host-routed HTTP listener's.
    pub http: u16,
    /// The host-routed HTTPS listener's, when there is one.
    pub https: Option<u16>,
}

impl OwnPorts {
    /// Takes out of `routes` each HTTP (or HTTPS) port that is the edge's own HTTP (or
    /// HTTPS) port, saying so in its warnings; a port of another kind there is refused,
    /// with the port, to be handled as one that cannot be bound.
    pub(super) fn take(
        self,
        app: &str,
        domain: &str,
        routes: &mut AppRoutes,
    ) -> Vec<(PublicPort, EdgeError)> {
        let mut refused = Vec::new();
        let own: Vec<u16> = routes
            .ports
            .keys()
            .copied()
            .filter(|&n| n == self.http || Some(n) == self.https)
            .collect();
        for number in own {
            let (listener, route) = match routes.ports.get(&number) {
                Some(PortRoute::Http(route)) if number == self.http => ("HTTP", route.clone()),
                Some(PortRoute::Https(route)) if Some(number) == self.https => {
                    ("HTTPS", route.clone())
                }
                _ => {
                    let error = EdgeError::EdgesOwnPort {
                        port: number,
                        app: app.to_string(),
                        listener: if number == self.http { "HTTP" } else { "HTTPS" },
                    };
                    refused.push((PublicPort { number, udp: false }, error));
                    continue;
                }
            };
            routes.ports.remove(&number);
            // The names lead where <app>.<domain> does: the first HTTP service, or
            // [http_service]. Another service on this port is not what they reach.
            let reached = routes.http.as_ref().is_some_and(|http| {
                http.groups == route.groups && http.internal_port == route.internal_port
            });
            routes.warnings.push(if reached {
                format!(
                    "port {number} is the edge's own {listener} port: the app is served there \
                     by Host ({app}.{domain} and the names `lakefly certs add` gives it), \
                     beside the other apps"
                )
            } else {
                format!(
                    "port {number} is the edge's own {listener} port, where {app}.{domain} \
                     reaches the app's first HTTP service, not this one (internal port {}); \
                     give this service a port of its own to serve it",
                    route
                        .internal_port
                        .map_or("none".to_string(), |p| p.to_string())
                )
            });
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::daemon::edge::routes::from_config;
    use crate::daemon::edge::routes::tests::config;

    fn routes(toml: &str) -> AppRoutes {
        from_config("web", &config(toml), Path::new("/nonexistent"))
    }

    /// The services block `fly launch` wrote before `[http_service]`.
    const STANDARD: &str = r#"
app = "web"
[[services]]
  protocol = "tcp"
  internal_port = 8080
  [[services.ports]]
    port = 80
    handlers = ["http"]
    force_https = true
  [[services.ports]]
    port = 443
    handlers = ["tls", "http"]
  [[services.ports]]
    port = 8001
    handlers = ["http"]
"#;

    #[test]
    fn the_edges_own_ports_are_left_to_it_and_others_kept() {
        let mut r = routes(STANDARD);
        let own = OwnPorts {
            http: 80,
            https: Some(443),
        };
        assert!(own.take("web", "localhost", &mut r).is_empty());
        assert_eq!(r.ports.keys().copied().collect::<Vec<_>>(), [8001]);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(r.warnings[0].starts_with("port 80 is the edge's own HTTP port: the app is served there by Host (web.localhost"), "{:?}", r.warnings);
        // The host route keeps the port's settings, force_https included.
        assert!(r.http.as_ref().is_some_and(|h| h.force_https));
    }

    #[test]
    fn without_an_https_edge_443_stays_a_port_of_the_app() {
        let mut r = routes(STANDARD);
        let own = OwnPorts {
            http: 4281,
            https: None,
        };
        assert!(own.take("web", "localhost", &mut r).is_empty());
        assert_eq!(r.ports.len(), 3);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn raw_tcp_on_the_edges_port_is_refused_naming_it() {
        let mut r = routes(
            "app = \"web\"\n[[services]]\n  internal_port = 5432\n  [[services.ports]]\n    port = 80\n",
        );
        let refused = OwnPorts {
            http: 80,
            https: None,
        }
        .take("web", "localhost", &mut r);
        assert_eq!(refused.len(), 1);
        assert_eq!(
            refused[0].1.to_string(),
            "port 80 of app web ([[services.ports]]) is the edge's own HTTP port, which serves apps \
             by Host; only handlers = [\"http\"] can share it: pick another port for this service"
        );
    }

    #[test]
    fn a_second_http_service_on_the_edges_port_is_said_not_to_be_reached() {
        let mut r = routes(
            "app = \"web\"\n[http_service]\n  internal_port = 8080\n[[services]]\n  internal_port = 9000\n  [[services.ports]]\n    port = 80\n    handlers = [\"http\"]\n",
        );
        let own = OwnPorts {
            http: 80,
            https: None,
        };
        assert!(own.take("web", "localhost", &mut r).is_empty());
        assert!(r.ports.is_empty());
        assert!(
            r.warnings[0].contains("not this one (internal port 9000)"),
            "{:?}",
            r.warnings
        );
    }
}
