//! The Pingora peer for one endpoint: plain or TLS (SNI = the URL's host, certificate
//! verified against the region's CA file or the system's trust store), speaking the
//! region's `protocol`.

use crate::config::UpstreamProtocol;
use crate::regions::{EndpointState, Region, RegionTable};
use pingora::protocols::tls::CaType;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, WrappedX509};
use std::sync::Arc;

/// What peers are built from, once per config: each region's CA list in Pingora's form.
pub struct Peers {
    ca: Vec<Option<Arc<CaType>>>,
}

impl Peers {
    pub fn new(regions: &RegionTable) -> Self {
        let ca = regions
            .iter()
            .map(|r| {
                r.config.ca.as_ref().map(|certs| {
                    // Each certificate was parsed as X.509 when the config was loaded, so
                    // `parse_x509` (which panics on bad input) sees only good DER.
                    let list: Vec<WrappedX509> = certs
                        .0
                        .iter()
                        .map(|der| WrappedX509::new(der.clone(), parse_x509))
                        .collect();
                    Arc::<CaType>::from(list)
                })
            })
            .collect();
        Self { ca }
    }

    pub fn peer(&self, region: &Region, ep: &EndpointState) -> HttpPeer {
        let e = &ep.endpoint;
        let mut peer = HttpPeer::new(
            e.addr,
            e.tls,
            if e.tls { e.sni.clone() } else { String::new() },
        );
        if e.tls {
            peer.options.ca = self.ca.get(region.id).cloned().flatten();
        }
        peer.options.alpn = alpn(region.config.protocol);
        peer
    }
}

/// What the peer offers. On a plain endpoint there is no ALPN: Pingora 0.9.1 speaks
/// HTTP/2 with prior knowledge when the lowest version allowed is 2 (`ALPN::H2`;
/// `pingora-core` `connectors/http/v2.rs`, `new_http_session`), HTTP/1.1 otherwise.
fn alpn(protocol: UpstreamProtocol) -> ALPN {
    match protocol {
        UpstreamProtocol::Http1 => ALPN::H1,
        UpstreamProtocol::H2 => ALPN::H2,
        UpstreamProtocol::Auto => ALPN::H2H1,
    }
}
