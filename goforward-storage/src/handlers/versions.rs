//! Object versions (GoForward extension; storage-js has no API for them):
//! list the kept versions of an object, restore one, delete one.
//!
//! Versions are kept when a bucket has `versioning` on and an object is
//! overwritten; they go with the object when it is moved and are deleted
//! with it.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use goforward_core::access::Action;
use goforward_core::bus::Event;
use goforward_core::sea_query::Expr;
use goforward_core::token::Principal;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::download::serve;
use super::objects::row_json;
use super::{ObjectPath, State};
use crate::entity::{object, object_version};
use crate::error::{Result, StorageError};
use crate::state::{StorageState, archive, object_event, size_of, ts};

const RLS_MESSAGE: &str = "new row violates row-level security policy";

/// The current row of `bucket/name`, if `who` may do `action` on it. A
/// caller who may not even read it learns nothing (`NoSuchKey`).
async fn permitted_row(
    state: &StorageState,
    who: &Principal,
    path: &ObjectPath,
    action: Action,
) -> Result<object::Model> {
    let (bucket, name) = path.validated()?;
    state.bucket(&bucket).await?;
    let row = state
        .object(&bucket, &name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    if !state.may_read(who, &row).await {
        return Err(StorageError::NoSuchKey);
    }
    if !matches!(action, Action::Select) {
        let rule = state
            .decide(
                who,
                action,
                &row.bucket_id,
                &row.name,
                row.owner.as_deref(),
                row.user_metadata.as_ref(),
            )
            .await;
        if !rule.permits(&row_json(&row)) {
            return Err(StorageError::AccessDenied(RLS_MESSAGE.into()));
        }
    }
    Ok(row)
}

fn current_json(row: &object::Model) -> Value {
    json!({
        "version": row.version,
        "current": true,
        "size": size_of(row),
        "mimetype": row.metadata.get("mimetype"),
        "eTag": row.metadata.get("eTag"),
        "owner": row.owner,
        "user_metadata": row.user_metadata,
        "created_at": ts(&row.updated_at),
        "archived_at": null,
    })
}

fn kept_json(v: &object_version::Model) -> Value {
    json!({
        "version": v.version,
        "current": false,
        "size": v.size,
        "mimetype": v.metadata.get("mimetype"),
        "eTag": v.metadata.get("eTag"),
        "owner": v.owner,
        "user_metadata": v.user_metadata,
        "created_at": ts(&v.created_at),
        "archived_at": ts(&v.archived_at),
    })
}

/// Query of `GET /object/versions/…`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    /// Download this kept version instead of listing.
    version: Option<Uuid>,
    /// With `version`: serve as an attachment (named by the value, or the object's name).
    download: Option<String>,
}

/// `GET /object/versions/{bucket}/{name}`: the current version first, then
/// the kept ones, newest first. With `?version=<id>`: that version's bytes,
/// served as a download is (`Range`, `ETag`, safe headers).
pub(crate) async fn list(
    state: State,
    req: HttpRequest,
    who: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse> {
    let row = permitted_row(&state, &who, &path, Action::Select).await?;
    if let Some(version) = query.version {
        let served = if version == row.version {
            row
        } else {
            let kept = object_version::Entity::find_by_id(version)
                .filter(object_version::Column::ObjectId.eq(row.id))
                .one(&state.db)
                .await?
                .ok_or(StorageError::NoSuchVersion)?;
            object::Model {
                version: kept.version,
                owner: kept.owner,
                metadata: kept.metadata,
                user_metadata: kept.user_metadata,
                updated_at: kept.created_at,
                ..row
            }
        };
        return serve(&state, &req, &served, query.download.as_deref()).await;
    }
    let kept = object_version::Entity::find()
        .filter(object_version::Column::ObjectId.eq(row.id))
        .order_by_desc(object_version::Column::ArchivedAt)
        .order_by_desc(object_version::Column::CreatedAt)
        .all(&state.db)
        .await?;
    let mut out = Vec::with_capacity(kept.len() + 1);
    out.push(current_json(&row));
    out.extend(kept.iter().map(kept_json));
    Ok(HttpResponse::Ok().json(out))
}

/// Body of a restore.
#[derive(Debug, Deserialize)]
pub(crate) struct RestoreBody {
    version: Uuid,
}

/// `POST /object/versions/{bucket}/{name}` `{"version": "<id>"}`: makes a
/// kept version current again; the current one is kept in its place (even if
/// versioning has since been turned off). No bytes are copied: the object's
/// row and the version's row swap in one transaction.
pub(crate) async fn restore(
    state: State,
    who: Principal,
    path: web::Path<ObjectPath>,
    body: web::Json<RestoreBody>,
) -> Result<HttpResponse> {
    let row = permitted_row(&state, &who, &path, Action::Update).await?;
    let now = Utc::now();
    let txn = state.db.begin().await?;
    // Lock the object row (as uploads do), then re-read it.
    object::Entity::update_many()
        .col_expr(object::Column::Version, Expr::col(object::Column::Version))
        .filter(object::Column::Id.eq(row.id))
        .exec(&txn)
        .await?;
    let current = object::Entity::find_by_id(row.id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    if current.version == body.version {
        txn.commit().await?;
        return Ok(HttpResponse::Ok().json(current_json(&current)));
    }
    let kept = object_version::Entity::find_by_id(body.version)
        .filter(object_version::Column::ObjectId.eq(current.id))
        .one(&txn)
        .await?
        .ok_or(StorageError::NoSuchVersion)?;
    object_version::Entity::delete_by_id(kept.version)
        .exec(&txn)
        .await?;
    archive(&txn, &current, now).await?;
    let mut metadata = kept.metadata.clone();
    if let Some(m) = metadata.as_object_mut() {
        m.insert("lastModified".into(), json!(ts(&now)));
    }
    let mut am: object::ActiveModel = current.into();
    am.version = Set(kept.version);
    am.metadata = Set(metadata);
    am.user_metadata = Set(kept.user_metadata.clone());
    am.updated_at = Set(now);
    let restored = am.update(&txn).await?;
    txn.commit().await?;
    state
        .announce(Event::ObjectUploaded(object_event(&restored)))
        .await;
    Ok(HttpResponse::Ok().json(current_json(&restored)))
}

/// Query of a version delete.
#[derive(Debug, Deserialize)]
pub(crate) struct VersionQuery {
    version: Option<Uuid>,
}

/// `DELETE /object/versions/{bucket}/{name}?version=<id>`: deletes one kept
/// version (row, then bytes). The current version is deleted with the object.
pub(crate) async fn delete(
    state: State,
    who: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<VersionQuery>,
) -> Result<HttpResponse> {
    let version = query.version.ok_or_else(|| {
        StorageError::InvalidRequest("querystring must have required property 'version'".into())
    })?;
    let row = permitted_row(&state, &who, &path, Action::Delete).await?;
    if row.version == version {
        return Err(StorageError::InvalidRequest(
            "the current version is deleted with the object".into(),
        ));
    }
    let res = object_version::Entity::delete_many()
        .filter(object_version::Column::Version.eq(version))
        .filter(object_version::Column::ObjectId.eq(row.id))
        .exec(&state.db)
        .await?;
    if res.rows_affected == 0 {
        return Err(StorageError::NoSuchVersion);
    }
    state.discard_version(&version).await;
    Ok(HttpResponse::Ok().json(json!({"message": "Successfully deleted"})))
}
