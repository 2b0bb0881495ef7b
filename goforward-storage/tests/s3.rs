//! The storage API on an S3-compatible server (feature `s3`), on SQLite and
//! PostgreSQL. Needs `GOFORWARD_TEST_S3_ENDPOINT` (e.g. `http://127.0.0.1:5917`
//! of a `moto_server` from PyPI) and `GOFORWARD_TEST_S3_BUCKET` (an existing
//! bucket); skipped without them (an optional service, also in CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{As, H, U1};
use futures_util::stream;
use goforward_storage::BackendConfig;

fn s3() -> Option<(String, String)> {
    let endpoint = std::env::var("GOFORWARD_TEST_S3_ENDPOINT")
        .ok()
        .filter(|s| !s.is_empty());
    let bucket = std::env::var("GOFORWARD_TEST_S3_BUCKET")
        .ok()
        .filter(|s| !s.is_empty());
    match (endpoint, bucket) {
        (Some(e), Some(b)) => Some((e, b)),
        _ => {
            // .ci/run starts an S3-compatible server (moto) and sets both.
            assert!(
                !goforward_core::testing::ci(),
                "CI=true but GOFORWARD_TEST_S3_ENDPOINT / GOFORWARD_TEST_S3_BUCKET are not set"
            );
            eprintln!("skipped: GOFORWARD_TEST_S3_ENDPOINT / GOFORWARD_TEST_S3_BUCKET not set");
            None
        }
    }
}

/// Keys currently stored in the S3 bucket (ListObjectsV2, unsigned: test servers accept it).
async fn keys(h: &H) -> usize {
    let (endpoint, bucket) = s3().unwrap();
    let body = h
        .app
        .client()
        .get(format!("{endpoint}/{bucket}?list-type=2&prefix=objects/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.matches("<Key>").count()
}

async fn scenario(h: Arc<H>) {
    let before = keys(&h).await;
    let (s, r) = h
        .upload(
            As::User(U1),
            "open",
            "s3/a.txt",
            "on s3",
            "text/plain",
            false,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        h.download(As::Nobody, "/object/public/open/s3/a.txt")
            .await
            .2,
        b"on s3"
    );
    // Multipart upload (> 8 MiB) and a range read.
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..10)
        .map(|i| Ok(Bytes::from(vec![b'0' + i; 1 << 20])))
        .collect();
    let (s, r) = h
        .upload(
            As::User(U1),
            "open",
            "s3/big.bin",
            reqwest::Body::wrap_stream(stream::iter(chunks)),
            "application/octet-stream",
            false,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let res = h
        .req(
            reqwest::Method::GET,
            "/object/open/s3/big.bin",
            As::User(U1),
        )
        .header("range", format!("bytes={}-{}", 9 << 20, (9 << 20) + 3))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"9999");
    // Oversize (bucket limit 64 KiB, chunked): refused, nothing stored.
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from(vec![b'x'; 64 * 1024])),
        Ok(Bytes::from_static(b"x")),
    ];
    let r = h
        .upload(
            As::User(U1),
            "pub",
            "s3/huge.txt",
            reqwest::Body::wrap_stream(stream::iter(chunks)),
            "text/plain",
            false,
        )
        .await;
    h.assert_error(&r, 413, "EntityTooLarge");

    // Upsert replaces; copy; remove — bytes follow the rows.
    let (s, _) = h
        .upload(
            As::User(U1),
            "open",
            "s3/a.txt",
            "again",
            "text/plain",
            true,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = h
        .send(
            h.req(reqwest::Method::POST, "/object/copy", As::User(U1))
                .json(&serde_json::json!({
                    "bucketId": "open", "sourceKey": "s3/a.txt", "destinationKey": "s3/b.txt"
                })),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(keys(&h).await, before + 3);
    let (s, _) = h
        .send(
            h.req(reqwest::Method::DELETE, "/object/open", As::User(U1))
                .json(&serde_json::json!({"prefixes": ["s3/a.txt", "s3/b.txt", "s3/big.bin"]})),
        )
        .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(keys(&h).await, before);
}

async fn run(pg: bool) {
    let Some((endpoint, bucket)) = s3() else {
        return;
    };
    let plugin = common::storage(false).backend(BackendConfig::S3 {
        bucket,
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".to_owned().into()),
        allow_http: true,
    });
    common::run_with(pg, plugin, true, "s3", scenario).await;
}

/// One test: the SQLite and PostgreSQL runs share the S3 bucket (and count its keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_on_sqlite_then_postgres() {
    run(false).await;
    run(true).await;
}
