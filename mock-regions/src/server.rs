//! A running region: the accept loop, its connections, and the handle that
//! controls and kills them.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::region::{Counts, RegionSpec, RegionState};
use crate::routes;

/// A region serving HTTP/1.1 on its own listener.
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
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state), stopped));
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

    /// `Some(status)` makes every non-control route answer with that status;
    /// `None` recovers.
    pub fn set_fail_status(&self, status: Option<u16>) {
        self.state.update(|s| s.fail_status = status);
    }

    pub fn set_work_ms(&self, ms: u64) {
        self.state.update(|s| s.work_ms = ms);
    }

    pub fn set_token_ms(&self, ms: u64) {
        self.state.update(|s| s.token_ms = ms);
    }

    /// While set, chat streams pause after their first chunk.
    pub fn set_stream_hold(&self, hold: bool) {
        self.state.set_hold(hold);
    }

    pub fn counts(&self) -> Counts {
        self.state.counts()
    }

    /// Headers of the last request that was not a health probe, as received.
    pub fn last_headers(&self) -> Vec<(String, String)> {
        self.state.last_headers()
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
                    conns.spawn(serve(stream, Arc::clone(&state)));
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

async fn serve(stream: TcpStream, state: Arc<RegionState>) {
    // Streamed tokens are small writes that must not wait on Nagle.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| routes::handle(req, Arc::clone(&state)));
    // Connection errors (client resets, malformed requests) end only this
    // connection and there is no one to report them to.
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
