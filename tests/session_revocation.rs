//! An ended session's access tokens stop working everywhere at once, not at
//! their expiry: sign-out, ban and deletion publish `SessionsRevoked`, every
//! node's authenticator records it, and the `Principal` extractor of every
//! plugin (and host route) refuses the token with 401
//! `core.session_revoked`. The auth routes keep GoTrue's own answers
//! (`user_banned`, `session_not_found`). Across nodes through the real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use actix_web::{HttpResponse, web};
use common::get;
use goforward::Principal;
use goforward::testing::{TestApp, TestAppBuilder, redis_url_or_skip};
use serde_json::{Value, json};

/// REST, storage and a `/whoami` host route; with the auth plugin (anonymous
/// sign-ins on) when `auth`.
fn app(auth: bool) -> TestAppBuilder {
    let mut builder = TestApp::builder()
        .postgres(false)
        .plugin(goforward::Rest::new())
        .plugin(goforward::Storage::new())
        .routes(|cfg| {
            cfg.route(
                "/whoami",
                web::get().to(|p: Principal| async move {
                    HttpResponse::Ok().json(json!({ "user_id": p.user_id }))
                }),
            );
        });
    if auth {
        builder = builder.plugin(goforward::Auth::new().configure(|c| {
            c.bcrypt_cost = 4;
            c.anonymous_users = true;
        }));
    }
    builder
}

/// An anonymous user's session: (user id, access token).
async fn anonymous_session(app: &TestApp) -> (String, String) {
    let res = app
        .client()
        .post(app.url("/auth/v1/signup"))
        .header("apikey", app.anon_key())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    (
        body["user"]["id"].as_str().unwrap().to_owned(),
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

async fn logout(app: &TestApp, token: &str) {
    let res = app
        .client()
        .post(app.url("/auth/v1/logout?scope=local"))
        .header("apikey", app.anon_key())
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

async fn admin_update(app: &TestApp, user_id: &str, body: Value) {
    let res = app
        .client()
        .put(app.url(&format!("/auth/v1/admin/users/{user_id}")))
        .header("apikey", app.service_key())
        .bearer_auth(app.service_key())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// Polls `/whoami` with `token` until it answers `status` (within 5 s: the
/// revocation reaches other nodes through Redis).
async fn whoami_becomes(app: &TestApp, token: &str, status: u16) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (got, _, body) = get(app, "/whoami", Some(&app.anon_key()), Some(token)).await;
        if got == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/whoami answered {got} {body}, expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_out_and_ban_end_access_tokens_everywhere_on_one_node() {
    let app = app(true).start().await.unwrap();

    // Sign-out of one session: its token is refused, another session's is not.
    let (user, first) = anonymous_session(&app).await;
    let body = whoami_becomes(&app, &first, 200).await;
    assert_eq!(body["user_id"], user.as_str());
    let (other_user, other) = anonymous_session(&app).await;
    logout(&app, &first).await;
    let refused = whoami_becomes(&app, &first, 401).await;
    assert_eq!(refused["code"], "core.session_revoked", "{refused}");
    whoami_becomes(&app, &other, 200).await;
    // Other plugins refuse it in their own wire shape.
    let (status, _, body) = get(
        &app,
        "/storage/v1/bucket",
        Some(&app.anon_key()),
        Some(&first),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    // The auth routes keep GoTrue's answer for a session that no longer exists.
    let (status, _, body) = get(&app, "/auth/v1/user", Some(&app.anon_key()), Some(&first)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "session_not_found", "{body}");

    // A ban ends every session of the user, including tokens of sessions
    // this node never saw ended one by one.
    admin_update(&app, &other_user, json!({ "ban_duration": "24h" })).await;
    let refused = whoami_becomes(&app, &other, 401).await;
    assert_eq!(refused["code"], "core.session_revoked", "{refused}");
    let (status, _, body) = get(&app, "/auth/v1/user", Some(&app.anon_key()), Some(&other)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "user_banned", "{body}");

    // Tokens issued after a user-wide revocation are not affected by it.
    admin_update(&app, &other_user, json!({ "ban_duration": "none" })).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await; // a later `iat` second
    let fresh = app.token(json!({
        "role": "authenticated",
        "sub": other_user,
        "session_id": "a-later-session",
    }));
    whoami_becomes(&app, &fresh, 200).await;

    // Tokens that carry no user (API keys) are never concerned.
    let (status, _, _) = get(&app, "/whoami", Some(&app.service_key()), None).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_on_one_node_ends_the_token_on_another() {
    let Some(redis) = redis_url_or_skip("session revocation across nodes") else {
        return;
    };
    let channel = format!("goforward:test:revocation:{}", uuid::Uuid::new_v4());
    let on_redis = |builder: TestAppBuilder| {
        let (redis, channel) = (redis.clone(), channel.clone());
        builder.config(move |c| {
            c.redis.url = Some(redis);
            c.redis.channel = Some(channel);
        })
    };
    // Node A issues tokens; node B only verifies them (same JWT secret).
    let node_a = on_redis(app(true)).start().await.unwrap();
    let node_b = on_redis(app(false)).start().await.unwrap();

    let (_, token) = anonymous_session(&node_a).await;
    whoami_becomes(&node_b, &token, 200).await;
    logout(&node_a, &token).await;
    let refused = whoami_becomes(&node_b, &token, 401).await;
    assert_eq!(refused["code"], "core.session_revoked", "{refused}");

    node_a.stop().await;
    node_b.stop().await;
}
