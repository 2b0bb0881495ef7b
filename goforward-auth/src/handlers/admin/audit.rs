//! `GET /admin/audit` (ViewLogs): the audit log, newest first, in GoTrue's
//! shape (`[{id, payload, created_at, ip_address}]`, `X-Total-Count`).

use actix_web::{HttpResponse, web};
use goforward_core::{Principal, token::Capability};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::entity::audit_log;
use crate::error::{API_VERSION, AuthError, Result};
use crate::handlers::State;
use crate::rbac::authorize;
use crate::users;

/// Query of `GET /admin/audit`.
#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    page: Option<String>,
    per_page: Option<String>,
    /// Only entries with this action (e.g. `login`).
    action: Option<String>,
    /// Only entries by this actor (user id).
    actor_id: Option<String>,
}

fn number(value: Option<&str>, default: u64, key: &str) -> Result<u64> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1 && *n <= 1_000_000)
            .ok_or_else(|| AuthError::Validation(format!("{key} must be a positive integer"))),
    }
}

/// `GET /admin/audit?page=&per_page=&action=&actor_id=`.
pub(crate) async fn list_audit(
    principal: Principal,
    state: State,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse> {
    authorize(&state, &principal, Capability::ViewLogs).await?;
    let page = number(query.page.as_deref(), 1, "page")?;
    let per_page = number(query.per_page.as_deref(), 50, "per_page")?.min(1000);
    let mut base = audit_log::Entity::find();
    if let Some(action) = query.action.as_deref().filter(|a| !a.is_empty()) {
        base = base.filter(audit_log::Column::Action.eq(action));
    }
    if let Some(actor) = query.actor_id.as_deref().filter(|a| !a.is_empty()) {
        base = base.filter(audit_log::Column::ActorId.eq(actor));
    }
    let total = base.clone().count(&state.db).await?;
    let rows = base
        .order_by_desc(audit_log::Column::CreatedAt)
        .order_by_asc(audit_log::Column::Id)
        .offset((page - 1) * per_page)
        .limit(per_page)
        .all(&state.db)
        .await?;
    let out: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut payload = users::json_object(&row.payload);
            payload.insert("action".into(), json!(row.action));
            payload.insert("actor_id".into(), json!(row.actor_id));
            json!({
                "id": row.id,
                "payload": payload,
                "created_at": users::ts(&row.created_at),
                "ip_address": row.ip.clone().unwrap_or_default(),
            })
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Supabase-Api-Version", API_VERSION))
        .insert_header(("X-Total-Count", total.to_string()))
        .json(out))
}
