//! Per-bucket quotas on SQLite and PostgreSQL: enforced from the declared
//! length, while streaming and at commit (concurrent uploads cannot overshoot),
//! for copies and moves, counting kept versions; refusals leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{As, H, U1, U2};
use futures_util::stream;
use goforward_storage::{Bucket, Storage};
use reqwest::Method;
use serde_json::json;

const KIB: usize = 1024;

fn plugin() -> Storage {
    common::storage(false)
        .bucket(Bucket::private("q").quota(100 * KIB as u64))
        .bucket(Bucket::private("oq").owner_quota(50 * KIB as u64))
        .bucket(
            Bucket::private("vq")
                .quota(10 * KIB as u64)
                .versioning(true),
        )
}

fn chunked(len: usize) -> reqwest::Body {
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..len)
        .step_by(4 * KIB)
        .map(|start| Ok(Bytes::from(vec![b'c'; (4 * KIB).min(len - start)])))
        .collect();
    reqwest::Body::wrap_stream(stream::iter(chunks))
}

async fn up(h: &H, bucket: &str, name: &str, len: usize, upsert: bool) -> (u16, serde_json::Value) {
    h.upload(
        As::User(U1),
        bucket,
        name,
        vec![b'x'; len],
        "application/octet-stream",
        upsert,
    )
    .await
}

