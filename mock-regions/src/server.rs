//! A running region: the accept loop, its connections, and the handle that
//! controls and kills them.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::capacity::Load;
use crate::counts::Counts;
use crate::models::MockModel;
use crate::region::RegionState;
use crate::routes;
use crate::spec::RegionSpec;

/// A region serving HTTP/1.1 (and h2c, when not TLS) on its own listener.
///
/// Dropping it aborts the server; [`MockRegion::kill`] does the same but also
/// waits until every socket is closed.
pub struct MockRegion {
    state: Arc<RegionState>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockRegion {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn start(spec: RegionSpec, addr: SocketAddr) -> io::Result<MockRegion> {
        Self::start_with(spec, addr, None).await
    }

    /// Like [`MockRegion::start`], serving HTTPS with a PEM certificate chain (leaf
    /// first) and private key, as a real regional endpoint would.
    pub async fn start_tls(
        spec: RegionSpec,
        addr: SocketAddr,
        cert_pem: &str,
        key_pem: &str,
    ) -> io::Result<MockRegion> {
        let acceptor = crate::tls::acceptor(cert_pem, key_pem)?;
        Self::start_with(spec, addr, Some(acceptor)).await
    }

    async fn start_with(
        spec: RegionSpec,
        addr: SocketAddr,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> io::Result<MockRegion> {
        let header = HeaderValue::from_str(&spec.name).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "region name {:?} is not usable as a header value",
                    spec.name
                ),
            )
        })?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(RegionState::new(&spec, header));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state), tls, stopped));
        Ok(MockRegion {
            state,
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The bound address, with the real port when 0 was requested.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    pub fn set_latency_ms(&self, ms: u64) {
        self.state.update(|s| s.latency_ms = ms);
    }

    /// `Some(status)` makes every non-control route answer with that status
    /// (only the next few, with [`MockRegion::set_fail_count`]); `None` recovers.
    pub fn set_fail_status(&self, status: Option<u16>) {
        self.state.update(|s| s.fail_status = status);
    }

    /// `Some(n)`: only the next `n` requests that are neither control nor
    /// health probes fail (probes keep passing meanwhile); after the last one the failure mode switches itself off
    /// (`fail_status` and `fail_count` both become `None`). `None` fails every
    /// request while `fail_status` is set.
    pub fn set_fail_count(&self, count: Option<u64>) {
        self.state.update(|s| s.fail_count = count);
    }

    /// `Some(n)` adds `Retry-After: n` to failure responses.
    pub fn set_retry_after_s(&self, seconds: Option<u64>) {
        self.state.update(|s| s.retry_after_s = seconds);
    }

    /// Time to first token: waited after taking a capacity slot, before the
    /// first streamed chunk or before a non-streamed answer.
    pub fn set_work_ms(&self, ms: u64) {
        self.state.update(|s| s.work_ms = ms);
    }

    /// Time per generated token: between streamed chunks, and times the
    /// token count for a non-streamed answer.
    pub fn set_token_ms(&self, ms: u64) {
        self.state.update(|s| s.token_ms = ms);
    }

    /// While set, streams (chat, completions, messages) pause after their
    /// first token.
    pub fn set_stream_hold(&self, hold: bool) {
        self.state.set_hold(hold);
    }

    /// `Some(n)`: streams send `n` content chunks (for messages, after
    /// `message_start` and `content_block_start`), then the connection is
    /// dropped with no final chunk, usage or `[DONE]` (`message_stop`), leaving
    /// the client an incomplete chunked body. A reply of `n` tokens or fewer is cut before
    /// its final chunk. Applies to streams already running.
    pub fn set_stream_abort_after(&self, chunks: Option<u32>) {
        self.state.update(|s| s.stream_abort_after = chunks);
    }

    /// While set, every request except `/control` and `/health` is read and
    /// counted but not answered; clearing it lets them carry on.
    pub fn set_hang(&self, hang: bool) {
        self.state.set_hang(hang);
    }

    /// Accept connections but never answer anything, probes included (a wedged host).
    pub fn set_blackhole(&self, on: bool) {
        self.state.set_blackhole(on);
    }

    /// Read each non-probe request's body, then reset the connection without an
    /// answer (a backend crashing mid-request).
    pub fn set_reset_after_body(&self, on: bool) {
        self.state.update(|s| s.reset_after_body = on);
    }

    /// Up for `ms`, then down for `ms` (every connection reset, probes included), and so
    /// on, starting up now; `None` stops flapping.
    pub fn set_flap_ms(&self, ms: Option<u64>) {
        self.state.update(|s| s.flap_ms = ms.filter(|m| *m > 0));
        self.state.restart_flap();
    }

    /// How many requests on model-carrying routes may be worked on at once
    /// (`None`: unlimited). Shrinking never interrupts requests already
    /// working; newcomers wait until the count drops below the new limit.
    pub fn set_capacity(&self, capacity: Option<u32>) {
        self.state.capacity.set_limit(capacity);
    }

    /// `false`: answers report no token usage at all, in any shape (no
    /// `usage` object, no usage chunk in a stream even when
    /// `stream_options.include_usage` asks, none in Anthropic's events), as
    /// from an engine that reports none. On (`true`) by default.
    /// Streams already running keep what they started with.
    pub fn set_usage(&self, on: bool) {
        self.state.update(|s| s.usage = on);
    }

    /// How many of each prompt's tokens are reported as read from the prompt
    /// cache, capped at the prompt's tokens: OpenAI's `cached_tokens`
    /// (`prompt_tokens` still counts them) and Anthropic's
    /// `cache_read_input_tokens` (its `input_tokens` then leaves them out).
    /// Embeddings report none. 0 by default.
    pub fn set_cached_tokens(&self, tokens: u64) {
        self.state.update(|s| s.cached_tokens = tokens);
    }

    /// `(prompt, completion, cached)`: the tokens this region has reported
    /// in its answers so far, summed once per answer that carried usage.
    /// `prompt` includes the cached tokens, as OpenAI's `prompt_tokens`
    /// does. Answers without usage (a stream not asking for it, the usage
    /// setting off, a stream cut short before its usage) add nothing; an
    /// Anthropic stream adds its input with `message_start` and its output
    /// with `message_delta`. Each is counted as soon as it is sent.
    pub fn tokens(&self) -> (u64, u64, u64) {
        let t = self.state.tokens();
        (t.prompt, t.completion, t.cached)
    }

    /// The version `/health` reports.
    pub fn set_model_version(&self, version: &str) {
        self.state.set_model_version(version);
    }

    /// Serve these `(name, version)` models from now on, as
    /// [`RegionSpec::models`] does; an empty list serves any model again.
    /// Unlike `/control`, names and versions are not checked.
    pub fn set_models(&self, models: &[(&str, &str)]) {
        self.state.set_models(MockModel::list(models));
    }

    /// The models served now; empty when any model is.
    pub fn models(&self) -> Vec<MockModel> {
        self.state.models()
    }

    /// The `model` the last request to a model-carrying route named, as
    /// received and whether served or refused; `None` before any such request
    /// and when the last one named none. Recorded once the body is read.
    pub fn last_model(&self) -> Option<String> {
        self.state.last_model()
    }

    /// The raw body of the last request to a model-carrying route, as
    /// received, so a test can check what a proxy sent upstream.
    pub fn last_body(&self) -> Option<Bytes> {
        self.state.last_body()
    }

    /// Requests received on model-carrying routes per `model` named, refused
    /// ones included; requests naming none count under "".
    pub fn model_counts(&self) -> BTreeMap<String, u64> {
        self.state.model_counts()
    }

    /// Requests working and waiting right now.
    pub fn load(&self) -> Load {
        self.state.capacity.load()
    }

    pub fn counts(&self) -> Counts {
        self.state.counts()
    }

    /// Headers of the last request that was not a health probe, as received.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.state.last_headers()
    }

    /// `Some("/openai")`: serve the API under that path prefix, as a gateway mounted under
    /// a path does (`/openai/v1/chat/completions`, `/openai/health`); paths outside it get
    /// 404. `/control` stays at the root. `None` (the default) serves at the root.
    pub fn set_mount(&self, prefix: Option<&str>) {
        self.state
            .set_mount(prefix.map(|p| p.trim_end_matches('/').to_string()));
    }

    /// `false`: `/health` answers 404, as from a provider with no health endpoint.
    pub fn set_health_route(&self, on: bool) {
        self.state.update(|s| s.health_route = on);
    }

    /// `METHOD path?query` of the last 256 requests as received (probes included,
    /// `/control` not), oldest first, so a test can see the exact targets a proxy sent.
    pub fn targets(&self) -> Vec<String> {
        self.state.targets()
    }

    /// Headers of the last `/health` request (a probe).
    pub fn last_probe_headers(&self) -> Vec<(String, String)> {
        self.state.last_probe_headers()
    }

    /// Simulates the region dying: stops accepting, drops every open
    /// connection without a graceful close, and returns once all sockets are
    /// closed, so new connections are refused and pooled ones see EOF.
    pub async fn kill(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockRegion {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every
        // connection; nothing can be awaited here.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<RegionState>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            // Also fires if the handle is gone, which is just as final.
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve(stream, Arc::clone(&state), tls.clone()));
                }
                // Typically descriptor exhaustion; retrying at once would spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
        }
    }
    // Close the listener first so no connection can sneak in while the
    // existing ones are torn down.
    drop(listener);
    conns.shutdown().await;
}

async fn serve(stream: TcpStream, state: Arc<RegionState>, tls: Option<tokio_rustls::TlsAcceptor>) {
    // Streamed tokens are small writes that must not wait on Nagle.
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move {
            let result = routes::handle(req, state).await;
            if result.is_err() {
                // A zero linger turns the close that follows the service error into a
                // reset. The socket is open: this runs inside its connection's future.
                // SAFETY: `fd` belongs to `stream`, which hyper owns until this future
                // and the connection end.
                let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
                let _ = socket2::SockRef::from(&borrowed).set_linger(Some(Duration::ZERO));
            }
            result
        }
    });
    // Connection errors (client resets, malformed requests, failed handshakes) end
    // only this connection and there is no one to report them to.
    match tls {
        // HTTP/1.1, or HTTP/2 with prior knowledge (h2c) when the client opens with the
        // HTTP/2 preface, as vLLM and Triton behind an h2c-speaking balancer see it.
        None => {
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
        Some(acceptor) => {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
            {
                // HTTP/2 when ALPN chose it (the client then opens with the preface).
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        }
    }
}
