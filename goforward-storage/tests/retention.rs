//! Retention limit of kept versions (`max_versions` per bucket, `storage.max_versions`
//! as the default) on SQLite and PostgreSQL: an overwrite that would keep more
//! versions than the limit prunes the oldest, rows and bytes, in its commit;
//! concurrent overwrites never leave more than the limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{As, H, U1};
use goforward_core::sea_orm::{EntityTrait, PaginatorTrait};
use goforward_storage::entity::object_version;
use goforward_storage::{Bucket, Storage};
use reqwest::Method;
use serde_json::{Value, json};

fn plugin() -> Storage {
    common::storage(false)
        .bucket(Bucket::private("keep2").versioning(true).max_versions(2))
        .bucket(Bucket::private("dflt").versioning(true))
        .bucket(
            Bucket::private("unlimited")
                .versioning(true)
                .max_versions(0),
        )
}

/// `[storage]` of these tests: a server-wide default of three kept versions.
fn section() -> Value {
    json!({"max_file_size": "12MiB", "max_versions": 3})
}

async fn put(h: &H, bucket: &str, name: &str, body: String) {
    let (s, r) = h
        .upload(As::User(U1), bucket, name, body, "text/plain", true)
        .await;
    assert_eq!(s, 200, "{bucket}/{name}: {r}");
}

/// The versions of `path`: current first, then kept ones newest first.
async fn versions(h: &H, path: &str) -> Vec<Value> {
    let (s, list) = h
        .send(h.req(
            Method::GET,
            &format!("/object/versions/{path}"),
            As::User(U1),
        ))
        .await;
    assert_eq!(s, 200, "{list}");
    list.as_array().unwrap().clone()
}

async fn version_body(h: &H, path: &str, version: &Value) -> (u16, Vec<u8>) {
    let (s, _, bytes) = h
        .download(
            As::User(U1),
            &format!(
                "/object/versions/{path}?version={}",
                version.as_str().unwrap()
            ),
        )
        .await;
    (s, bytes)
}

async fn kept_rows(h: &H) -> u64 {
    object_version::Entity::find()
        .count(h.app.db())
        .await
        .unwrap()
}

