//! `/admin/users` and `/admin/users/{id}`: list, get, create, update, delete.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{Duration, Utc};
use goforward_core::{
    Principal,
    token::{AdminRole, Capability},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::find;
use crate::entity::{identity, role, session, user, user_role};
use crate::error::{API_VERSION, AuthError, Result};
use crate::handlers::{State, audit, create_user, ok, parse};
use crate::password;
use crate::rbac::{Caller, authorize};
use crate::sessions;
use crate::users;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    page: Option<String>,
    per_page: Option<String>,
    /// GoTrue's search: a substring of the email.
    filter: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    /// An RBAC role name the user holds.
    role: Option<String>,
    /// `true`: only users banned now; `false`: only users not banned.
    banned: Option<String>,
}

/// `%text%` with `%`, `_` and `\` escaped (for `LIKE … ESCAPE '\'`).
fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The search and filter conditions of `GET /admin/users`.
fn list_condition(query: &ListQuery) -> Result<sea_orm::Condition> {
    use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, Query};
    let mut cond = sea_orm::Condition::all().add(user::Column::DeletedAt.is_null());
    let text = |v: &Option<String>, key: &str| -> Result<Option<String>> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) if v.chars().count() > 255 => Err(AuthError::Validation(format!(
                "{key} must be at most 255 characters"
            ))),
            Some(v) => Ok(Some(v.to_owned())),
        }
    };
    for email in [text(&query.filter, "filter")?, text(&query.email, "email")?]
        .into_iter()
        .flatten()
    {
        let pattern = contains_pattern(&email.to_lowercase());
        cond = cond.add(
            Expr::expr(Func::lower(Expr::col((user::Entity, user::Column::Email))))
                .like(LikeExpr::new(pattern).escape('\\')),
        );
    }
    if let Some(phone) = text(&query.phone, "phone")? {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Err(AuthError::Validation("phone must contain digits".into()));
        }
        cond = cond.add(
            Expr::col((user::Entity, user::Column::Phone))
                .like(LikeExpr::new(contains_pattern(&digits)).escape('\\')),
        );
    }
    if let Some(role) = text(&query.role, "role")? {
        let holders = Query::select()
            .column((user_role::Entity, user_role::Column::UserId))
            .from(user_role::Entity)
            .inner_join(
                role::Entity,
                Expr::col((role::Entity, role::Column::Id))
                    .equals((user_role::Entity, user_role::Column::RoleId)),
            )
            .and_where(Expr::col((role::Entity, role::Column::Name)).eq(role))
            .to_owned();
        cond = cond.add(Expr::col((user::Entity, user::Column::Id)).in_subquery(holders));
    }
    let now = Utc::now();
    match query.banned.as_deref().map(str::trim) {
        None | Some("") => {}
        Some("true") => cond = cond.add(user::Column::BannedUntil.gt(now)),
        Some("false") => {
            cond = cond.add(
                sea_orm::Condition::any()
                    .add(user::Column::BannedUntil.is_null())
                    .add(user::Column::BannedUntil.lte(now)),
            )
        }
        Some(_) => {
            return Err(AuthError::Validation("banned must be true or false".into()));
        }
    }
    Ok(cond)
}

fn number(value: Option<&str>, default: u64, key: &str) -> Result<u64> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| AuthError::Validation(format!("{key} must be a positive integer"))),
    }
}

pub(crate) async fn list_users(
    principal: Principal,
    state: State,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    authorize(&state, &principal, Capability::ViewUsers).await?;
    let page = number(query.page.as_deref(), 1, "page")?;
    let per_page = number(query.per_page.as_deref(), 50, "per_page")?.min(1000);
    let base = user::Entity::find().filter(list_condition(&query)?);
    let total = base.clone().count(&state.db).await?;
    let rows = base
        .order_by_desc(user::Column::CreatedAt)
        .order_by_asc(user::Column::Id)
        .offset((page - 1) * per_page)
        .limit(per_page)
        .all(&state.db)
        .await?;
    let mut list = Vec::with_capacity(rows.len());
    for row in &rows {
        list.push(users::user_json(&state.db, row).await?);
    }
    let last = total.div_ceil(per_page).max(1);
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "</admin/users?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push(format!(
        "</admin/users?page={last}&per_page={per_page}>; rel=\"last\""
    ));
    Ok(HttpResponse::Ok()
        .insert_header(("X-Supabase-Api-Version", API_VERSION))
        .insert_header(("X-Total-Count", total.to_string()))
        .insert_header(("Link", links.join(", ")))
        .json(json!({ "users": list, "aud": state.config.jwt_aud })))
}

