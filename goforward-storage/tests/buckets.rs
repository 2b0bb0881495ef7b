//! The bucket API on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{As, H, U1};
use reqwest::Method;
use serde_json::json;

async fn lifecycle(h: Arc<H>) {
    // create (fileSizeLimit as storage-js sends strings), get, list, update, empty, delete
    let created = h
        .send(h.req(Method::POST, "/bucket", As::Service).json(&json!({
            "id": "photos", "name": "photos", "public": false,
            "file_size_limit": "5MB", "allowed_mime_types": ["image/*"]
        })))
        .await;
    assert_eq!(created, (200, json!({"name": "photos"})));
    let (s, b) = h
        .send(h.req(Method::GET, "/bucket/photos", As::Service))
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["id"], "photos");
    assert_eq!(b["public"], false);
    assert_eq!(b["file_size_limit"], 5_000_000);
    assert_eq!(b["allowed_mime_types"], json!(["image/*"]));
    assert_eq!(b["type"], "STANDARD");
    assert!(b["created_at"].as_str().unwrap().ends_with('Z'));

    let (s, list) = h.send(h.req(Method::GET, "/bucket", As::Service)).await;
    assert_eq!(s, 200);
    let ids: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!("open"), json!("photos"), json!("priv"), json!("pub")]
    );
    let (_, searched) = h
        .send(h.req(
            Method::GET,
            "/bucket?search=pho&limit=5&offset=0",
            As::Service,
        ))
        .await;
    assert_eq!(searched.as_array().unwrap().len(), 1);

    let updated = h
        .send(
            h.req(Method::PUT, "/bucket/photos", As::Service)
                .json(&json!({
                    "id": "photos", "name": "photos", "public": true, "file_size_limit": 1000
                })),
        )
        .await;
    assert_eq!(updated, (200, json!({"message": "Successfully updated"})));
    let (_, b) = h.send(h.req(Method::GET, "/bucket/photos", As::Anon)).await;
    assert_eq!(b["public"], true, "a public bucket is visible to anon: {b}");
    assert_eq!(b["file_size_limit"], 1000);
    assert_eq!(b["allowed_mime_types"], json!(["image/*"]), "untouched");

    // A non-empty bucket cannot be deleted; emptying removes rows and bytes.
    let png = [0x89u8, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3];
    assert_eq!(
        h.upload(
            As::Service,
            "photos",
            "a/b.png",
            png.to_vec(),
            "image/png",
            false
        )
        .await
        .0,
        200
    );
    let refused = h
        .send(
            h.req(Method::DELETE, "/bucket/photos", As::Service)
                .json(&json!({})),
        )
        .await;
    h.assert_error(&refused, 409, "InvalidRequest");
    assert_eq!(h.rows().await, 1);
    let emptied = h
        .send(
            h.req(Method::POST, "/bucket/photos/empty", As::Service)
                .json(&json!({})),
        )
        .await;
    assert_eq!(emptied.0, 200);
    assert_eq!(h.rows().await, 0);
    if !h.memory {
        assert!(h.files().is_empty(), "bytes left: {:?}", h.files());
    }
    let deleted = h
        .send(
            h.req(Method::DELETE, "/bucket/photos", As::Service)
                .json(&json!({})),
        )
        .await;
    assert_eq!(deleted, (200, json!({"message": "Successfully deleted"})));
    let gone = h
        .send(h.req(Method::GET, "/bucket/photos", As::Service))
        .await;
    h.assert_error(&gone, 404, "NoSuchBucket");
}
both!(bucket_lifecycle, super::lifecycle);

async fn refusals(h: Arc<H>) {
    // Only service_role administers buckets.
    for who in [As::Anon, As::User(U1)] {
        let r = h
            .send(
                h.req(Method::POST, "/bucket", who)
                    .json(&json!({"name": "mine"})),
            )
            .await;
        h.assert_error(&r, 403, "AccessDenied");
        let r = h
            .send(
                h.req(Method::PUT, "/bucket/pub", who)
                    .json(&json!({"public": false})),
            )
            .await;
        h.assert_error(&r, 403, "AccessDenied");
        let r = h
            .send(h.req(Method::DELETE, "/bucket/open", who).json(&json!({})))
            .await;
        h.assert_error(&r, 403, "AccessDenied");
        let r = h
            .send(
                h.req(Method::POST, "/bucket/open/empty", who)
                    .json(&json!({})),
            )
            .await;
        h.assert_error(&r, 403, "AccessDenied");
    }
    let (_, b) = h.send(h.req(Method::GET, "/bucket/pub", As::Service)).await;
    assert_eq!(b["public"], true, "unchanged");

    // Duplicates, bad names, bad settings, malformed JSON.
    let dup = h
        .send(
            h.req(Method::POST, "/bucket", As::Service)
                .json(&json!({"name": "pub"})),
        )
        .await;
    h.assert_error(&dup, 409, "BucketAlreadyExists");
    for body in [
        json!({"name": "../x"}),
        json!({"name": "public"}),
        json!({"name": ""}),
        json!({}),
        json!({"name": "ok1", "file_size_limit": "5XB"}),
        json!({"name": "ok2", "file_size_limit": -3}),
        json!({"name": "ok3", "allowed_mime_types": ["image"]}),
        json!({"name": "ok4", "allowed_mime_types": "image/*"}),
        json!({"name": "ok5", "public": "yes"}),
    ] {
        let r = h
            .send(h.req(Method::POST, "/bucket", As::Service).json(&body))
            .await;
        assert_eq!(r.0, 400, "{body} → {r:?}");
        assert!(
            r.1["code"].is_string() && r.1["statusCode"] == "400",
            "{r:?}"
        );
    }
    let bad_json = h
        .send(
            h.req(Method::POST, "/bucket", As::Service)
                .header("content-type", "application/json")
                .body("{\"name\":"),
        )
        .await;
    assert_eq!(bad_json.0, 400);
    assert_eq!(bad_json.1["statusCode"], "400", "{bad_json:?}");
    let (_, list) = h.send(h.req(Method::GET, "/bucket", As::Service)).await;
    assert_eq!(list.as_array().unwrap().len(), 3, "nothing was created");

    // Missing bucket; private buckets are hidden from users.
    let missing = h
        .send(h.req(Method::GET, "/bucket/nope", As::Service))
        .await;
    h.assert_error(&missing, 404, "NoSuchBucket");
    let hidden = h
        .send(h.req(Method::GET, "/bucket/priv", As::User(U1)))
        .await;
    h.assert_error(&hidden, 404, "NoSuchBucket");
    let (_, visible) = h.send(h.req(Method::GET, "/bucket", As::Anon)).await;
    let ids: Vec<_> = visible
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("open"), json!("pub")]);
    // A bad token is refused in the storage shape.
    let bad_token = h
        .send(
            h.app
                .client()
                .get(h.url("/bucket"))
                .header("apikey", h.app.anon_key())
                .bearer_auth("not.a.jwt"),
        )
        .await;
    assert_eq!(bad_token.0, 401);
    assert_eq!(bad_token.1["statusCode"], "401");
}
both!(bucket_refusals, super::refusals);
