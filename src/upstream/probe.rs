//! The probe: the region's probe request (by default `GET /health`, under the endpoint's
//! path prefix, with its query parameters) on one endpoint, healthy on an expected status
//! (by default 200) within the timeout. Its body may report load and model version (see
//! [`LoadReport`]). A region with `probe: grpc` gets the standard gRPC health check
//! instead ([`super::grpc_health`]).

use super::grpc_health;
use super::peer::Peers;
use crate::config::{HealthSettings, ProbeKind, ProbeMethod};
use crate::regions::{EndpointState, LoadReport, Region, RegionTable};
use crate::routing::EndpointRef;
use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType, Result};
use pingora_load_balancing::health_check::HealthCheck;
use pingora_load_balancing::Backend;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Probe bodies are drained up to this size; a health endpoint has no reason to send more.
const MAX_PROBE_BODY: usize = 64 * 1024;
const POOLED_PROBE_IDLE: Duration = Duration::from_secs(60);

pub struct RegionProbe {
    regions: RegionTable,
    timeout: Duration,
    failure_threshold: usize,
    success_threshold: usize,
    connector: Connector,
    /// While set, one observation decides health, so the first round before serving
    /// marks a dead endpoint down at once instead of after `failure_threshold` rounds.
    booting: Arc<AtomicBool>,
    peers: Arc<Peers>,
}

impl RegionProbe {
    pub fn new(
        regions: RegionTable,
        settings: &HealthSettings,
        booting: Arc<AtomicBool>,
        peers: Arc<Peers>,
    ) -> Self {
        Self {
            regions,
            timeout: settings.timeout,
            failure_threshold: settings.failure_threshold,
            success_threshold: settings.success_threshold,
            connector: Connector::new(None),
            booting,
            peers,
        }
    }

    fn region_of(&self, target: &Backend) -> Option<(&Arc<Region>, usize)> {
        let r = target.ext.get::<EndpointRef>()?;
        Some((self.regions.get(r.region)?, r.endpoint))
    }

    /// One probe; returns the body of an answer with an expected status.
    async fn probe(&self, peer: &HttpPeer, ep: &EndpointState, region: &Region) -> Result<Vec<u8>> {
        let probe = &region.config.probe;
        let (mut session, _reused) = self.connector.get_http_session(peer).await?;
        let grpc = region.config.probe_kind == ProbeKind::Grpc;
        let authority = ep.endpoint.authority.as_str();
        let mut req = if grpc {
            grpc_health::request(authority)?
        } else {
            let target = probe.target(&ep.endpoint.shape);
            let mut req = RequestHeader::build(probe.method.as_str(), &target, None)?;
            req.insert_header("host", authority)?;
            req.insert_header("user-agent", "meridian-probe")?;
            req
        };
        if matches!(session, HttpSession::H2(_)) {
            in_h2_form(&mut req, authority, ep.endpoint.tls)?;
        }
        // A provider's health endpoint may want the same credential as its API.
        if let Some(c) = &region.config.credential {
            req.insert_header(c.header.clone(), c.value.clone())?;
        }
        let body = match (probe.method, &probe.body) {
            (ProbeMethod::Post, body) if !grpc => {
                let body = body.as_deref().unwrap_or_default();
                req.insert_header("content-type", "application/json")?;
                req.insert_header("content-length", body.len())?;
                Some(bytes::Bytes::copy_from_slice(body.as_bytes()))
            }
            _ => None,
        };
        session.write_request_header(Box::new(req)).await?;
        if grpc {
            session
                .write_request_body(grpc_health::REQUEST_BODY, true)
                .await?;
        } else {
            if let Some(b) = body.filter(|b| !b.is_empty()) {
                session.write_request_body(b, true).await?;
            }
            session.finish_request_body().await?;
        }
        session.read_response_header().await?;
        let status = session
            .response_header()
            .map(|h| h.status.as_u16())
            .unwrap_or(0);
        let mut body = Vec::new();
        while let Some(chunk) = session.read_response_body().await? {
            if body.len() + chunk.len() > MAX_PROBE_BODY {
                return Error::e_explain(ErrorType::InvalidHTTPHeader, "probe body too large");
            }
            body.extend_from_slice(&chunk);
        }
        if grpc {
            let trailers = match &mut session {
                HttpSession::H2(h2) => h2.read_trailers().await?,
                _ => None,
            };
            let header = session.response_header().ok_or_else(|| {
                Error::explain(ErrorType::InvalidHTTPHeader, "no gRPC response header")
            })?;
            grpc_health::check(header, trailers.as_ref(), &body)?;
            self.connector
                .release_http_session(session, peer, Some(POOLED_PROBE_IDLE))
                .await;
            // A gRPC health answer carries no load report.
            return Ok(Vec::new());
        }
        if !probe.expects(status) {
            return Error::e_explain(
                ErrorType::CustomCode("probe status", status),
                format!("probe answered {status}"),
            );
        }
        self.connector
            .release_http_session(session, peer, Some(POOLED_PROBE_IDLE))
            .await;
        Ok(body)
    }
}

