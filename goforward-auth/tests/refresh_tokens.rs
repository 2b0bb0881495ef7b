//! Refresh-token rotation, the reuse interval, family revocation, the
//! 50-concurrent-refreshes case and session lifetime, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::json;

async fn session(app: &goforward_core::testing::TestApp) -> serde_json::Value {
    let email = email();
    let res = sign_up(app, &email, "correct horse").await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body
}

fn rt(v: &serde_json::Value) -> String {
    v["refresh_token"].as_str().unwrap().to_owned()
}

async fn rotation_and_reuse_within_window(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let s0 = session(&app).await;
    let r0 = rt(&s0);
    let s1 = refresh(&app, &r0).await;
    assert_eq!(s1.status, 200, "{}", s1.body);
    let r1 = rt(&s1.body);
    assert_ne!(r1, r0);
    assert_eq!(s1.body["token_type"], "bearer");
    assert_eq!(s1.body["user"]["id"], s0["user"]["id"]);
    let c0 = claims(s0["access_token"].as_str().unwrap());
    let c1 = claims(s1.body["access_token"].as_str().unwrap());
    assert_eq!(c0["session_id"], c1["session_id"]);
    assert_eq!(c1["amr"][0]["method"], "password");

    // Reusing the parent within the interval returns the same child.
    let again = refresh(&app, &r0).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(rt(&again.body), r1);
    // The child rotates on.
    let s2 = refresh(&app, &r1).await;
    assert_eq!(s2.status, 200);
    assert_ne!(rt(&s2.body), r1);
    assert_eq!(count(&app, "auth_refresh_tokens").await, 3);

    // Bad inputs.
    let missing = post(&app, "/token?grant_type=refresh_token", &json!({}), None).await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["error"], "invalid_request");
    assert_eq!(missing.body["error_description"], "refresh_token required");
    refresh(&app, "no-such-token")
        .await
        .assert_error(400, "refresh_token_not_found");
    refresh(&app, &"x".repeat(1000))
        .await
        .assert_error(400, "refresh_token_not_found");
    assert_eq!(count(&app, "auth_refresh_tokens").await, 3);
    app.stop().await;
}
both!(rotation, rotation_and_reuse_within_window);

async fn reuse_after_window_revokes_family(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.refresh_token_reuse_interval_secs = 0;
    })
    .await
    else {
        return;
    };
    let s0 = session(&app).await;
    let r0 = rt(&s0);
    let s1 = refresh(&app, &r0).await;
    let r1 = rt(&s1.body);
    let access = s1.body["access_token"].as_str().unwrap().to_owned();
    // Another session of the same user is unaffected.
    let email = s0["user"]["email"].as_str().unwrap().to_owned();
    let other = sign_in(&app, &email, "correct horse").await;

    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    refresh(&app, &r0)
        .await
        .assert_error(400, "refresh_token_already_used");
    // The latest child is dead too, and so is the session's access token.
    refresh(&app, &r1)
        .await
        .assert_error(400, "refresh_token_not_found");
    get(&app, "/user", Some(&access))
        .await
        .assert_error(403, "session_not_found");
    assert_eq!(refresh(&app, &rt(&other.body)).await.status, 200);
    app.stop().await;
}
both!(family_revoked, reuse_after_window_revokes_family);

async fn window_edges(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.refresh_token_reuse_interval_secs = 2;
    })
    .await
    else {
        return;
    };
    let s0 = session(&app).await;
    let r0 = rt(&s0);
    let r1 = rt(&refresh(&app, &r0).await.body);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(rt(&refresh(&app, &r0).await.body), r1, "inside the window");
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    refresh(&app, &r0)
        .await
        .assert_error(400, "refresh_token_already_used");
    app.stop().await;
}
both!(reuse_window_edges, window_edges);

async fn fifty_concurrent_refreshes(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let s0 = session(&app).await;
    let r0 = rt(&s0);
    let results = futures_util::future::join_all((0..50).map(|_| refresh(&app, &r0))).await;
    let mut children = HashSet::new();
    for res in &results {
        assert_eq!(res.status, 200, "{}", res.body);
        children.insert(rt(&res.body));
    }
    assert_eq!(children.len(), 1, "one child for 50 concurrent refreshes");
    // Exactly the parent and one child exist, and the session lives on.
    assert_eq!(count(&app, "auth_refresh_tokens").await, 2);
    assert_eq!(count(&app, "auth_sessions").await, 1);
    let child = children.into_iter().next().unwrap();
    assert_eq!(refresh(&app, &child).await.status, 200);
    app.stop().await;
}
both!(concurrent_refresh, fifty_concurrent_refreshes);

async fn session_timebox(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.session_timebox_secs = 1;
    })
    .await
    else {
        return;
    };
    let s0 = session(&app).await;
    assert_eq!(refresh(&app, &rt(&s0)).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let s = sign_in(&app, s0["user"]["email"].as_str().unwrap(), "correct horse").await;
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    refresh(&app, &rt(&s.body))
        .await
        .assert_error(400, "session_expired");
    get(&app, "/user", s.body["access_token"].as_str())
        .await
        .assert_error(403, "session_not_found");
    app.stop().await;
}
both!(timebox, session_timebox);

async fn inactivity_timeout(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.session_inactivity_timeout_secs = 1;
    })
    .await
    else {
        return;
    };
    let s0 = session(&app).await;
    // Refreshing keeps the session alive…
    let s1 = refresh(&app, &rt(&s0)).await;
    assert_eq!(s1.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let s2 = refresh(&app, &rt(&s1.body)).await;
    assert_eq!(s2.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let s3 = refresh(&app, &rt(&s2.body)).await;
    assert_eq!(s3.status, 200, "{}", s3.body);
    // …idling past the timeout ends it.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    refresh(&app, &rt(&s3.body))
        .await
        .assert_error(400, "session_expired");
    app.stop().await;
}
both!(inactivity, inactivity_timeout);
