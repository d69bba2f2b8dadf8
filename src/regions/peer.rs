//! The Pingora peer for one endpoint: plain or TLS (SNI = the URL's host, certificate
//! verified against the region's CA file or the system's trust store).

use super::{EndpointState, Region};
use pingora::upstreams::peer::HttpPeer;

pub fn http_peer(region: &Region, ep: &EndpointState) -> HttpPeer {
    let e = &ep.endpoint;
    let mut peer = HttpPeer::new(
        e.addr,
        e.tls,
        if e.tls { e.sni.clone() } else { String::new() },
    );
    if e.tls {
        peer.options.ca = region.config.ca.clone();
    }
    peer
}
