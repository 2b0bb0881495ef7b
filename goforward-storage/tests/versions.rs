//! Per-bucket versioning (GoForward extension under `/storage/v1/object/versions/…`)
//! on SQLite and PostgreSQL: overwrites keep the previous version, versions
//! are listed, restored and deleted, follow moves, go with the object, survive
//! the sweeper; buckets without versioning keep nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{As, H, U1, U2};
use goforward_core::sea_orm::{EntityTrait, PaginatorTrait};
use goforward_storage::entity::object_version;
use goforward_storage::{Bucket, Storage};
use reqwest::Method;
use serde_json::{Value, json};

fn plugin() -> Storage {
    common::storage(false).bucket(Bucket::private("hist").versioning(true))
}

async fn put(h: &H, bucket: &str, name: &str, body: &'static str, upsert: bool) {
    let (s, r) = h
        .upload(As::User(U1), bucket, name, body, "text/plain", upsert)
        .await;
    assert_eq!(s, 200, "{bucket}/{name}: {r}");
}

async fn versions(h: &H, who: As, path: &str) -> (u16, Value) {
    h.send(h.req(Method::GET, &format!("/object/versions/{path}"), who))
        .await
}

async fn restore(h: &H, who: As, path: &str, body: Value) -> (u16, Value) {
    h.send(
        h.req(Method::POST, &format!("/object/versions/{path}"), who)
            .json(&body),
    )
    .await
}

async fn kept_rows(h: &H) -> u64 {
    object_version::Entity::find()
        .count(h.app.db())
        .await
        .unwrap()
}

async fn body_of(h: &H, path: &str) -> Vec<u8> {
    let (s, _, bytes) = h.download(As::User(U1), &format!("/object/{path}")).await;
    assert_eq!(s, 200, "{path}");
    bytes
}

