//! Refusals and safety properties (checklist items 22, 24, 25, 26, 35) on
//! SQLite and PostgreSQL: key validation, authorization before the body,
//! size limits while streaming, MIME checks, safe serving, atomic upserts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{As, H, U1};
use futures_util::stream;
use reqwest::Method;

/// A chunked body (no Content-Length) of `len` bytes in 64 KiB chunks.
fn chunked(len: usize, byte: u8) -> reqwest::Body {
    let chunk = 64 * 1024;
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..len)
        .step_by(chunk)
        .map(|start| Ok(Bytes::from(vec![byte; chunk.min(len - start)])))
        .collect();
    reqwest::Body::wrap_stream(stream::iter(chunks))
}

async fn nothing_stored(h: &H) {
    assert_eq!(h.rows().await, 0, "no row");
    if !h.memory {
        assert!(h.files().is_empty(), "no bytes left: {:?}", h.files());
    }
}

async fn traversal_names(h: Arc<H>) {
    let canary = h.app.gf.config().data_dir.join("canary.txt");
    std::fs::write(&canary, "canary").unwrap();
    // Encoded so the client does not resolve them; the server decodes.
    let payloads = [
        "%2e%2e/canary.txt",
        "%2E%2E%2Fcanary.txt",
        "a/%2e%2e/%2e%2e/%2e%2e/canary.txt",
        "..%2Fcanary.txt",
        "..%252Fcanary.txt",
        "%2e%2e%5ccanary.txt",
        "a%5c..%5c..%5ccanary.txt",
        "%2Fetc%2Fpasswd",
        "a//b.txt",
        "a/./b.txt",
        "a%00b.txt",
        "a%0Ab.txt",
        "a%7Fb.txt",
        "C:%5Cwindows.txt",
        "%252e%252e/x.txt",
    ];
    for p in payloads {
        for (method, path, who) in [
            ("POST", format!("/object/open/{p}"), As::Service),
            ("PUT", format!("/object/open/{p}"), As::Service),
            ("GET", format!("/object/open/{p}"), As::Service),
            ("GET", format!("/object/public/open/{p}"), As::Nobody),
            ("GET", format!("/object/info/open/{p}"), As::Service),
            ("DELETE", format!("/object/open/{p}"), As::Service),
            ("POST", format!("/object/sign/open/{p}"), As::Service),
            ("POST", format!("/object/upload/sign/open/{p}"), As::Service),
        ] {
            let r = h.raw(method, &path, who, b"x").await;
            assert_eq!(r.0, 400, "{method} {path} → {r:?}");
            assert_eq!(r.1["statusCode"], "400", "{method} {path} → {r:?}");
            assert!(
                matches!(r.1["code"].as_str(), Some("InvalidKey" | "InvalidRequest")),
                "{method} {path} → {r:?}"
            );
        }
    }
    let long = "a".repeat(1025);
    let r = h
        .upload(As::Service, "open", &long, "x", "text/plain", true)
        .await;
    h.assert_error(&r, 400, "InvalidKey");
    let r = h
        .upload(As::Service, "..", "x.txt", "x", "text/plain", true)
        .await;
    assert!(matches!(r.0, 400 | 404), "{r:?}");
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary");
    nothing_stored(&h).await;
    // Unicode names are stored NFC: NFD and NFC spellings address one object.
    let (s, _) = h
        .upload(
            As::Service,
            "open",
            "cafe%CC%81.txt",
            "nfd",
            "text/plain",
            false,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, bytes) = h.download(As::Service, "/object/open/caf%C3%A9.txt").await;
    assert_eq!((s, bytes.as_slice()), (200, b"nfd".as_slice()));
}
both!(traversal_names, super::traversal_names);

