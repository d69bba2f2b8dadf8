//! Per-region credentials: a region with its own credential gets it in place of whatever
//! the client sent under that header name; other regions see the client's header.

use crate::regions::Region;
use pingora::http::RequestHeader;
use pingora::Result;

pub fn apply(req: &mut RequestHeader, region: &Region) -> Result<()> {
    if let Some(c) = &region.config.credential {
        req.remove_header(&c.header);
        req.insert_header(c.header.clone(), c.value.clone())?;
    }
    Ok(())
}
