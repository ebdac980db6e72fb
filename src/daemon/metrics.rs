//! `GET /metrics`: the daemon's figures in Prometheus text format. Counters live here and
//! are bumped where things happen; gauges of machine states and of how jobs' runs went
//! are read from the store at scrape time, so they are never stale and outlive a restart.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the machines gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MachineLabels {
    /// `started`, `stopped`...
    pub state: String,
    /// `unknown`, `passing`, `critical`.
    pub health: String,
}

/// Labels of the deploys counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeployLabels {
    /// `complete` or `failed`.
    pub outcome: String,
}

/// Labels of the edge's request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EdgeRequestLabels {
    /// The app the request was for (empty when none matched).
    pub app: String,
    /// The HTTP status answered.
    pub status: u16,
}

/// Labels of a job's gauges. The name is `job_name`: Prometheus gives every series the
/// scrape's own `job` label, and would rename one of ours to `exported_job`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    /// The job's app.
    pub app: String,
    /// The job's name.
    pub job_name: String,
}

/// Labels of a served certificate's expiry.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    /// Its certificate file.
    pub file: String,
}

/// Labels of the edge's latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    /// The app.
    pub app: String,
}

/// The edge's latency histogram, one per app.
pub type LatencyFamily = Family<AppLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to about 13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

/// The figures `/metrics` reads at scrape time rather than counts as things happen.
#[derive(Debug, Default)]
pub struct Scraped {
    /// Machines by state and health: `(state, health, count)`.
    pub machines: Vec<(String, String, i64)>,
    /// How each job's runs have gone.
    pub jobs: Vec<crate::daemon::store::jobs::RunsSoFar>,
    /// Each edge certificate file and when it expires, Unix seconds.
    pub edge_certificates: Vec<(String, i64)>,
    /// Each API certificate file and when it expires, Unix seconds.
    pub api_certificates: Vec<(String, i64)>,
    /// Connections following the event stream.
    pub subscribers: i64,
}

/// Every figure the daemon exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Held from setting the scrape-time gauges to rendering them, so that two scrapes at
    /// once cannot render a family another has just cleared.
    scraping: Arc<std::sync::Mutex<()>>,
    /// Events recorded since the daemon started.
    pub events: Counter,
    /// Machine restarts after an exit, since the daemon started.
    pub restarts: Counter,
    /// Machines by state and health (set at scrape time).
    pub machines: Family<MachineLabels, Gauge>,
    /// Connections following the event stream (set at scrape time).
    pub subscribers: Gauge,
    /// Releases finished, by outcome.
    pub deploys: Family<DeployLabels, Counter>,
    /// Edge requests answered, by app and status.
    pub edge_requests: Family<EdgeRequestLabels, Counter>,
    /// Time from a request's arrival at the edge to its response head, by app.
    pub edge_latency: LatencyFamily,
    /// Client connections open on the edge.
    pub edge_connections: Gauge,
    /// When each edge certificate expires, Unix seconds (set at scrape time).
    pub edge_certificate_expiry: Family<CertificateLabels, Gauge>,
    /// When each API certificate expires, Unix seconds (set at scrape time).
    pub api_certificate_expiry: Family<CertificateLabels, Gauge>,
    /// When each job's last successful run ended, Unix seconds (set at scrape time).
    pub job_last_success: Family<JobLabels, Gauge>,
    /// Whether each job's last run failed or timed out (set at scrape time).
    pub job_last_run_failed: Family<JobLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("lakefly");
        let events = Counter::default();
        let restarts = Counter::default();
        let machines = Family::<MachineLabels, Gauge>::default();
        let subscribers = Gauge::default();
        let deploys = Family::<DeployLabels, Counter>::default();
        registry.register("deploys", "Releases finished, by outcome", deploys.clone());
        let edge_requests = Family::<EdgeRequestLabels, Counter>::default();
        let edge_latency = LatencyFamily::new_with_constructor(latency_histogram);
        let edge_connections = Gauge::default();
        let edge_certificate_expiry = Family::<CertificateLabels, Gauge>::default();
        registry.register(
            "edge_certificate_expiry_timestamp_seconds",
            "When each edge certificate expires (lakeflyd does not renew them)",
            edge_certificate_expiry.clone(),
        );
        let api_certificate_expiry = Family::<CertificateLabels, Gauge>::default();
        registry.register(
            "api_certificate_expiry_timestamp_seconds",
            "When each certificate of the API (--api-tls-cert) expires (lakeflyd does not renew them)",
            api_certificate_expiry.clone(),
        );
        registry.register(
            "edge_requests",
            "Requests answered by the edge, by app and status",
            edge_requests.clone(),
        );
        registry.register(
            "edge_request_duration_seconds",
            "Time from a request's arrival at the edge to its response head",
            edge_latency.clone(),
        );
        registry.register(
            "edge_connections",
            "Client connections open on the edge",
            edge_connections.clone(),
        );
        let job_last_success = Family::<JobLabels, Gauge>::default();
        registry.register(
            "job_last_success_timestamp_seconds",
            "When each job's last successful run ended (alert on time() minus this)",
            job_last_success.clone(),
        );
        let job_last_run_failed = Family::<JobLabels, Gauge>::default();
        registry.register(
            "job_last_run_failed",
            "1 when a job's last run failed or timed out, else 0",
            job_last_run_failed.clone(),
        );
        registry.register("events", "Events recorded", events.clone());
        registry.register(
            "machine_restarts",
            "Machine restarts after an exit",
            restarts.clone(),
        );
        registry.register("machines", "Machines by state and health", machines.clone());
        registry.register(
            "event_subscribers",
            "Connections following the event stream",
            subscribers.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            scraping: Arc::default(),
            events,
            restarts,
            machines,
            subscribers,
            deploys,
            edge_requests,
            edge_latency,
            edge_connections,
            edge_certificate_expiry,
            api_certificate_expiry,
            job_last_success,
            job_last_run_failed,
        }
    }
}

