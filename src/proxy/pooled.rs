//! A pooled upstream connection the region closed while it sat idle. Pingora checks a
//! connection before reusing it, but only through Tokio's readiness, which may not have
//! seen the close yet when the machine is busy; the request then goes into a closed
//! socket and fails with nothing received, which for a POST is not retried. Asking the
//! kernel directly, before a byte of the request is written, tells a dead connection
//! apart for certain: the request never went out, so it may go elsewhere, POST included.

use std::os::unix::io::RawFd;

/// Whether the kernel already holds the peer's close (end of stream, or a reset) for the
/// connection `fd`. Pending data, or nothing yet, is not a close.
pub fn closed_by_peer(fd: RawFd) -> bool {
    use nix::errno::Errno;
    use nix::sys::socket::{recv, MsgFlags};
    let mut byte = [0u8; 1];
    match recv(fd, &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
        Ok(0) => true,
        Ok(_) => false,
        Err(Errno::EAGAIN | Errno::EINTR) => false,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::io::AsRawFd;
    use std::time::Duration;

    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn only_a_connection_its_peer_closed_counts_as_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (idle, _server) = pair(&listener);
        assert!(!closed_by_peer(idle.as_raw_fd()), "idle and open");

        let (busy, mut server) = pair(&listener);
        server.write_all(b"x").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !closed_by_peer(busy.as_raw_fd()),
            "data waiting is not a close"
        );

        let (dead, server) = pair(&listener);
        drop(server);
        std::thread::sleep(Duration::from_millis(20));
        assert!(closed_by_peer(dead.as_raw_fd()), "the peer closed it");
    }
}
