//! Streaming through a system: time to first token and tokens per second per stream.

use crate::request;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct StreamStats {
    /// Median and 99th percentile time to first token, milliseconds.
    pub ttft_p50_ms: f64,
    pub ttft_p99_ms: f64,
    /// Median tokens per second of one stream after its first token.
    pub tokens_per_s: f64,
    pub streams: usize,
    pub failed: usize,
}

/// `streams` streams of `tokens` tokens, `concurrency` at a time.
pub async fn measure(
    addr: SocketAddr,
    streams: usize,
    tokens: u32,
    concurrency: usize,
) -> StreamStats {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let url = format!("http://{addr}{}", request::PATH);
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (client, url, sem) = (client.clone(), url.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok()?;
            one(&client, &url, tokens).await
        }));
    }
    let mut ttft = Vec::new();
    let mut rates = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await.ok().flatten() {
            Some((first, rate)) => {
                ttft.push(first);
                rates.push(rate);
            }
            None => failed += 1,
        }
    }
    StreamStats {
        ttft_p50_ms: percentile(&mut ttft, 0.50),
        ttft_p99_ms: percentile(&mut ttft, 0.99),
        tokens_per_s: percentile(&mut rates, 0.50),
        streams,
        failed,
    }
}

/// One stream: (time to first token in ms, tokens/s after it); `None` when it failed or
/// came back short.
async fn one(client: &reqwest::Client, url: &str, tokens: u32) -> Option<(f64, f64)> {
    let mut req = client.post(url).body(request::stream_body(tokens));
    for (k, v) in request::headers() {
        req = req.header(k, v);
    }
    let start = Instant::now();
    let resp = req.send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let mut body = resp.bytes_stream();
    let mut seen = Vec::new();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.ok()?;
        seen.extend_from_slice(&chunk);
        if first.is_none() && count(&seen, b"\"content\":\"") > 0 {
            first = Some(start.elapsed());
        }
    }
    let last = start.elapsed();
    let first = first?;
    let got = count(&seen, b"\"content\":\"");
    if got < tokens as usize {
        return None;
    }
    let span = (last - first).as_secs_f64().max(1e-6);
    Some((first.as_secs_f64() * 1e3, (got - 1) as f64 / span))
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

pub fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}
