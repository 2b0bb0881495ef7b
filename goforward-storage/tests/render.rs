//! Image transformations (`/render/image/…`, feature `image`) on SQLite and
//! PostgreSQL: sizes by resize mode, formats, access, cache validators, and the
//! refusals (bad parameters, non-images, oversize input, decompression bombs).
#![cfg(feature = "image")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{As, H, U1, U2};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::Method;

/// A 400×200 PNG (a gradient, so it is not trivially compressible to nothing).
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut out, ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

/// A PNG whose header claims `side`×`side` pixels, with a tiny bogus body.
fn bomb_png(side: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for b in bytes {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = side.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend(chunk(b"IEND", &[]));
    out
}

async fn get(h: &H, who: As, path: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    h.download(who, &format!("/render/image/{path}")).await
}

fn dims(bytes: &[u8]) -> (u32, u32, ImageFormat) {
    let format = image::guess_format(bytes).unwrap();
    let img = image::load_from_memory(bytes).unwrap();
    (img.width(), img.height(), format)
}

async fn scenario(h: Arc<H>) {
    let (s, r) = h
        .upload(
            As::User(U1),
            "open",
            "pic.png",
            png(400, 200),
            "image/png",
            false,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, r) = h
        .upload(
            As::User(U1),
            "priv",
            "me.png",
            png(400, 200),
            "image/png",
            false,
        )
        .await;
    assert_eq!(s, 200, "{r}");

    for (query, want) in [
        ("width=100&height=100", (100, 100)),
        ("width=100&height=100&resize=cover", (100, 100)),
        ("width=100&height=100&resize=contain", (100, 50)),
        ("width=100&height=100&resize=fill", (100, 100)),
        ("width=50", (50, 25)),
        ("height=50", (100, 50)),
        ("", (400, 200)),
    ] {
        let (s, headers, bytes) =
            get(&h, As::Nobody, &format!("public/open/pic.png?{query}")).await;
        assert_eq!(s, 200, "{query}: {}", String::from_utf8_lossy(&bytes));
        assert_eq!(headers["content-type"], "image/png");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        let (w, hh, f) = dims(&bytes);
        assert_eq!(((w, hh), f), (want, ImageFormat::Png), "{query}");
    }
    // Formats and quality (JPEG quality changes the size).
    let (s, headers, hi) = get(
        &h,
        As::Nobody,
        "public/open/pic.png?width=200&format=jpeg&quality=95",
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    assert_eq!(dims(&hi), (200, 100, ImageFormat::Jpeg));
    let (_, _, lo) = get(
        &h,
        As::Nobody,
        "public/open/pic.png?width=200&format=jpeg&quality=20",
    )
    .await;
    assert!(lo.len() < hi.len(), "quality 20 is smaller than 95");
    let (s, headers, webp) = get(&h, As::Nobody, "public/open/pic.png?width=40&format=webp").await;
    assert_eq!(s, 200);
    assert_eq!(headers["content-type"], "image/webp");
    assert_eq!(dims(&webp), (40, 20, ImageFormat::WebP));
    let (_, _, origin) = get(&h, As::Nobody, "public/open/pic.png?width=40&format=origin").await;
    assert_eq!(dims(&origin).2, ImageFormat::Png);

    // Validators: a repeat with If-None-Match is 304; other options, other tag.
    let (_, headers, _) = get(&h, As::Nobody, "public/open/pic.png?width=100").await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (_, other, _) = get(&h, As::Nobody, "public/open/pic.png?width=101").await;
    assert_ne!(other["etag"].to_str().unwrap(), etag);
    let res = h
        .req(
            Method::GET,
            "/render/image/public/open/pic.png?width=100",
            As::Nobody,
        )
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // Access: private objects through the authenticated route, for their owner only.
    let (s, _, bytes) = get(&h, As::User(U1), "authenticated/priv/me.png?width=10").await;
    assert_eq!(s, 200);
    assert_eq!(dims(&bytes).0, 10);
    let r = h
        .send(h.req(
            Method::GET,
            "/render/image/authenticated/priv/me.png?width=10",
            As::User(U2),
        ))
        .await;
    h.assert_error(&r, 404, "NoSuchKey");
    let r = h
        .send(h.req(
            Method::GET,
            "/render/image/public/priv/me.png?width=10",
            As::Nobody,
        ))
        .await;
    h.assert_error(&r, 404, "NoSuchBucket");
    let r = h
        .send(h.req(
            Method::GET,
            "/render/image/authenticated/priv/me.png",
            As::Nobody,
        ))
        .await;
    h.assert_error(&r, 401, "InvalidJWT");
    let r = h
        .send(h.req(
            Method::GET,
            "/render/image/public/open/missing.png",
            As::Nobody,
        ))
        .await;
    h.assert_error(&r, 404, "NoSuchKey");

    // Signed URLs carry their options in the signed token.
    let sign = |who: As, body: serde_json::Value| {
        let h = h.clone();
        async move {
            h.send(
                h.req(Method::POST, "/object/sign/priv/me.png", who)
                    .json(&body),
            )
            .await
        }
    };
    let (s, r) = sign(
        As::User(U1),
        serde_json::json!({"expiresIn": 60, "transform": {"width": 20, "height": 20, "resize": "contain"}}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let url = r["signedURL"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("/render/image/sign/priv/me.png?token="),
        "{url}"
    );
    let fetch = |path: String| {
        let h = h.clone();
        async move {
            let res = h.app.client().get(h.url(&path)).send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.bytes().await.unwrap().to_vec())
        }
    };
    let (s, bytes) = fetch(url.clone()).await;
    assert_eq!(s, 200);
    assert_eq!(dims(&bytes), (20, 10, ImageFormat::Png));
    // Query parameters cannot change what was signed.
    let (s, bytes) = fetch(format!("{url}&width=300&height=300&resize=fill")).await;
    assert_eq!((s, dims(&bytes).0), (200, 20));
    let (s, body) = fetch(format!("{url}x")).await;
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&body));
    let (s, _) = fetch("/render/image/sign/priv/me.png".into()).await;
    assert_eq!(s, 403);
    // A plain download token renders the original; an upload token does not render.
    let (_, plain) = sign(As::User(U1), serde_json::json!({"expiresIn": 60})).await;
    let plain =
        plain["signedURL"]
            .as_str()
            .unwrap()
            .replacen("/object/sign/", "/render/image/sign/", 1);
    let (s, bytes) = fetch(plain).await;
    assert_eq!((s, dims(&bytes).0), (200, 400));
    let (s, up) = h
        .send(
            h.req(
                Method::POST,
                "/object/upload/sign/priv/me2.png",
                As::User(U1),
            )
            .json(&serde_json::json!({})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = fetch(up["url"].as_str().unwrap().replacen(
        "/object/upload/sign/",
        "/render/image/sign/",
        1,
    ))
    .await;
    assert_eq!(s, 403);
    // Bad transform options are refused when signing; others cannot sign.
    for t in [
        serde_json::json!({"width": 0}),
        serde_json::json!({"width": 10, "rotate": 90}),
        serde_json::json!({"width": [10]}),
        serde_json::json!("small"),
        serde_json::json!({"format": "tiff"}),
    ] {
        let r = sign(
            As::User(U1),
            serde_json::json!({"expiresIn": 60, "transform": t}),
        )
        .await;
        h.assert_error(&r, 400, "InvalidRequest");
    }
    let r = sign(
        As::User(U2),
        serde_json::json!({"expiresIn": 60, "transform": {"width": 10}}),
    )
    .await;
    h.assert_error(&r, 404, "NoSuchKey");

    // Bad parameters.
    for query in [
        "width=0",
        "width=2501",
        "height=-1",
        "width=abc",
        "resize=stretch",
        "quality=5",
        "quality=101",
        "format=bmp",
    ] {
        let r = h
            .send(h.req(
                Method::GET,
                &format!("/render/image/public/open/pic.png?{query}"),
                As::Nobody,
            ))
            .await;
        h.assert_error(&r, 400, "InvalidRequest");
    }
    // Not an image type; an image type whose bytes are not an image.
    let (s, _) = h
        .upload(
            As::User(U1),
            "open",
            "notes.txt",
            "hello",
            "text/plain",
            false,
        )
        .await;
    assert_eq!(s, 200);
    let r = h
        .send(h.req(
            Method::GET,
            "/render/image/public/open/notes.txt?width=10",
            As::Nobody,
        ))
        .await;
    h.assert_error(&r, 415, "InvalidMimeType");
    // (Uploads sniff types only in buckets that restrict them: `open` does not.)
    let (s, _) = h
        .upload(
            As::User(U1),
            "open",
            "fake.png",
            "not a png at all",
            "image/png",
            false,
        )
        .await;
    assert_eq!(s, 200);
    let r = h
        .send(h.req(
            Method::GET,
            "/render/image/public/open/fake.png?width=10",
            As::Nobody,
        ))
        .await;
    h.assert_error(&r, 400, "InvalidRequest");

    // A decompression bomb: a few bytes claiming 100000×100000 pixels are refused from the header.
    let (s, _) = h
        .upload(
            As::User(U1),
            "open",
            "bomb.png",
            bomb_png(100_000),
            "image/png",
            false,
        )
        .await;
    assert_eq!(s, 200);
    let r = h
        .send(h.req(
            Method::GET,
            "/render/image/public/open/bomb.png?width=10",
            As::Nobody,
        ))
        .await;
    h.assert_error(&r, 400, "InvalidRequest");
    assert!(
        r.1["message"].as_str().unwrap().contains("too large"),
        "{}",
        r.1
    );
    // Over the configured input size (300 000 bytes here).
    let big: Vec<u8> = {
        let img = RgbImage::from_fn(600, 600, |x, y| {
            Rgb([(x * 7 + y * 13) as u8, (x * y) as u8, (x ^ y) as u8])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    assert!(big.len() > 300_000, "{}", big.len());
    let (s, _) = h
        .upload(As::User(U1), "open", "big.png", big, "image/png", false)
        .await;
    assert_eq!(s, 200);
    let r = h
        .send(h.req(
            Method::GET,
            "/render/image/public/open/big.png?width=10",
            As::Nobody,
        ))
        .await;
    h.assert_error(&r, 413, "EntityTooLarge");
    // The server is still fine.
    let (s, _, _) = get(&h, As::Nobody, "public/open/pic.png?width=10").await;
    assert_eq!(s, 200);
}

fn section() -> serde_json::Value {
    serde_json::json!({
        "max_file_size": "12MiB",
        "image_max_input_bytes": 300_000,
        "image_max_input_side": 4096,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    common::run_configured(
        false,
        common::storage(false),
        false,
        "render (sqlite)",
        section(),
        scenario,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    common::run_configured(
        true,
        common::storage(false),
        false,
        "render (postgres)",
        section(),
        scenario,
    )
    .await;
}