async fn scenario(h: Arc<H>) {
    put(&h, "hist", "doc.txt", "one", false).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    put(&h, "hist", "doc.txt", "second", true).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (s, r) = h
        .send(
            h.req(Method::PUT, "/object/hist/doc.txt", As::User(U1))
                .header("content-type", "text/plain")
                .body("third!!"),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(body_of(&h, "hist/doc.txt").await, b"third!!");

    let (s, list) = versions(&h, As::User(U1), "hist/doc.txt").await;
    assert_eq!(s, 200, "{list}");
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 3, "{list:?}");
    let sizes: Vec<_> = list.iter().map(|v| v["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [7, 6, 3], "current first, then newest kept");
    assert_eq!(list[0]["current"], true);
    assert!(list[0]["archived_at"].is_null());
    assert!(list[1]["current"] == false && list[1]["archived_at"].is_string());
    assert_eq!(list[2]["mimetype"], "text/plain");
    let ids: Vec<String> = list
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect();
    let etags: std::collections::HashSet<_> = list.iter().map(|v| v["eTag"].clone()).collect();
    assert_eq!(etags.len(), 3);
    // A kept version can be downloaded without restoring it (Range and ETag as downloads).
    let fetch = |who: As, query: String| {
        let h = h.clone();
        async move {
            h.download(who, &format!("/object/versions/hist/doc.txt?{query}"))
                .await
        }
    };
    let (s, headers, bytes) = fetch(As::User(U1), format!("version={}", ids[1])).await;
    assert_eq!((s, bytes.as_slice()), (200, b"second".as_slice()));
    assert_eq!(headers["etag"], list[1]["eTag"].as_str().unwrap());
    let (s, _, bytes) = fetch(As::User(U1), format!("version={}", ids[0])).await;
    assert_eq!((s, bytes.as_slice()), (200, b"third!!".as_slice()));
    let res = h
        .req(
            Method::GET,
            &format!("/object/versions/hist/doc.txt?version={}", ids[2]),
            As::User(U1),
        )
        .header("range", "bytes=0-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"on");
    let (s, headers, _) = fetch(As::User(U1), format!("version={}&download=old.txt", ids[2])).await;
    assert_eq!(s, 200);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let r = h
        .send(h.req(
            Method::GET,
            &format!(
                "/object/versions/hist/doc.txt?version={}",
                uuid::Uuid::new_v4()
            ),
            As::User(U1),
        ))
        .await;
    h.assert_error(&r, 404, "NoSuchVersion");
    let r = h
        .send(h.req(
            Method::GET,
            "/object/versions/hist/doc.txt?version=nope",
            As::User(U1),
        ))
        .await;
    h.assert_error(&r, 400, "InvalidRequest");
    let r = h
        .send(h.req(
            Method::GET,
            &format!("/object/versions/hist/doc.txt?version={}", ids[1]),
            As::User(U2),
        ))
        .await;
    h.assert_error(&r, 404, "NoSuchKey");

    // The info of the current object names the current version.
    let (_, info) = h
        .send(h.req(Method::GET, "/object/info/hist/doc.txt", As::User(U1)))
        .await;
    assert_eq!(info["version"], ids[0].as_str());
    // Current + 2 kept versions on disk (3 files), 2 rows kept.
    assert_eq!(h.files().len(), 3);
    assert_eq!(kept_rows(&h).await, 2);

    // Restore the first version: its bytes come back, the current one is kept.
    let (s, r) = restore(&h, As::User(U1), "hist/doc.txt", json!({"version": ids[2]})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["version"], ids[2].as_str());
    assert_eq!(r["current"], true);
    assert_eq!(body_of(&h, "hist/doc.txt").await, b"one");
    let (_, after) = versions(&h, As::User(U1), "hist/doc.txt").await;
    let after_ids: Vec<_> = after
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(after_ids, [ids[2].clone(), ids[0].clone(), ids[1].clone()]);
    assert_eq!(h.files().len(), 3, "a restore copies no bytes");
    // Restoring the current version changes nothing.
    let (s, r) = restore(&h, As::User(U1), "hist/doc.txt", json!({"version": ids[2]})).await;
    assert_eq!((s, &r["version"]), (200, &json!(ids[2])));

    // Refusals: unknown / malformed / missing version, other users, anon, bad names.
    let unknown = uuid::Uuid::new_v4().to_string();
    let r = restore(
        &h,
        As::User(U1),
        "hist/doc.txt",
        json!({"version": unknown}),
    )
    .await;
    h.assert_error(&r, 404, "NoSuchVersion");
    let r = restore(&h, As::User(U1), "hist/doc.txt", json!({"version": "nope"})).await;
    h.assert_error(&r, 400, "InvalidRequest");
    let r = restore(&h, As::User(U1), "hist/doc.txt", json!({})).await;
    h.assert_error(&r, 400, "InvalidRequest");
    let r = restore(&h, As::User(U2), "hist/doc.txt", json!({"version": ids[0]})).await;
    h.assert_error(&r, 404, "NoSuchKey");
    let r = versions(&h, As::User(U2), "hist/doc.txt").await;
    h.assert_error(&r, 404, "NoSuchKey");
    let r = versions(&h, As::Anon, "hist/doc.txt").await;
    h.assert_error(&r, 404, "NoSuchKey");
    let r = versions(&h, As::Nobody, "hist/doc.txt").await;
    h.assert_error(&r, 401, "InvalidJWT");
    let r = versions(&h, As::User(U1), "hist/missing.txt").await;
    h.assert_error(&r, 404, "NoSuchKey");
    let r = versions(&h, As::User(U1), "nobucket/doc.txt").await;
    h.assert_error(&r, 404, "NoSuchBucket");
    let r = h
        .raw(
            "GET",
            "/object/versions/hist/a/%2e%2e/doc.txt",
            As::User(U1),
            b"",
        )
        .await;
    h.assert_error(&r, 400, "InvalidKey");
    // The version of another object cannot be restored here.
    put(&h, "hist", "other.txt", "other", false).await;
    put(&h, "hist", "other.txt", "other2", true).await;
    let (_, other) = versions(&h, As::User(U1), "hist/other.txt").await;
    let other_kept = other[1]["version"].as_str().unwrap().to_owned();
    let r = restore(
        &h,
        As::User(U1),
        "hist/doc.txt",
        json!({"version": other_kept}),
    )
    .await;
    h.assert_error(&r, 404, "NoSuchVersion");
    assert_eq!(
        body_of(&h, "hist/doc.txt").await,
        b"one",
        "refusals changed nothing"
    );

    // Delete one kept version: row and bytes go.
    let files = h.files().len();
    let del = |v: String| {
        let h = h.clone();
        async move {
            h.send(h.req(
                Method::DELETE,
                &format!("/object/versions/hist/doc.txt?version={v}"),
                As::User(U1),
            ))
            .await
        }
    };
    let r = del(ids[1].clone()).await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(h.files().len(), files - 1);
    let r = del(ids[1].clone()).await;
    h.assert_error(&r, 404, "NoSuchVersion");
    let r = del(ids[2].clone()).await;
    h.assert_error(&r, 400, "InvalidRequest");
    let r = h
        .send(h.req(
            Method::DELETE,
            "/object/versions/hist/doc.txt",
            As::User(U1),
        ))
        .await;
    h.assert_error(&r, 400, "InvalidRequest");
    let (_, left) = versions(&h, As::User(U1), "hist/doc.txt").await;
    assert_eq!(left.as_array().unwrap().len(), 2);

    // The sweeper leaves kept versions alone.
    let state = h
        .app
        .gf
        .context()
        .services()
        .get::<goforward_storage::StorageState>()
        .unwrap();
    assert_eq!(state.sweep_orphans(Duration::ZERO).await.unwrap(), 0);
    let r = restore(&h, As::User(U1), "hist/doc.txt", json!({"version": ids[0]})).await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(body_of(&h, "hist/doc.txt").await, b"third!!");

    // Versions follow a move.
    let (s, r) = h
        .send(
            h.req(Method::POST, "/object/move", As::User(U1))
                .json(&json!({
                    "bucketId": "hist", "sourceKey": "doc.txt", "destinationKey": "moved/doc.txt"
                })),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, moved) = versions(&h, As::User(U1), "hist/moved/doc.txt").await;
    assert_eq!(moved.as_array().unwrap().len(), 2);

    // Deleting the object deletes its versions (rows and bytes).
    let (s, _) = h
        .send(h.req(Method::DELETE, "/object/hist/moved/doc.txt", As::User(U1)))
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .send(
            h.req(Method::DELETE, "/object/hist", As::User(U1))
                .json(&json!({"prefixes": ["other.txt"]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(kept_rows(&h).await, 0);
    assert!(h.files().is_empty(), "{:?}", h.files());

    // Without versioning nothing is kept.
    put(&h, "priv", "plain.txt", "a", false).await;
    put(&h, "priv", "plain.txt", "bb", true).await;
    let (_, plain) = versions(&h, As::User(U1), "priv/plain.txt").await;
    assert_eq!(plain.as_array().unwrap().len(), 1);
    assert_eq!(h.files().len(), 1);

    // Buckets created or updated through the API; emptying deletes versions.
    let admin = |m: Method, path: &str, body: Value| h.req(m, path, As::Service).json(&body);
    let (s, r) = h
        .send(admin(
            Method::POST,
            "/bucket",
            json!({"name": "apiv", "versioning": true}),
        ))
        .await;
    assert_eq!(s, 200, "{r}");
    let (_, b) = h
        .send(h.req(Method::GET, "/bucket/apiv", As::Service))
        .await;
    assert_eq!(b["versioning"], true);
    let r = h
        .send(admin(
            Method::POST,
            "/bucket",
            json!({"name": "apiw", "versioning": "yes"}),
        ))
        .await;
    h.assert_error(&r, 400, "InvalidRequest");
    let r = h
        .send(admin(Method::POST, "/bucket", json!({"name": "versions"})))
        .await;
    h.assert_error(&r, 400, "InvalidBucketName");
    for body in ["1", "22"] {
        let (s, _) = h
            .send(
                h.req(Method::POST, "/object/apiv/f.txt", As::Service)
                    .header("content-type", "text/plain")
                    .header("x-upsert", "true")
                    .body(body),
            )
            .await;
        assert_eq!(s, 200);
    }
    assert_eq!(kept_rows(&h).await, 1);
    let (s, _) = h
        .send(admin(
            Method::PUT,
            "/bucket/apiv",
            json!({"versioning": false}),
        ))
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .send(
            h.req(Method::POST, "/object/apiv/f.txt", As::Service)
                .header("content-type", "text/plain")
                .header("x-upsert", "true")
                .body("333"),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        kept_rows(&h).await,
        1,
        "versioning off: the replaced version is not kept"
    );
    let (s, _) = h
        .send(h.req(Method::POST, "/bucket/apiv/empty", As::Service))
        .await;
    assert_eq!(s, 200);
    assert_eq!(kept_rows(&h).await, 0);
    assert_eq!(
        h.files().len(),
        1,
        "only priv/plain.txt is left: {:?}",
        h.files()
    );
}

async fn concurrent_overwrites(h: Arc<H>) {
    // Ten concurrent upserts of one path: one current version, nine kept, all whole.
    put(&h, "hist", "race.bin", "seed", false).await;
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            h.upload(
                As::User(U1),
                "hist",
                "race.bin",
                vec![b'a' + i; 100_000],
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
    let (_, list) = versions(&h, As::User(U1), "hist/race.bin").await;
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 11);
    let ids: std::collections::HashSet<_> = list.iter().map(|v| v["version"].clone()).collect();
    assert_eq!(ids.len(), 11);
    assert_eq!(h.files().len(), 11);
    for v in &list[1..] {
        let (s, _) = restore(
            &h,
            As::User(U1),
            "hist/race.bin",
            json!({"version": v["version"]}),
        )
        .await;
        assert_eq!(s, 200);
        let bytes = body_of(&h, "hist/race.bin").await;
        assert!(
            bytes == b"seed" || (bytes.len() == 100_000 && bytes.iter().all(|b| *b == bytes[0])),
            "a whole version"
        );
    }
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scenario() {
        crate::common::run_with(
            false,
            crate::plugin(),
            false,
            "versions (sqlite)",
            crate::scenario,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_overwrites() {
        crate::common::run_with(
            false,
            crate::plugin(),
            false,
            "versions race (sqlite)",
            crate::concurrent_overwrites,
        )
        .await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scenario() {
        crate::common::run_with(
            true,
            crate::plugin(),
            false,
            "versions (postgres)",
            crate::scenario,
        )
        .await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_overwrites() {
        crate::common::run_with(
            true,
            crate::plugin(),
            false,
            "versions race (postgres)",
            crate::concurrent_overwrites,
        )
        .await;
    }
}
