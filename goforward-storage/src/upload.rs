//! Streaming an upload body (raw or multipart) into the object store under a
//! fresh version key, enforcing the size limit while streaming.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_multipart::{Field, Multipart};
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Result, StorageError};
use crate::mime;
use crate::state::version_key;

/// Bodies up to this size are written with one `put`; larger ones with a multipart upload.
const SINGLE_PUT_MAX: usize = 8 << 20;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 << 20;
/// Parts in flight at once.
const MAX_PARTS_IN_FLIGHT: usize = 2;
/// Largest text field (cacheControl, metadata…) of a multipart upload.
const MAX_FORM_FIELD: usize = 64 << 10;

/// A request body shared by the upload that reads it and the handler that
/// answers: when an upload is refused before the body has been read to its
/// end, the handler keeps the body alive until the refusal is written (see
/// [`refusal`]).
#[derive(Clone)]
pub(crate) struct SharedPayload(Rc<RefCell<PayloadState>>);

struct PayloadState {
    payload: web::Payload,
    ended: bool,
}

impl SharedPayload {
    /// Wraps the request body.
    pub(crate) fn new(payload: web::Payload) -> Self {
        Self(Rc::new(RefCell::new(PayloadState {
            payload,
            ended: false,
        })))
    }

    /// Whether the body was read to its end (or failed, e.g. the client left).
    pub(crate) fn ended(&self) -> bool {
        self.0.borrow().ended
    }
}

impl Stream for SharedPayload {
    type Item = std::result::Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = self.0.borrow_mut();
        if state.ended {
            return Poll::Ready(None);
        }
        let item = Pin::new(&mut state.payload).poll_next(cx);
        if matches!(item, Poll::Ready(None | Some(Err(_)))) {
            state.ended = true;
        }
        item
    }
}

/// A response body that keeps the request body it refused alive until the
/// response has been written.
///
/// actix-web decides what to do with an unread request body when the
/// response is done: a body that is still held means "unread", and the
/// connection is closed (after a short linger that discards what the client
/// is still sending). A body dropped before that point is drained instead,
/// however long it is, and the dispatcher can miss the wake-up that should
/// start the drain when the handler dropped the body while reads were paused
/// by back-pressure: the connection then stalls, and a keep-alive client's
/// next request waits behind it forever.
struct HoldingBody {
    body: BoxBody,
    _request: SharedPayload,
}

