//! [`Aal2`]: an extractor for host routes that require a second factor.

use actix_web::{FromRequest, HttpRequest, ResponseError, dev::Payload};
use goforward_core::Principal;
use std::{future::Future, pin::Pin};

use crate::error::AuthError;

/// A [`Principal`] whose token carries `aal: "aal2"` (a verified MFA factor
/// in this session). Use it instead of `Principal` in a handler to require
/// MFA; other callers get 403 `insufficient_aal` in GoTrue's shape (401 for
/// a bad or missing token, as with `Principal`).
///
/// ```no_run
/// use actix_web::{HttpResponse, web};
/// use goforward_auth::Aal2;
///
/// async fn wire_money(user: Aal2) -> HttpResponse {
///     HttpResponse::Ok().body(format!("hello {:?}", user.0.user_id))
/// }
/// # fn routes(cfg: &mut web::ServiceConfig) { cfg.route("/wire", web::post().to(wire_money)); }
/// ```
#[derive(Debug, Clone)]
pub struct Aal2(pub Principal);

impl FromRequest for Aal2 {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let principal = Principal::from_request(req, payload);
        Box::pin(async move {
            let principal = principal.await?;
            if principal.aal.as_deref() == Some("aal2") && principal.user_id.is_some() {
                Ok(Self(principal))
            } else {
                let err = AuthError::InsufficientAal;
                let response = err.error_response();
                Err(actix_web::error::InternalError::from_response(err, response).into())
            }
        })
    }
}
