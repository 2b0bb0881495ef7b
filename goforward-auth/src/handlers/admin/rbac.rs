//! RBAC and administrator levels:
//! `GET/POST /admin/roles`, `PUT/DELETE /admin/roles/{name}`,
//! `GET /admin/permissions`, `GET/POST /admin/users/{id}/roles`,
//! `DELETE /admin/users/{id}/roles/{name}`, `PUT /admin/users/{id}/admin_role`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use goforward_core::{
    Principal,
    token::{AdminRole, Capability},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::find;
use crate::entity::{permission, role, role_permission, user_role};
use crate::error::{API_VERSION, AuthError, Result};
use crate::handlers::signup::is_unique_violation;
use crate::handlers::{State, audit, ok, parse};
use crate::rbac::{self, authorize};
use crate::users;

/// Most permissions one role may list.
const MAX_PERMISSIONS: usize = 200;

fn created(body: &Value) -> HttpResponse {
    HttpResponse::Created()
        .insert_header(("X-Supabase-Api-Version", API_VERSION))
        .json(body)
}

async fn role_json<C: ConnectionTrait>(db: &C, role: &role::Model) -> Result<Value> {
    let ids: Vec<String> = role_permission::Entity::find()
        .filter(role_permission::Column::RoleId.eq(role.id.clone()))
        .all(db)
        .await?
        .into_iter()
        .map(|rp| rp.permission_id)
        .collect();
    let names: Vec<String> = if ids.is_empty() {
        Vec::new()
    } else {
        permission::Entity::find()
            .filter(permission::Column::Id.is_in(ids))
            .order_by_asc(permission::Column::Name)
            .all(db)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect()
    };
    Ok(json!({
        "id": role.id,
        "name": role.name,
        "description": role.description,
        "permissions": names,
        "created_at": users::ts(&role.created_at),
        "updated_at": users::ts(&role.updated_at),
    }))
}

async fn find_role<C: ConnectionTrait>(db: &C, name: &str) -> Result<role::Model> {
    role::Entity::find()
        .filter(role::Column::Name.eq(name))
        .one(db)
        .await?
        .ok_or_else(|| AuthError::NotFound(format!("Role {name:?} not found")))
}

fn permission_names(value: Option<Vec<String>>) -> Result<Option<Vec<String>>> {
    let Some(list) = value else {
        return Ok(None);
    };
    if list.len() > MAX_PERMISSIONS {
        return Err(AuthError::Validation(format!(
            "A role may list at most {MAX_PERMISSIONS} permissions"
        )));
    }
    let mut names = list
        .iter()
        .map(|n| rbac::valid_permission_name(n.trim()))
        .collect::<Result<Vec<_>>>()?;
    names.sort();
    names.dedup();
    Ok(Some(names))
}

fn description(value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(d) if d.len() > 1000 => Err(AuthError::Validation(
            "description must be at most 1000 bytes".into(),
        )),
        other => Ok(other),
    }
}

/// Replaces the permissions of `role_id` by `names` (creating unknown permissions).
async fn set_permissions<C: ConnectionTrait>(
    db: &C,
    role_id: &str,
    names: &[String],
) -> Result<()> {
    role_permission::Entity::delete_many()
        .filter(role_permission::Column::RoleId.eq(role_id))
        .exec(db)
        .await?;
    let now = Utc::now();
    for name in names {
        let found = permission::Entity::find()
            .filter(permission::Column::Name.eq(name.as_str()))
            .one(db)
            .await?;
        let perm = match found {
            Some(p) => p,
            None => {
                permission::ActiveModel::from(permission::Model {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: name.clone(),
                    description: None,
                    created_at: now,
                })
                .insert(db)
                .await?
            }
        };
        role_permission::ActiveModel::from(role_permission::Model {
            role_id: role_id.to_owned(),
            permission_id: perm.id,
            created_at: now,
        })
        .insert(db)
        .await?;
    }
    Ok(())
}

/// `GET /admin/roles` (ViewUsers): every role with its permissions.
pub(crate) async fn list_roles(principal: Principal, state: State) -> Result<HttpResponse> {
    authorize(&state, &principal, Capability::ViewUsers).await?;
    let roles = role::Entity::find()
        .order_by_asc(role::Column::Name)
        .all(&state.db)
        .await?;
    let mut out = Vec::with_capacity(roles.len());
    for r in &roles {
        out.push(role_json(&state.db, r).await?);
    }
    Ok(ok(&json!({ "roles": out })))
}

