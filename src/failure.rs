//! The answers Meridian gives itself instead of a region's: one [`Kind`] per row of the
//! README's error table, each with its status and `type` string, and the OpenAI-shaped
//! body `{"error":{"type":..,"message":..}}`; for a gRPC client, the gRPC status code
//! each kind stands for.

/// Why Meridian answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The geo header is malformed or appears twice.
    InvalidGeoHeader,
    /// A geo rule (or the default) refuses the request.
    GeoDenied,
    /// The geo header came from a peer outside `geo.trusted_proxies`.
    UntrustedGeoHeader,
    /// A hint header has a bad value or appears twice.
    InvalidHeader,
    RequestTooLarge,
    /// The client stalled while sending its body.
    ClientTimeout,
    /// Pingora could not make sense of the request.
    BadRequest,
    /// A model-routed request whose JSON body is malformed.
    InvalidRequest,
    /// A model-routed request names no model.
    MissingModel,
    /// No region serves the model asked for.
    ModelNotFound,
    /// No client key, or not a valid one.
    InvalidApiKey,
    /// The client key may not use the model asked for.
    ModelNotAllowed,
    NoEligibleRegion,
    /// Every eligible region is saturated: load is shed.
    Overloaded,
    AttemptsExhausted,
    /// The only attempt failed after the request was sent.
    UpstreamError,
    /// The region failed after its response had started.
    UpstreamStreamError,
    UpstreamTimeout,
    /// Pingora raised this HTTP status itself.
    Proxy(u16),
    InternalError,
}

impl Kind {
    pub fn status(self) -> u16 {
        match self {
            Kind::InvalidGeoHeader
            | Kind::InvalidHeader
            | Kind::BadRequest
            | Kind::InvalidRequest
            | Kind::MissingModel => 400,
            Kind::ModelNotFound => 404,
            Kind::InvalidApiKey => 401,
            Kind::ModelNotAllowed => 403,
            Kind::UntrustedGeoHeader => 403,
            Kind::ClientTimeout => 408,
            Kind::RequestTooLarge => 413,
            Kind::GeoDenied => 451,
            Kind::InternalError => 500,
            Kind::AttemptsExhausted | Kind::UpstreamError | Kind::UpstreamStreamError => 502,
            Kind::NoEligibleRegion | Kind::Overloaded => 503,
            Kind::UpstreamTimeout => 504,
            Kind::Proxy(status) => status,
        }
    }

    /// The `error.type` of the body, as documented.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::InvalidGeoHeader => "invalid_geo_header",
            Kind::GeoDenied => "geo_denied",
            Kind::UntrustedGeoHeader => "untrusted_geo_header",
            Kind::InvalidHeader => "invalid_header",
            Kind::RequestTooLarge => "request_too_large",
            Kind::ClientTimeout => "client_timeout",
            Kind::BadRequest => "bad_request",
            Kind::InvalidRequest => "invalid_request_error",
            Kind::MissingModel => "missing_model",
            Kind::ModelNotFound => "model_not_found",
            Kind::InvalidApiKey => "invalid_api_key",
            Kind::ModelNotAllowed => "model_not_allowed",
            Kind::NoEligibleRegion => "no_eligible_region",
            Kind::Overloaded => "overloaded",
            Kind::AttemptsExhausted => "attempts_exhausted",
            Kind::UpstreamError => "upstream_error",
            Kind::UpstreamStreamError => "upstream_stream_error",
            Kind::UpstreamTimeout => "upstream_timeout",
            Kind::Proxy(_) => "proxy_error",
            Kind::InternalError => "internal_error",
        }
    }

    /// The gRPC status code (`grpc-status`) a gRPC client gets for this refusal, chosen
    /// by meaning; a status Pingora raised maps as gRPC maps HTTP statuses
    /// (doc/http-grpc-status-mapping.md in the gRPC repository).
    pub fn grpc_status(self) -> u8 {
        const INTERNAL: u8 = 13;
        const UNAVAILABLE: u8 = 14;
        match self {
            Kind::InvalidGeoHeader
            | Kind::InvalidHeader
            | Kind::BadRequest
            | Kind::InvalidRequest
            | Kind::MissingModel => 3, // INVALID_ARGUMENT
            Kind::ClientTimeout | Kind::UpstreamTimeout => 4, // DEADLINE_EXCEEDED
            Kind::ModelNotFound => 5,                         // NOT_FOUND
            Kind::GeoDenied | Kind::UntrustedGeoHeader | Kind::ModelNotAllowed => 7, // PERMISSION_DENIED
            Kind::RequestTooLarge => 8, // RESOURCE_EXHAUSTED
            Kind::InternalError => INTERNAL,
            Kind::NoEligibleRegion
            | Kind::Overloaded
            | Kind::AttemptsExhausted
            | Kind::UpstreamError
            | Kind::UpstreamStreamError => UNAVAILABLE,
            Kind::InvalidApiKey => 16, // UNAUTHENTICATED
            Kind::Proxy(status) => match status {
                400 => INTERNAL,
                401 => 16,
                403 => 7,
                404 => 12, // UNIMPLEMENTED
                429 | 502 | 503 | 504 => UNAVAILABLE,
                _ => 2, // UNKNOWN
            },
        }
    }

    /// A refusal by the geo rules (what the access log's `geo` field shows).
    pub fn is_geo(self) -> bool {
        matches!(
            self,
            Kind::InvalidGeoHeader | Kind::GeoDenied | Kind::UntrustedGeoHeader
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    /// Sent as `Retry-After` (seconds, at least 1).
    pub retry_after_secs: Option<u64>,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    pub fn body(&self) -> String {
        serde_json::json!({"error": {"type": self.kind.as_str(), "message": self.message}})
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_error_status_and_a_snake_case_type() {
        let kinds = [
            Kind::InvalidGeoHeader,
            Kind::GeoDenied,
            Kind::UntrustedGeoHeader,
            Kind::InvalidHeader,
            Kind::RequestTooLarge,
            Kind::ClientTimeout,
            Kind::BadRequest,
            Kind::InvalidRequest,
            Kind::MissingModel,
            Kind::ModelNotFound,
            Kind::InvalidApiKey,
            Kind::ModelNotAllowed,
            Kind::NoEligibleRegion,
            Kind::Overloaded,
            Kind::AttemptsExhausted,
            Kind::UpstreamError,
            Kind::UpstreamStreamError,
            Kind::UpstreamTimeout,
            Kind::Proxy(502),
            Kind::InternalError,
        ];
        for k in kinds {
            assert!((400..600).contains(&k.status()), "{k:?}");
            assert!((1..=16).contains(&k.grpc_status()), "{k:?} is not OK");
            assert!(k
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        let body: serde_json::Value =
            serde_json::from_str(&Failure::new(Kind::GeoDenied, "no \"way\"").body()).unwrap();
        assert_eq!(body["error"]["type"], "geo_denied");
        assert_eq!(body["error"]["message"], "no \"way\"");
    }
}
