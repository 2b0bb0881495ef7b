//! Object writes (upload, update, move, copy, remove) and `info`.

use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::access::{Action, Decision};
use goforward_core::bus::Event;
use goforward_core::token::Principal;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set, TransactionTrait};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ObjectPath, State, object_json};
use crate::entity::{bucket, object};
use crate::error::{Result, StorageError};
use crate::mime;
use crate::names::{validate_bucket_id, validate_object_name};
use crate::state::{NewVersion, StorageState, object_event, object_row, size_of, ts, version_key};
use crate::upload;

const RLS_MESSAGE: &str = "new row violates row-level security policy";

fn upsert_header(req: &HttpRequest) -> bool {
    req.headers()
        .get("x-upsert")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Who is writing: a principal (checked against the bucket's policy) or a
/// signed upload token (already verified; carries the owner).
pub(crate) enum Writer<'a> {
    /// A caller with a token or API key.
    Principal(&'a Principal),
    /// A signed upload URL.
    Signed {
        /// Owner recorded for the object.
        owner: Option<String>,
    },
}

/// The effective size limit of `bucket`.
fn limit_of(state: &StorageState, bucket: &bucket::Model) -> u64 {
    bucket
        .file_size_limit
        .and_then(|l| u64::try_from(l).ok())
        .map_or(state.max_file_size, |l| l.min(state.max_file_size))
}

/// The allowed MIME types of `bucket`.
pub(crate) fn allowed_types(bucket: &bucket::Model) -> Option<Vec<String>> {
    bucket
        .allowed_mime_types
        .as_ref()
        .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
}

/// Authorises, then streams and commits an upload. Nothing is read from the
/// body before the bucket, the name, the permissions and a declared
/// `Content-Length` have been checked.
pub(crate) async fn store_upload(
    state: &StorageState,
    req: &HttpRequest,
    payload: upload::SharedPayload,
    path: &ObjectPath,
    writer: Writer<'_>,
    upsert: bool,
) -> Result<object::Model> {
    let (bucket_id, name) = path.validated()?;
    let bucket = state.bucket(&bucket_id).await?;
    let existing = state.object(&bucket_id, &name).await?;
    if existing.is_some() && !upsert {
        return Err(StorageError::KeyAlreadyExists);
    }
    let (owner, replace_rule) = match writer {
        Writer::Principal(who) => {
            let owner = who.user_id.as_deref().map(str::to_owned);
            if !state
                .allowed(
                    who,
                    Action::Upload,
                    &bucket_id,
                    &name,
                    owner.as_deref(),
                    None,
                )
                .await
            {
                return Err(StorageError::AccessDenied(RLS_MESSAGE.into()));
            }
            let rule = state
                .decide(who, Action::Update, &bucket_id, &name, None, None)
                .await;
            if let Some(row) = &existing
                && !rule.permits(&row_json(row))
            {
                return Err(StorageError::AccessDenied(RLS_MESSAGE.into()));
            }
            (owner, Some(rule))
        }
        Writer::Signed { owner } => (owner, None),
    };

    let file_limit = limit_of(state, &bucket);
    // The quota's room; an overwrite in an unversioned bucket frees the replaced bytes.
    let room = state
        .quota_room(&bucket, owner.as_deref())
        .await?
        .map(|room| match &existing {
            Some(row) if upsert && !bucket.versioning => room.saturating_add(size_of(row)),
            _ => room,
        });
    let limit = room.map_or(file_limit, |r| r.min(file_limit));
    let too_large = || {
        if room.is_some_and(|r| r < file_limit) {
            StorageError::QuotaExceeded
        } else {
            StorageError::EntityTooLarge
        }
    };
    let declared_len = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Multipart bodies carry a few KiB of form fields and boundaries around the file.
    let is_form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/")
        });
    let slack = if is_form { 64 << 10 } else { 0 };
    if declared_len.is_some_and(|l| l > limit.saturating_add(slack)) {
        return Err(too_large());
    }
    let allowed = allowed_types(&bucket);
    let mut incoming = upload::open(req, payload).await?;
    if !mime::is_allowed(allowed.as_deref(), &incoming.content_type) {
        return Err(StorageError::InvalidMimeType(incoming.content_type));
    }
    let (version, size) = match upload::store_body(
        state.store.as_ref(),
        &mut incoming.body,
        limit,
        &incoming.content_type,
        allowed.as_deref(),
        state.sync_root(),
    )
    .await
    {
        Ok(stored) => stored,
        Err(StorageError::EntityTooLarge) => return Err(too_large()),
        Err(err) => return Err(err),
    };
    let nv = NewVersion {
        bucket: bucket_id,
        name,
        owner,
        version,
        size,
        mimetype: incoming.content_type,
        cache_control: incoming.cache_control,
        user_metadata: incoming.user_metadata,
        upsert,
        fresh: existing.is_none(),
    };
    let committed = state
        .commit_version(&nv, |row| {
            replace_rule
                .as_ref()
                .is_none_or(|rule: &Decision| rule.permits(&row_json(row)))
        })
        .await;
    match committed {
        Ok((row, old)) => {
            for old in &old {
                state.discard_version(old).await;
            }
            state
                .announce(Event::ObjectUploaded(object_event(&row)))
                .await;
            Ok(row)
        }
        Err(err) => {
            state.discard_version(&version).await;
            Err(err)
        }
    }
}

