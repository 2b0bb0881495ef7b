//! GoForward the PostgREST-compatible data API, mounted at `/rest/v1`.
//!
//! This crate currently provides the plugin shell — the scope, PostgREST's
//! error shape and principal checks; reads, writes, embedding and RPC land with its own issue.
//!
//! ```no_run
//! use goforward_rest::Rest;
//! # fn add(b: goforward_core::GoForwardBuilder) -> goforward_core::GoForwardBuilder {
//! b.plugin(Rest::new())
//! # }
//! ```
#![deny(clippy::unwrap_used, clippy::print_stdout)]

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use goforward_core::{
    Context, Error, Plugin, Principal,
    error::{ApiErrorFormat, ErrorFormat},
};
use serde_json::json;

/// PostgREST's error shape: `{"code", "details", "hint", "message"}`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgrestErrorFormat;

impl ErrorFormat for PostgrestErrorFormat {
    fn render(&self, err: &Error) -> HttpResponse {
        let code = match err {
            Error::Unauthorized(goforward_core::token::TokenError::Expired) => "PGRST303",
            Error::Unauthorized(_) => "PGRST301",
            Error::NotFound(_) => "PGRST205",
            Error::BadRequest { .. } | Error::PayloadTooLarge { .. } => "PGRST102",
            Error::Forbidden(_) => "42501",
            Error::DatabaseUnavailable(_) => "PGRST000",
            _ => "PGRST000",
        };
        let mut res = HttpResponse::build(err.status_code());
        if let Error::RateLimited { retry_after_secs } = err {
            res.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        res.json(
            json!({ "code": code, "details": null, "hint": null, "message": err.public_message() }),
        )
    }
}

/// The rest plugin.
#[derive(Debug, Clone, Default)]
pub struct Rest {
    _private: (),
}

impl Rest {
    /// A rest plugin with default settings.
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
        Error::NotFound("Could not find the table in the schema cache".into()),
    ))
}

#[async_trait::async_trait]
impl Plugin for Rest {
    fn name(&self) -> &str {
        "rest"
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        cfg.service(
            ctx.api_scope("/rest/v1", "rest", PostgrestErrorFormat)
                .default_service(web::to(not_found)),
        );
    }
}
