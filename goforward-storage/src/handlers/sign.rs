//! Signed URLs: create download URLs (one or many), create upload URLs,
//! upload with an upload token.

use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::access::Action;
use goforward_core::token::Principal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::objects::{Writer, store_upload, uploaded};
use super::{ObjectPath, State};
use crate::error::{Result, StorageError};
use crate::names::{validate_bucket_id, validate_object_name};
use crate::signing::{Claims, Scope};
use crate::state::StorageState;
use crate::upload;

/// Body of `POST /object/sign/{bucket}/{name}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignBody {
    expires_in: Value,
    #[serde(default)]
    transform: Option<Value>,
}

/// Body of `POST /object/sign/{bucket}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignManyBody {
    expires_in: Value,
    paths: Vec<String>,
}

fn expires_in(state: &StorageState, v: &Value) -> Result<i64> {
    let secs = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match secs {
        Some(s)
            if s >= 1 && u64::try_from(s).is_ok_and(|s| s <= state.max_signed_url_expires_secs) =>
        {
            Ok(s)
        }
        _ => Err(StorageError::InvalidRequest(format!(
            "expiresIn must be a number of seconds between 1 and {}",
            state.max_signed_url_expires_secs
        ))),
    }
}

fn sign_download(state: &StorageState, bucket: &str, name: &str, secs: i64) -> Result<String> {
    let token = state.signer.sign(&Claims {
        url: format!("{bucket}/{name}"),
        scope: Scope::Download,
        exp: chrono::Utc::now().timestamp() + secs,
        owner: None,
        upsert: false,
        transform: None,
    })?;
    Ok(format!("/object/sign/{bucket}/{name}?token={token}"))
}

/// A signed URL of a transformed image: the options are part of the signed claims.
#[cfg(feature = "image")]
fn sign_render(
    state: &StorageState,
    bucket: &str,
    name: &str,
    secs: i64,
    transform: &Value,
) -> Result<String> {
    let options = crate::transform::TransformQuery::from_json(transform)?;
    options.parse()?;
    let token = state.signer.sign(&Claims {
        url: format!("{bucket}/{name}"),
        scope: Scope::Download,
        exp: chrono::Utc::now().timestamp() + secs,
        owner: None,
        upsert: false,
        transform: Some(options.to_map()),
    })?;
    Ok(format!("/render/image/sign/{bucket}/{name}?token={token}"))
}

