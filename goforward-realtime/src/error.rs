//! Realtime's error enum and its wire shape.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use goforward_core::{error::ErrorFormat, token::TokenError};
use serde_json::json;

/// `Result` with [`RealtimeError`].
pub type Result<T, E = RealtimeError> = std::result::Result<T, E>;

/// Errors of the realtime REST endpoints and of [`RealtimeHandle`](crate::RealtimeHandle).
///
/// Rendered as Supabase Realtime's `{"message"}` plus GoForward's stable `code`.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// The request is malformed: not a WebSocket upgrade, unknown `vsn` (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// The request body is not what the endpoint accepts (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// The apikey or token was refused (HTTP 401).
    #[error("{0}")]
    Unauthorized(#[from] TokenError),
    /// Access control refused the action on a private channel (HTTP 403).
    #[error("You do not have permissions to broadcast to this Channel topic: {0}")]
    Forbidden(String),
    /// The `Origin` header is not in `server.cors.allowed_origins` (HTTP 403).
    #[error("Origin not allowed")]
    OriginNotAllowed,
    /// The client IP already has `max_connections_per_ip` sockets open (HTTP 429).
    #[error("Too many connections")]
    TooManyConnections,
    /// The plugin's background state is missing: `Realtime` was not started (HTTP 500).
    #[error("the realtime plugin is not started")]
    NotStarted,
    /// A core error (bus unavailable, …).
    #[error(transparent)]
    Core(#[from] goforward_core::Error),
}

impl RealtimeError {
    /// Stable machine code (`realtime.*`, or core's code for [`RealtimeError::Core`]).
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "realtime.bad_request",
            Self::Invalid(_) => "realtime.invalid_request",
            Self::Unauthorized(err) => err.code(),
            Self::Forbidden(_) => "realtime.forbidden",
            Self::OriginNotAllowed => "realtime.origin_not_allowed",
            Self::TooManyConnections => "realtime.too_many_connections",
            Self::NotStarted => "realtime.not_started",
            Self::Core(err) => err.code(),
        }
    }
}

impl ResponseError for RealtimeError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::OriginNotAllowed => StatusCode::FORBIDDEN,
            Self::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
            Self::NotStarted => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Core(err) => err.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Core(err) = self {
            return RealtimeErrorFormat.render(err);
        }
        let status = self.status_code();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, "realtime request failed");
            "Internal server error".to_owned()
        } else {
            self.to_string()
        };
        HttpResponse::build(status).json(json!({ "message": message, "code": self.code() }))
    }
}

/// Realtime's REST error shape: `{"message"}` (with GoForward's `code`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealtimeErrorFormat;

impl ErrorFormat for RealtimeErrorFormat {
    fn render(&self, err: &goforward_core::Error) -> HttpResponse {
        goforward_core::error::log_if_server_fault(err);
        let mut res = HttpResponse::build(err.status_code());
        if let goforward_core::Error::RateLimited { retry_after_secs } = err {
            res.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        res.json(json!({ "message": err.public_message(), "code": err.code() }))
    }
}