/// Writes `n` versions `"{name} v{i}"` of `bucket/name`, a few ms apart.
async fn write_versions(h: &H, bucket: &str, name: &str, n: usize) {
    for i in 1..=n {
        put(h, bucket, name, format!("{name} v{i}")).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
}

async fn scenario(h: Arc<H>) {
    // Per-bucket limit of two: five writes keep v4 and v3, v1 and v2 are gone.
    write_versions(&h, "keep2", "doc.txt", 2).await;
    let early = versions(&h, "keep2/doc.txt").await;
    assert_eq!(early.len(), 2);
    let v1 = early[1]["version"].clone();
    write_versions(&h, "keep2", "more.txt", 1).await;
    for i in 3..=5 {
        put(&h, "keep2", "doc.txt", format!("doc.txt v{i}")).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let list = versions(&h, "keep2/doc.txt").await;
    assert_eq!(list.len(), 3, "current + two kept: {list:?}");
    let mut bodies = Vec::new();
    for v in &list[1..] {
        let (s, bytes) = version_body(&h, "keep2/doc.txt", &v["version"]).await;
        assert_eq!(s, 200);
        bodies.push(String::from_utf8(bytes).unwrap());
    }
    assert_eq!(bodies, ["doc.txt v4", "doc.txt v3"], "the newest are kept");
    let (s, _) = version_body(&h, "keep2/doc.txt", &v1).await;
    assert_eq!(s, 404, "a pruned version is gone");
    assert_eq!(kept_rows(&h).await, 2);
    // Bytes: 2 current objects + 2 kept versions; pruned bytes were deleted.
    assert_eq!(h.files().len(), 4, "{:?}", h.files());

    // The server default (3) applies to a bucket without its own limit.
    write_versions(&h, "dflt", "a.txt", 6).await;
    assert_eq!(versions(&h, "dflt/a.txt").await.len(), 4);
    // `max_versions(0)`: no limit, whatever the default.
    write_versions(&h, "unlimited", "a.txt", 6).await;
    assert_eq!(versions(&h, "unlimited/a.txt").await.len(), 6);
    assert_eq!(kept_rows(&h).await, 2 + 3 + 5);
    assert_eq!(h.files().len(), 4 + 4 + 6);

    // The limit through the API: bad values are refused and change nothing.
    for bad in [json!(-1), json!("three"), json!(1.5)] {
        let r = h
            .send(
                h.req(Method::PUT, "/bucket/keep2", As::Service)
                    .json(&json!({ "max_versions": bad })),
            )
            .await;
        h.assert_error(&r, 400, "InvalidRequest");
    }
    let (_, b) = h
        .send(h.req(Method::GET, "/bucket/keep2", As::Service))
        .await;
    assert_eq!(b["max_versions"], 2);
    // Lowering the limit prunes at the next overwrite.
    let (s, r) = h
        .send(
            h.req(Method::PUT, "/bucket/keep2", As::Service)
                .json(&json!({"max_versions": 1})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(versions(&h, "keep2/doc.txt").await.len(), 3);
    put(&h, "keep2", "doc.txt", "doc.txt v6".into()).await;
    let list = versions(&h, "keep2/doc.txt").await;
    assert_eq!(list.len(), 2);
    let (_, newest_kept) = version_body(&h, "keep2/doc.txt", &list[1]["version"]).await;
    assert_eq!(newest_kept, b"doc.txt v5");
    assert_eq!(h.files().len(), 3 + 4 + 6);

    // A bucket created through the API with a limit; `null` goes back to the default.
    let (s, r) = h
        .send(
            h.req(Method::POST, "/bucket", As::Service)
                .json(&json!({"name": "api-kept", "versioning": true, "max_versions": 1})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    write_versions(&h, "api-kept", "x.txt", 4).await;
    assert_eq!(versions(&h, "api-kept/x.txt").await.len(), 2);
    let (s, _) = h
        .send(
            h.req(Method::PUT, "/bucket/api-kept", As::Service)
                .json(&json!({"max_versions": null})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, b) = h
        .send(h.req(Method::GET, "/bucket/api-kept", As::Service))
        .await;
    assert!(b["max_versions"].is_null(), "{b}");
    write_versions(&h, "api-kept", "x.txt", 4).await;
    assert_eq!(versions(&h, "api-kept/x.txt").await.len(), 4, "default 3");

    // A copy onto an existing name is an overwrite too.
    let (s, r) = h
        .send(
            h.req(Method::POST, "/object/copy", As::User(U1))
                .header("x-upsert", "true")
                .json(&json!({"bucketId": "keep2", "sourceKey": "more.txt", "destinationKey": "doc.txt"})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let list = versions(&h, "keep2/doc.txt").await;
    assert_eq!(list.len(), 2);
    let (_, kept) = version_body(&h, "keep2/doc.txt", &list[1]["version"]).await;
    assert_eq!(kept, b"doc.txt v6");
}

async fn concurrent(h: Arc<H>) {
    // Twelve concurrent overwrites: the limit holds exactly, and every kept
    // version (row) has its bytes and no bytes are left without a row.
    put(&h, "keep2", "race.bin", "seed".into()).await;
    let mut tasks = Vec::new();
    for i in 0..12u8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.upload(
                As::User(U1),
                "keep2",
                "race.bin",
                vec![b'a' + i; 50_000],
                "application/octet-stream",
                true,
            )
            .await
            .0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let list = versions(&h, "keep2/race.bin").await;
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(kept_rows(&h).await, 2);
    assert_eq!(h.files().len(), 3, "{:?}", h.files());
    for v in &list[1..] {
        let (s, bytes) = version_body(&h, "keep2/race.bin", &v["version"]).await;
        assert_eq!(s, 200);
        assert!(bytes.len() == 50_000 && bytes.iter().all(|b| *b == bytes[0]));
    }
}

macro_rules! on {
    ($db:ident, $pg:expr) => {
        mod $db {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn scenario() {
                crate::common::run_configured(
                    $pg,
                    crate::plugin(),
                    false,
                    concat!("retention (", stringify!($db), ")"),
                    crate::section(),
                    crate::scenario,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_overwrites() {
                crate::common::run_configured(
                    $pg,
                    crate::plugin(),
                    false,
                    concat!("retention race (", stringify!($db), ")"),
                    crate::section(),
                    crate::concurrent,
                )
                .await;
            }
        }
    };
}

on!(sqlite, false);
on!(postgres, true);
