//! Refusals: JSON `{"message","code"}` with a stable code. Never carries an original value.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::body::{full, RespBody};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra field (name, value) that helps the caller, e.g. the refused host.
    pub extra: Option<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }
    pub fn with(mut self, field: &'static str, value: impl Into<String>) -> Self {
        self.extra = Some((field, value.into()));
        self
    }

    pub fn missing_host() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MISSING_HOST",
            "No destination host: send Host or x-original-host, or use a route's path prefix",
        )
    }
    pub fn unauthorized_host(host: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "UNAUTHORIZED_HOST", "Unauthorized external API").with("host", host)
    }
    pub fn body_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "BODY_TOO_LARGE",
            format!("Request body larger than {limit} bytes"),
        )
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_BODY", message)
    }
    pub fn bad_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "UNSUPPORTED_BODY", message)
    }
    pub fn vault_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "VAULT_UNAVAILABLE",
            "Mapping vault unavailable; request not forwarded",
        )
    }
    pub fn masking_failed() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "MASKING_FAILED",
            "Masking failed; request not forwarded",
        )
    }
    pub fn unreachable() -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "UPSTREAM_UNREACHABLE", "Upstream unreachable")
    }
    pub fn upstream_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "UPSTREAM_TIMEOUT",
            "Upstream did not answer in time",
        )
    }
    pub fn rate_limited() -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", "API rate limit exceeded")
    }

    /// `{"message": ..., <extra>, "code": ...}` in that order (the seed's 403 body, plus a code).
    pub fn body_json(&self) -> Vec<u8> {
        let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let mut out = format!("{{\"message\":{}", q(&self.message));
        if let Some((k, v)) = &self.extra {
            out.push_str(&format!(",{}:{}", q(k), q(v)));
        }
        out.push_str(&format!(",\"code\":{}}}", q(self.code)));
        out.into_bytes()
    }

    pub fn response(&self) -> Response<RespBody> {
        let body = self.body_json();
        let mut r = Response::new(full(Bytes::from(body)));
        *r.status_mut() = self.status;
        r.headers_mut()
            .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r
    }
}
