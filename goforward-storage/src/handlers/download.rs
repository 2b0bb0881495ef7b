//! Downloads: authenticated, public-bucket and signed; `Range`, `ETag` /
//! `If-None-Match`, `Last-Modified`, `download=` and safe serving headers.

use actix_web::body::SizedStream;
use actix_web::http::header::{
    Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::{StreamExt, TryStreamExt};
use goforward_core::token::Principal;
use object_store::{GetOptions, GetRange, GetResultPayload, ObjectStore};
use serde::Deserialize;
use serde_json::Value;

use super::{ObjectPath, State};
use crate::entity::object;
use crate::error::{Result, StorageError};
use crate::mime;
use crate::names::{validate_bucket_id, validate_object_name};
use crate::signing::Scope;
use crate::state::version_key;

/// Query of download routes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DownloadQuery {
    /// Present: serve as an attachment, named by the value (or the object's name when empty).
    pub download: Option<String>,
    /// Signed routes: the token.
    pub token: Option<String>,
}

/// `GET|HEAD /object/{bucket}/{name}` and `/object/authenticated/{bucket}/{name}`.
pub(crate) async fn authenticated(
    state: State,
    req: HttpRequest,
    who: Principal,
    path: web::Path<ObjectPath>,
    query: web::Query<DownloadQuery>,
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
    serve(&state, &req, &row, query.download.as_deref()).await
}

/// `GET|HEAD /object/public/{bucket}/{name}`: public buckets only, no token needed.
pub(crate) async fn public(
    state: State,
    req: HttpRequest,
    path: web::Path<ObjectPath>,
    query: web::Query<DownloadQuery>,
) -> Result<HttpResponse> {
    let (bucket, name) = path.validated()?;
    let b = state.bucket(&bucket).await?;
    if !b.public {
        return Err(StorageError::NoSuchBucket);
    }
    let row = state
        .object(&bucket, &name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    serve(&state, &req, &row, query.download.as_deref()).await
}

/// `GET|HEAD /object/sign/{bucket}/{name}?token=…`.
pub(crate) async fn signed(
    state: State,
    req: HttpRequest,
    path: web::Path<ObjectPath>,
    query: web::Query<DownloadQuery>,
) -> Result<HttpResponse> {
    validate_bucket_id(&path.bucket)?;
    let name = validate_object_name(&path.name)?;
    let token = query.token.as_deref().ok_or_else(|| {
        StorageError::InvalidSignature("querystring must have required property 'token'".into())
    })?;
    state.signer.verify(
        token,
        Scope::Download,
        &path.bucket,
        &name,
        chrono::Utc::now().timestamp(),
    )?;
    let row = state
        .object(&path.bucket, &name)
        .await?
        .ok_or(StorageError::NoSuchKey)?;
    serve(&state, &req, &row, query.download.as_deref()).await
}

fn meta_str<'a>(row: &'a object::Model, key: &str) -> Option<&'a str> {
    row.metadata.get(key).and_then(Value::as_str)
}

/// The single byte range a `Range` header asks for, as `start..end` (end
/// exclusive), `None` for the whole object.
fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(h) = header else {
        return Ok(None);
    };
    let unsatisfiable = Err(StorageError::InvalidRange { size });
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Multiple ranges are not supported: serve the whole object.
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return unsatisfiable;
        };
        if n == 0 || size == 0 {
            return unsatisfiable;
        }
        (size.saturating_sub(n), size)
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return unsatisfiable;
        };
        let end = if b.is_empty() {
            size
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= start => (e + 1).min(size),
                _ => return unsatisfiable,
            }
        };
        if start >= size {
            return unsatisfiable;
        }
        (start, end)
    };
    Ok(Some(range))
}

