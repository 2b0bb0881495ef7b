//! GoForward auth: GoTrue-compatible authentication, mounted at `/auth/v1`.
//!
//! This crate currently provides the plugin shell — the scope, GoTrue's
//! error shape, principal checks and `GET /settings`; sign-up, sessions,
//! MFA and OAuth land with the auth issue.
//!
//! ```no_run
//! use goforward_auth::Auth;
//! # fn add(b: goforward_core::GoForwardBuilder) -> goforward_core::GoForwardBuilder {
//! b.plugin(Auth::new())
//! # }
//! ```
#![deny(clippy::unwrap_used, clippy::print_stdout)]

use actix_web::{HttpResponse, ResponseError, web};
use goforward_core::{Context, Error, Plugin, Principal, error::ErrorFormat};
use serde_json::json;

/// The API version auth-js sends and GoTrue echoes.
pub const API_VERSION: &str = "2024-01-01";

/// GoTrue's error shape: `{"code", "message"}` (plus the legacy `error_code`/`msg`),
/// with `X-Supabase-Api-Version` and `x-sb-error-code` headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoTrueErrorFormat;

impl GoTrueErrorFormat {
    fn code(err: &Error) -> &'static str {
        match err {
            Error::Unauthorized(goforward_core::token::TokenError::NoApiKey) => "no_authorization",
            Error::Unauthorized(_) => "bad_jwt",
            Error::Forbidden(_) => "not_admin",
            Error::NotFound(_) => "not_found",
            Error::RateLimited { .. } => "over_request_rate_limit",
            Error::PayloadTooLarge { .. } | Error::BadRequest { .. } => "validation_failed",
            _ => "unexpected_failure",
        }
    }
}

impl ErrorFormat for GoTrueErrorFormat {
    fn render(&self, err: &Error) -> HttpResponse {
        let code = Self::code(err);
        let message = err.public_message();
        let mut res = HttpResponse::build(err.status_code());
        res.insert_header(("X-Supabase-Api-Version", API_VERSION))
            .insert_header(("x-sb-error-code", code));
        if let Error::RateLimited { retry_after_secs } = err {
            res.insert_header(("Retry-After", retry_after_secs.to_string()));
        }
        res.json(json!({ "code": code, "error_code": code, "message": message, "msg": message }))
    }
}

/// The auth plugin.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    _private: (),
}

impl Auth {
    /// An auth plugin with default settings.
    pub fn new() -> Self {
        Self::default()
    }
}

async fn settings(_principal: Principal) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("X-Supabase-Api-Version", API_VERSION))
        .json(json!({
            "external": { "email": true, "phone": false, "anonymous_users": false },
            "disable_signup": true,
            "mailer_autoconfirm": false,
            "phone_autoconfirm": false,
            "sms_provider": "",
            "saml_enabled": false,
        }))
}

#[async_trait::async_trait]
impl Plugin for Auth {
    fn name(&self) -> &str {
        "auth"
    }

    fn routes(&self, cfg: &mut web::ServiceConfig, ctx: &Context) {
        cfg.service(
            ctx.api_scope("/auth/v1", "auth", GoTrueErrorFormat)
                .route("/settings", web::get().to(settings))
                .default_service(web::to(not_found_rendered)),
        );
    }
}

async fn not_found_rendered(
    req: actix_web::HttpRequest,
    principal: Result<Principal, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    principal?;
    Err(goforward_core::error::ApiErrorFormat::to_actix(
        &req,
        Error::NotFound("Endpoint not found".into()),
    ))
}