impl MessageBody for HoldingBody {
    type Error = <BoxBody as MessageBody>::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// Renders a refused upload. When the request body was not read to its end
/// the response says `Connection: close` and holds the body until it is
/// written, so the server closes the connection instead of leaving it to a
/// drain of unbounded length (see [`HoldingBody`]).
pub(crate) fn refusal(err: &StorageError, request: SharedPayload) -> HttpResponse {
    let res = err.error_response();
    if request.ended() {
        return res;
    }
    res.map_body(|head, body| {
        head.set_connection_type(ConnectionType::Close);
        HoldingBody {
            body,
            _request: request,
        }
    })
    .map_into_boxed_body()
}

/// Where the bytes come from.
pub(crate) enum Body {
    /// A raw request body.
    Raw(SharedPayload),
    /// The file part of a multipart form.
    Part {
        /// The file part.
        field: Box<Field>,
        /// The form, kept alive while the part is read.
        _form: Multipart,
    },
    /// The bytes of a stored version (copies are written as new files, so
    /// they are never mistaken for old orphans).
    Stored(futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>),
}

impl Body {
    async fn next(&mut self) -> Option<Result<Bytes>> {
        let item = match self {
            Body::Raw(p) => p.next().await.map(|r| r.map_err(|e| e.to_string())),
            Body::Part { field, .. } => field.next().await.map(|r| r.map_err(|e| e.to_string())),
            Body::Stored(stream) => {
                return stream.next().await.map(|r| r.map_err(StorageError::from));
            }
        };
        item.map(|r| {
            r.map_err(|e| StorageError::InvalidRequest(format!("could not read the body: {e}")))
        })
    }
}

/// The upload's attributes, from headers (raw) or form fields (multipart).
#[derive(Debug)]
pub(crate) struct Upload {
    pub body: Body,
    pub content_type: String,
    pub cache_control: String,
    pub user_metadata: Option<Value>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Body::Raw(_) => "Body::Raw",
            Body::Part { .. } => "Body::Part",
            Body::Stored(_) => "Body::Stored",
        })
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Reads the upload's attributes. For multipart forms this consumes the
/// text fields up to the file part (each capped at 64 KiB).
///
/// # Errors
/// [`StorageError::InvalidRequest`] for a malformed form or metadata,
/// [`StorageError::InvalidMimeType`] for a malformed content type.
pub(crate) async fn open(req: &HttpRequest, payload: SharedPayload) -> Result<Upload> {
    let content_type = header(req, "content-type").unwrap_or("application/octet-stream");
    let is_form = mime::essence(content_type).is_ok_and(|e| e == "multipart/form-data");
    if !is_form {
        let user_metadata = match header(req, "x-metadata") {
            Some(b64) => {
                Some(parse_metadata(&STANDARD.decode(b64.trim()).map_err(
                    |_| bad("x-metadata must be base64-encoded JSON"),
                )?)?)
            }
            None => None,
        };
        return Ok(Upload {
            body: Body::Raw(payload),
            content_type: mime::essence(content_type)?,
            cache_control: header(req, "cache-control")
                .unwrap_or("no-cache")
                .to_owned(),
            user_metadata,
        });
    }

    let mut form = Multipart::new(req.headers(), payload);
    let mut cache_control = None;
    let mut user_metadata = None;
    let mut field_type = None;
    while let Some(field) = form.next().await {
        let mut field = field.map_err(|e| bad(&format!("malformed multipart body: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .is_some()
            || !matches!(
                name.as_str(),
                "cacheControl" | "metadata" | "contentType" | "contentEncoding"
            );
        if is_file {
            let part_type = field.content_type().map(|m| m.essence_str().to_owned());
            let content_type = match field_type.or(part_type) {
                Some(t) => mime::essence(&t)?,
                None => "application/octet-stream".to_owned(),
            };
            return Ok(Upload {
                body: Body::Part {
                    field: Box::new(field),
                    _form: form,
                },
                content_type,
                cache_control: cache_control
                    .map(|c: String| format!("max-age={c}"))
                    .unwrap_or_else(|| "no-cache".to_owned()),
                user_metadata,
            });
        }
        let value = match field.bytes(MAX_FORM_FIELD).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(bad(&format!("malformed multipart body: {e}"))),
            Err(_) => return Err(bad(&format!("form field {name} is too large"))),
        };
        let text = std::str::from_utf8(&value)
            .map_err(|_| bad(&format!("form field {name} is not UTF-8")))?
            .to_owned();
        match name.as_str() {
            "cacheControl" => {
                if !text.bytes().all(|b| b.is_ascii_digit()) || text.is_empty() {
                    return Err(bad("cacheControl must be a number of seconds"));
                }
                cache_control = Some(text);
            }
            "metadata" => user_metadata = Some(parse_metadata(text.as_bytes())?),
            "contentType" => field_type = Some(text),
            _ => {}
        }
    }
    Err(bad("the multipart form has no file part"))
}

fn bad(msg: &str) -> StorageError {
    StorageError::InvalidRequest(msg.to_owned())
}

fn parse_metadata(bytes: &[u8]) -> Result<Value> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(bad("metadata must be a JSON object")),
    }
}

/// Flushes the local backend's file of `version` to the disk (`fdatasync`),
/// then its shard directory (`fsync`: the rename that put it there), so the
/// file and its name survive a power loss once this returns. The shard
/// directories themselves were created and flushed at start and are never
/// removed while syncing is on ([`crate::backend::build`]).
///
/// # Errors
/// [`StorageError::Internal`] when a sync fails.
pub(crate) async fn sync_version(root: std::path::PathBuf, version: Uuid) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        let v = version.simple().to_string();
        let shard = root.join("objects").join(&v[..2]);
        std::fs::File::open(shard.join(&v))?.sync_data()?;
        std::fs::File::open(&shard)?.sync_all()
    })
    .await
    .map_err(|e| StorageError::Internal(format!("fsync task: {e}")))?
    .map_err(|e| StorageError::Internal(format!("fsync of stored bytes: {e}")))
}

