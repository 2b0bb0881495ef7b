//! Service-account API keys (ManageAdmins): `POST /admin/api-keys` (the key
//! is in the answer once), `GET /admin/api-keys`, `DELETE /admin/api-keys/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use goforward_core::{Principal, token::Capability};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_keys::{self, key_json};
use crate::entity::{api_key, permission, role, role_permission, user_role};
use crate::error::{API_VERSION, AuthError, Result};
use crate::handlers::{State, audit, ok, parse};
use crate::rbac::{self, Caller, authorize};
use crate::state::AuthState;

/// Longest key lifetime accepted (ten years).
const MAX_LIFETIME_SECS: i64 = 10 * 365 * 86_400;
/// Most scopes per key.
const MAX_SCOPES: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: Option<String>,
    role: Option<String>,
    scopes: Option<Vec<String>>,
    expires_in: Option<i64>,
    expires_at: Option<String>,
}

/// The permissions `user_id` holds through their roles.
async fn permissions_of(state: &AuthState, user_id: &str) -> Result<Vec<String>> {
    let role_ids: Vec<String> = user_role::Entity::find()
        .filter(user_role::Column::UserId.eq(user_id))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|a| a.role_id)
        .collect();
    if role_ids.is_empty() {
        return Ok(Vec::new());
    }
    let perm_ids: Vec<String> = role_permission::Entity::find()
        .filter(role_permission::Column::RoleId.is_in(role_ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|rp| rp.permission_id)
        .collect();
    if perm_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(permission::Entity::find()
        .filter(permission::Column::Id.is_in(perm_ids))
        .all(&state.db)
        .await?
        .into_iter()
        .map(|p| p.name)
        .collect())
}

/// The role a new key may act as: `service_role` only for the service_role
/// caller; otherwise an RBAC role (a user must hold it themselves).
async fn key_role(state: &AuthState, caller: &Caller, requested: Option<&str>) -> Result<String> {
    let requested = requested.map(str::trim).filter(|r| !r.is_empty());
    match (requested, caller.user_id.as_deref()) {
        (None | Some("service_role"), None) => Ok("service_role".to_owned()),
        (Some("service_role"), Some(_)) => Err(AuthError::NotAdmin(
            "Only the service_role key can create service_role API keys".into(),
        )),
        (None, Some(_)) => Err(AuthError::Validation(
            "role is required: one of your RBAC roles".into(),
        )),
        (Some(name), None) => rbac::valid_role_name(name),
        (Some(name), Some(user_id)) => {
            let name = rbac::valid_role_name(name)?;
            if role::Entity::find()
                .filter(role::Column::Name.eq(name.as_str()))
                .one(&state.db)
                .await?
                .is_none()
            {
                return Err(AuthError::NotFound(format!("Role {name:?} not found")));
            }
            if !rbac::role_names(&state.db, user_id).await?.contains(&name) {
                return Err(AuthError::NotAdmin(format!(
                    "You can only create keys for roles you hold; you do not hold {name:?}"
                )));
            }
            Ok(name)
        }
    }
}

fn expiry(body: &CreateBody, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
    match (body.expires_in, body.expires_at.as_deref()) {
        (Some(_), Some(_)) => Err(AuthError::Validation(
            "Give expires_in or expires_at, not both".into(),
        )),
        (Some(secs), None) if (60..=MAX_LIFETIME_SECS).contains(&secs) => {
            Ok(Some(now + Duration::seconds(secs)))
        }
        (Some(_), None) => Err(AuthError::Validation(format!(
            "expires_in must be between 60 and {MAX_LIFETIME_SECS} seconds"
        ))),
        (None, Some(at)) => {
            let at = DateTime::parse_from_rfc3339(at)
                .map_err(|_| {
                    AuthError::Validation("expires_at must be an RFC 3339 timestamp".into())
                })?
                .with_timezone(&Utc);
            if at <= now + Duration::seconds(60) || at > now + Duration::seconds(MAX_LIFETIME_SECS)
            {
                return Err(AuthError::Validation(
                    "expires_at must be at least a minute and at most ten years ahead".into(),
                ));
            }
            Ok(Some(at))
        }
        (None, None) => Ok(None),
    }
}

