//! GoForward storage: buckets and objects on object_store, mounted at `/storage/v1`.
//!
//! This crate currently provides the plugin shell — the scope, Supabase Storage's
//! error shape and principal checks; buckets, objects and signed URLs land with its own issue.
//!
//! ```no_run
//! use goforward_storage::Storage;
//! # fn add(b: goforward_core::GoForwardBuilder) -> goforward_core::GoForwardBuilder {
//! b.plugin(Storage::new())
//! # }
//! ```
#![deny(clippy::unwrap_used, clippy::print_stdout)]

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use goforward_core::{
    Context, Error, Plugin, Principal,
    error::{ApiErrorFormat, ErrorFormat},
};
use serde_json::json;

/// Supabase Storage's error shape: `{"statusCode", "code", "error", "message"}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StorageErrorFormat;

impl ErrorFormat for StorageErrorFormat {
    fn render(&self, err: &Error) -> HttpResponse {
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

/// The storage plugin.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    _private: (),
}

impl Storage {
    /// A storage plugin with default settings.
    pub fn new() -> Self {
        Self::default()
    }
}

async fn not_found(
    req: HttpRequest,
    principal: Result<Principal, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    principal?;
    Err(ApiErrorFormat::to_actix(
        &req,
        Error::NotFound("Object not found".into()),
    ))
}

#[async_trait::async_trait]
impl Plugin for Storage {
    fn name(&self) -> &str {
        "storage"
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        cfg.service(
            ctx.api_scope("/storage/v1", "storage", StorageErrorFormat)
                .default_service(web::to(not_found)),
        );
    }
}