/// `GET /admin/permissions` (ViewUsers).
pub(crate) async fn list_permissions(principal: Principal, state: State) -> Result<HttpResponse> {
    authorize(&state, &principal, Capability::ViewUsers).await?;
    let perms = permission::Entity::find()
        .order_by_asc(permission::Column::Name)
        .all(&state.db)
        .await?;
    let out: Vec<Value> = perms
        .iter()
        .map(|p| {
            json!({
                "id": p.id, "name": p.name, "description": p.description,
                "created_at": users::ts(&p.created_at),
            })
        })
        .collect();
    Ok(ok(&json!({ "permissions": out })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    name: Option<String>,
    description: Option<String>,
    permissions: Option<Vec<String>>,
}

/// `POST /admin/roles` (ManageAdmins): `{name, description?, permissions?}`; 201.
pub(crate) async fn create_role(
    req: HttpRequest,
    principal: Principal,
    state: State,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageAdmins).await?;
    let body: RoleBody = parse(body.into_inner())?;
    let name = rbac::valid_role_name(body.name.as_deref().unwrap_or_default().trim())?;
    let permissions = permission_names(body.permissions)?.unwrap_or_default();
    let description = description(body.description)?;
    let now = Utc::now();
    let txn = state.db.begin().await?;
    if role::Entity::find()
        .filter(role::Column::Name.eq(name.as_str()))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(AuthError::Conflict(format!("Role {name:?} already exists")));
    }
    let model = role::ActiveModel::from(role::Model {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.clone(),
        description,
        created_at: now,
        updated_at: now,
    })
    .insert(&txn)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            AuthError::Conflict(format!("Role {name:?} already exists"))
        } else {
            e.into()
        }
    })?;
    set_permissions(&txn, &model.id, &permissions).await?;
    let out = role_json(&txn, &model).await?;
    txn.commit().await?;
    audit(
        &state,
        caller.user_id.as_deref(),
        "role_created",
        state.client_ip(&req).as_deref(),
        json!({ "role": name, "permissions": permissions }),
    )
    .await;
    Ok(created(&out))
}

/// `PUT /admin/roles/{name}` (ManageAdmins): `{description?, permissions?}`
/// (the list replaces the role's permissions).
pub(crate) async fn update_role(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageAdmins).await?;
    let body: RoleBody = parse(body.into_inner())?;
    if body.name.is_some() {
        return Err(AuthError::Validation(
            "A role cannot be renamed: create a new one".into(),
        ));
    }
    let permissions = permission_names(body.permissions)?;
    let description = description(body.description)?;
    let txn = state.db.begin().await?;
    let found = find_role(&txn, &path).await?;
    let mut active: role::ActiveModel = found.clone().into();
    if description.is_some() {
        active.description = sea_orm::Set(description);
    }
    active.updated_at = sea_orm::Set(Utc::now());
    let updated = active.update(&txn).await?;
    if let Some(names) = &permissions {
        set_permissions(&txn, &updated.id, names).await?;
    }
    let out = role_json(&txn, &updated).await?;
    txn.commit().await?;
    audit(
        &state,
        caller.user_id.as_deref(),
        "role_updated",
        state.client_ip(&req).as_deref(),
        json!({ "role": updated.name, "permissions": permissions }),
    )
    .await;
    Ok(ok(&out))
}

/// `DELETE /admin/roles/{name}` (ManageAdmins): removes the role from every
/// holder (their `app_metadata.roles` is updated).
pub(crate) async fn delete_role(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageAdmins).await?;
    let txn = state.db.begin().await?;
    let found = find_role(&txn, &path).await?;
    let holders: Vec<String> = user_role::Entity::find()
        .filter(user_role::Column::RoleId.eq(found.id.clone()))
        .all(&txn)
        .await?
        .into_iter()
        .map(|a| a.user_id)
        .collect();
    user_role::Entity::delete_many()
        .filter(user_role::Column::RoleId.eq(found.id.clone()))
        .exec(&txn)
        .await?;
    role_permission::Entity::delete_many()
        .filter(role_permission::Column::RoleId.eq(found.id.clone()))
        .exec(&txn)
        .await?;
    role::Entity::delete_by_id(found.id.clone())
        .exec(&txn)
        .await?;
    for user_id in &holders {
        rbac::sync_roles(&txn, user_id).await?;
    }
    txn.commit().await?;
    // Keys acting as this role stop working (their creators no longer hold it).
    state.authenticator.forget_api_keys();
    audit(
        &state,
        caller.user_id.as_deref(),
        "role_deleted",
        state.client_ip(&req).as_deref(),
        json!({ "role": found.name, "holders": holders.len() }),
    )
    .await;
    Ok(ok(&json!({})))
}