/// Rows and files must agree: nothing is left by a refusal.
async fn consistent(h: &H, rows: usize, files: usize) {
    assert_eq!(h.rows().await, rows, "rows");
    let mut left = h.files();
    for _ in 0..50 {
        if left.len() == files {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = h.files();
    }
    assert_eq!(left.len(), files, "files: {left:?}");
}

async fn scenario(h: Arc<H>) {
    let (s, r) = up(&h, "q", "a.bin", 60 * KIB, false).await;
    assert_eq!(s, 200, "{r}");
    // Declared length over the room: refused before the body is read.
    let r = up(&h, "q", "b.bin", 60 * KIB, false).await;
    h.assert_error(&r, 413, "QuotaExceeded");
    // Chunked (no length): refused while streaming.
    let r = h
        .upload(
            As::User(U1),
            "q",
            "b.bin",
            chunked(60 * KIB),
            "application/octet-stream",
            false,
        )
        .await;
    h.assert_error(&r, 413, "QuotaExceeded");
    consistent(&h, 1, 1).await;
    // Exactly up to the quota is fine.
    let (s, r) = up(&h, "q", "c.bin", 40 * KIB, false).await;
    assert_eq!(s, 200, "{r}");
    let r = up(&h, "q", "d.bin", 1, false).await;
    h.assert_error(&r, 413, "QuotaExceeded");
    // An overwrite frees what it replaces (no versioning here).
    let (s, r) = up(&h, "q", "a.bin", 60 * KIB, true).await;
    assert_eq!(s, 200, "{r}");
    let r = up(&h, "q", "a.bin", 60 * KIB + 1, true).await;
    h.assert_error(&r, 413, "QuotaExceeded");
    let (s, r) = up(&h, "q", "a.bin", 50 * KIB, true).await;
    assert_eq!(s, 200, "{r}");
    consistent(&h, 2, 2).await;
    // Copies into the bucket count.
    let copy = |body: serde_json::Value| {
        let h = h.clone();
        async move {
            h.send(
                h.req(Method::POST, "/object/copy", As::User(U1))
                    .json(&body),
            )
            .await
        }
    };
    let r = copy(json!({"bucketId": "q", "sourceKey": "c.bin", "destinationKey": "c2.bin"})).await;
    h.assert_error(&r, 413, "QuotaExceeded");
    let (s, r) =
        copy(json!({"bucketId": "q", "sourceKey": "a.bin", "destinationKey": "c.bin"})).await;
    h.assert_error(&(s, r), 409, "KeyAlreadyExists");
    consistent(&h, 2, 2).await;
    // So do moves from another bucket; the source stays where it was.
    let (s, _) = h
        .upload(
            As::User(U1),
            "priv",
            "big.bin",
            vec![b'p'; 20 * KIB],
            "application/octet-stream",
            false,
        )
        .await;
    assert_eq!(s, 200);
    let r = h
        .send(h.req(Method::POST, "/object/move", As::User(U1)).json(&json!({
            "bucketId": "priv", "sourceKey": "big.bin", "destinationBucket": "q", "destinationKey": "big.bin"
        })))
        .await;
    h.assert_error(&r, 413, "QuotaExceeded");
    let (s, _, bytes) = h.download(As::User(U1), "/object/priv/big.bin").await;
    assert_eq!((s, bytes.len()), (200, 20 * KIB));
    let (s, _) = h
        .send(h.req(Method::DELETE, "/object/q/c.bin", As::User(U1)))
        .await;
    assert_eq!(s, 200);
    let (s, r) = h
        .send(h.req(Method::POST, "/object/move", As::User(U1)).json(&json!({
            "bucketId": "priv", "sourceKey": "big.bin", "destinationBucket": "q", "destinationKey": "big.bin"
        })))
        .await;
    assert_eq!(s, 200, "{r}");
    consistent(&h, 2, 2).await;

    // Kept versions count: 6 KiB + an overwrite of 6 KiB does not fit in 10 KiB.
    let (s, _) = up(&h, "vq", "v.bin", 6 * KIB, false).await;
    assert_eq!(s, 200);
    let r = up(&h, "vq", "v.bin", 6 * KIB, true).await;
    h.assert_error(&r, 413, "QuotaExceeded");
    let (s, _) = up(&h, "vq", "v.bin", 4 * KIB, true).await;
    assert_eq!(s, 200);
    let r = up(&h, "vq", "w.bin", 1, false).await;
    h.assert_error(&r, 413, "QuotaExceeded");
    consistent(&h, 3, 4).await;

    // Buckets through the API.
    let admin =
        |m: Method, path: &str, body: serde_json::Value| h.req(m, path, As::Service).json(&body);
    let (s, r) = h
        .send(admin(
            Method::POST,
            "/bucket",
            json!({"name": "apiq", "quota": "1MB"}),
        ))
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, b) = h
        .send(h.req(Method::GET, "/bucket/apiq", As::Service))
        .await;
    assert_eq!(b["quota"], 1_000_000);
    for bad in [json!(-1), json!("lots"), json!(1.5), json!(true)] {
        let r = h
            .send(admin(Method::PUT, "/bucket/apiq", json!({"quota": bad})))
            .await;
        h.assert_error(&r, 400, "InvalidRequest");
    }
    let (s, _) = h
        .send(admin(Method::PUT, "/bucket/apiq", json!({"quota": 10})))
        .await;
    assert_eq!(s, 200);
    let r = h
        .send(
            h.req(Method::POST, "/object/apiq/x.bin", As::Service)
                .header("content-type", "application/octet-stream")
                .body(vec![0u8; 11]),
        )
        .await;
    h.assert_error(&r, 413, "QuotaExceeded");
    let (s, _) = h
        .send(admin(Method::PUT, "/bucket/apiq", json!({"quota": null})))
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .send(
            h.req(Method::POST, "/object/apiq/x.bin", As::Service)
                .header("content-type", "application/octet-stream")
                .body(vec![0u8; 11]),
        )
        .await;
    assert_eq!(s, 200, "quota removed");
}

