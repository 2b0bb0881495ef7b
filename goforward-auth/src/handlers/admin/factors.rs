//! A user's MFA factors: `GET /admin/users/{id}/factors`,
//! `DELETE /admin/users/{id}/factors/{factor_id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::{Principal, token::Capability};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use super::find;
use crate::error::{AuthError, Result};
use crate::handlers::{State, audit, ok};
use crate::rbac::authorize;
use crate::sessions;
use crate::users;

/// `GET /admin/users/{id}/factors`.
pub(crate) async fn list_factors(
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    authorize(&state, &principal, Capability::ViewUsers).await?;
    let user = find(&state, &path).await?;
    let factors = users::factors(&state.db, &user.id).await?;
    Ok(ok(&Value::Array(
        factors.iter().map(users::factor_json).collect(),
    )))
}

/// `DELETE /admin/users/{id}/factors/{factor_id}`: removes the factor and
/// ends the user's sessions.
pub(crate) async fn delete_factor(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageUsers).await?;
    let (user_id, factor_id) = path.into_inner();
    let user = find(&state, &user_id).await?;
    caller.may_act_on(&user)?;
    let factor = crate::entity::mfa_factor::Entity::find_by_id(factor_id)
        .one(&state.db)
        .await?
        .filter(|f| f.user_id == user.id)
        .ok_or(AuthError::MfaFactorNotFound)?;
    crate::entity::mfa_factor::Entity::delete_by_id(factor.id.clone())
        .exec(&state.db)
        .await?;
    let ended = sessions::revoke_user_sessions(&state.db, &user.id, None).await?;
    sessions::announce_revoked(&state, &user.id, Some(ended), "mfa_factor_changed").await;
    audit(
        &state,
        caller.user_id.as_deref(),
        "mfa_factor_deleted_by_admin",
        state.client_ip(&req).as_deref(),
        json!({ "user_id": user.id, "factor_id": factor.id }),
    )
    .await;
    Ok(ok(&users::factor_json(&factor)))
}