async fn assignments(state: &State, user_id: &str) -> Result<Value> {
    let user = find(state, user_id).await?;
    Ok(json!({
        "user_id": user.id,
        "admin_role": rbac::admin_level(&user).map(AdminRole::as_str),
        "roles": rbac::role_names(&state.db, &user.id).await?,
    }))
}

/// `GET /admin/users/{id}/roles` (ViewUsers): `{user_id, admin_role, roles}`.
pub(crate) async fn user_roles(
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    authorize(&state, &principal, Capability::ViewUsers).await?;
    Ok(ok(&assignments(&state, &path).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    role: Option<String>,
}

/// `POST /admin/users/{id}/roles` (ManageAdmins, target below the caller):
/// `{role}`. Roles carry AccessControl power (they reach the JWT), so
/// handing them out is an administrators' administrator's job.
pub(crate) async fn assign_role(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageAdmins).await?;
    let target = find(&state, &path).await?;
    caller.may_act_on(&target)?;
    let body: AssignBody = parse(body.into_inner())?;
    let Some(name) = body
        .role
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
    else {
        return Err(AuthError::Validation("role is required".into()));
    };
    let txn = state.db.begin().await?;
    let found = find_role(&txn, &name).await?;
    let exists = user_role::Entity::find_by_id((target.id.clone(), found.id.clone()))
        .one(&txn)
        .await?
        .is_some();
    if !exists {
        let inserted = user_role::ActiveModel::from(user_role::Model {
            user_id: target.id.clone(),
            role_id: found.id.clone(),
            granted_by: caller.user_id.clone(),
            created_at: Utc::now(),
        })
        .insert(&txn)
        .await;
        match inserted {
            Ok(_) => {}
            // A concurrent request assigned it first: the same outcome.
            Err(err) if is_unique_violation(&err) => {
                txn.rollback().await?;
                return Ok(ok(&assignments(&state, &target.id).await?));
            }
            Err(err) => return Err(err.into()),
        }
        rbac::sync_roles(&txn, &target.id).await?;
    }
    txn.commit().await?;
    if !exists {
        audit(
            &state,
            caller.user_id.as_deref(),
            "role_assigned",
            state.client_ip(&req).as_deref(),
            json!({ "user_id": target.id, "role": found.name }),
        )
        .await;
    }
    Ok(ok(&assignments(&state, &target.id).await?))
}

/// `DELETE /admin/users/{id}/roles/{name}` (ManageAdmins, target below the caller).
pub(crate) async fn unassign_role(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageAdmins).await?;
    let (user_id, name) = path.into_inner();
    let target = find(&state, &user_id).await?;
    caller.may_act_on(&target)?;
    let txn = state.db.begin().await?;
    let found = find_role(&txn, &name).await?;
    let removed = user_role::Entity::delete_by_id((target.id.clone(), found.id.clone()))
        .exec(&txn)
        .await?
        .rows_affected;
    if removed == 0 {
        return Err(AuthError::NotFound(format!(
            "The user does not hold the role {name:?}"
        )));
    }
    rbac::sync_roles(&txn, &target.id).await?;
    txn.commit().await?;
    // Keys the user created for this role stop working.
    state.authenticator.forget_api_keys();
    audit(
        &state,
        caller.user_id.as_deref(),
        "role_unassigned",
        state.client_ip(&req).as_deref(),
        json!({ "user_id": target.id, "role": found.name }),
    )
    .await;
    Ok(ok(&assignments(&state, &target.id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelBody {
    admin_role: Value,
}

/// `PUT /admin/users/{id}/admin_role` (ManageAdmins): `{admin_role: "admin" | null}`;
/// only levels strictly below the caller's, on users strictly below the
/// caller (service_role: any). Answers the user object.
pub(crate) async fn set_admin_role(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageAdmins).await?;
    let target = find(&state, &path).await?;
    let body: LevelBody = parse(body.into_inner())?;
    let level = rbac::parse_level(&body.admin_role)?;
    caller.may_grant(Some(&target), level)?;
    let previous = rbac::admin_level(&target);
    let updated = rbac::set_admin_level(&state.db, target, level).await?;
    audit(
        &state,
        caller.user_id.as_deref(),
        "admin_role_changed",
        state.client_ip(&req).as_deref(),
        json!({
            "user_id": updated.id,
            "from": previous.map(AdminRole::as_str),
            "to": level.map(AdminRole::as_str),
        }),
    )
    .await;
    Ok(ok(&users::user_json(&state.db, &updated).await?))
}
