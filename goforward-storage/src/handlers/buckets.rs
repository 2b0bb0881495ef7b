//! The bucket API: list, get, create, update, empty, delete.

use actix_web::{HttpResponse, web};
use chrono::Utc;
use goforward_core::access::{Action, Resource};
use goforward_core::token::Principal;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, SqlErr,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::State;
use crate::bucket::Bucket;
use crate::entity::{bucket, object};
use crate::error::{Result, StorageError};
use crate::mime;
use crate::names::{parse_size, validate_bucket_id};
use crate::state::{StorageState, ts};

const ADMIN_DENIED: &str = "new row violates row-level security policy";

pub(crate) fn bucket_json(b: &bucket::Model) -> Value {
    json!({
        "id": b.id,
        "name": b.name,
        "owner": b.owner.clone().unwrap_or_default(),
        "owner_id": b.owner,
        "public": b.public,
        "type": "STANDARD",
        "file_size_limit": b.file_size_limit,
        "allowed_mime_types": b.allowed_mime_types,
        "versioning": b.versioning,
        "quota": b.quota,
        "owner_quota": b.owner_quota,
        "max_versions": b.max_versions,
        "created_at": ts(&b.created_at),
        "updated_at": ts(&b.updated_at),
    })
}

async fn may(state: &StorageState, who: &Principal, action: Action, b: &bucket::Model) -> bool {
    state
        .access
        .decide(who, &action, &Resource::Bucket { id: &b.id })
        .await
        .permits(&bucket_json(b))
}

async fn may_admin(state: &StorageState, who: &Principal, id: &str) -> Result<()> {
    let decision = state
        .access
        .decide(who, &Action::Admin, &Resource::Bucket { id })
        .await;
    if decision.permits(&json!({"id": id, "name": id, "owner": who.user_id})) {
        Ok(())
    } else {
        Err(StorageError::AccessDenied(ADMIN_DENIED.into()))
    }
}

/// Query of `GET /bucket`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListQuery {
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default)]
    search: Option<String>,
    #[serde(default)]
    sort_column: Option<String>,
    #[serde(default)]
    sort_order: Option<String>,
}

