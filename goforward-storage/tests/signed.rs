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

const OLD_SECRET: &str = "old-signing-secret-old-signing-secret";
const NEW_SECRET: &str = "new-signing-secret-new-signing-secret";

/// The `[storage]` section of one key configuration.
fn keys(current: &str, kid: Option<&str>, previous: Value) -> Value {
    json!({
        "max_file_size": "12MiB",
        "signing_secret": current,
        "signing_kid": kid,
        "previous_signing_secrets": previous,
    })
}

/// `token`'s header with its `kid` replaced (`None`: removed), signature kept.
fn with_kid(token: &str, kid: Option<&str>) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let (header, rest) = token.split_once('.').unwrap();
    let mut header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    match kid {
        Some(kid) => header["kid"] = json!(kid),
        None => {
            header.as_object_mut().unwrap().remove("kid");
        }
    }
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

/// The `kid` in `token`'s header.
fn kid_of(token: &str) -> Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].clone()
}

/// Seeds `priv/rot.txt` (U1) and answers a download token and an upload token
/// (for `priv/u1/rot-up.txt`) signed by the server.
async fn issue(h: &H) -> (String, String) {
    let (s, _) = h
        .upload(
            As::User(U1),
            "priv",
            "rot.txt",
            "rotated",
            "text/plain",
            true,
        )
        .await;
    assert_eq!(s, 200);
    let (s, r) = sign(h, As::User(U1), "priv/rot.txt", json!(600)).await;
    assert_eq!(s, 200, "{r}");
    let download = r["signedURL"]
        .as_str()
        .unwrap()
        .split("token=")
        .nth(1)
        .unwrap()
        .to_owned();
    let (s, r) = h
        .send(
            h.req(
                Method::POST,
                "/object/upload/sign/priv/u1/rot-up.txt",
                As::User(U1),
            )
            .json(&json!({})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    (download, r["token"].as_str().unwrap().to_owned())
}

async fn fetch(h: &H, token: &str) -> (u16, Value) {
    h.send(
        h.app
            .client()
            .get(h.url(&format!("/object/sign/priv/rot.txt?token={token}"))),
    )
    .await
}

async fn put(h: &H, token: &str) -> (u16, Value) {
    h.send(
        h.app
            .client()
            .put(h.url(&format!(
                "/object/upload/sign/priv/u1/rot-up.txt?token={token}"
            )))
            .header("content-type", "text/plain")
            .body("via an old token"),
    )
    .await
}

/// Rotation of the signed-URL key over HTTP: tokens issued by a server with
/// key `k1` keep working on a server whose current key is `k2` while `k1` is
/// listed in `previous_signing_secrets`, and are refused once it is removed;
/// a token whose `kid` was changed, removed or unknown is refused.
async fn key_rotation(pg: bool) {
    let issued = Arc::new(std::sync::Mutex::new(None));
    // Before the rotation: k1 signs.
    let out = issued.clone();
    common::run_configured(
        pg,
        common::storage(false),
        false,
        "key_rotation (before)",
        keys(OLD_SECRET, Some("k1"), json!([])),
        |h| async move {
            let (download, upload) = issue(&h).await;
            assert_eq!(kid_of(&download), "k1");
            assert_eq!(kid_of(&upload), "k1");
            assert_eq!(fetch(&h, &download).await.0, 200);
            *out.lock().unwrap() = Some((download, upload));
        },
    )
    .await;
    let Some((old_download, old_upload)) = issued.lock().unwrap().clone() else {
        return; // PostgreSQL not configured: skipped like the other tests.
    };

    // After: k2 signs, k1 still verifies.
    let fresh = Arc::new(std::sync::Mutex::new(None));
    let out = fresh.clone();
    let (d, u) = (old_download.clone(), old_upload.clone());
    common::run_configured(
        pg,
        common::storage(false),
        false,
        "key_rotation (rotated)",
        keys(
            NEW_SECRET,
            Some("k2"),
            json!([{"kid": "k1", "secret": OLD_SECRET}]),
        ),
        |h| async move {
            let (download, _) = issue(&h).await;
            assert_eq!(kid_of(&download), "k2");
            // The old links still work…
            let (s, r) = fetch(&h, &d).await;
            assert_eq!(s, 200, "{r}");
            let res = h
                .app
                .client()
                .get(h.url(&format!("/object/sign/priv/rot.txt?token={d}")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.bytes().await.unwrap().as_ref(), b"rotated");
            let (s, r) = put(&h, &u).await;
            assert_eq!(s, 200, "{r}");
            // …and so do the new ones.
            assert_eq!(fetch(&h, &download).await.0, 200);
            // A token naming another key, an unknown one or none is refused.
            for kid in [Some("k2"), Some("k3"), Some(""), None] {
                let r = fetch(&h, &with_kid(&d, kid)).await;
                h.assert_error(&r, 403, "InvalidSignature");
                let r = fetch(
                    &h,
                    &with_kid(&download, kid.map(|k| if k == "k2" { "k1" } else { k })),
                )
                .await;
                h.assert_error(&r, 403, "InvalidSignature");
            }
            // Forged tokens store nothing.
            let before = h.rows().await;
            let r = put(&h, &with_kid(&u, Some("k2"))).await;
            h.assert_error(&r, 403, "InvalidSignature");
            assert_eq!(h.rows().await, before);
            *out.lock().unwrap() = Some(download);
        },
    )
    .await;
    let new_download = fresh.lock().unwrap().clone().unwrap();

    // k1 retired: its tokens are refused, k2's still work.
    common::run_configured(
        pg,
        common::storage(false),
        false,
        "key_rotation (retired)",
        keys(NEW_SECRET, Some("k2"), json!([])),
        |h| async move {
            let _ = issue(&h).await;
            let r = fetch(&h, &old_download).await;
            h.assert_error(&r, 403, "InvalidSignature");
            let before = h.rows().await;
            let r = put(&h, &old_upload).await;
            h.assert_error(&r, 403, "InvalidSignature");
            assert_eq!(h.rows().await, before);
            let (s, r) = fetch(&h, &new_download).await;
            assert_eq!(s, 200, "{r}");
        },
    )
    .await;
}

mod key_rotation {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::key_rotation(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::key_rotation(true).await;
    }
}

/// Keys in the wrong shape stop the server at start, naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_config_refused() {
    for (section, key) in [
        (keys("short", None, json!([])), "storage.signing_secret"),
        (
            keys(
                NEW_SECRET,
                Some("k1"),
                json!([{"kid": "k1", "secret": OLD_SECRET}]),
            ),
            "storage.previous_signing_secrets[0].kid",
        ),
        (json!({"signing_kid": "k1"}), "storage.signing_kid"),
    ] {
        let Err(err) = goforward_core::testing::TestApp::builder()
            .config(|c| {
                c.sections.insert("storage".into(), section.clone());
            })
            .plugin(common::storage(false))
            .start()
            .await
        else {
            panic!("{section}: the app started");
        };
        assert!(
            err.to_string().contains(&format!("`{key}`")),
            "{section}: {err}"
        );
    }
}
