//! `GET /render/image/{authenticated|public}/{bucket}/{name}` (feature
//! `image`): an image object resized / re-encoded as storage-js's `transform`
//! option asks (`width`, `height`, `resize`, `quality`, `format`).

use actix_web::http::StatusCode;
use actix_web::http::header::DispositionType;
use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::token::Principal;
use serde_json::Value;

use super::download::{disposition, http_date};
use super::{ObjectPath, State};
use crate::entity::object;
use crate::error::{Result, StorageError};
use crate::names::{validate_bucket_id, validate_object_name};
use crate::signing::Scope;
use crate::state::{size_of, version_key};
use crate::transform::{Transform, TransformQuery, apply, transformable};

/// `GET /render/image/authenticated/{bucket}/{name}`.
pub(crate) async fn authenticated(
    state: State,
    req: HttpRequest,
    who: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<TransformQuery>,
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
    render(
        &state,
        &req,
        &row,
        query.parse()?,
        query.download.as_deref(),
    )
    .await
}

/// `GET /render/image/public/{bucket}/{name}`: public buckets only.
pub(crate) async fn public(
    state: State,
    req: HttpRequest,
    path: web::Path<ObjectPath>,
    query: web::Query<TransformQuery>,
) -> Result<HttpResponse> {
    let (bucket, name) = path.validated()?;
    if !state.bucket(&bucket).await?.public {
        return Err(StorageError::NoSuchBucket);
    }
    let row = state
        .object(&bucket, &name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    render(
        &state,
        &req,
        &row,
        query.parse()?,
        query.download.as_deref(),
    )
    .await
}

/// Query of `GET /render/image/sign/…`.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SignedQuery {
    token: Option<String>,
    download: Option<String>,
}

/// `GET /render/image/sign/{bucket}/{name}?token=…`: the options come from the
/// signed token only (query parameters cannot change them).
pub(crate) async fn signed(
    state: State,
    req: HttpRequest,
    path: web::Path<ObjectPath>,
    query: web::Query<SignedQuery>,
) -> Result<HttpResponse> {
    validate_bucket_id(&path.bucket)?;
    let name = validate_object_name(&path.name)?;
    let token = query.token.as_deref().ok_or_else(|| {
        StorageError::InvalidSignature("querystring must have required property 'token'".into())
    })?;
    let claims = state.signer.verify(
        token,
        Scope::Download,
        &path.bucket,
        &name,
        chrono::Utc::now().timestamp(),
    )?;
    let transform = match &claims.transform {
        Some(map) => TransformQuery::from_map(map).parse()?,
        None => TransformQuery::default().parse()?,
    };
    let row = state
        .object(&path.bucket, &name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    render(&state, &req, &row, transform, query.download.as_deref()).await
}

async fn render(
    state: &State,
    req: &HttpRequest,
    row: &object::Model,
    transform: Transform,
    download: Option<&str>,
) -> Result<HttpResponse> {
    let mimetype = row
        .metadata
        .get("mimetype")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream");
    if !transformable(mimetype) {
        return Err(StorageError::InvalidMimeType(mimetype.to_owned()));
    }
    let limits = &state.images;
    if size_of(row) > limits.max_input_bytes {
        return Err(StorageError::EntityTooLarge);
    }
    let etag = format!("\"{}-{}\"", row.version.simple(), transform.tag());
    let cache_control = row
        .metadata
        .get("cacheControl")
        .and_then(Value::as_str)
        .unwrap_or("no-cache")
        .to_owned();
    let mut res = HttpResponse::Ok();
    res.insert_header(("ETag", etag.clone()))
        .insert_header(("Last-Modified", http_date(&row.updated_at)))
        .insert_header(("Cache-Control", cache_control))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Content-Security-Policy", "default-src 'none'; sandbox"));
    let not_modified = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|inm| {
            inm.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t == etag || t.strip_prefix("W/") == Some(etag.as_str())
            })
        });
    if not_modified {
        res.status(StatusCode::NOT_MODIFIED);
        return Ok(res.finish());
    }

    let _permit = limits
        .permits
        .acquire()
        .await
        .map_err(|_| StorageError::Internal("image transformations are shut down".into()))?;
    let input = match state.store.get(&version_key(&row.version)).await {
        Ok(got) => got.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Err(StorageError::NoSuchKey),
        Err(err) => return Err(err.into()),
    };
    if input.len() as u64 > limits.max_input_bytes {
        return Err(StorageError::EntityTooLarge);
    }
    let max_side = limits.max_input_side;
    let (bytes, out_type) =
        tokio::task::spawn_blocking(move || apply(&input, &transform, max_side))
            .await
            .map_err(|e| StorageError::Internal(format!("image transformation failed: {e}")))??;
    let last = row.name.rsplit('/').next().unwrap_or(&row.name);
    let kind = if download.is_some() {
        DispositionType::Attachment
    } else {
        DispositionType::Inline
    };
    let filename = match download {
        Some(d) if !d.is_empty() => d,
        _ => last,
    };
    Ok(res
        .insert_header(disposition(kind, filename))
        .insert_header(("Content-Type", out_type))
        .body(bytes))
}