pub(crate) async fn get_user(
    principal: Principal,
    state: State,
    path: web::Path<String>,
) -> Result<HttpResponse> {
    authorize(&state, &principal, Capability::ViewUsers).await?;
    let user = find(&state, &path).await?;
    Ok(ok(&users::user_json(&state.db, &user).await?))
}

#[derive(Debug, Default, Deserialize)]
struct AdminUserBody {
    email: Option<String>,
    phone: Option<String>,
    password: Option<String>,
    email_confirm: Option<bool>,
    user_metadata: Option<Value>,
    app_metadata: Option<Value>,
    role: Option<String>,
    ban_duration: Option<String>,
}

fn object(value: Option<Value>, key: &str) -> Result<Option<Map<String, Value>>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(AuthError::BadJson(format!(
            "Could not parse request body as JSON: {key} must be an object"
        ))),
    }
}

/// Takes the server-managed keys out of an `app_metadata` patch:
/// `admin_role` becomes a level change (checked by [`Caller::may_grant`]);
/// `roles` is refused (assignments go through `/admin/users/{id}/roles`).
fn privileged_keys(
    app_metadata: &mut Option<Map<String, Value>>,
) -> Result<Option<Option<AdminRole>>> {
    let Some(map) = app_metadata else {
        return Ok(None);
    };
    if map.contains_key("roles") {
        return Err(AuthError::Validation(
            "app_metadata.roles is managed by the server: assign roles with /admin/users/{id}/roles"
                .into(),
        ));
    }
    map.remove("admin_role")
        .map(|v| crate::rbac::parse_level(&v))
        .transpose()
}

/// Changing the database role (`role` claim) needs `ManageAdmins`: a custom
/// role can carry access rights of its own.
fn may_set_role(caller: &Caller, role: Option<&String>) -> Result<()> {
    if role.is_some() && !caller.holds(Capability::ManageAdmins) {
        return Err(AuthError::NotAdmin(
            "Changing a user's role requires the ManageAdmins capability".into(),
        ));
    }
    Ok(())
}

fn valid_role(role: &str) -> Result<String> {
    let role = role.trim();
    if role.is_empty()
        || role.len() > 64
        || !role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(AuthError::Validation(
            "role must be 1 to 64 characters of letters, digits, _ and -".into(),
        ));
    }
    // Core treats these roles specially (service_role bypasses access control).
    if matches!(
        role,
        "service_role" | "anon" | "supabase_admin" | "postgres"
    ) {
        return Err(AuthError::Validation(format!("role {role:?} is reserved")));
    }
    Ok(role.to_owned())
}

/// Parses a Go-style duration (`24h`, `1h30m`, `90s`) or `none`.
fn ban_until(duration: &str) -> Result<Option<chrono::DateTime<Utc>>> {
    let d = duration.trim();
    if d == "none" {
        return Ok(None);
    }
    let invalid =
        || AuthError::Validation(format!("invalid format for ban duration: {duration:?}"));
    let mut total = 0i64;
    let mut digits = String::new();
    for c in d.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| invalid())?;
        digits.clear();
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(invalid()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(invalid)?;
    }
    if !digits.is_empty() || total <= 0 || total > 100 * 365 * 86_400 {
        return Err(invalid());
    }
    Ok(Some(Utc::now() + Duration::seconds(total)))
}

