//! Idle keep-alive client connections: each sends one request, reads the answer and stays
//! open, as a fleet of mostly idle clients would.

use crate::request;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Opens up to `n` connections within `limit`; returns them and how many failed.
pub async fn open(addr: SocketAddr, n: usize, limit: Duration) -> (Vec<TcpStream>, usize) {
    let sem = Arc::new(Semaphore::new(256));
    let raw = Arc::new(request::raw(addr));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let (sem, raw) = (sem.clone(), raw.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok()?;
            let mut conn = TcpStream::connect(addr).await.ok()?;
            conn.write_all(&raw).await.ok()?;
            let status = request::read_response(&mut conn).await.ok()?;
            (status == 200).then_some(conn)
        }));
    }
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    let mut open = Vec::with_capacity(n);
    let mut failed = 0;
    let all = async {
        for t in tasks {
            match t.await.ok().flatten() {
                Some(c) => open.push(c),
                None => failed += 1,
            }
        }
    };
    if tokio::time::timeout(limit, all).await.is_err() {
        aborts.iter().for_each(|a| a.abort());
        failed = n - open.len();
    }
    (open, failed)
}
