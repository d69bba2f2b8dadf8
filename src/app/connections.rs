//! `limits.max_connections`: a listener keeps at most that many client connections open.
//! Pingora has no such limit, so each listener's app is wrapped: a connection over the limit
//! is closed as soon as it is accepted, before a byte is read, and those in service are
//! not disturbed. One `process_new` call spans a connection's whole life (every keep-alive
//! request on it), so a guard held there counts exactly the open connections.

use crate::runtime::Shared;
use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use prometheus::{IntCounter, IntGauge};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

pub struct Limited<A> {
    inner: Arc<A>,
    open: Arc<AtomicUsize>,
    /// The limit is read from the running config at each accept, so a reload changes it.
    shared: Arc<Shared>,
    listener: &'static str,
    open_gauge: IntGauge,
    refused: IntCounter,
}

impl<A> Limited<A> {
    pub fn new(inner: A, shared: Arc<Shared>, listener: &'static str) -> Self {
        let (open_gauge, refused) = shared.current().metrics.connection_series(listener);
        Self {
            inner: Arc::new(inner),
            open: Arc::new(AtomicUsize::new(0)),
            shared,
            listener,
            open_gauge,
            refused,
        }
    }
}

/// One open connection; released on drop, whatever way the connection ends.
struct Open(Arc<AtomicUsize>, IntGauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
        self.1.dec();
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Limited<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let max = self.shared.current().config.limits.max_connections;
        let taken = self
            .open
            .fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1));
        if taken.is_err() {
            self.refused.inc();
            // Once per thousand, so a flood of connections cannot flood the log too.
            if self.refused.get() % 1000 == 1 {
                log::warn!(
                    "{} listener: limits.max_connections ({max}) reached, closing new connections ({} so far)",
                    self.listener,
                    self.refused.get()
                );
            }
            return None;
        }
        self.open_gauge.inc();
        let _open = Open(Arc::clone(&self.open), self.open_gauge.clone());
        self.inner.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        // The proxy wakes its idle keep-alive readers here so shutdown does not wait on them.
        self.inner.cleanup().await
    }
}