async fn size_limits(h: Arc<H>) {
    // pub: 64 KiB. Exactly the limit passes; one byte more fails, announced or chunked.
    let limit = 64 * 1024;
    let over = vec![b'a'; limit + 1];
    let r = h
        .upload(
            As::User(U1),
            "pub",
            "big.txt",
            over.clone(),
            "text/plain",
            false,
        )
        .await;
    h.assert_error(&r, 413, "EntityTooLarge");
    let r = h
        .upload(
            As::User(U1),
            "pub",
            "big.txt",
            chunked(limit + 1, b'a'),
            "text/plain",
            false,
        )
        .await;
    h.assert_error(&r, 413, "EntityTooLarge");
    nothing_stored(&h).await;
    // Server-wide limit (12 MiB here) crossed after a multipart upload started: aborted.
    let r = h
        .upload(
            As::User(U1),
            "open",
            "huge.bin",
            chunked((12 << 20) + 1, b'z'),
            "application/octet-stream",
            false,
        )
        .await;
    h.assert_error(&r, 413, "EntityTooLarge");
    tokio::time::sleep(Duration::from_millis(200)).await; // staging files are removed in the background
    nothing_stored(&h).await;
    // A multipart-sized upload under the limit succeeds and reads back whole.
    let (s, r) = h
        .upload(
            As::User(U1),
            "open",
            "large.bin",
            chunked(10 << 20, b'q'),
            "application/octet-stream",
            false,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, _, bytes) = h
        .download(As::Nobody, "/object/public/open/large.bin")
        .await;
    assert_eq!(s, 200);
    assert_eq!(bytes.len(), 10 << 20);
    assert!(bytes.iter().all(|b| *b == b'q'));
    let (s, _) = h
        .upload(
            As::User(U1),
            "pub",
            "exact.txt",
            vec![b'a'; limit],
            "text/plain",
            false,
        )
        .await;
    assert_eq!(s, 200);
}
both!(size_limits, super::size_limits);

async fn mime_checks(h: Arc<H>) {
    let png = [
        0x89u8, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D,
    ];
    let refused = [
        (b"%PDF-1.4 hello".to_vec(), "application/pdf"),
        (
            b"<html><script>alert(1)</script></html>".to_vec(),
            "image/png",
        ),
        (b"%PDF-1.4 hello".to_vec(), "image/png"),
        (b"<svg onload=alert(1)></svg>".to_vec(), "image/webp"),
        (png.to_vec(), "not a mime"),
    ];
    for (body, ct) in refused {
        let r = h
            .upload(As::User(U1), "pub", "x.png", body, ct, false)
            .await;
        h.assert_error(&r, 415, "InvalidMimeType");
    }
    // multipart: the part's type counts
    let (ct, form) = H::form(&[("cacheControl", "3600")], b"%PDF-1.4", "application/pdf");
    let r = h
        .send(
            h.req(Method::POST, "/object/pub/doc.pdf", As::User(U1))
                .header("content-type", ct)
                .body(form),
        )
        .await;
    h.assert_error(&r, 415, "InvalidMimeType");
    nothing_stored(&h).await;
    let (s, _) = h
        .upload(
            As::User(U1),
            "pub",
            "ok.png",
            png.to_vec(),
            "image/png",
            false,
        )
        .await;
    assert_eq!(s, 200);
}
both!(mime_checks, super::mime_checks);

async fn safe_serving(h: Arc<H>) {
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    let (s, _) = h
        .upload(
            As::Service,
            "open",
            "x.svg",
            svg.to_vec(),
            "image/svg+xml",
            false,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .upload(
            As::Service,
            "open",
            "x.html",
            "<h1>hi</h1>",
            "text/html",
            false,
        )
        .await;
    assert_eq!(s, 200);
    let png = [0x89u8, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let (s, _) = h
        .upload(
            As::Service,
            "open",
            "x.png",
            png.to_vec(),
            "image/png",
            false,
        )
        .await;
    assert_eq!(s, 200);
    for (name, inline) in [("x.svg", false), ("x.html", false), ("x.png", true)] {
        let (s, headers, _) = h
            .download(As::Nobody, &format!("/object/public/open/{name}"))
            .await;
        assert_eq!(s, 200);
        let cd = headers["content-disposition"].to_str().unwrap();
        assert_eq!(cd.starts_with("inline"), inline, "{name}: {cd}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'none'; sandbox"
        );
    }
}
both!(safe_serving, super::safe_serving);

async fn authorization_before_body(h: Arc<H>) {
    // A body that never ends: the answer must come without reading it.
    let endless = || {
        let first = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]);
        reqwest::Body::wrap_stream(futures_util::StreamExt::chain(first, stream::pending()))
    };
    let cases: [(As, &str, u16, &str); 4] = [
        (As::Anon, "/object/pub/a.txt", 403, "AccessDenied"),
        (As::Anon, "/object/priv/a.txt", 403, "AccessDenied"),
        (As::User(U1), "/object/nobucket/a.txt", 404, "NoSuchBucket"),
        (As::User(U1), "/object/pub/a%00.txt", 400, "InvalidKey"),
    ];
    for (who, path, status, code) in cases {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            h.send(
                h.req(Method::POST, path, who)
                    .header("content-type", "text/plain")
                    .body(endless()),
            ),
        )
        .await
        .expect("answered before the body was read");
        h.assert_error(&r, status, code);
    }
    nothing_stored(&h).await;
}
both!(authorization_before_body, super::authorization_before_body);