pub(crate) async fn create(
    req: HttpRequest,
    principal: Principal,
    state: State,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageUsers).await?;
    let body: AdminUserBody = parse(body.into_inner())?;
    if body.phone.as_deref().is_some_and(|p| !p.trim().is_empty()) {
        return Err(AuthError::Validation(
            "Phone users are not supported yet".into(),
        ));
    }
    let Some(email) = body
        .email
        .as_deref()
        .map(users::normalize_email)
        .filter(|e| !e.is_empty())
    else {
        return Err(AuthError::Validation(
            "Unable to validate email address: email is required".into(),
        ));
    };
    if !users::valid_email(&email) {
        return Err(AuthError::EmailAddressInvalid);
    }
    let user_metadata = object(body.user_metadata, "user_metadata")?.unwrap_or_default();
    let mut app_metadata = object(body.app_metadata, "app_metadata")?;
    let level = privileged_keys(&mut app_metadata)?;
    let role = body.role.as_deref().map(valid_role).transpose()?;
    may_set_role(&caller, role.as_ref())?;
    if let Some(level) = level {
        caller.may_grant(None, level)?;
    }
    let banned = body
        .ban_duration
        .as_deref()
        .map(ban_until)
        .transpose()?
        .flatten();
    let hash = match body.password.as_deref() {
        Some(pw) => {
            password::check_policy(pw, state.config.password_min_length)?;
            Some(password::hash(pw, state.config.bcrypt_cost).await?)
        }
        None => None,
    };
    if users::find_by_email(&state.db, &email).await?.is_some() {
        return Err(AuthError::EmailExists);
    }
    let created = create_user(
        &state,
        Some(&email),
        hash,
        user_metadata,
        body.email_confirm.unwrap_or(false),
    )
    .await
    .map_err(|e| match e {
        AuthError::Database(db) if crate::handlers::signup::is_unique_violation(&db) => {
            AuthError::EmailExists
        }
        other => other,
    })?;
    let mut active: user::ActiveModel = created.clone().into();
    if let Some(extra) = app_metadata {
        let mut app = users::json_object(&created.raw_app_meta_data);
        app.extend(extra);
        active.raw_app_meta_data = Set(Value::Object(app).to_string());
    }
    if let Some(role) = role {
        active.role = Set(role);
    }
    active.banned_until = Set(banned);
    let mut created = active.update(&state.db).await?;
    if let Some(level) = level.flatten() {
        created = crate::rbac::set_admin_level(&state.db, created, Some(level)).await?;
    }
    audit(
        &state,
        caller.user_id.as_deref(),
        "user_signedup_by_admin",
        state.client_ip(&req).as_deref(),
        json!({ "user_id": created.id, "admin_role": level.flatten().map(AdminRole::as_str) }),
    )
    .await;
    Ok(ok(&users::user_json(&state.db, &created).await?))
}

