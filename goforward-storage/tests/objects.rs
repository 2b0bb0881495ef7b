//! Object routes on SQLite and PostgreSQL (local filesystem and in-memory backends).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{As, H, U1, U2};
use reqwest::Method;
use serde_json::json;

async fn upload_download_roundtrip(h: Arc<H>) {
    let mut bus = h.app.gf.context().bus().subscribe();
    let body = b"hello storage".to_vec();
    let (s, r) = h
        .send(
            h.req(
                Method::POST,
                "/object/priv/u1/notes/hello.txt",
                As::User(U1),
            )
            .header("content-type", "text/plain;charset=UTF-8")
            .header("cache-control", "max-age=3600")
            .header("x-metadata", "eyJhIjogMX0=") // {"a": 1}
            .body(body.clone()),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["Key"], "priv/u1/notes/hello.txt");
    assert!(r["Id"].as_str().is_some_and(|id| id.len() == 36));
    let event = tokio::time::timeout(std::time::Duration::from_secs(5), bus.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.event.name(), "object_uploaded");

    let (s, headers, bytes) = h
        .download(As::User(U1), "/object/priv/u1/notes/hello.txt")
        .await;
    assert_eq!(s, 200);
    assert_eq!(bytes, body);
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["cache-control"], "max-age=3600");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["content-length"], body.len().to_string());
    assert!(headers.contains_key("last-modified"));
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"'));

    // 304 on a matching ETag, 206 on a range.
    let res = h
        .req(Method::GET, "/object/priv/u1/notes/hello.txt", As::User(U1))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    let res = h
        .req(
            Method::GET,
            "/object/authenticated/priv/u1/notes/hello.txt",
            As::User(U1),
        )
        .header("range", "bytes=6-12")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.headers()["content-range"], "bytes 6-12/13");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"storage");
    let bad_range = h
        .send(
            h.req(Method::GET, "/object/priv/u1/notes/hello.txt", As::User(U1))
                .header("range", "bytes=100-"),
        )
        .await;
    h.assert_error(&bad_range, 416, "InvalidRange");

    // download= → attachment with that name.
    let res = h
        .req(
            Method::GET,
            "/object/priv/u1/notes/hello.txt?download=report.txt",
            As::User(U1),
        )
        .send()
        .await
        .unwrap();
    let cd = res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cd.starts_with("attachment") && cd.contains("report.txt"),
        "{cd}"
    );

    // HEAD and info.
    let res = h
        .req(
            Method::HEAD,
            "/object/priv/u1/notes/hello.txt",
            As::User(U1),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], "13");
    let (s, info) = h
        .send(h.req(
            Method::GET,
            "/object/info/priv/u1/notes/hello.txt",
            As::User(U1),
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(info["size"], 13);
    assert_eq!(info["content_type"], "text/plain");
    assert_eq!(info["metadata"], json!({"a": 1}));
    assert_eq!(info["bucket_id"], "priv");

    // Other users and anon do not see it; a missing object is NoSuchKey.
    for who in [As::User(U2), As::Anon] {
        let r = h
            .send(h.req(Method::GET, "/object/priv/u1/notes/hello.txt", who))
            .await;
        h.assert_error(&r, 404, "NoSuchKey");
        let r = h
            .send(h.req(Method::GET, "/object/info/priv/u1/notes/hello.txt", who))
            .await;
        h.assert_error(&r, 404, "NoSuchKey");
    }
    // Without any key the request does not get past authentication.
    let r = h
        .send(h.req(Method::GET, "/object/priv/u1/notes/hello.txt", As::Nobody))
        .await;
    h.assert_error(&r, 401, "InvalidJWT");
    let r = h
        .send(h.req(Method::GET, "/object/priv/nothing.txt", As::User(U1)))
        .await;
    h.assert_error(&r, 404, "NoSuchKey");
    let r = h
        .send(h.req(Method::GET, "/object/nobucket/x.txt", As::User(U1)))
        .await;
    h.assert_error(&r, 404, "NoSuchBucket");
    // Private buckets have no public URL.
    let r = h
        .send(h.req(
            Method::GET,
            "/object/public/priv/u1/notes/hello.txt",
            As::Nobody,
        ))
        .await;
    h.assert_error(&r, 404, "NoSuchBucket");
}
both!(roundtrip, super::upload_download_roundtrip);
both!(
    roundtrip_in_memory,
    super::upload_download_roundtrip,
    memory
);

async fn multipart_and_upsert(h: Arc<H>) {
    // As storage-js sends a Blob from Node: fields first, then the file part named "".
    let (ct, form) = H::form(
        &[("cacheControl", "60"), ("metadata", r#"{"k":"v"}"#)],
        b"first",
        "text/plain",
    );
    let (s, r) = h
        .send(
            h.req(Method::POST, "/object/open/dir/a.txt", As::User(U1))
                .header("x-upsert", "false")
                .header("content-type", ct)
                .body(form),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, headers, bytes) = h
        .download(As::Nobody, "/object/public/open/dir/a.txt")
        .await;
    assert_eq!(bytes, b"first");
    assert_eq!(headers["cache-control"], "max-age=60");

    // A second upload without upsert is a conflict and changes nothing.
    let dup = h
        .upload(
            As::User(U1),
            "open",
            "dir/a.txt",
            "second",
            "text/plain",
            false,
        )
        .await;
    h.assert_error(&dup, 409, "KeyAlreadyExists");
    // Another user may not overwrite it, even with upsert.
    let other = h
        .upload(
            As::User(U2),
            "open",
            "dir/a.txt",
            "evil",
            "text/plain",
            true,
        )
        .await;
    h.assert_error(&other, 403, "AccessDenied");
    let other = h
        .send(
            h.req(Method::PUT, "/object/open/dir/a.txt", As::User(U2))
                .header("content-type", "text/plain")
                .body("evil"),
        )
        .await;
    h.assert_error(&other, 403, "AccessDenied");
    let (_, _, bytes) = h
        .download(As::Nobody, "/object/public/open/dir/a.txt")
        .await;
    assert_eq!(bytes, b"first");

    // The owner upserts (POST x-upsert) and updates (PUT); old versions' bytes go away.
    let (s, _) = h
        .upload(
            As::User(U1),
            "open",
            "dir/a.txt",
            "second",
            "text/plain",
            true,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .send(
            h.req(Method::PUT, "/object/open/dir/a.txt", As::User(U1))
                .header("content-type", "text/plain")
                .body("third"),
        )
        .await;
    assert_eq!(s, 200);
    let (_, _, bytes) = h
        .download(As::Nobody, "/object/public/open/dir/a.txt")
        .await;
    assert_eq!(bytes, b"third");
    assert_eq!(h.rows().await, 1);
    if !h.memory {
        assert_eq!(h.files().len(), 1, "old versions deleted: {:?}", h.files());
    }
    // Anonymous uploads are refused before the body is read.
    let anon = h
        .upload(As::Anon, "open", "anon.txt", "x", "text/plain", false)
        .await;
    h.assert_error(&anon, 403, "AccessDenied");
    let none = h
        .upload(As::Nobody, "open", "anon.txt", "x", "text/plain", false)
        .await;
    h.assert_error(&none, 401, "InvalidJWT");
    let missing = h
        .upload(As::User(U1), "nobucket", "a.txt", "x", "text/plain", false)
        .await;
    h.assert_error(&missing, 404, "NoSuchBucket");
    assert_eq!(h.rows().await, 1);
}
both!(multipart_and_upsert, super::multipart_and_upsert);

async fn list_move_copy_remove(h: Arc<H>) {
    for name in [
        "f/a.txt",
        "f/b.txt",
        "f/sub/c.txt",
        "f/sub/deeper/d.txt",
        "top.txt",
        "F/upper.txt",
    ] {
        let (s, r) = h
            .upload(
                As::User(U1),
                "priv",
                name,
                name.to_owned(),
                "text/plain",
                false,
            )
            .await;
        assert_eq!(s, 200, "{name}: {r}");
    }
    let list = |prefix: &'static str, extra: serde_json::Value| {
        let h = h.clone();
        async move {
            let mut body = json!({"prefix": prefix, "limit": 100, "offset": 0, "sortBy": {"column": "name", "order": "asc"}});
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (s, r) = h
                .send(
                    h.req(Method::POST, "/object/list/priv", As::User(U1))
                        .json(&body),
                )
                .await;
            assert_eq!(s, 200, "{r}");
            r.as_array().unwrap().clone()
        }
    };
    let items = list("f", json!({})).await;
    let names: Vec<_> = items
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a.txt", "b.txt", "sub"]);
    assert!(items[2]["id"].is_null() && items[2]["metadata"].is_null());
    assert_eq!(items[0]["metadata"]["size"], 7);
    assert_eq!(items[0]["metadata"]["mimetype"], "text/plain");
    assert!(items[0]["metadata"]["eTag"].is_string());
    assert!(items[0]["id"].is_string() && items[0]["created_at"].is_string());
    let root: Vec<_> = list("", json!({}))
        .await
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(root, [json!("F"), json!("f"), json!("top.txt")]);
    let searched: Vec<_> = list("f/", json!({"search": "B"}))
        .await
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(searched, [json!("b.txt")]);
    let paged: Vec<_> = list(
        "f",
        json!({"limit": 1, "offset": 1, "sortBy": {"column": "name", "order": "desc"}}),
    )
    .await
    .iter()
    .map(|i| i["name"].clone())
    .collect();
    assert_eq!(paged, [json!("b.txt")]);
    let bad = h
        .send(
            h.req(Method::POST, "/object/list/priv", As::User(U1))
                .json(&json!({"prefix": "", "sortBy": {"column": "size"}})),
        )
        .await;
    h.assert_error(&bad, 400, "InvalidRequest");
    let bad = h
        .send(
            h.req(Method::POST, "/object/list/priv", As::User(U1))
                .json(&json!({"prefix": "../"})),
        )
        .await;
    h.assert_error(&bad, 400, "InvalidKey");
    // Another user lists nothing of U1's.
    let (_, other) = h
        .send(
            h.req(Method::POST, "/object/list/priv", As::User(U2))
                .json(&json!({"prefix": "f"})),
        )
        .await;
    assert_eq!(other, json!([]));

    // move within and across buckets
    let (s, r) = h
        .send(
            h.req(Method::POST, "/object/move", As::User(U1))
                .json(&json!({
                    "bucketId": "priv", "sourceKey": "f/a.txt", "destinationKey": "g/a2.txt"
                })),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["message"], "Successfully moved");
    assert_eq!(
        h.download(As::User(U1), "/object/priv/f/a.txt").await.0,
        404
    );
    assert_eq!(
        h.download(As::User(U1), "/object/priv/g/a2.txt").await.2,
        b"f/a.txt"
    );
    let (s, _) = h
        .send(h.req(Method::POST, "/object/move", As::User(U1)).json(&json!({
            "bucketId": "priv", "sourceKey": "g/a2.txt", "destinationKey": "moved.txt", "destinationBucket": "open"
        })))
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        h.download(As::Nobody, "/object/public/open/moved.txt")
            .await
            .2,
        b"f/a.txt"
    );
    // onto an existing key → 409, nothing changes
    let r = h
        .send(
            h.req(Method::POST, "/object/move", As::User(U1))
                .json(&json!({
                    "bucketId": "priv", "sourceKey": "f/b.txt", "destinationKey": "top.txt"
                })),
        )
        .await;
    h.assert_error(&r, 409, "KeyAlreadyExists");
    // someone else's object
    let r = h
        .send(
            h.req(Method::POST, "/object/move", As::User(U2))
                .json(&json!({
                    "bucketId": "priv", "sourceKey": "f/b.txt", "destinationKey": "stolen.txt"
                })),
        )
        .await;
    h.assert_error(&r, 404, "NoSuchKey");
    let r = h
        .send(
            h.req(Method::POST, "/object/move", As::User(U1))
                .json(&json!({
                    "bucketId": "priv", "sourceKey": "f/b.txt", "destinationKey": "../x"
                })),
        )
        .await;
    h.assert_error(&r, 400, "InvalidKey");

    // copy within and across buckets
    let (s, r) = h
        .send(
            h.req(Method::POST, "/object/copy", As::User(U1))
                .json(&json!({
                    "bucketId": "priv", "sourceKey": "f/b.txt", "destinationKey": "copies/b.txt"
                })),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["Key"], "priv/copies/b.txt");
    assert_eq!(
        h.download(As::User(U1), "/object/priv/copies/b.txt")
            .await
            .2,
        b"f/b.txt"
    );
    assert_eq!(
        h.download(As::User(U1), "/object/priv/f/b.txt").await.2,
        b"f/b.txt"
    );
    let (s, _) = h
        .send(h.req(Method::POST, "/object/copy", As::User(U1)).json(&json!({
            "bucketId": "priv", "sourceKey": "f/b.txt", "destinationKey": "b.txt", "destinationBucket": "pub"
        })))
        .await;
    assert_eq!(s, 200);
    let r = h
        .send(h.req(Method::POST, "/object/copy", As::User(U1)).json(&json!({
            "bucketId": "priv", "sourceKey": "f/b.txt", "destinationKey": "b.txt", "destinationBucket": "pub"
        })))
        .await;
    h.assert_error(&r, 409, "KeyAlreadyExists");

    // remove: only what the caller may delete; answers the deleted rows
    let rows_before = h.rows().await;
    let (s, r) = h
        .send(
            h.req(Method::DELETE, "/object/priv", As::User(U2))
                .json(&json!({"prefixes": ["f/b.txt"]})),
        )
        .await;
    assert_eq!((s, r), (200, json!([])));
    assert_eq!(h.rows().await, rows_before);
    let (s, r) = h
        .send(
            h.req(Method::DELETE, "/object/priv", As::User(U1))
                .json(&json!({"prefixes": ["f/b.txt", "copies/b.txt", "not-there.txt"]})),
        )
        .await;
    assert_eq!(s, 200);
    let mut removed: Vec<_> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap().to_owned())
        .collect();
    removed.sort();
    assert_eq!(removed, ["copies/b.txt", "f/b.txt"]);
    assert_eq!(r[0]["bucket_id"], "priv");
    assert_eq!(h.rows().await, rows_before - 2);
    let r = h
        .send(
            h.req(Method::DELETE, "/object/priv", As::User(U1))
                .json(&json!({"prefixes": ["../etc/passwd"]})),
        )
        .await;
    h.assert_error(&r, 400, "InvalidKey");
    let r = h
        .send(
            h.req(Method::DELETE, "/object/priv", As::User(U1))
                .json(&json!({"nope": 1})),
        )
        .await;
    assert_eq!(r.0, 400);
    // single delete
    let r = h
        .send(h.req(Method::DELETE, "/object/priv/top.txt", As::User(U2)))
        .await;
    h.assert_error(&r, 404, "NoSuchKey");
    let r = h
        .send(h.req(Method::DELETE, "/object/priv/top.txt", As::User(U1)))
        .await;
    assert_eq!(r, (200, json!({"message": "Successfully deleted"})));
    if !h.memory {
        assert_eq!(h.files().len(), h.rows().await, "one file per row");
    }
}
both!(list_move_copy_remove, super::list_move_copy_remove);