/// Streams `body` to a new version key and returns `(version, size)`.
///
/// The first 8 KiB are sniffed and checked against `allowed` before
/// anything is written. More than `limit` bytes → [`StorageError::EntityTooLarge`]
/// whatever `Content-Length` said; on any failure the partial upload is
/// aborted, so no bytes are left behind. With `sync` (the local backend's
/// root, when `storage.fsync` is on) the bytes are flushed to the disk
/// ([`sync_version`]) before this returns.
pub(crate) async fn store_body(
    store: &dyn ObjectStore,
    body: &mut Body,
    limit: u64,
    declared: &str,
    allowed: Option<&[String]>,
    sync: Option<&std::path::Path>,
) -> Result<(Uuid, u64)> {
    let (version, size) = write_body(store, body, limit, declared, allowed).await?;
    if let Some(root) = sync
        && let Err(err) = sync_version(root.to_path_buf(), version).await
    {
        let _ = store.delete(&version_key(&version)).await;
        return Err(err);
    }
    Ok((version, size))
}

async fn write_body(
    store: &dyn ObjectStore,
    body: &mut Body,
    limit: u64,
    declared: &str,
    allowed: Option<&[String]>,
) -> Result<(Uuid, u64)> {
    let mut size: u64 = 0;
    // The body's chunks as received (written without being copied) and a copy
    // of the first ones for sniffing.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut head = BytesMut::new();
    let mut ended = false;
    while head.len() < mime::SNIFF_LEN {
        match body.next().await {
            Some(chunk) => {
                let chunk = chunk?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(StorageError::EntityTooLarge);
                }
                head.extend_from_slice(&chunk);
                chunks.push(chunk);
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    mime::check_upload(allowed, declared, &head)?;
    drop(head);

    let version = Uuid::new_v4();
    let key = version_key(&version);
    let mut buffered = usize::try_from(size).unwrap_or(usize::MAX);
    if !ended {
        while buffered < SINGLE_PUT_MAX {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    size += chunk.len() as u64;
                    if size > limit {
                        return Err(StorageError::EntityTooLarge);
                    }
                    buffered += chunk.len();
                    chunks.push(chunk);
                }
                None => {
                    ended = true;
                    break;
                }
            }
        }
    }
    if ended {
        store
            .put(&key, chunks.into_iter().collect::<PutPayload>())
            .await?;
        return Ok((version, size));
    }

    let upload = store.put_multipart(&key).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    for chunk in chunks {
        writer.put(chunk);
    }
    let streamed: Result<()> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(StorageError::EntityTooLarge);
            }
            writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await?;
            writer.put(chunk);
        }
        Ok(())
    }
    .await;
    if let Err(err) = streamed {
        if let Err(abort) = writer.abort().await {
            tracing::warn!(error = %abort, "could not abort a multipart upload");
        }
        return Err(err);
    }
    if let Err(err) = writer.finish().await {
        let _ = store.delete(&key).await;
        return Err(err.into());
    }
    Ok((version, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sync_version_flushes_the_file_or_fails() {
        let root = std::env::temp_dir().join(format!("gf-sync-{}", Uuid::new_v4().simple()));
        let version = Uuid::new_v4();
        let v = version.simple().to_string();
        let shard = root.join("objects").join(&v[..2]);
        std::fs::create_dir_all(&shard).unwrap();
        // No file yet: the sync fails (and so does the upload that asked for it).
        assert!(matches!(
            sync_version(root.clone(), version).await,
            Err(StorageError::Internal(_))
        ));
        std::fs::write(shard.join(&v), b"bytes").unwrap();
        sync_version(root.clone(), version).await.unwrap();
        std::fs::remove_dir_all(root).unwrap();
    }
}
