//! Shared helpers for the facade's integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use actix_web::{HttpResponse, web};
use goforward::Principal;
use goforward::testing::{TestApp, TestAppBuilder};
use serde_json::{Value, json};

/// Builds a test app with every first-party plugin and a `/whoami` host route.
pub fn app_with_all_plugins() -> TestAppBuilder {
    TestApp::builder()
        .plugin(goforward::Auth::new())
        .plugin(goforward::Rest::new())
        .plugin(goforward::Realtime::new())
        .plugin(goforward::Storage::new())
        .routes(|cfg| {
            cfg.route(
                "/whoami",
                web::get().to(|p: Principal| async move {
                    HttpResponse::Ok().json(json!({
                        "role": p.role.as_str(), "user_id": p.user_id, "session_id": p.session_id, "aal": p.aal,
                    }))
                }),
            );
        })
}

/// GET `path` with optional apikey and bearer; returns (status, headers, json body).
pub async fn get(
    app: &TestApp,
    path: &str,
    apikey: Option<&str>,
    bearer: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app.client().get(app.url(path));
    if let Some(key) = apikey {
        req = req.header("apikey", key);
    }
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

/// Base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