/// `POST /object/sign/{bucket}/{name}` `{expiresIn, transform?}` → `{"signedURL": "/object/sign/…?token=…"}`
/// (`/render/image/sign/…` with `transform`, feature `image`).
pub(crate) async fn sign_one(
    state: State,
    who: Principal,
    path: web::Path<ObjectPath>,
    body: web::Json<SignBody>,
) -> Result<HttpResponse> {
    let (bucket, name) = path.validated()?;
    let secs = expires_in(&state, &body.expires_in)?;
    let transform = body.transform.as_ref().filter(|t| !t.is_null());
    #[cfg(not(feature = "image"))]
    if transform.is_some() {
        return Err(StorageError::InvalidRequest(
            "image transformations are not supported".into(),
        ));
    }
    #[cfg(feature = "image")]
    if let Some(t) = transform {
        // Checked before the object is looked up.
        crate::transform::TransformQuery::from_json(t)?.parse()?;
    }
    state.bucket(&bucket).await?;
    let row = state
        .object(&bucket, &name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    if !state.may_read(&who, &row).await {
        return Err(StorageError::NoSuchKey);
    }
    let url = match transform {
        #[cfg(feature = "image")]
        Some(t) => sign_render(&state, &bucket, &name, secs, t)?,
        _ => sign_download(&state, &bucket, &name, secs)?,
    };
    Ok(HttpResponse::Ok().json(json!({ "signedURL": url })))
}

/// `POST /object/sign/{bucket}` `{expiresIn, paths}` → one entry per path,
/// with an error for the ones that are missing or hidden.
pub(crate) async fn sign_many(
    state: State,
    who: Principal,
    bucket: web::Path<String>,
    body: web::Json<SignManyBody>,
) -> Result<HttpResponse> {
    validate_bucket_id(&bucket)?;
    let secs = expires_in(&state, &body.expires_in)?;
    if body.paths.is_empty() || body.paths.len() > 1000 {
        return Err(StorageError::InvalidRequest(
            "paths must hold 1 to 1000 names".into(),
        ));
    }
    state.bucket(&bucket).await?;
    let mut out = Vec::with_capacity(body.paths.len());
    for raw in &body.paths {
        let signed = match validate_object_name(raw) {
            Ok(name) => match state.object(&bucket, &name).await? {
                Some(row) if state.may_read(&who, &row).await => {
                    Some(sign_download(&state, &bucket, &name, secs)?)
                }
                _ => None,
            },
            Err(_) => None,
        };
        out.push(match signed {
            Some(url) => json!({"error": null, "path": raw, "signedURL": url}),
            None => json!({
                "error": "Either the object does not exist or you do not have access to it",
                "path": raw,
                "signedURL": null,
            }),
        });
    }
    Ok(HttpResponse::Ok().json(out))
}

/// `POST /object/upload/sign/{bucket}/{name}` (+ `x-upsert`): a token that
/// lets its bearer upload this one object, as the caller.
pub(crate) async fn create_upload_url(
    state: State,
    req: HttpRequest,
    who: Principal,
    path: web::Path<ObjectPath>,
) -> Result<HttpResponse> {
    let (bucket, name) = path.validated()?;
    state.bucket(&bucket).await?;
    let upsert = req
        .headers()
        .get("x-upsert")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let owner = who.user_id.as_deref().map(str::to_owned);
    if !state
        .allowed(&who, Action::Upload, &bucket, &name, owner.as_deref(), None)
        .await
    {
        return Err(StorageError::AccessDenied(
            "new row violates row-level security policy".into(),
        ));
    }
    if let Some(existing) = state.object(&bucket, &name).await? {
        if !upsert {
            return Err(StorageError::KeyAlreadyExists);
        }
        let rule = state
            .decide(&who, Action::Update, &bucket, &name, None, None)
            .await;
        if !rule.permits(&super::objects::row_json(&existing)) {
            return Err(StorageError::AccessDenied(
                "new row violates row-level security policy".into(),
            ));
        }
    }
    let exp = chrono::Utc::now().timestamp()
        + i64::try_from(state.signed_upload_expires_secs).unwrap_or(7200);
    let token = state.signer.sign(&Claims {
        url: format!("{bucket}/{name}"),
        scope: Scope::Upload,
        exp,
        owner,
        upsert,
        transform: None,
    })?;
    Ok(HttpResponse::Ok().json(json!({
        "url": format!("/object/upload/sign/{bucket}/{name}?token={token}"),
        "token": token,
    })))
}

/// Query of `PUT /object/upload/sign/…`.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenQuery {
    token: Option<String>,
}

/// `PUT /object/upload/sign/{bucket}/{name}?token=…`: uploads with an
/// upload token (verified before any byte is read).
pub(crate) async fn upload_with_token(
    state: State,
    req: HttpRequest,
    path: web::Path<ObjectPath>,
    query: web::Query<TokenQuery>,
    payload: web::Payload,
) -> HttpResponse {
    let body = upload::SharedPayload::new(payload);
    match upload_with_token_inner(&state, &req, &path, &query, body.clone()).await {
        Ok(row) => uploaded(&row),
        Err(err) => upload::refusal(&err, body),
    }
}

async fn upload_with_token_inner(
    state: &StorageState,
    req: &HttpRequest,
    path: &ObjectPath,
    query: &TokenQuery,
    payload: upload::SharedPayload,
) -> Result<crate::entity::object::Model> {
    let (bucket, name) = path.validated()?;
    let token = query.token.as_deref().ok_or_else(|| {
        StorageError::InvalidSignature("querystring must have required property 'token'".into())
    })?;
    let claims = state.signer.verify(
        token,
        Scope::Upload,
        &bucket,
        &name,
        chrono::Utc::now().timestamp(),
    )?;
    store_upload(
        state,
        req,
        payload,
        path,
        Writer::Signed {
            owner: claims.owner,
        },
        claims.upsert,
    )
    .await
}
