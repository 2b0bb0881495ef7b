//! Fault tests (checklist items 24 and 35) on SQLite and PostgreSQL, local
//! filesystem and in-memory backends: a client killed halfway through an
//! upload (old content or 404, never a torn object, no bytes left), a crash
//! between the bytes and their row (the sweeper removes the bytes), and
//! refused replacements that leave the object byte for byte unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{As, H, U1, U2};
use goforward_core::sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use goforward_storage::entity::object;
use reqwest::Method;
use tokio::io::AsyncWriteExt;

/// Deterministic bytes that differ from one `seed` to another.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends the head of `POST /storage/v1{path}` declaring `declared` bytes,
/// then `sent` bytes of the body, then kills the connection (the socket is
/// dropped: the client process died).
async fn killed_upload(h: &H, path: &str, who: As, declared: usize, sent: usize, upsert: bool) {
    let addr = h.app.base_url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut head = format!(
        "POST /storage/v1{path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {declared}\r\nx-upsert: {upsert}\r\napikey: {}\r\n",
        h.app.anon_key()
    );
    if let Some(t) = h.token(who) {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let body = payload(sent, 0xEE);
    for chunk in body.chunks(64 << 10) {
        if stream.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = stream.flush().await;
    // Let the server read what was sent before the client dies.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
}

/// Waits until the server has cleaned up after a dead client: `rows` rows
/// and (local backend) `files` files; fails after 10 s.
async fn settles(h: &H, rows: usize, files: usize) {
    let mut seen = (usize::MAX, usize::MAX);
    for _ in 0..100 {
        let f = if h.memory { files } else { h.files().len() };
        seen = (h.rows().await, f);
        if seen == (rows, files) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "expected {rows} rows and {files} files, found {seen:?}: {:?}",
        h.files()
    );
}

/// Checklist 35, "client killed at 50 % → old content or 404": on the
/// single-put path (2 MiB declared, 1 MiB sent) and on the multipart path
/// (12 MiB declared, 10 MiB sent: past the 8 MiB single put), over an
/// existing object and onto a new name.
async fn killed_client(h: Arc<H>) {
    let old = payload(3 << 20, 7);
    let (s, r) = h
        .upload(
            As::User(U1),
            "open",
            "doc.bin",
            old.clone(),
            "application/octet-stream",
            false,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    settles(&h, 1, 1).await;
    for (declared, sent) in [(2usize << 20, 1usize << 20), (12 << 20, 10 << 20)] {
        // Over the existing object: the old content stays, whole.
        killed_upload(
            &h,
            "/object/open/doc.bin",
            As::User(U1),
            declared,
            sent,
            true,
        )
        .await;
        settles(&h, 1, 1).await;
        let (s, _, bytes) = h.download(As::Nobody, "/object/public/open/doc.bin").await;
        assert_eq!(s, 200);
        assert!(
            bytes == old,
            "the old content is intact after a killed upsert"
        );
        // Onto a new name: 404, no row, no bytes.
        killed_upload(
            &h,
            "/object/open/new.bin",
            As::User(U1),
            declared,
            sent,
            false,
        )
        .await;
        settles(&h, 1, 1).await;
        let (s, _, _) = h.download(As::Nobody, "/object/public/open/new.bin").await;
        assert_eq!(s, 404);
    }
    // The server still serves a complete upsert afterwards.
    let new = payload(1 << 20, 9);
    let (s, r) = h
        .upload(
            As::User(U1),
            "open",
            "doc.bin",
            new.clone(),
            "application/octet-stream",
            true,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, _, bytes) = h.download(As::Nobody, "/object/public/open/doc.bin").await;
    assert!(bytes == new);
    settles(&h, 1, 1).await;
}
both!(killed_client, super::killed_client);
both!(killed_client_in_memory, super::killed_client, memory);

/// Checklist 35, "crash between blob and commit → no dangling row, blob
/// GC'd": the bytes of a real upload (single put and multipart) whose row
/// was never committed — the row is removed behind the server's back, which
/// is the state a crash after writing the bytes leaves — are kept while
/// young (an upload may be in flight) and deleted by the sweeper after the
/// grace period; committed objects are untouched.
async fn crash_before_commit(h: Arc<H>) {
    let kept = payload(1 << 20, 1);
    for (name, body) in [
        ("kept.bin", kept.clone()),
        ("small.bin", payload(100 << 10, 2)),
        ("large.bin", payload(9 << 20, 3)),
    ] {
        let (s, r) = h
            .upload(
                As::User(U1),
                "open",
                name,
                body,
                "application/octet-stream",
                false,
            )
            .await;
        assert_eq!(s, 200, "{r}");
    }
    let state = h
        .app
        .gf
        .context()
        .services()
        .get::<goforward_storage::StorageState>()
        .unwrap();
    // Nothing is an orphan yet.
    assert_eq!(state.sweep_orphans(Duration::ZERO).await.unwrap(), 0);
    let crashed = object::Entity::delete_many()
        .filter(object::Column::Name.is_in(["small.bin", "large.bin"]))
        .exec(h.app.db())
        .await
        .unwrap();
    assert_eq!(crashed.rows_affected, 2);
    assert_eq!(h.rows().await, 1);
    if !h.memory {
        assert_eq!(h.files().len(), 3, "the crashed uploads' bytes are there");
    }
    // Young bytes may belong to an upload in flight: kept.
    assert_eq!(
        state
            .sweep_orphans(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(state.sweep_orphans(Duration::ZERO).await.unwrap(), 2);
    if !h.memory {
        assert_eq!(h.files().len(), 1, "{:?}", h.files());
    }
    assert_eq!(state.sweep_orphans(Duration::ZERO).await.unwrap(), 0);
    let (s, _, bytes) = h.download(As::Nobody, "/object/public/open/kept.bin").await;
    assert_eq!(s, 200);
    assert!(bytes == kept);
    let (s, _, _) = h
        .download(As::Nobody, "/object/public/open/large.bin")
        .await;
    assert_eq!(s, 404);
}
both!(crash_before_commit, super::crash_before_commit);
both!(
    crash_before_commit_in_memory,
    super::crash_before_commit,
    memory
);

/// Checklist 24, "unauthenticated multipart PUT → 403 and the checksum is
/// unchanged": PUT and POST with `x-upsert`, raw and multipart, by nobody,
/// the anon key and another user, over a private object and a public one.
async fn refused_replacements(h: Arc<H>) {
    let private = payload(200 << 10, 4);
    let public = b"public text".to_vec();
    let (s, r) = h
        .upload(
            As::User(U1),
            "priv",
            "u1/doc.bin",
            private.clone(),
            "application/octet-stream",
            false,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = h
        .upload(
            As::User(U1),
            "pub",
            "u1/note.txt",
            public.clone(),
            "text/plain",
            false,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let sorted = |mut v: Vec<std::path::PathBuf>| {
        v.sort();
        v
    };
    let files_before = if h.memory {
        Vec::new()
    } else {
        sorted(h.files())
    };

    let (form_type, form) = H::form(&[("cacheControl", "3600")], b"overwritten", "text/plain");
    for who in [As::Nobody, As::Anon, As::User(U2)] {
        // Without an API key: 401; with the anon key or as another user: 403.
        let (status, code) = match who {
            As::Nobody => (401, "InvalidJWT"),
            _ => (403, "AccessDenied"),
        };
        for path in ["/object/priv/u1/doc.bin", "/object/pub/u1/note.txt"] {
            for method in [Method::PUT, Method::POST] {
                for multipart in [true, false] {
                    let req = h.req(method.clone(), path, who).header("x-upsert", "true");
                    let req = if multipart {
                        req.header("content-type", form_type.clone())
                            .body(form.clone())
                    } else {
                        req.header("content-type", "text/plain").body("overwritten")
                    };
                    let r = h.send(req).await;
                    assert_eq!(
                        r.0, status,
                        "{method} {path} by {who:?} (multipart: {multipart}): {}",
                        r.1
                    );
                    h.assert_error(&r, status, code);
                }
            }
        }
    }
    let (s, _, bytes) = h.download(As::User(U1), "/object/priv/u1/doc.bin").await;
    assert_eq!(s, 200);
    assert!(bytes == private, "the private object is unchanged");
    let (s, _, bytes) = h
        .download(As::Nobody, "/object/public/pub/u1/note.txt")
        .await;
    assert_eq!(s, 200);
    assert_eq!(bytes, public, "the public object is unchanged");
    assert_eq!(h.rows().await, 2);
    if !h.memory {
        assert_eq!(sorted(h.files()), files_before, "no bytes written");
    }
}
both!(refused_replacements, super::refused_replacements);

/// A crash in the middle of a large upload on the local backend leaves the
/// multipart upload's staging file (`objects/<xx>/<version>#<n>`), which
/// object_store's listing does not show: the sweeper deletes it once older
/// than the grace period, and leaves files of any other shape alone.
async fn crash_mid_upload(h: Arc<H>) {
    let (s, r) = h
        .upload(
            As::User(U1),
            "open",
            "kept.bin",
            payload(9 << 20, 5),
            "application/octet-stream",
            false,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let v = uuid::Uuid::new_v4().simple().to_string();
    let dir = h.root().join("objects").join(&v[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    let staging = dir.join(format!("{v}#3"));
    std::fs::write(&staging, payload(5 << 20, 6)).unwrap();
    let stranger = dir.join("notes#1");
    std::fs::write(&stranger, b"not ours").unwrap();
    let state = h
        .app
        .gf
        .context()
        .services()
        .get::<goforward_storage::StorageState>()
        .unwrap();
    assert_eq!(
        state
            .sweep_orphans(Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "a young staging file may be an upload in flight"
    );
    assert!(staging.exists());
    assert_eq!(state.sweep_orphans(Duration::ZERO).await.unwrap(), 1);
    assert!(!staging.exists(), "the stale staging file is swept");
    assert!(stranger.exists(), "other files are left alone");
    std::fs::remove_file(&stranger).unwrap();
    assert_eq!(h.files().len(), 1, "{:?}", h.files());
    let (s, _, bytes) = h.download(As::Nobody, "/object/public/open/kept.bin").await;
    assert_eq!(s, 200);
    assert!(bytes == payload(9 << 20, 5));
}
both!(crash_mid_upload, super::crash_mid_upload);

/// Checklist 25, "a lying Content-Length": a body longer than its declared
/// length cannot smuggle bytes past the limit — the server reads exactly the
/// declared bytes (the rest is not part of the upload), so the stored object
/// is never larger than the limit; a declared length over the limit is refused
/// before the body is read, and nothing is stored.
async fn lying_content_length(h: Arc<H>) {
    use tokio::io::AsyncReadExt;
    let limit = 64 * 1024; // the `pub` bucket's limit
    let addr = h.app.base_url.trim_start_matches("http://").to_owned();
    let send = |declared: usize, body: Vec<u8>, name: &'static str| {
        let addr = addr.clone();
        let token = h.app.user_token(U1);
        let key = h.app.anon_key();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "POST /storage/v1/object/pub/u1/{name} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                 Content-Type: text/plain\r\nContent-Length: {declared}\r\napikey: {key}\r\n\
                 Authorization: Bearer {token}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let _ = stream.write_all(&body).await;
            let mut out = Vec::new();
            let _ = stream.read_to_end(&mut out).await;
            let text = String::from_utf8_lossy(&out).into_owned();
            text.split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .expect("a status line")
        }
    };
    // Declares the limit, sends 10 000 bytes more.
    let status = send(limit, vec![b'a'; limit + 10_000], "long.txt").await;
    assert_eq!(status, 200);
    let (s, _, bytes) = h
        .download(As::Nobody, "/object/public/pub/u1/long.txt")
        .await;
    assert_eq!(s, 200);
    assert_eq!(bytes.len(), limit, "exactly the declared bytes were stored");
    // Declares one byte over the limit: refused before the body is read.
    let status = send(limit + 1, vec![b'b'; limit + 1], "over.txt").await;
    assert_eq!(status, 413);
    let (s, _, _) = h
        .download(As::Nobody, "/object/public/pub/u1/over.txt")
        .await;
    assert_eq!(s, 404);
    assert_eq!(h.rows().await, 1);
    if !h.memory {
        settles(&h, 1, 1).await;
    }
}
both!(lying_content_length, super::lying_content_length);
