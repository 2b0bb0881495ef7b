//! The core error type, its stable machine codes and the GoForward wire shape.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::json;

use crate::token::TokenError;

/// Result alias used throughout GoForward core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in GoForward core.
///
/// Each variant has a stable, namespaced machine code ([`Error::code`]) and an
/// HTTP status ([`ResponseError::status_code`]). Server-side faults render an
/// opaque body: internal text is logged, never sent.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is invalid. Names the key, the value and what is allowed.
    #[error("invalid configuration `{key}` = {value:?}: {problem}")]
    Config {
        /// Dotted key (e.g. `server.addr`) or variable name (`GOFORWARD_CONFIG`).
        key: String,
        /// The offending value, already redacted when it is a secret.
        value: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
    /// The database could not be reached (connect failed, pool timed out).
    #[error("database unavailable: {0}")]
    DatabaseUnavailable(#[source] sea_orm::DbErr),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A migration failed; the transaction around it was rolled back.
    #[error("migration `{migration}` of plugin `{plugin}` failed: {source}")]
    Migration {
        /// Plugin owning the migration.
        plugin: String,
        /// Migration name.
        migration: String,
        /// The underlying database error.
        #[source]
        source: sea_orm::DbErr,
    },
    /// A request carried a token or API key that failed verification.
    #[error("unauthorized: {0}")]
    Unauthorized(#[from] TokenError),
    /// The principal is known but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The addressed thing does not exist (or is hidden from the caller).
    #[error("not found: {0}")]
    NotFound(String),
    /// The client sent something invalid.
    #[error("{message}")]
    BadRequest {
        /// Stable machine code, e.g. `core.invalid_json`.
        code: &'static str,
        /// Human-readable explanation safe to show to the client.
        message: String,
    },
    /// The request body exceeded the configured limit.
    #[error("payload too large: limit is {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Too many requests; retry after the given number of seconds.
    #[error("rate limit exceeded, retry after {retry_after_secs}s")]
    RateLimited {
        /// Seconds until a request will be accepted again.
        retry_after_secs: u64,
    },
    /// The event bus failed (e.g. Redis connection lost).
    #[error("event bus error: {0}")]
    Bus(String),
    /// A hook handler aborted the operation.
    #[error("hook `{hook}` aborted: {message}")]
    Hook {
        /// Hook name.
        hook: String,
        /// Reason given by the handler.
        message: String,
    },
    /// A plugin setup problem (duplicate name, missing dependency service).
    #[error("plugin `{plugin}`: {message}")]
    Plugin {
        /// Plugin name.
        plugin: String,
        /// What is wrong.
        message: String,
    },
    /// Filesystem or socket I/O failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// An invariant broke inside GoForward; details are logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Builds an [`Error::Config`].
    pub fn config(
        key: impl Into<String>,
        value: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self::Config {
            key: key.into(),
            value: value.into(),
            problem: problem.into(),
        }
    }

    /// Builds an [`Error::BadRequest`] with a stable code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// Classifies a database error: connection/pool failures become
    /// [`Error::DatabaseUnavailable`] (HTTP 503), everything else [`Error::Database`].
    pub fn from_db(err: sea_orm::DbErr) -> Self {
        if crate::db::is_unavailable(&err) {
            Self::DatabaseUnavailable(err)
        } else {
            Self::Database(err)
        }
    }

    /// The stable, namespaced machine code of this error (`core.*`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config { .. } => "core.invalid_config",
            Self::DatabaseUnavailable(_) => "core.database_unavailable",
            Self::Database(_) => "core.database_error",
            Self::Migration { .. } => "core.migration_failed",
            Self::Unauthorized(token) => token.code(),
            Self::Forbidden(_) => "core.forbidden",
            Self::NotFound(_) => "core.not_found",
            Self::BadRequest { code, .. } => code,
            Self::PayloadTooLarge { .. } => "core.payload_too_large",
            Self::RateLimited { .. } => "core.rate_limited",
            Self::Bus(_) => "core.bus_error",
            Self::Hook { .. } => "core.hook_aborted",
            Self::Plugin { .. } => "core.plugin_error",
            Self::Io(_) => "core.io_error",
            Self::Internal(_) => "core.internal_error",
        }
    }

    /// The message safe to send to a client: the error's own text for client
    /// errors, a generic sentence for server faults.
    pub fn public_message(&self) -> String {
        if self.status_code().is_server_error() {
            match self {
                Self::DatabaseUnavailable(_) => {
                    "The database is temporarily unavailable".to_owned()
                }
                _ => "Internal server error".to_owned(),
            }
        } else {
            match self {
                Self::Unauthorized(token) => token.to_string(),
                Self::Forbidden(msg) | Self::NotFound(msg) => msg.clone(),
                Self::Hook { message, .. } => message.clone(),
                other => other.to_string(),
            }
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Config { .. } | Self::Plugin { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_)
            | Self::Migration { .. }
            | Self::Bus(_)
            | Self::Io(_)
            | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } | Self::Hook { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    fn error_response(&self) -> HttpResponse {
        crate::http::errors::GoForwardErrorFormat.render(self)
    }
}

/// Renders core errors in one API's wire shape.
///
/// Each plugin registers its format in its scope with
/// [`ApiErrorFormat::data`], so that errors raised by core extractors (a bad
/// token, a rate limit) reach clients in the shape their SDK parses
/// (GoTrue, PostgREST, Storage). Outside any scope, GoForward's own shape
/// `{"code", "message", "details"}` is used.
pub trait ErrorFormat: Send + Sync + 'static {
    /// Renders `err` as a complete HTTP response.
    fn render(&self, err: &Error) -> HttpResponse;
}

/// The format registered in a scope's app data; see [`ErrorFormat`].
#[derive(Clone)]
pub struct ApiErrorFormat(pub std::sync::Arc<dyn ErrorFormat>);

impl ApiErrorFormat {
    /// Wraps a format as actix app data for `scope.app_data(..)`.
    pub fn data(format: impl ErrorFormat) -> actix_web::web::Data<ApiErrorFormat> {
        actix_web::web::Data::new(ApiErrorFormat(std::sync::Arc::new(format)))
    }

    /// Renders `err` with the format registered on the request, or GoForward's own.
    pub fn render_for(req: &actix_web::HttpRequest, err: &Error) -> HttpResponse {
        if let Some(format) = req.app_data::<actix_web::web::Data<ApiErrorFormat>>() {
            format.0.render(err)
        } else {
            crate::http::errors::GoForwardErrorFormat.render(err)
        }
    }

    /// Turns `err` into an `actix_web::Error` whose response is rendered in
    /// the request's wire shape (server faults are logged here, once).
    pub fn to_actix(req: &actix_web::HttpRequest, err: Error) -> actix_web::Error {
        log_if_server_fault(&err);
        let response = Self::render_for(req, &err);
        actix_web::error::InternalError::from_response(err, response).into()
    }
}

/// Logs a server-side fault with its full cause; client errors are not logged.
pub fn log_if_server_fault(err: &Error) {
    if err.status_code().is_server_error() {
        tracing::error!(code = err.code(), error = %err, "request failed");
    }
}

/// GoForward's own error body: `{"code", "message", "details"}`.
pub fn goforward_body(err: &Error) -> serde_json::Value {
    let details = match err {
        Error::RateLimited { retry_after_secs } => json!({ "retry_after": retry_after_secs }),
        Error::PayloadTooLarge { limit } => json!({ "limit": limit }),
        _ => serde_json::Value::Null,
    };
    json!({ "code": err.code(), "message": err.public_message(), "details": details })
}