/// `GET /bucket`: the buckets the caller may see.
pub(crate) async fn list(
    state: State,
    who: Principal,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let column = match query.sort_column.as_deref().unwrap_or("name") {
        "id" => bucket::Column::Id,
        "name" => bucket::Column::Name,
        "created_at" => bucket::Column::CreatedAt,
        "updated_at" => bucket::Column::UpdatedAt,
        other => {
            return Err(StorageError::InvalidRequest(format!(
                "sortColumn {other:?}: expected id, name, created_at or updated_at"
            )));
        }
    };
    let order = match query.sort_order.as_deref().unwrap_or("asc") {
        "asc" => sea_orm::Order::Asc,
        "desc" => sea_orm::Order::Desc,
        other => {
            return Err(StorageError::InvalidRequest(format!(
                "sortOrder {other:?}: expected asc or desc"
            )));
        }
    };
    let rows = bucket::Entity::find()
        .order_by(column, order)
        .all(&state.db)
        .await?;
    let search = query.search.as_deref().unwrap_or_default().to_lowercase();
    let mut out = Vec::new();
    for b in &rows {
        if b.name.to_lowercase().contains(&search) && may(&state, &who, Action::Select, b).await {
            out.push(bucket_json(b));
        }
    }
    let offset = usize::try_from(query.offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let limit = usize::try_from(query.limit.unwrap_or(u64::MAX)).unwrap_or(usize::MAX);
    let page: Vec<Value> = out.into_iter().skip(offset).take(limit).collect();
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /bucket/{id}`.
pub(crate) async fn get(
    state: State,
    who: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    validate_bucket_id(&id)?;
    let b = state.bucket(&id).await?;
    if !may(&state, &who, Action::Select, &b).await {
        return Err(StorageError::NoSuchBucket);
    }
    Ok(HttpResponse::Ok().json(bucket_json(&b)))
}

/// Validated bucket settings from a create/update body.
struct Settings {
    public: Option<bool>,
    file_size_limit: Option<Option<i64>>,
    allowed_mime_types: Option<Option<Vec<String>>>,
    versioning: Option<bool>,
    quota: Option<Option<i64>>,
    owner_quota: Option<Option<i64>>,
    max_versions: Option<Option<i64>>,
}

fn settings(body: &Map<String, Value>) -> Result<Settings> {
    let public = match body.get("public") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(StorageError::InvalidRequest(
                "public must be a boolean".into(),
            ));
        }
    };
    let file_size_limit = match body.get("file_size_limit") {
        None => None,
        Some(v) => Some(
            parse_size(v)?
                .map(|n| {
                    i64::try_from(n).map_err(|_| {
                        StorageError::InvalidRequest("file_size_limit is too large".into())
                    })
                })
                .transpose()?,
        ),
    };
    let allowed_mime_types = match body.get("allowed_mime_types") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let s = item.as_str().ok_or_else(|| {
                    StorageError::InvalidRequest("allowed_mime_types must be strings".into())
                })?;
                out.push(mime::validate_pattern(s)?);
            }
            Some(if out.is_empty() { None } else { Some(out) })
        }
        Some(_) => {
            return Err(StorageError::InvalidRequest(
                "allowed_mime_types must be an array of MIME types".into(),
            ));
        }
    };
    let versioning = match body.get("versioning") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(StorageError::InvalidRequest(
                "versioning must be a boolean".into(),
            ));
        }
    };
    let quota = quota_setting(body, "quota")?;
    let owner_quota = quota_setting(body, "owner_quota")?;
    let max_versions = match body.get("max_versions") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match v.as_u64().and_then(|n| i64::try_from(n).ok()) {
            Some(n) => Some(Some(n)),
            None => {
                return Err(StorageError::InvalidRequest(
                    "max_versions must be a non-negative integer or null".into(),
                ));
            }
        },
    };
    Ok(Settings {
        public,
        file_size_limit,
        allowed_mime_types,
        versioning,
        quota,
        owner_quota,
        max_versions,
    })
}

/// A quota field: absent (`None`), or a size (`Some(None)`: no quota).
fn quota_setting(body: &Map<String, Value>, key: &str) -> Result<Option<Option<i64>>> {
    let Some(v) = body.get(key) else {
        return Ok(None);
    };
    let bytes = parse_size(v).map_err(|_| {
        StorageError::InvalidRequest(format!(
            "{key} {v}: expected a number of bytes or a string like \"5GB\""
        ))
    })?;
    bytes
        .map(|n| {
            i64::try_from(n)
                .map_err(|_| StorageError::InvalidRequest(format!("{key} is too large")))
        })
        .transpose()
        .map(Some)
}

fn body_object(body: &Value) -> Result<&Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| StorageError::InvalidRequest("the body must be a JSON object".into()))
}

/// `POST /bucket` `{id?, name, public?, file_size_limit?, allowed_mime_types?, versioning?, quota?, owner_quota?, max_versions?}`
/// → `{"name": id}` (`versioning`, `quota`, `owner_quota`, `max_versions` are GoForward extensions).
pub(crate) async fn create(
    state: State,
    who: Principal,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let body = body_object(&body)?;
    let id = body
        .get("id")
        .or_else(|| body.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            StorageError::InvalidRequest("body must have required property 'name'".into())
        })?
        .to_owned();
    validate_bucket_id(&id)?;
    let s = settings(body)?;
    may_admin(&state, &who, &id).await?;
    let now = Utc::now();
    let public = s.public.unwrap_or(false);
    let am = bucket::ActiveModel {
        id: Set(id.clone()),
        name: Set(id.clone()),
        public: Set(public),
        file_size_limit: Set(s.file_size_limit.flatten()),
        allowed_mime_types: Set(s.allowed_mime_types.flatten().map(|v| json!(v))),
        versioning: Set(s.versioning.unwrap_or(false)),
        quota: Set(s.quota.flatten()),
        owner_quota: Set(s.owner_quota.flatten()),
        max_versions: Set(s.max_versions.flatten()),
        owner: Set(who.user_id.as_deref().map(str::to_owned)),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match am.insert(&state.db).await {
        Ok(_) => {}
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            return Err(StorageError::BucketAlreadyExists);
        }
        Err(err) => return Err(err.into()),
    }
    state
        .access
        .policies()
        .set_bucket(&id, Bucket::default_policy(public));
    Ok(HttpResponse::Ok().json(json!({ "name": id })))
}

/// `PUT /bucket/{id}` → `{"message": "Successfully updated"}`.
pub(crate) async fn update(
    state: State,
    who: Principal,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    validate_bucket_id(&id)?;
    let s = settings(body_object(&body)?)?;
    may_admin(&state, &who, &id).await?;
    let b = state.bucket(&id).await?;
    let mut am: bucket::ActiveModel = b.into();
    if let Some(public) = s.public {
        am.public = Set(public);
    }
    if let Some(limit) = s.file_size_limit {
        am.file_size_limit = Set(limit);
    }
    if let Some(types) = s.allowed_mime_types {
        am.allowed_mime_types = Set(types.map(|v| json!(v)));
    }
    if let Some(versioning) = s.versioning {
        am.versioning = Set(versioning);
    }
    if let Some(quota) = s.quota {
        am.quota = Set(quota);
    }
    if let Some(quota) = s.owner_quota {
        am.owner_quota = Set(quota);
    }
    if let Some(max) = s.max_versions {
        am.max_versions = Set(max);
    }
    am.updated_at = Set(Utc::now());
    let b = am.update(&state.db).await?;
    if let Some(public) = s.public
        && !state.declared.contains(&b.id)
    {
        state
            .access
            .policies()
            .set_bucket(&b.id, Bucket::default_policy(public));
    }
    Ok(HttpResponse::Ok().json(json!({"message": "Successfully updated"})))
}

/// `POST /bucket/{id}/empty`: deletes every object (rows first, then bytes).
pub(crate) async fn empty(
    state: State,
    who: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    validate_bucket_id(&id)?;
    may_admin(&state, &who, &id).await?;
    state.bucket(&id).await?;
    loop {
        let batch = object::Entity::find()
            .filter(object::Column::BucketId.eq(id.as_str()))
            .limit(500)
            .all(&state.db)
            .await?;
        if batch.is_empty() {
            break;
        }
        state.delete_rows(batch).await?;
    }
    Ok(HttpResponse::Ok().json(json!({"message": "Successfully emptied"})))
}

/// `DELETE /bucket/{id}`: only when empty.
pub(crate) async fn delete(
    state: State,
    who: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse> {
    validate_bucket_id(&id)?;
    may_admin(&state, &who, &id).await?;
    state.bucket(&id).await?;
    let count = object::Entity::find()
        .filter(object::Column::BucketId.eq(id.as_str()))
        .count(&state.db)
        .await?;
    if count > 0 {
        return Err(StorageError::BucketNotEmpty);
    }
    match bucket::Entity::delete_by_id(id.to_string())
        .exec(&state.db)
        .await
    {
        Ok(_) => {}
        Err(err)
            if matches!(
                err.sql_err(),
                Some(SqlErr::ForeignKeyConstraintViolation(_))
            ) =>
        {
            return Err(StorageError::BucketNotEmpty);
        }
        Err(err) => return Err(err.into()),
    }
    state
        .access
        .policies()
        .set_bucket(&id, goforward_core::access::Policy::deny_all());
    Ok(HttpResponse::Ok().json(json!({"message": "Successfully deleted"})))
}