async fn concurrent_upserts(h: Arc<H>) {
    let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![b'a' + i; 200_000]).collect();
    let mut tasks = Vec::new();
    for p in payloads.clone() {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.upload(
                As::User(U1),
                "open",
                "race.bin",
                p,
                "application/octet-stream",
                true,
            )
            .await
        }));
    }
    for t in tasks {
        let (s, r) = t.await.unwrap();
        assert_eq!(s, 200, "{r}");
    }
    let (s, _, bytes) = h.download(As::Nobody, "/object/public/open/race.bin").await;
    assert_eq!(s, 200);
    assert!(
        payloads.contains(&bytes),
        "the final object is exactly one whole payload"
    );
    assert_eq!(h.rows().await, 1);
    if !h.memory {
        assert_eq!(
            h.files().len(),
            1,
            "replaced versions are deleted: {:?}",
            h.files()
        );
    }
}
both!(concurrent_upserts, super::concurrent_upserts);
both!(
    concurrent_upserts_in_memory,
    super::concurrent_upserts,
    memory
);

async fn delete_events(h: Arc<H>) {
    let (s, _) = h
        .upload(As::User(U1), "open", "e.txt", "x", "text/plain", false)
        .await;
    assert_eq!(s, 200);
    let mut bus = h.app.gf.context().bus().subscribe();
    let r = h
        .send(h.req(Method::DELETE, "/object/open/e.txt", As::User(U1)))
        .await;
    assert_eq!(r.0, 200);
    let env = tokio::time::timeout(Duration::from_secs(5), bus.recv())
        .await
        .unwrap()
        .unwrap();
    match &env.event {
        goforward_core::bus::Event::ObjectDeleted(o) => {
            assert_eq!(
                (o.bucket.as_str(), o.path.as_str(), o.owner.as_deref()),
                ("open", "e.txt", Some(U1))
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    nothing_stored(&h).await;
}
both!(delete_events, super::delete_events);

async fn client_disconnects_midway(h: Arc<H>) {
    // The client dies after 1 MiB (single-put path) and after 9 MiB (multipart path).
    for sent in [1usize << 20, 9 << 20] {
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..sent / (1 << 20))
            .map(|_| Ok(Bytes::from(vec![b'c'; 1 << 20])))
            .chain([Err(std::io::Error::other("client gone"))])
            .collect();
        let res = h
            .req(Method::POST, "/object/open/cut.bin", As::User(U1))
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
            .send()
            .await;
        assert!(res.is_err() || !res.unwrap().status().is_success());
        let mut left = usize::MAX;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            left = if h.memory { 0 } else { h.files().len() } + h.rows().await;
            if left == 0 {
                break;
            }
        }
        assert_eq!(
            left,
            0,
            "no object, no bytes after a disconnect: {:?}",
            h.files()
        );
    }
}
both!(client_disconnects_midway, super::client_disconnects_midway);

async fn wrong_method(h: Arc<H>) {
    let r = h
        .send(h.req(Method::PATCH, "/object/open/x.txt", As::User(U1)))
        .await;
    h.assert_error(&r, 405, "MethodNotAllowed");
    let r = h
        .send(h.req(Method::GET, "/nothing/here", As::User(U1)))
        .await;
    assert_eq!(r.0, 404);
    assert_eq!(r.1["statusCode"], "404");
}
both!(wrong_method, super::wrong_method);

async fn sweeper_removes_orphans(h: Arc<H>) {
    let (s, _) = h
        .upload(
            As::User(U1),
            "open",
            "kept.txt",
            "kept",
            "text/plain",
            false,
        )
        .await;
    assert_eq!(s, 200);
    // A crash between writing bytes and committing their row leaves this behind.
    let v = uuid::Uuid::new_v4().simple().to_string();
    let dir = h.root().join("objects").join(&v[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&v), b"orphan").unwrap();
    assert_eq!(h.files().len(), 2);
    let state = h
        .app
        .gf
        .context()
        .services()
        .get::<goforward_storage::StorageState>()
        .unwrap();
    // Young bytes may belong to an upload in flight: kept.
    assert_eq!(
        state
            .sweep_orphans(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(h.files().len(), 2);
    assert_eq!(state.sweep_orphans(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(h.files().len(), 1);
    assert_eq!(
        h.download(As::Nobody, "/object/public/open/kept.txt")
            .await
            .2,
        b"kept"
    );
}
both!(sweeper_removes_orphans, super::sweeper_removes_orphans);

/// Bounds a request that must not hang (a stalled keep-alive connection).
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 30 s (connection stalled)"))
}

async fn refusal_mid_stream_keeps_client_usable(h: Arc<H>) {
    // One client (keep-alive pool) for everything: each upload is refused after
    // part of a large chunked body was read, with megabytes still unsent; the same
    // client's next request must be answered, and nothing may be left behind.
    let pdf_head = {
        let mut b = b"%PDF-1.4\n".to_vec();
        b.resize(16 << 20, b'p');
        b
    };
    let in_chunks = |bytes: Vec<u8>| {
        let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        reqwest::Body::wrap_stream(stream::iter(chunks))
    };
    for round in 0..3 {
        // Bucket limit (64 KiB) crossed while streaming, POST and PUT.
        for method in [Method::POST, Method::PUT] {
            let r = within(
                "oversize upload",
                h.send(
                    h.req(method.clone(), "/object/pub/big.txt", As::User(U1))
                        .header("content-type", "text/plain")
                        .body(chunked(16 << 20, b'a')),
                ),
            )
            .await;
            h.assert_error(&r, 413, "EntityTooLarge");
            let (s, body) = within(
                "request after the refusal",
                h.send(h.req(Method::GET, "/bucket/pub", As::Service)),
            )
            .await;
            assert_eq!(
                (s, &body["id"]),
                (200, &serde_json::json!("pub")),
                "round {round} {method}"
            );
        }
        // Server-wide limit (12 MiB) crossed during a multipart upload.
        let r = within(
            "oversize multipart-path upload",
            h.upload(
                As::User(U1),
                "open",
                "huge.bin",
                chunked(24 << 20, b'z'),
                "application/octet-stream",
                false,
            ),
        )
        .await;
        h.assert_error(&r, 413, "EntityTooLarge");
        let (s, _) = within(
            "request after the multipart refusal",
            h.send(h.req(Method::GET, "/bucket", As::Service)),
        )
        .await;
        assert_eq!(s, 200);
        // Through a signed upload URL.
        let (s, r) = h
            .send(
                h.req(
                    Method::POST,
                    "/object/upload/sign/pub/signed.txt",
                    As::User(U1),
                )
                .json(&serde_json::json!({})),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        let r = within(
            "oversize signed upload",
            h.send(
                h.app
                    .client()
                    .put(h.url(r["url"].as_str().unwrap()))
                    .header("content-type", "text/plain")
                    .body(chunked(16 << 20, b's')),
            ),
        )
        .await;
        h.assert_error(&r, 413, "EntityTooLarge");
        // Type refused after sniffing the first bytes (a PDF sent as text/plain).
        let r = within(
            "sniffed-type refusal",
            h.upload(
                As::User(U1),
                "pub",
                "fake.txt",
                in_chunks(pdf_head.clone()),
                "text/plain",
                false,
            ),
        )
        .await;
        h.assert_error(&r, 415, "InvalidMimeType");
        // The same, as a multipart form.
        let (ct, form) = H::form(&[("cacheControl", "60")], &pdf_head, "text/plain");
        let r = within(
            "multipart sniffed-type refusal",
            h.send(
                h.req(Method::POST, "/object/pub/fake.txt", As::User(U1))
                    .header("content-type", ct)
                    .body(in_chunks(form)),
            ),
        )
        .await;
        h.assert_error(&r, 415, "InvalidMimeType");
        let (s, r) = within(
            "upload after the refusals",
            h.upload(
                As::User(U1),
                "pub",
                "after.txt",
                b"still here".to_vec(),
                "text/plain",
                true,
            ),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        let (s, _, bytes) = within(
            "download after the refusals",
            h.download(As::Nobody, "/object/public/pub/after.txt"),
        )
        .await;
        assert_eq!((s, bytes.as_slice()), (200, b"still here".as_slice()));
    }
    assert_eq!(h.rows().await, 1, "only after.txt has a row");
    if !h.memory {
        let mut files = h.files();
        for _ in 0..50 {
            if files.len() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // staging files go in the background
            files = h.files();
        }
        assert_eq!(
            files.len(),
            1,
            "only after.txt's bytes are stored: {files:?}"
        );
    }
}
both!(
    refusal_mid_stream_keeps_client_usable,
    super::refusal_mid_stream_keeps_client_usable
);
