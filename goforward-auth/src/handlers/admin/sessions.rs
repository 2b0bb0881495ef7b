//! A user's sessions: `GET /admin/users/{id}/sessions` (ViewUsers),
//! `DELETE /admin/users/{id}/sessions` (all) and
//! `DELETE /admin/users/{id}/sessions/{session_id}` (ManageUsers, target below the caller).

use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::{Principal, token::Capability};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use super::find;
use crate::entity::session;
use crate::error::{AuthError, Result};
use crate::handlers::{State, audit, ok};
use crate::rbac::authorize;
use crate::sessions;
use crate::users::ts;

fn session_json(s: &session::Model) -> Value {
    json!({
        "id": s.id,
        "user_id": s.user_id,
        "aal": s.aal,
        "amr": serde_json::from_str::<Value>(&s.amr).unwrap_or_else(|_| json!([])),
        "user_agent": s.user_agent,
        "ip": s.ip,
        "created_at": ts(&s.created_at),
        "updated_at": ts(&s.updated_at),
        "refreshed_at": s.refreshed_at.as_ref().map(ts),
        "not_after": s.not_after.as_ref().map(ts),
    })
}

/// `GET /admin/users/{id}/sessions`: `{sessions: [...]}`, newest first.
pub(crate) async fn list_sessions(
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    authorize(&state, &principal, Capability::ViewUsers).await?;
    let user = find(&state, &path).await?;
    let rows = session::Entity::find()
        .filter(session::Column::UserId.eq(user.id.clone()))
        .order_by_desc(session::Column::CreatedAt)
        .order_by_asc(session::Column::Id)
        .all(&state.db)
        .await?;
    Ok(ok(&json!({
        "sessions": rows.iter().map(session_json).collect::<Vec<_>>()
    })))
}

/// `DELETE /admin/users/{id}/sessions`: ends every session of the user.
pub(crate) async fn revoke_sessions(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageUsers).await?;
    let user = find(&state, &path).await?;
    caller.may_act_on(&user)?;
    let ended = sessions::revoke_user_sessions(&state.db, &user.id, None).await?;
    sessions::announce_revoked(&state, &user.id, Some(ended), "revoked").await;
    audit(
        &state,
        caller.user_id.as_deref(),
        "sessions_revoked_by_admin",
        state.client_ip(&req).as_deref(),
        json!({ "user_id": user.id }),
    )
    .await;
    Ok(ok(&json!({})))
}

/// `DELETE /admin/users/{id}/sessions/{session_id}`: ends one session (404
/// when the user has no such session).
pub(crate) async fn revoke_session(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageUsers).await?;
    let (user_id, session_id) = path.into_inner();
    let user = find(&state, &user_id).await?;
    caller.may_act_on(&user)?;
    let found = session::Entity::find_by_id(session_id)
        .one(&state.db)
        .await?
        .filter(|s| s.user_id == user.id)
        .ok_or_else(|| AuthError::NotFound("Session not found".into()))?;
    if sessions::revoke_session(&state.db, &found.id).await? {
        sessions::announce_revoked(&state, &user.id, Some(vec![found.id.clone()]), "revoked").await;
    }
    audit(
        &state,
        caller.user_id.as_deref(),
        "session_revoked_by_admin",
        state.client_ip(&req).as_deref(),
        json!({ "user_id": user.id, "session_id": found.id }),
    )
    .await;
    Ok(ok(&json!({})))
}
