//! A small JSON client of the daemon's API for tests: status and body of each call.

use reqwest::Method;
use serde_json::{json, Value};

use super::daemon::TestDaemon;

/// Calls the API of one test daemon.
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(d: &TestDaemon) -> Self {
        Api {
            client: super::http_client(),
            base: d.api.clone(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn create_app(&self, name: &str) {
        let (status, body) = self
            .send(Method::POST, "/v1/apps", Some(json!({ "name": name })))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    pub async fn create_machine(&self, app: &str, spec: Value) -> Value {
        let (status, body) = self
            .send(
                Method::POST,
                &format!("/v1/apps/{app}/machines"),
                Some(spec),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    pub async fn machine(&self, app: &str, id: &str) -> Value {
        let (status, body) = self
            .send(Method::GET, &format!("/v1/apps/{app}/machines/{id}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}