pub(crate) async fn update(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageUsers).await?;
    let existing = find(&state, &path).await?;
    caller.may_act_on(&existing)?;
    let body: AdminUserBody = parse(body.into_inner())?;
    let user_metadata = object(body.user_metadata, "user_metadata")?;
    let mut app_metadata = object(body.app_metadata, "app_metadata")?;
    let level = privileged_keys(&mut app_metadata)?;
    if let Some(level) = level {
        caller.may_grant(Some(&existing), level)?;
    }
    let role = body.role.as_deref().map(valid_role).transpose()?;
    may_set_role(&caller, role.as_ref())?;
    let ban = body.ban_duration.as_deref().map(ban_until).transpose()?;
    let email = match body
        .email
        .as_deref()
        .map(users::normalize_email)
        .filter(|e| !e.is_empty())
    {
        Some(email) if !users::valid_email(&email) => return Err(AuthError::EmailAddressInvalid),
        Some(email) => {
            if users::find_by_email(&state.db, &email)
                .await?
                .is_some_and(|u| u.id != existing.id)
            {
                return Err(AuthError::EmailExists);
            }
            Some(email)
        }
        None => None,
    };
    let hash = match body.password.as_deref() {
        Some(pw) => {
            password::check_policy(pw, state.config.password_min_length)?;
            Some(password::hash(pw, state.config.bcrypt_cost).await?)
        }
        None => None,
    };
    let now = Utc::now();
    let mut active: user::ActiveModel = existing.clone().into();
    if let Some(extra) = user_metadata {
        let mut merged = users::json_object(&existing.raw_user_meta_data);
        merged.extend(extra);
        active.raw_user_meta_data = Set(Value::Object(merged).to_string());
    }
    if app_metadata.is_some() || level.is_some() {
        let mut merged = users::json_object(&existing.raw_app_meta_data);
        merged.extend(app_metadata.unwrap_or_default());
        match level {
            Some(Some(level)) => {
                merged.insert("admin_role".into(), json!(level.as_str()));
            }
            Some(None) => {
                merged.remove("admin_role");
            }
            None => {}
        }
        active.raw_app_meta_data = Set(Value::Object(merged).to_string());
    }
    if let Some(role) = role {
        active.role = Set(role);
    }
    if let Some(ban) = ban {
        active.banned_until = Set(ban);
    }
    if let Some(hash) = &hash {
        active.encrypted_password = Set(Some(hash.clone()));
    }
    if body.email_confirm == Some(true) && existing.email_confirmed_at.is_none() {
        active.email_confirmed_at = Set(Some(now));
    }
    active.updated_at = Set(now);
    let mut updated = active.update(&state.db).await?;
    if let Some(email) = email.filter(|e| existing.email.as_deref() != Some(e.as_str())) {
        updated = crate::handlers::user::apply_email(&state, updated, &email).await?;
    }
    if hash.is_some() || ban.flatten().is_some() {
        // A password reset or a ban ends every session (checklist item 4).
        let ended = sessions::revoke_user_sessions(&state.db, &updated.id, None).await?;
        if ban.flatten().is_some() {
            // A banned user can open no new session: every one is concerned.
            sessions::announce_revoked(&state, &updated.id, None, "banned").await;
        } else {
            sessions::announce_revoked(&state, &updated.id, Some(ended), "password_changed").await;
        }
    }
    if ban.flatten().is_some() {
        // API keys the user created stop working with the ban.
        state.authenticator.forget_api_keys();
    }
    let mut details = json!({ "user_id": updated.id });
    if let Some(level) = level {
        details["admin_role"] = json!(level.map(AdminRole::as_str));
    }
    audit(
        &state,
        caller.user_id.as_deref(),
        "user_updated_by_admin",
        state.client_ip(&req).as_deref(),
        details,
    )
    .await;
    Ok(ok(&users::user_json(&state.db, &updated).await?))
}

#[derive(Debug, Default, Deserialize)]
struct DeleteBody {
    should_soft_delete: Option<bool>,
}

pub(crate) async fn delete(
    req: HttpRequest,
    principal: Principal,
    state: State,
    path: web::Path<String>,
    body: Option<web::Json<Value>>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageUsers).await?;
    let existing = find(&state, &path).await?;
    caller.may_act_on(&existing)?;
    let body: DeleteBody = match body {
        Some(b) => parse(b.into_inner())?,
        None => DeleteBody::default(),
    };
    let txn = state.db.begin().await?;
    if body.should_soft_delete.unwrap_or(false) {
        sessions::revoke_user_sessions(&txn, &existing.id, None).await?;
        identity::Entity::delete_many()
            .filter(identity::Column::UserId.eq(existing.id.clone()))
            .exec(&txn)
            .await?;
        let mut active: user::ActiveModel = existing.clone().into();
        active.deleted_at = Set(Some(Utc::now()));
        active.email = Set(None);
        active.phone = Set(None);
        active.email_change = Set(None);
        active.encrypted_password = Set(None);
        active.update(&txn).await?;
    } else {
        session::Entity::delete_many()
            .filter(session::Column::UserId.eq(existing.id.clone()))
            .exec(&txn)
            .await?;
        user::Entity::delete_by_id(existing.id.clone())
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    sessions::announce_revoked(&state, &existing.id, None, "deleted").await;
    state.authenticator.forget_api_keys();
    audit(
        &state,
        caller.user_id.as_deref(),
        "user_deleted",
        state.client_ip(&req).as_deref(),
        json!({ "user_id": existing.id, "soft": body.should_soft_delete.unwrap_or(false) }),
    )
    .await;
    Ok(ok(&json!({})))
}
