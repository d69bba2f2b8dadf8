//! The admin listener: the dashboard (`/`), `/regions/status`, `/health`, `/metrics`.

mod dashboard;
mod status;

use crate::routing::Scorer;
use crate::runtime::{Runtime, Shared};
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct AdminApp {
    shared: Arc<Shared>,
}

impl AdminApp {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Whether the request may see the admin API: always when no token is configured,
    /// otherwise only with `Authorization: Bearer <token>`.
    fn authorized(&self, rt: &Runtime, req: &pingora::http::RequestHeader) -> bool {
        let Some(token) = &rt.config.listen.admin_token else {
            return true;
        };
        req.headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .is_some_and(|given| token.matches(given))
    }

    fn route(
        &self,
        rt: &Runtime,
        method: &http::Method,
        path: &str,
    ) -> (u16, &'static str, String) {
        const JSON: &str = "application/json";
        if method != http::Method::GET {
            let body = serde_json::json!({"error": {"type": "method_not_allowed", "message": "the admin API is read-only: use GET"}});
            return (405, JSON, body.to_string());
        }
        match path {
            "/" => (200, dashboard::CONTENT_TYPE, dashboard::PAGE.to_string()),
            "/regions/status" => (
                200,
                JSON,
                status::regions(rt, self.shared.last_reload(), &self.shared.names()).to_string(),
            ),
            "/health" => {
                let (code, body) = crate::telemetry::health::report(&rt.regions);
                (code, JSON, body)
            }
            "/metrics" => {
                let scorer = Scorer::new(&rt.regions, rt.ranker.weights(), None);
                rt.metrics
                    .affinity
                    .observe(&rt.affinity, std::time::Instant::now());
                let text = rt.metrics.render(&rt.regions, &scorer);
                (200, "text/plain; version=0.0.4", text)
            }
            _ => {
                let body = serde_json::json!({"error": {"type": "not_found", "message": format!("no admin endpoint {path}; try / (the dashboard), /regions/status, /health or /metrics")}});
                (404, JSON, body.to_string())
            }
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let rt = self.shared.current();
        session.set_keepalive(rt.config.limits.keepalive());
        let req = session.req_header();
        // The dashboard page holds no data (it fetches it with the token), and a browser
        // cannot send a header when it opens a page: it is the one thing served without.
        let page = req.method == http::Method::GET && req.uri.path() == "/";
        let (status, content_type, body) = if page || self.authorized(&rt, req) {
            self.route(&rt, &req.method, req.uri.path())
        } else {
            let body = serde_json::json!({"error": {"type": "unauthorized", "message": "the admin API needs Authorization: Bearer <token> (the token is in the environment variable listen.admin_token_env names)"}});
            (401, "application/json", body.to_string())
        };
        let mut resp = Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("cache-control", "no-store")
            .header("content-length", body.len());
        if content_type == dashboard::CONTENT_TYPE {
            for (name, value) in dashboard::headers() {
                resp = resp.header(name, value);
            }
        }
        if status == 405 {
            resp = resp.header("allow", "GET");
        }
        if status == 401 {
            resp = resp.header("www-authenticate", "Bearer realm=\"meridian-admin\"");
        }
        resp.body(body.into_bytes())
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