/// The `/metrics` series of one app's requests answered with one status: looked up once
/// and kept by an edge connection, so that its next request like it is counted without
/// allocating the labels and hashing them twice.
#[derive(Clone)]
pub struct EdgeSeries {
    status: u16,
    requests: Counter,
    /// None for a request no app matched: those get no latency.
    latency: Option<Histogram>,
}

impl EdgeSeries {
    /// The status these series count.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Counts one request, answered `elapsed` after it arrived.
    pub fn record(&self, elapsed: Duration) {
        self.requests.inc();
        if let Some(latency) = &self.latency {
            latency.observe(elapsed.as_secs_f64());
        }
    }
}

impl Metrics {
    /// The edge series of requests for `app` (empty: none matched) answered `status`.
    pub fn edge_series(&self, app: &str, status: u16) -> EdgeSeries {
        let requests = self
            .edge_requests
            .get_or_create(&EdgeRequestLabels {
                app: app.to_string(),
                status,
            })
            .clone();
        let latency = (!app.is_empty()).then(|| {
            self.edge_latency
                .get_or_create(&AppLabel {
                    app: app.to_string(),
                })
                .clone()
        });
        EdgeSeries {
            status,
            requests,
            latency,
        }
    }

    /// Drops the series of a destroyed app, which would otherwise be exported for as long
    /// as the daemon runs (and come back with their old counts for an app of the same
    /// name).
    pub fn forget_app(&self, app: &str) {
        let app = app.to_string();
        self.edge_latency.remove(&AppLabel { app: app.clone() });
        // A family cannot list its label sets, so every status the edge can count (three
        // digits, as HTTP has) is asked for: a thousand lookups, once per app destroyed.
        let mut labels = EdgeRequestLabels { app, status: 0 };
        for status in 0..1000 {
            labels.status = status;
            self.edge_requests.remove(&labels);
        }
    }

    /// Sets the job gauges from how each job's runs have gone: a job with no successful run
    /// kept has no success time, one that has not run yet no failure flag.
    fn set_jobs(&self, jobs: &[crate::daemon::store::jobs::RunsSoFar]) {
        self.job_last_success.clear();
        self.job_last_run_failed.clear();
        for job in jobs {
            let labels = JobLabels {
                app: job.app.clone(),
                job_name: job.name.clone(),
            };
            let ended = job
                .last_success
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if let Some(ended) = ended {
                self.job_last_success
                    .get_or_create(&labels)
                    .set(ended.timestamp());
            }
            if let Some(outcome) = &job.last_outcome {
                let failed = matches!(outcome.as_str(), "failed" | "timed_out");
                self.job_last_run_failed
                    .get_or_create(&labels)
                    .set(i64::from(failed));
            }
        }
    }

    /// Sets the scrape-time gauges from `now` and renders every metric, as one step.
    pub fn scrape(&self, now: Scraped) -> String {
        // A scrape that panicked mid-way left nothing that the next one does not reset.
        let _scraping = self
            .scraping
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.set_jobs(&now.jobs);
        for (family, expiries) in [
            (&self.edge_certificate_expiry, now.edge_certificates),
            (&self.api_certificate_expiry, now.api_certificates),
        ] {
            family.clear();
            for (file, expires) in expiries {
                family
                    .get_or_create(&CertificateLabels { file })
                    .set(expires);
            }
        }
        self.machines.clear();
        for (state, health, n) in now.machines {
            self.machines
                .get_or_create(&MachineLabels { state, health })
                .set(n);
        }
        self.subscribers.set(now.subscribers);
        self.render()
    }