/// An HTTP/2 request names its authority in `:authority`, and many servers (nginx among
/// them) refuse one that also carries `Host`, which Pingora's HTTP/2 client would send on
/// as well: the probe puts the authority in the URI instead, as the proxy path does.
fn in_h2_form(req: &mut RequestHeader, authority: &str, tls: bool) -> Result<()> {
    let path = req
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let uri = http::Uri::builder()
        .scheme(if tls { "https" } else { "http" })
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|e| {
            Error::explain(
                ErrorType::InvalidHTTPHeader,
                format!("probe URI for {authority}: {e}"),
            )
        })?;
    req.set_uri(uri);
    req.remove_header(&http::header::HOST);
    Ok(())
}

#[async_trait]
impl HealthCheck for RegionProbe {
    async fn check(&self, target: &Backend) -> Result<()> {
        let Some((region, endpoint)) = self.region_of(target) else {
            return Error::e_explain(ErrorType::InternalError, "backend without region");
        };
        let Some(ep) = region.endpoints.get(endpoint) else {
            return Error::e_explain(ErrorType::InternalError, "unknown endpoint");
        };
        let mut peer = self.peers.peer(region, ep);
        peer.options.connection_timeout = Some(self.timeout);
        peer.options.read_timeout = Some(self.timeout);
        peer.options.write_timeout = Some(self.timeout);
        let start = Instant::now();
        let in_flight_at_start = region.in_flight();
        let outcome = tokio::time::timeout(self.timeout, self.probe(&peer, ep, region)).await;
        let now = Instant::now();
        match outcome {
            Ok(Ok(body)) => {
                let rtt = now - start;
                ep.record_probe(rtt);
                // The region counted its load at some moment during the probe: take the larger
                // of our counts at either end as what it had seen of ours.
                let ours = in_flight_at_start.max(region.in_flight());
                ep.set_report(LoadReport::parse(&body), ours);
                region.refresh_load();
                region.rtt.observe(rtt, now);
                Ok(())
            }
            Ok(Err(e)) => {
                if matches!(
                    e.etype(),
                    ErrorType::ConnectTimedout | ErrorType::ReadTimedout
                ) {
                    // A probe that timed out says latency is at least the timeout.
                    region.rtt.observe(self.timeout, now);
                }
                Err(e)
            }
            Err(_) => {
                region.rtt.observe(self.timeout, now);
                Error::e_explain(
                    ErrorType::ReadTimedout,
                    format!("probe timed out after {:?}", self.timeout),
                )
            }
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        match (self.booting.load(Relaxed), success) {
            (true, _) => 1,
            (false, true) => self.success_threshold,
            (false, false) => self.failure_threshold,
        }
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        if let Some((region, endpoint)) = self.region_of(target) {
            if let Some(ep) = region.endpoints.get(endpoint) {
                ep.set_healthy(healthy);
            }
        }
    }

    fn backend_summary(&self, target: &Backend) -> String {
        match self.region_of(target) {
            Some((region, _)) => format!("region {} endpoint {}", region.name(), target.addr),
            None => format!("{:?}", target.addr),
        }
    }
}
