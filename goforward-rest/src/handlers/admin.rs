//! `POST /rest/v1/_schema/reload`: re-introspects the database (service_role only).

use actix_web::{HttpResponse, web};
use goforward_core::Principal;

use super::{RestState, anonymous};
use crate::error::{RestError, Result};

/// Reloads the schema cache; answers 204.
///
/// # Errors
/// 401/403 `42501` for anyone but service_role; introspection failures.
pub async fn reload(state: web::Data<RestState>, principal: Principal) -> Result<HttpResponse> {
    if !principal.is_service() {
        return Err(RestError::PermissionDenied {
            table: "schema cache".into(),
            anonymous: anonymous(&principal),
        });
    }
    state.cache.reload(state.ctx.db()).await?;
    Ok(HttpResponse::NoContent().finish())
}
