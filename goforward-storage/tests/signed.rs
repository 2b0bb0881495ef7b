//! Signed download and upload URLs on SQLite and PostgreSQL (checklist item 23).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{As, H, U1, U2};
use reqwest::Method;
use serde_json::{Value, json};

async fn sign(h: &H, who: As, path: &str, expires: Value) -> (u16, Value) {
    h.send(
        h.req(Method::POST, &format!("/object/sign/{path}"), who)
            .json(&json!({"expiresIn": expires})),
    )
    .await
}

async fn download_urls(h: Arc<H>) {
    let (s, _) = h
        .upload(
            As::User(U1),
            "priv",
            "docs/a b.txt",
            "secret",
            "text/plain",
            false,
        )
        .await;
    assert_eq!(s, 200);
    let (s, r) = sign(&h, As::User(U1), "priv/docs/a b.txt", json!(60)).await;
    assert_eq!(s, 200, "{r}");
    let url = r["signedURL"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("/object/sign/priv/docs/a b.txt?token="),
        "{url}"
    );
    // Fetched with plain HTTP, no key.
    let res = h.app.client().get(h.url(&url)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"secret");
    let res = h
        .app
        .client()
        .get(h.url(&format!("{url}&download=")))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );

    let token = url.split("token=").nth(1).unwrap().to_owned();
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [
        format!("/object/sign/priv/docs/a b.txt?token={tampered}"),
        format!("/object/sign/priv/docs/other.txt?token={token}"),
        format!("/object/sign/pub/docs/a b.txt?token={token}"),
        "/object/sign/priv/docs/a b.txt?token=abc".to_owned(),
        "/object/sign/priv/docs/a b.txt".to_owned(),
    ] {
        let r = h.send(h.app.client().get(h.url(&bad))).await;
        h.assert_error(&r, 403, "InvalidSignature");
    }
    // A download token cannot upload.
    let r = h
        .send(
            h.app
                .client()
                .put(h.url(&format!(
                    "/object/upload/sign/priv/docs/a b.txt?token={token}"
                )))
                .header("content-type", "text/plain")
                .body("overwrite"),
        )
        .await;
    h.assert_error(&r, 403, "InvalidSignature");
    assert_eq!(
        h.download(As::User(U1), "/object/priv/docs/a%20b.txt")
            .await
            .2,
        b"secret"
    );

    // Expired.
    let (_, r) = sign(&h, As::User(U1), "priv/docs/a b.txt", json!(1)).await;
    let short = r["signedURL"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = h.send(h.app.client().get(h.url(&short))).await;
    h.assert_error(&r, 403, "InvalidSignature");
    assert_eq!(r.1["message"], "jwt expired");

    // Only readers may sign; bad inputs.
    let r = sign(&h, As::User(U2), "priv/docs/a b.txt", json!(60)).await;
    h.assert_error(&r, 404, "NoSuchKey");
    for bad in [json!(0), json!(-5), json!("soon"), json!(null)] {
        let r = sign(&h, As::User(U1), "priv/docs/a b.txt", bad).await;
        h.assert_error(&r, 400, "InvalidRequest");
    }
    let r = sign(&h, As::User(U1), "priv/a%00b", json!(60)).await;
    h.assert_error(&r, 400, "InvalidKey");

    // Batch: one entry per path, errors for missing/hidden ones.
    let (s, r) = h
        .send(
            h.req(Method::POST, "/object/sign/priv", As::User(U1))
                .json(&json!({
                    "expiresIn": 60, "paths": ["docs/a b.txt", "missing.txt"]
                })),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r[0]["error"], Value::Null);
    assert!(r[0]["signedURL"].as_str().unwrap().contains("token="));
    assert_eq!(r[1]["signedURL"], Value::Null);
    assert_eq!(
        r[1]["error"],
        "Either the object does not exist or you do not have access to it"
    );
    let res = h
        .app
        .client()
        .get(h.url(r[0]["signedURL"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
both!(download_urls, super::download_urls);

async fn upload_urls(h: Arc<H>) {
    let (s, r) = h
        .send(
            h.req(
                Method::POST,
                "/object/upload/sign/priv/u1/up.txt",
                As::User(U1),
            )
            .json(&json!({})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let token = r["token"].as_str().unwrap().to_owned();
    assert_eq!(
        r["url"],
        format!("/object/upload/sign/priv/u1/up.txt?token={token}")
    );
    let put = |path: &str, token: &str, body: &'static str| {
        h.app
            .client()
            .put(h.url(&format!("/object/upload/sign/{path}?token={token}")))
            .header("content-type", "text/plain")
            .body(body)
    };
    // Wrong object, tampered, no token: refused before any byte is stored.
    let r = h.send(put("priv/u1/other.txt", &token, "x")).await;
    h.assert_error(&r, 403, "InvalidSignature");
    let r = h
        .send(put("priv/u1/up.txt", &format!("{token}x"), "x"))
        .await;
    h.assert_error(&r, 403, "InvalidSignature");
    let r = h
        .send(
            h.app
                .client()
                .put(h.url("/object/upload/sign/priv/u1/up.txt"))
                .body("x"),
        )
        .await;
    h.assert_error(&r, 403, "InvalidSignature");
    assert_eq!(h.rows().await, 0);

    let (s, r) = h.send(put("priv/u1/up.txt", &token, "via token")).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["Key"], "priv/u1/up.txt");
    // The object belongs to the user who asked for the URL.
    assert_eq!(
        h.download(As::User(U1), "/object/priv/u1/up.txt").await.2,
        b"via token"
    );
    assert_eq!(
        h.download(As::User(U2), "/object/priv/u1/up.txt").await.0,
        404
    );
    // Without upsert the token cannot replace it.
    let r = h.send(put("priv/u1/up.txt", &token, "again")).await;
    h.assert_error(&r, 409, "KeyAlreadyExists");
    // An upload token cannot download.
    let r = h
        .send(
            h.app
                .client()
                .get(h.url(&format!("/object/sign/priv/u1/up.txt?token={token}"))),
        )
        .await;
    h.assert_error(&r, 403, "InvalidSignature");
    // Anonymous callers and other users cannot obtain one for someone's object.
    let r = h
        .send(
            h.req(Method::POST, "/object/upload/sign/priv/x.txt", As::Anon)
                .json(&json!({})),
        )
        .await;
    h.assert_error(&r, 403, "AccessDenied");
    let r = h
        .send(
            h.req(
                Method::POST,
                "/object/upload/sign/priv/u1/up.txt",
                As::User(U2),
            )
            .header("x-upsert", "true")
            .json(&json!({})),
        )
        .await;
    h.assert_error(&r, 403, "AccessDenied");
    let r = h
        .send(
            h.req(
                Method::POST,
                "/object/upload/sign/priv/u1/up.txt",
                As::User(U1),
            )
            .json(&json!({})),
        )
        .await;
    h.assert_error(&r, 409, "KeyAlreadyExists");
    // With x-upsert the owner's token replaces it.
    let (_, r) = h
        .send(
            h.req(
                Method::POST,
                "/object/upload/sign/priv/u1/up.txt",
                As::User(U1),
            )
            .header("x-upsert", "true")
            .json(&json!({})),
        )
        .await;
    let token = r["token"].as_str().unwrap().to_owned();
    let (s, _) = h.send(put("priv/u1/up.txt", &token, "replaced")).await;
    assert_eq!(s, 200);
    assert_eq!(
        h.download(As::User(U1), "/object/priv/u1/up.txt").await.2,
        b"replaced"
    );
}
both!(upload_urls, super::upload_urls);