/// The JSON an access rule sees for an existing row.
pub(crate) fn row_json(row: &object::Model) -> Value {
    object_row(
        &row.bucket_id,
        &row.name,
        row.owner.as_deref(),
        Some(&row.metadata),
        row.user_metadata.as_ref(),
    )
}

/// `POST /object/{bucket}/{name}` (`x-upsert: true` replaces).
pub(crate) async fn upload(
    state: State,
    req: HttpRequest,
    who: Principal,
    path: web::Path<ObjectPath>,
    payload: web::Payload,
) -> HttpResponse {
    let upsert = upsert_header(&req);
    let body = upload::SharedPayload::new(payload);
    match store_upload(
        &state,
        &req,
        body.clone(),
        &path,
        Writer::Principal(&who),
        upsert,
    )
    .await
    {
        Ok(row) => uploaded(&row),
        Err(err) => upload::refusal(&err, body),
    }
}

/// `PUT /object/{bucket}/{name}`: replaces (or creates) the object.
pub(crate) async fn update(
    state: State,
    req: HttpRequest,
    who: Principal,
    path: web::Path<ObjectPath>,
    payload: web::Payload,
) -> HttpResponse {
    let body = upload::SharedPayload::new(payload);
    match store_upload(
        &state,
        &req,
        body.clone(),
        &path,
        Writer::Principal(&who),
        true,
    )
    .await
    {
        Ok(row) => uploaded(&row),
        Err(err) => upload::refusal(&err, body),
    }
}

/// The answer to a committed upload: `{Id, Key}`.
pub(crate) fn uploaded(row: &object::Model) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "Id": row.id,
        "Key": format!("{}/{}", row.bucket_id, row.name),
    }))
}

/// `DELETE /object/{bucket}/{name}`.
pub(crate) async fn delete_one(
    state: State,
    who: Principal,
    path: web::Path<ObjectPath>,
) -> Result<HttpResponse> {
    let (bucket, name) = path.validated()?;
    state.bucket(&bucket).await?;
    let row = state
        .object(&bucket, &name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    let rule = state
        .decide(
            &who,
            Action::Delete,
            &bucket,
            &name,
            row.owner.as_deref(),
            None,
        )
        .await;
    if !rule.permits(&row_json(&row)) {
        if state.may_read(&who, &row).await {
            return Err(StorageError::AccessDenied(RLS_MESSAGE.into()));
        }
        return Err(StorageError::NoSuchKey);
    }
    if state.delete_rows(vec![row]).await?.is_empty() {
        return Err(StorageError::NoSuchKey);
    }
    Ok(HttpResponse::Ok().json(json!({"message": "Successfully deleted"})))
}

/// Body of `DELETE /object/{bucket}`.
#[derive(Debug, Deserialize)]
pub(crate) struct RemoveBody {
    prefixes: Vec<Value>,
}

/// `DELETE /object/{bucket}` `{prefixes: [name…]}`: deletes the named
/// objects the caller may delete; answers the deleted rows.
pub(crate) async fn remove_many(
    state: State,
    who: Principal,
    bucket: web::Path<String>,
    body: web::Json<RemoveBody>,
) -> Result<HttpResponse> {
    validate_bucket_id(&bucket)?;
    state.bucket(&bucket).await?;
    if body.prefixes.is_empty() || body.prefixes.len() > 1000 {
        return Err(StorageError::InvalidRequest(
            "prefixes must hold 1 to 1000 names".into(),
        ));
    }
    let mut names = Vec::with_capacity(body.prefixes.len());
    for p in &body.prefixes {
        let raw = match p {
            Value::String(s) => s.as_str(),
            Value::Object(o) => o.get("path").and_then(Value::as_str).unwrap_or_default(),
            _ => "",
        };
        names.push(validate_object_name(raw)?);
    }
    let rows = object::Entity::find()
        .filter(object::Column::BucketId.eq(bucket.as_str()))
        .filter(object::Column::Name.is_in(names))
        .all(&state.db)
        .await?;
    let mut permitted = Vec::with_capacity(rows.len());
    for row in rows {
        let rule = state
            .decide(
                &who,
                Action::Delete,
                &row.bucket_id,
                &row.name,
                row.owner.as_deref(),
                row.user_metadata.as_ref(),
            )
            .await;
        if rule.permits(&row_json(&row)) {
            permitted.push(row);
        }
    }
    let deleted = state.delete_rows(permitted).await?;
    Ok(HttpResponse::Ok().json(deleted.iter().map(object_json).collect::<Vec<_>>()))
}

/// Body of `POST /object/move` and `/object/copy`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MoveBody {
    bucket_id: String,
    source_key: String,
    destination_key: String,
    #[serde(default)]
    destination_bucket: Option<String>,
    #[serde(default)]
    copy_metadata: Option<bool>,
    #[serde(default)]
    metadata: Option<Value>,
}