/// `POST /admin/api-keys`: `{name, role?, scopes?, expires_in? | expires_at?}`;
/// 201 with the key object plus `key` (shown only here).
pub(crate) async fn create_key(
    req: HttpRequest,
    principal: Principal,
    state: State,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageAdmins).await?;
    let body: CreateBody = parse(body.into_inner())?;
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 128)
        .ok_or_else(|| AuthError::Validation("name is required (1 to 128 bytes)".into()))?
        .to_owned();
    let now = Utc::now();
    let expires_at = expiry(&body, now)?;
    let mut scopes = body
        .scopes
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|s| rbac::valid_permission_name(s.trim()))
        .collect::<Result<Vec<_>>>()?;
    scopes.sort();
    scopes.dedup();
    if scopes.len() > MAX_SCOPES {
        return Err(AuthError::Validation(format!(
            "A key may have at most {MAX_SCOPES} scopes"
        )));
    }
    let role = key_role(&state, &caller, body.role.as_deref()).await?;
    if let Some(user_id) = caller.user_id.as_deref() {
        let held = permissions_of(&state, user_id).await?;
        if let Some(extra) = scopes.iter().find(|s| !held.contains(s)) {
            return Err(AuthError::NotAdmin(format!(
                "You can only give a key scopes among your own permissions; you lack {extra:?}"
            )));
        }
    }
    let new = api_keys::generate();
    let row = api_key::ActiveModel::from(api_key::Model {
        id: uuid::Uuid::new_v4().to_string(),
        public_id: new.public_id,
        secret_hash: new.secret_hash,
        name,
        role,
        scopes: json!(scopes).to_string(),
        created_by: caller.user_id.clone(),
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
    })
    .insert(&state.db)
    .await?;
    audit(
        &state,
        caller.user_id.as_deref(),
        "api_key_created",
        state.client_ip(&req).as_deref(),
        json!({ "api_key_id": row.id, "role": row.role }),
    )
    .await;
    let mut out = key_json(&row);
    out["key"] = json!(new.key);
    Ok(HttpResponse::Created()
        .insert_header(("X-Supabase-Api-Version", API_VERSION))
        .json(out))
}

/// `GET /admin/api-keys`: every key, newest first, without secrets.
pub(crate) async fn list_keys(principal: Principal, state: State) -> Result<HttpResponse> {
    authorize(&state, &principal, Capability::ManageAdmins).await?;
    let rows = api_key::Entity::find()
        .order_by_desc(api_key::Column::CreatedAt)
        .order_by_asc(api_key::Column::Id)
        .all(&state.db)
        .await?;
    Ok(ok(&json!({
        "api_keys": rows.iter().map(key_json).collect::<Vec<_>>()
    })))
}

/// `DELETE /admin/api-keys/{id}`: revokes the key (refused from the next
/// request on this node, within a few seconds elsewhere). Users cannot
/// revoke service_role keys.
pub(crate) async fn revoke_key(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageAdmins).await?;
    let not_found = || AuthError::NotFound("API key not found".into());
    let row = api_key::Entity::find_by_id(path.into_inner())
        .one(&state.db)
        .await?
        .filter(|k| k.revoked_at.is_none())
        .ok_or_else(not_found)?;
    if row.role == "service_role" && !caller.is_service() {
        return Err(AuthError::NotAdmin(
            "Only the service_role key can revoke service_role API keys".into(),
        ));
    }
    let now = Utc::now();
    let done = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(row.id.clone()))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(&state.db)
        .await?
        .rows_affected;
    if done == 0 {
        return Err(not_found());
    }
    state.authenticator.forget_api_keys();
    audit(
        &state,
        caller.user_id.as_deref(),
        "api_key_revoked",
        state.client_ip(&req).as_deref(),
        json!({ "api_key_id": row.id }),
    )
    .await;
    let mut revoked = row;
    revoked.revoked_at = Some(now);
    Ok(ok(&key_json(&revoked)))
}
