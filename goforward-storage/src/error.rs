//! The storage error enum and Supabase Storage's wire shape.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use goforward_core::error::ErrorFormat;
use serde_json::json;

/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything a storage request can fail with.
///
/// Each variant has a stable machine code ([`StorageError::code`], the
/// `code` field Supabase Storage clients read, e.g. `NoSuchKey`) and an HTTP
/// status. Responses use Supabase Storage's shape
/// `{"statusCode": "404", "code": "NoSuchKey", "error": "not_found", "message": "Object not found"}`;
/// server faults are logged and rendered with an opaque message.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The bucket does not exist (or is hidden from the caller).
    #[error("Bucket not found")]
    NoSuchBucket,
    /// The object does not exist (or is hidden from the caller).
    #[error("Object not found")]
    NoSuchKey,
    /// The object has no kept version with this id.
    #[error("Version not found")]
    NoSuchVersion,
    /// A bucket with this id already exists.
    #[error("The resource already exists")]
    BucketAlreadyExists,
    /// An object with this name already exists and the upload is not an upsert.
    #[error("The resource already exists")]
    KeyAlreadyExists,
    /// The bucket still holds objects.
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// The object name is not acceptable.
    #[error("Invalid key: {0}")]
    InvalidKey(String),
    /// The bucket id or name is not acceptable.
    #[error("Invalid bucket name: {0}")]
    InvalidBucketName(String),
    /// The request is malformed (body, header or parameter).
    #[error("{0}")]
    InvalidRequest(String),
    /// The content type is not allowed in this bucket.
    #[error("mime type {0} is not supported")]
    InvalidMimeType(String),
    /// The upload is larger than the bucket's (or the server's) limit.
    #[error("The object exceeded the maximum allowed size")]
    EntityTooLarge,
    /// The upload (or copy, move, restore) would take the bucket over its quota.
    #[error("The bucket's storage quota would be exceeded")]
    QuotaExceeded,
    /// The route exists but not for this HTTP method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// The requested range cannot be satisfied.
    #[error("Range not satisfiable")]
    InvalidRange {
        /// The object's size, for `Content-Range: bytes */size`.
        size: u64,
    },
    /// No (or an anonymous) principal where a signed-in user is required.
    #[error("{0}")]
    Unauthorized(String),
    /// The principal may not do this.
    #[error("{0}")]
    AccessDenied(String),
    /// A signed URL token is malformed, tampered with, expired or used for the wrong purpose.
    #[error("{0}")]
    InvalidSignature(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// The object store failed.
    #[error("object store error: {0}")]
    Backend(#[from] object_store::Error),
    /// Anything else that is the server's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StorageError {
    /// The Supabase Storage error code (`NoSuchKey`, `EntityTooLarge`, …); stable.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoSuchBucket => "NoSuchBucket",
            Self::NoSuchKey => "NoSuchKey",
            Self::NoSuchVersion => "NoSuchVersion",
            Self::BucketAlreadyExists => "BucketAlreadyExists",
            Self::KeyAlreadyExists => "KeyAlreadyExists",
            Self::BucketNotEmpty => "InvalidRequest",
            Self::InvalidKey(_) => "InvalidKey",
            Self::InvalidBucketName(_) => "InvalidBucketName",
            Self::InvalidRequest(_) => "InvalidRequest",
            Self::InvalidMimeType(_) => "InvalidMimeType",
            Self::EntityTooLarge => "EntityTooLarge",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::InvalidRange { .. } => "InvalidRange",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::Unauthorized(_) => "InvalidJWT",
            Self::AccessDenied(_) => "AccessDenied",
            Self::InvalidSignature(_) => "InvalidSignature",
            Self::Database(err) if goforward_core::db::is_unavailable(err) => "DatabaseTimeout",
            Self::Database(_) | Self::Backend(_) | Self::Internal(_) => "InternalError",
        }
    }

    /// The short `error` field of the wire shape.
    fn short(&self) -> &'static str {
        match self {
            Self::NoSuchBucket => "Bucket not found",
            Self::NoSuchKey | Self::NoSuchVersion => "not_found",
            Self::BucketAlreadyExists | Self::KeyAlreadyExists => "Duplicate",
            Self::BucketNotEmpty => "Conflict",
            Self::InvalidKey(_)
            | Self::InvalidBucketName(_)
            | Self::InvalidRequest(_)
            | Self::InvalidRange { .. } => "Bad Request",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::InvalidMimeType(_) => "invalid_mime_type",
            Self::EntityTooLarge | Self::QuotaExceeded => "Payload too large",
            Self::Unauthorized(_) | Self::AccessDenied(_) | Self::InvalidSignature(_) => {
                "Unauthorized"
            }
            Self::Database(_) | Self::Backend(_) | Self::Internal(_) => "Internal",
        }
    }

    /// The message safe to show: the error's text, or a generic sentence for server faults.
    pub fn public_message(&self) -> String {
        if self.status_code().is_server_error() {
            "Internal server error".to_owned()
        } else {
            self.to_string()
        }
    }

    /// Logs server faults (once, here) and renders the error.
    pub fn render(&self) -> HttpResponse {
        let status = self.status_code();
        let mut res = HttpResponse::build(status);
        if let Self::InvalidRange { size } = self {
            res.insert_header(("Content-Range", format!("bytes */{size}")));
        }
        res.json(json!({
            "statusCode": status.as_u16().to_string(),
            "code": self.code(),
            "error": self.short(),
            "message": self.public_message(),
        }))
    }
}

impl ResponseError for StorageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NoSuchBucket | Self::NoSuchKey | Self::NoSuchVersion => StatusCode::NOT_FOUND,
            Self::BucketAlreadyExists | Self::KeyAlreadyExists | Self::BucketNotEmpty => {
                StatusCode::CONFLICT
            }
            Self::InvalidKey(_) | Self::InvalidBucketName(_) | Self::InvalidRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::InvalidMimeType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::EntityTooLarge | Self::QuotaExceeded => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidRange { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::AccessDenied(_) | Self::InvalidSignature(_) => StatusCode::FORBIDDEN,
            Self::Database(err) if goforward_core::db::is_unavailable(err) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Database(_) | Self::Backend(_) | Self::Internal(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.status_code().is_server_error() {
            tracing::error!(code = self.code(), error = %self, "storage request failed");
        }
        self.render()
    }
}

/// Renders core errors (bad tokens, bad JSON, rate limits raised by core
/// extractors and middleware) in Supabase Storage's shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct StorageErrorFormat;

impl ErrorFormat for StorageErrorFormat {
    fn render(&self, err: &goforward_core::Error) -> HttpResponse {
        use goforward_core::Error;
        let status = err.status_code();
        let (code, short) = match err {
            Error::Unauthorized(_) => ("InvalidJWT", "Unauthorized"),
            Error::Forbidden(_) => ("AccessDenied", "Unauthorized"),
            Error::NotFound(_) => ("NoSuchKey", "not_found"),
            Error::PayloadTooLarge { .. } => ("EntityTooLarge", "Payload too large"),
            Error::RateLimited { .. } => ("SlowDown", "too_many_requests"),
            Error::BadRequest { .. } => ("InvalidRequest", "Bad Request"),
            _ => ("InternalError", "Internal"),
        };
        let mut res = HttpResponse::build(status);
        if let Error::RateLimited { retry_after_secs } = err {
            res.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        res.json(json!({
            "statusCode": status.as_u16().to_string(),
            "code": code,
            "error": short,
            "message": err.public_message(),
        }))
    }
}