struct Resolved {
    source: object::Model,
    dest_bucket: bucket::Model,
    dest_name: String,
}

async fn resolve(state: &StorageState, who: &Principal, body: &MoveBody) -> Result<Resolved> {
    validate_bucket_id(&body.bucket_id)?;
    let source_name = validate_object_name(&body.source_key)?;
    let dest_bucket_id = body
        .destination_bucket
        .clone()
        .unwrap_or_else(|| body.bucket_id.clone());
    validate_bucket_id(&dest_bucket_id)?;
    let dest_name = validate_object_name(&body.destination_key)?;
    state.bucket(&body.bucket_id).await?;
    let dest_bucket = state.bucket(&dest_bucket_id).await?;
    let source = state
        .object(&body.bucket_id, &source_name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    if !state.may_read(who, &source).await {
        return Err(StorageError::NoSuchKey);
    }
    if !state
        .allowed(
            who,
            Action::Upload,
            &dest_bucket_id,
            &dest_name,
            who.user_id.as_deref(),
            None,
        )
        .await
    {
        return Err(StorageError::AccessDenied(RLS_MESSAGE.into()));
    }
    let size = source
        .metadata
        .get("size")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if size > limit_of(state, &dest_bucket) {
        return Err(StorageError::EntityTooLarge);
    }
    let mimetype = source
        .metadata
        .get("mimetype")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream");
    if !mime::is_allowed(allowed_types(&dest_bucket).as_deref(), mimetype) {
        return Err(StorageError::InvalidMimeType(mimetype.to_owned()));
    }
    Ok(Resolved {
        source,
        dest_bucket,
        dest_name,
    })
}

/// `POST /object/move`: renames within or across buckets (metadata only;
/// the bytes stay under their version key).
pub(crate) async fn move_object(
    state: State,
    who: Principal,
    body: web::Json<MoveBody>,
) -> Result<HttpResponse> {
    let r = resolve(&state, &who, &body).await?;
    let rule = state
        .decide(
            &who,
            Action::Delete,
            &r.source.bucket_id,
            &r.source.name,
            None,
            None,
        )
        .await;
    if !rule.permits(&row_json(&r.source)) {
        return Err(StorageError::AccessDenied(RLS_MESSAGE.into()));
    }
    let txn = state.db.begin().await?;
    // Into a bucket with quotas: lock it before the write (see `lock_bucket`).
    let dest_locked = if r.dest_bucket.id != r.source.bucket_id
        && (r.dest_bucket.quota.is_some() || r.dest_bucket.owner_quota.is_some())
    {
        Some(state.lock_bucket(&txn, &r.dest_bucket.id).await?)
    } else {
        None
    };
    if object::Entity::find()
        .filter(object::Column::BucketId.eq(&r.dest_bucket.id))
        .filter(object::Column::Name.eq(&r.dest_name))
        .one(&txn)
        .await?
        .is_some()
    {
        return Err(StorageError::KeyAlreadyExists);
    }
    let old = r.source.clone();
    let mut am: object::ActiveModel = r.source.into();
    am.bucket_id = Set(r.dest_bucket.id.clone());
    am.name = Set(r.dest_name.clone());
    am.updated_at = Set(chrono::Utc::now());
    let moved = match am.update(&txn).await {
        Ok(row) => row,
        Err(err) if is_unique(&err) => return Err(StorageError::KeyAlreadyExists),
        Err(sea_orm::DbErr::RecordNotUpdated) => return Err(StorageError::NoSuchKey),
        Err(err) => return Err(err.into()),
    };
    if let Some(dest) = &dest_locked {
        // The object is now counted in its new bucket, with its kept versions.
        state
            .check_quota(&txn, dest, moved.owner.as_deref())
            .await?;
    }
    txn.commit().await?;
    state
        .announce(Event::ObjectDeleted(object_event(&old)))
        .await;
    state
        .announce(Event::ObjectUploaded(object_event(&moved)))
        .await;
    Ok(HttpResponse::Ok().json(json!({
        "message": "Successfully moved",
        "Id": moved.id,
        "Key": format!("{}/{}", moved.bucket_id, moved.name),
    })))
}

fn is_unique(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// `POST /object/copy`: copies the bytes to a new version and commits a new
/// row owned by the caller (`x-upsert: true` replaces an existing destination).
pub(crate) async fn copy_object(
    state: State,
    req: HttpRequest,
    who: Principal,
    body: web::Json<MoveBody>,
) -> Result<HttpResponse> {
    let r = resolve(&state, &who, &body).await?;
    let upsert = upsert_header(&req);
    let replace_rule = state
        .decide(
            &who,
            Action::Update,
            &r.dest_bucket.id,
            &r.dest_name,
            None,
            None,
        )
        .await;
    if !upsert
        && state
            .object(&r.dest_bucket.id, &r.dest_name)
            .await?
            .is_some()
    {
        return Err(StorageError::KeyAlreadyExists);
    }
    if !upsert
        && let Some(room) = state
            .quota_room(&r.dest_bucket, who.user_id.as_deref())
            .await?
        && size_of(&r.source) > room
    {
        return Err(StorageError::QuotaExceeded);
    }
    let source_bytes = match state.store.get(&version_key(&r.source.version)).await {
        Ok(got) => got.into_stream(),
        Err(object_store::Error::NotFound { .. }) => return Err(StorageError::NoSuchKey),
        Err(err) => return Err(err.into()),
    };
    let mimetype = r
        .source
        .metadata
        .get("mimetype")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_owned();
    let (version, size) = upload::store_body(
        state.store.as_ref(),
        &mut upload::Body::Stored(source_bytes),
        limit_of(&state, &r.dest_bucket),
        &mimetype,
        allowed_types(&r.dest_bucket).as_deref(),
        state.sync_root(),
    )
    .await?;
    let meta = |k: &str| {
        r.source
            .metadata
            .get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let user_metadata = if body.copy_metadata.unwrap_or(true) {
        body.metadata
            .clone()
            .or_else(|| r.source.user_metadata.clone())
    } else {
        body.metadata.clone()
    };
    let nv = NewVersion {
        bucket: r.dest_bucket.id.clone(),
        name: r.dest_name.clone(),
        owner: who.user_id.as_deref().map(str::to_owned),
        version,
        size,
        mimetype,
        cache_control: meta("cacheControl").unwrap_or_else(|| "no-cache".into()),
        user_metadata,
        upsert,
        fresh: false,
    };
    let committed = state
        .commit_version(&nv, |row| replace_rule.permits(&row_json(row)))
        .await;
    let (row, old) = match committed {
        Ok(done) => done,
        Err(err) => {
            state.discard_version(&version).await;
            return Err(err);
        }
    };
    for old in &old {
        state.discard_version(old).await;
    }
    state
        .announce(Event::ObjectUploaded(object_event(&row)))
        .await;
    let mut out = object_json(&row);
    if let Some(o) = out.as_object_mut() {
        o.insert("Id".into(), json!(row.id));
        o.insert(
            "Key".into(),
            json!(format!("{}/{}", row.bucket_id, row.name)),
        );
    }
    Ok(HttpResponse::Ok().json(out))
}

fn info_json(row: &object::Model) -> Value {
    let m = &row.metadata;
    json!({
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "bucket_id": row.bucket_id,
        "size": m.get("size"),
        "content_type": m.get("mimetype"),
        "cache_control": m.get("cacheControl"),
        "etag": m.get("eTag"),
        "metadata": row.user_metadata.clone().unwrap_or_else(|| json!({})),
        "last_modified": ts(&row.updated_at),
        "created_at": ts(&row.created_at),
    })
}

/// `GET /object/info/{bucket}/{name}` (and `/info/authenticated/…`).
pub(crate) async fn info(
    state: State,
    who: Principal,
    path: web::Path<ObjectPath>,
) -> Result<HttpResponse> {
    let (bucket, name) = path.validated()?;
    state.bucket(&bucket).await?;
    let row = state
        .object(&bucket, &name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    if !state.may_read(&who, &row).await {
        return Err(StorageError::NoSuchKey);
    }
    Ok(HttpResponse::Ok().json(info_json(&row)))
}

/// `GET /object/info/public/{bucket}/{name}`: public buckets only.
pub(crate) async fn info_public(state: State, path: web::Path<ObjectPath>) -> Result<HttpResponse> {
    let (bucket, name) = path.validated()?;
    if !state.bucket(&bucket).await?.public {
        return Err(StorageError::NoSuchBucket);
    }
    let row = state
        .object(&bucket, &name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    Ok(HttpResponse::Ok().json(info_json(&row)))
}