pub(crate) fn http_date(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

pub(crate) fn disposition(kind: DispositionType, filename: &str) -> ContentDisposition {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    ContentDisposition {
        disposition: kind,
        parameters: vec![
            DispositionParam::Filename(ascii),
            DispositionParam::FilenameExt(ExtendedValue {
                charset: Charset::Ext("UTF-8".into()),
                language_tag: None,
                value: filename.as_bytes().to_vec(),
            }),
        ],
    }
}

/// Streams `row`'s bytes (or answers 304 / 206 / 416), with serving headers
/// that keep browsers from running what they download: `nosniff`, a
/// sandboxing CSP, and `attachment` for anything not inert (HTML, SVG…).
pub(crate) async fn serve(
    state: &State,
    req: &HttpRequest,
    row: &object::Model,
    download: Option<&str>,
) -> Result<HttpResponse> {
    let etag = meta_str(row, "eTag").unwrap_or_default().to_owned();
    let mimetype = meta_str(row, "mimetype")
        .unwrap_or("application/octet-stream")
        .to_owned();
    let cache_control = meta_str(row, "cacheControl")
        .unwrap_or("no-cache")
        .to_owned();
    let size = row
        .metadata
        .get("size")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let last_name = row.name.rsplit('/').next().unwrap_or(&row.name).to_owned();

    let mut res = HttpResponse::Ok();
    res.insert_header(("ETag", etag.clone()))
        .insert_header(("Last-Modified", http_date(&row.updated_at)))
        .insert_header(("Cache-Control", cache_control))
        .insert_header(("Accept-Ranges", "bytes"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Content-Security-Policy", "default-src 'none'; sandbox"));

    let if_none_match = req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok());
    if let Some(inm) = if_none_match
        && inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t == etag || t.strip_prefix("W/") == Some(etag.as_str())
        })
    {
        res.status(StatusCode::NOT_MODIFIED);
        return Ok(res.finish());
    }

    let filename = match download {
        Some(d) if !d.is_empty() => d.to_owned(),
        _ => last_name,
    };
    let cd = if download.is_some() || !mime::inline_safe(&mimetype) {
        disposition(DispositionType::Attachment, &filename)
    } else {
        disposition(DispositionType::Inline, &filename)
    };
    res.insert_header(cd)
        .insert_header(("Content-Type", mimetype));

    let range_header = req.headers().get("range").and_then(|v| v.to_str().ok());
    let range = parse_range(range_header, size)?;
    let (start, end) = range.unwrap_or((0, size));
    if range.is_some() {
        res.status(StatusCode::PARTIAL_CONTENT).insert_header((
            "Content-Range",
            format!("bytes {start}-{}/{size}", end.saturating_sub(1)),
        ));
    }
    let len = end - start;
    if req.method() == Method::HEAD || len == 0 {
        return Ok(res.body(SizedStream::new(
            len,
            futures_util::stream::empty::<Result<bytes::Bytes, actix_web::Error>>(),
        )));
    }
    let options = GetOptions {
        range: range.map(|(s, e)| GetRange::Bounded(s..e)),
        ..GetOptions::default()
    };
    let got = match state
        .store
        .get_opts(&version_key(&row.version), options)
        .await
    {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Err(StorageError::NoSuchKey),
        Err(err) => return Err(err.into()),
    };
    let stream = match got.payload {
        // The local backend hands over an open file; object_store would read it in
        // 8 KiB chunks, each on the blocking pool. Larger reads cost a fraction of that.
        GetResultPayload::File(file, _) => file_stream(file, got.range),
        GetResultPayload::Stream(stream) => stream
            .map_err(|e| actix_web::error::ErrorInternalServerError(StorageError::from(e)))
            .boxed(),
    };
    Ok(res.body(SizedStream::new(len, stream)))
}

/// Read size of downloads from a local file: one blocking-pool task per 1 MiB.
const FILE_CHUNK: u64 = 1 << 20;

type ChunkRead = tokio::task::JoinHandle<std::io::Result<(std::fs::File, bytes::Bytes)>>;

/// Reads `want` bytes at the file's current position on the blocking pool,
/// into a buffer that is not zeroed first (`read_to_end` fills spare capacity).
fn read_chunk(file: std::fs::File, want: u64) -> ChunkRead {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(0));
        (&file).take(want).read_to_end(&mut buf)?;
        if buf.len() as u64 != want {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the stored file is shorter than its row says",
            ));
        }
        Ok((file, bytes::Bytes::from(buf)))
    })
}

/// Streams `range` of a local file, [`FILE_CHUNK`] at a time, reading one chunk
/// ahead: when a chunk is handed to the response, the read of the next one
/// starts, so reading the file overlaps writing the socket. At most two
/// chunks per download are in memory; no blocking thread is held between reads.
fn file_stream(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> futures_util::stream::BoxStream<'static, std::result::Result<bytes::Bytes, actix_web::Error>> {
    use std::io::{Seek, SeekFrom};
    let (start, end) = (range.start, range.end);
    let first = (end - start).min(FILE_CHUNK);
    let opened = (|| -> std::io::Result<std::fs::File> {
        let mut file = file;
        if start > 0 {
            file.seek(SeekFrom::Start(start))?;
        }
        Ok(file)
    })();
    let pending: Option<ChunkRead> = match opened {
        Ok(file) if first > 0 => Some(read_chunk(file, first)),
        Ok(_) => None,
        Err(e) => {
            return futures_util::stream::once(async move { Err(file_error(&e)) }).boxed();
        }
    };
    futures_util::stream::try_unfold(
        (pending, start + first, end),
        |(pending, next, end)| async move {
            let Some(read) = pending else {
                return Ok(None);
            };
            let (file, chunk) = match read.await {
                Ok(Ok(read)) => read,
                Ok(Err(e)) => return Err(file_error(&e)),
                Err(e) => return Err(file_error(&e)),
            };
            let want = (end - next).min(FILE_CHUNK);
            let ahead = (want > 0).then(|| read_chunk(file, want));
            Ok(Some((chunk, (ahead, next + want, end))))
        },
    )
    .boxed()
}

fn file_error(e: &dyn std::fmt::Display) -> actix_web::Error {
    actix_web::error::ErrorInternalServerError(StorageError::Internal(format!(
        "could not read a stored object: {e}"
    )))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100).unwrap(), Some((0, 10)));
        assert_eq!(
            parse_range(Some("bytes=90-"), 100).unwrap(),
            Some((90, 100))
        );
        assert_eq!(
            parse_range(Some("bytes=-10"), 100).unwrap(),
            Some((90, 100))
        );
        assert_eq!(
            parse_range(Some("bytes=0-999"), 100).unwrap(),
            Some((0, 100))
        );
        assert!(parse_range(Some("bytes=100-"), 100).is_err());
        assert!(parse_range(Some("bytes=5-2"), 100).is_err());
        assert_eq!(parse_range(None, 100).unwrap(), None);
        assert_eq!(parse_range(Some("items=1-2"), 100).unwrap(), None);
    }
}
