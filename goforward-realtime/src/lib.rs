//! GoForward realtime: Phoenix-channel broadcast, presence and database changes, mounted at `/realtime/v1`.
//!
//! This crate currently provides the plugin shell — the scope, Realtime's
//! error shape and principal checks; the WebSocket channels land with its own issue.
//!
//! ```no_run
//! use goforward_realtime::Realtime;
//! # fn add(b: goforward_core::GoForwardBuilder) -> goforward_core::GoForwardBuilder {
//! b.plugin(Realtime::new())
//! # }
//! ```
#![deny(clippy::unwrap_used, clippy::print_stdout)]

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use goforward_core::{
    Context, Error, Plugin, Principal,
    error::{ApiErrorFormat, ErrorFormat},
};
use serde_json::json;

/// Realtime's REST error shape: `{"message"}` (with GoForward's `code`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealtimeErrorFormat;

impl ErrorFormat for RealtimeErrorFormat {
    fn render(&self, err: &Error) -> HttpResponse {
        let mut res = HttpResponse::build(err.status_code());
        if let Error::RateLimited { retry_after_secs } = err {
            res.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        res.json(json!({ "message": err.public_message(), "code": err.code() }))
    }
}

/// The realtime plugin.
#[derive(Debug, Clone, Default)]
pub struct Realtime {
    _private: (),
}

impl Realtime {
    /// A realtime plugin with default settings.
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
        Error::NotFound("Not found".into()),
    ))
}

#[async_trait::async_trait]
impl Plugin for Realtime {
    fn name(&self) -> &str {
        "realtime"
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        cfg.service(
            ctx.api_scope("/realtime/v1", "realtime", RealtimeErrorFormat)
                .default_service(web::to(not_found)),
        );
    }
}