async fn per_owner(h: Arc<H>) {
    let put = |who: As, name: &'static str, len: usize, upsert: bool| {
        let h = h.clone();
        async move {
            h.upload(
                who,
                "oq",
                name,
                vec![b'o'; len],
                "application/octet-stream",
                upsert,
            )
            .await
        }
    };
    let (s, _) = put(As::User(U1), "u1/a.bin", 40 * KIB, false).await;
    assert_eq!(s, 200);
    let r = put(As::User(U1), "u1/b.bin", 20 * KIB, false).await;
    h.assert_error(&r, 413, "QuotaExceeded");
    let r = h
        .upload(
            As::User(U1),
            "oq",
            "u1/b.bin",
            chunked(20 * KIB),
            "application/octet-stream",
            false,
        )
        .await;
    h.assert_error(&r, 413, "QuotaExceeded");
    // Each owner has their own allowance; objects without an owner count for no one.
    let (s, _) = put(As::User(U2), "u2/a.bin", 40 * KIB, false).await;
    assert_eq!(s, 200);
    let (s, _) = put(As::Service, "svc.bin", 200 * KIB, false).await;
    assert_eq!(s, 200);
    // Replacing one's own object frees what it replaces.
    let (s, _) = put(As::User(U1), "u1/a.bin", 50 * KIB, true).await;
    assert_eq!(s, 200);
    consistent(&h, 3, 3).await;
    // A move into the bucket counts for the object's owner.
    let (s, _) = h
        .upload(
            As::User(U2),
            "priv",
            "m.bin",
            vec![b'm'; 20 * KIB],
            "application/octet-stream",
            false,
        )
        .await;
    assert_eq!(s, 200);
    let r = h
        .send(h.req(Method::POST, "/object/move", As::User(U2)).json(&json!({
            "bucketId": "priv", "sourceKey": "m.bin", "destinationBucket": "oq", "destinationKey": "u2/m.bin"
        })))
        .await;
    h.assert_error(&r, 413, "QuotaExceeded");
    // Through the API.
    let (s, r) = h
        .send(
            h.req(Method::PUT, "/bucket/oq", As::Service)
                .json(&json!({"owner_quota": "1MB"})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, b) = h.send(h.req(Method::GET, "/bucket/oq", As::Service)).await;
    assert_eq!(b["owner_quota"], 1_000_000);
    let r = h
        .send(
            h.req(Method::PUT, "/bucket/oq", As::Service)
                .json(&json!({"owner_quota": "many"})),
        )
        .await;
    h.assert_error(&r, 400, "InvalidRequest");
    let (s, r) = h
        .send(h.req(Method::POST, "/object/move", As::User(U2)).json(&json!({
            "bucketId": "priv", "sourceKey": "m.bin", "destinationBucket": "oq", "destinationKey": "u2/m.bin"
        })))
        .await;
    assert_eq!(s, 200, "{r}");
}

async fn concurrent_uploads(h: Arc<H>) {
    // Ten uploads of 20 KiB race for 100 KiB: each sees room when it starts,
    // the commit decides; exactly five fit.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            up(&h, "q", &format!("r{i}.bin"), 20 * KIB, false).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.0 == 200 {
            ok += 1;
        } else {
            h.assert_error(&r, 413, "QuotaExceeded");
        }
    }
    assert_eq!(ok, 5);
    consistent(&h, 5, 5).await;
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn per_owner() {
        crate::common::run_with(
            false,
            crate::plugin(),
            false,
            "owner quota (sqlite)",
            crate::per_owner,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scenario() {
        crate::common::run_with(
            false,
            crate::plugin(),
            false,
            "quota (sqlite)",
            crate::scenario,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_uploads() {
        crate::common::run_with(
            false,
            crate::plugin(),
            false,
            "quota race (sqlite)",
            crate::concurrent_uploads,
        )
        .await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn per_owner() {
        crate::common::run_with(
            true,
            crate::plugin(),
            false,
            "owner quota (postgres)",
            crate::per_owner,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scenario() {
        crate::common::run_with(
            true,
            crate::plugin(),
            false,
            "quota (postgres)",
            crate::scenario,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_uploads() {
        crate::common::run_with(
            true,
            crate::plugin(),
            false,
            "quota race (postgres)",
            crate::concurrent_uploads,
        )
        .await;
    }
}