    /// The text exposition of every metric.
    fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("could not encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts the text exposition holds `line`.
    fn assert_renders(text: &str, line: &str) {
        assert!(text.contains(line), "{line} is not in:\n{text}");
    }

    #[test]
    fn job_gauges_say_when_each_last_succeeded_and_whether_its_last_run_failed() {
        use crate::daemon::store::jobs::RunsSoFar;
        let job = |name: &str, success: Option<&str>, outcome: Option<&str>| RunsSoFar {
            app: "shop".into(),
            name: name.into(),
            last_success: success.map(str::to_string),
            last_outcome: outcome.map(str::to_string),
        };
        let metrics = Metrics::default();
        metrics.scrape(Scraped {
            jobs: vec![job(
                "gone",
                Some("2026-12-06T10:00:00.000Z"),
                Some("succeeded"),
            )],
            ..Scraped::default()
        });
        let text = metrics.scrape(Scraped {
            jobs: vec![
                job(
                    "backup",
                    Some("2026-12-06T03:00:00.500Z"),
                    Some("timed_out"),
                ),
                job("report", None, Some("succeeded")),
                job("new", None, None),
            ],
            ..Scraped::default()
        });
        assert_renders(
            &text,
            r#"lakefly_job_last_success_timestamp_seconds{app="shop",job_name="backup"} 1796526000"#,
        );
        assert_renders(
            &text,
            r#"lakefly_job_last_run_failed{app="shop",job_name="backup"} 1"#,
        );
        assert_renders(
            &text,
            r#"lakefly_job_last_run_failed{app="shop",job_name="report"} 0"#,
        );
        assert!(!text.contains(r#"job_name="new""#), "not run yet: {text}");
        assert!(
            !text.contains(r#"job_name="gone""#),
            "a deleted job's go: {text}"
        );
    }

    #[test]
    fn scrapes_at_once_each_render_every_gauge_they_set() {
        let metrics = Metrics::default();
        let line = r#"lakefly_machines{state="started",health="passing"} 2"#;
        let scrapers: Vec<_> = (0..4)
            .map(|_| {
                let metrics = metrics.clone();
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let text = metrics.scrape(Scraped {
                            machines: vec![("started".into(), "passing".into(), 2)],
                            edge_certificates: vec![("edge.pem".into(), 1_800_000_000)],
                            ..Scraped::default()
                        });
                        assert_renders(&text, line);
                        assert_renders(
                            &text,
                            r#"lakefly_edge_certificate_expiry_timestamp_seconds{file="edge.pem"} 1800000000"#,
                        );
                    }
                })
            })
            .collect();
        for scraper in scrapers {
            scraper
                .join()
                .expect("a scraper saw a gauge another had cleared");
        }
    }

    #[test]
    fn a_forgotten_app_leaves_no_series_and_others_keep_theirs() {
        let metrics = Metrics::default();
        for (app, status) in [("gone", 200), ("gone", 999), ("gone", 0), ("kept", 200)] {
            let labels = EdgeRequestLabels {
                app: app.to_string(),
                status,
            };
            metrics.edge_requests.get_or_create(&labels).inc();
            let app = AppLabel {
                app: app.to_string(),
            };
            metrics.edge_latency.get_or_create(&app).observe(0.001);
        }
        metrics.forget_app("gone");
        let text = metrics.render();
        assert!(!text.contains(r#"app="gone""#), "{text}");
        assert_renders(
            &text,
            r#"lakefly_edge_requests_total{app="kept",status="200"} 1"#,
        );
        assert_renders(
            &text,
            r#"lakefly_edge_request_duration_seconds_count{app="kept"} 1"#,
        );
    }

    #[test]
    fn a_kept_series_counts_into_the_exported_one_and_no_app_gets_no_latency() {
        let metrics = Metrics::default();
        let kept = metrics.edge_series("web", 200);
        kept.record(Duration::from_millis(1));
        kept.record(Duration::from_millis(1));
        metrics
            .edge_series("", 404)
            .record(Duration::from_millis(1));
        let text = metrics.render();
        assert_renders(
            &text,
            r#"lakefly_edge_requests_total{app="web",status="200"} 2"#,
        );
        assert_renders(
            &text,
            r#"lakefly_edge_request_duration_seconds_count{app="web"} 2"#,
        );
        assert_renders(
            &text,
            r#"lakefly_edge_requests_total{app="",status="404"} 1"#,
        );
        assert!(!text.contains(r#"seconds_count{app=""}"#), "{text}");
    }
}
