//! `SessionsRevoked` on the bus after every revocation: sign-out scopes,
//! password and email changes, MFA factor changes, admin revocation, ban and
//! deletion, refresh-token reuse and inactivity — and no event when the
//! request is refused. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use goforward_core::bus::{Event, SessionsRevoked, Subscription};
use goforward_core::testing::TestApp;
use serde_json::{Value, json};

fn subscribe(app: &TestApp) -> Subscription {
    app.gf.context().bus().subscribe()
}

/// The next `SessionsRevoked` (other events are skipped), within 5 s.
async fn next_revoked(sub: &mut Subscription) -> SessionsRevoked {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let envelope = tokio::time::timeout_at(deadline, sub.recv())
            .await
            .expect("a sessions_revoked event within 5 s")
            .expect("bus open");
        if let Event::SessionsRevoked(event) = &envelope.event {
            return event.clone();
        }
    }
}

/// Asserts that no `SessionsRevoked` arrives within 300 ms.
async fn no_revoked(sub: &mut Subscription) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(Some(envelope)) = tokio::time::timeout_at(deadline, sub.recv()).await {
        if let Event::SessionsRevoked(event) = &envelope.event {
            panic!("unexpected {event:?}");
        }
    }
}

fn access(session: &Value) -> String {
    session["access_token"].as_str().unwrap().to_owned()
}

fn session_id(session: &Value) -> String {
    claims(&access(session))["session_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn ids(event: &SessionsRevoked) -> BTreeSet<String> {
    event
        .session_ids
        .clone()
        .expect("explicit session ids")
        .into_iter()
        .collect()
}

fn set<const N: usize>(items: [&String; N]) -> BTreeSet<String> {
    items.into_iter().cloned().collect()
}

async fn signed_in(app: &TestApp, email: &str) -> Value {
    let res = sign_in(app, email, "correct horse").await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body
}

async fn logout(app: &TestApp, scope: &str, bearer: &str) -> Res {
    post(
        app,
        &format!("/logout?scope={scope}"),
        &json!({}),
        Some(bearer),
    )
    .await
}

async fn sign_out_and_password(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let email = email();
    let s0 = sign_up(&app, &email, "correct horse").await.body;
    let s1 = signed_in(&app, &email).await;
    let s2 = signed_in(&app, &email).await;
    let user_id = claims(&access(&s0))["sub"].as_str().unwrap().to_owned();
    let mut sub = subscribe(&app);

    // A refused sign-out ends nothing and says nothing.
    logout(&app, "bogus", &access(&s0))
        .await
        .assert_error(400, "validation_failed");
    no_revoked(&mut sub).await;
    assert_eq!(get(&app, "/user", Some(&access(&s1))).await.status, 200);

    // scope=others: every session but the caller's.
    assert_eq!(logout(&app, "others", &access(&s0)).await.status, 204);
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.user_id, user_id);
    assert_eq!(event.reason, "signed_out");
    assert_eq!(ids(&event), set([&session_id(&s1), &session_id(&s2)]));
    get(&app, "/user", Some(&access(&s1)))
        .await
        .assert_error(403, "session_not_found");

    // A refused password change says nothing; an accepted one names the others.
    let s3 = signed_in(&app, &email).await;
    put(&app, "/user", &json!({ "password": "short" }), &access(&s0))
        .await
        .assert_error(422, "weak_password");
    no_revoked(&mut sub).await;
    let res = put(
        &app,
        "/user",
        &json!({ "password": "another horse" }),
        &access(&s0),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "password_changed");
    assert_eq!(ids(&event), set([&session_id(&s3)]));

    // Autoconfirmed email change ends the other sessions too.
    let s4 = sign_in(&app, &email, "another horse").await.body;
    let new_email = common::email();
    let res = put(&app, "/user", &json!({ "email": new_email }), &access(&s0)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "email_changed");
    assert_eq!(ids(&event), set([&session_id(&s4)]));

    // scope=local: only the caller's session.
    let s5 = sign_in(&app, &new_email, "another horse").await.body;
    assert_eq!(logout(&app, "local", &access(&s0)).await.status, 204);
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "signed_out");
    assert_eq!(ids(&event), set([&session_id(&s0)]));
    assert_eq!(get(&app, "/user", Some(&access(&s5))).await.status, 200);

    // scope=global: all of them; a second sign-out with the dead token says nothing.
    let s6 = sign_in(&app, &new_email, "another horse").await.body;
    assert_eq!(logout(&app, "global", &access(&s5)).await.status, 204);
    let event = next_revoked(&mut sub).await;
    assert_eq!(ids(&event), set([&session_id(&s5), &session_id(&s6)]));
    assert_eq!(
        logout(&app, "global", &access(&s5)).await.status,
        403,
        "the session is gone"
    );
    no_revoked(&mut sub).await;
    app.stop().await;
}
both!(sign_out_and_password_change, sign_out_and_password);

async fn admin_revocations(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let service = app.service_key();
    let email = email();
    let s0 = sign_up(&app, &email, "correct horse").await.body;
    let s1 = signed_in(&app, &email).await;
    let user_id = claims(&access(&s0))["sub"].as_str().unwrap().to_owned();
    let mut sub = subscribe(&app);
    let admin = |method: reqwest::Method, path: String, body: Option<Value>| {
        let app = &app;
        let service = service.clone();
        async move {
            send(
                app,
                method,
                &path,
                body.map(|b| b.to_string()),
                Some(&service),
            )
            .await
        }
    };

    // Unknown session / user: 404, nothing ended, no event.
    let res = admin(
        reqwest::Method::DELETE,
        format!("/admin/users/{user_id}/sessions/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(res.status, 404, "{}", res.body);
    let res = admin(
        reqwest::Method::DELETE,
        format!("/admin/users/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(res.status, 404, "{}", res.body);
    // A non-admin cannot revoke.
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{user_id}/sessions"),
        None,
        Some(&access(&s0)),
    )
    .await;
    res.assert_error(403, "not_admin");
    no_revoked(&mut sub).await;

    // One session.
    let res = admin(
        reqwest::Method::DELETE,
        format!("/admin/users/{user_id}/sessions/{}", session_id(&s1)),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let event = next_revoked(&mut sub).await;
    assert_eq!(
        (event.user_id.as_str(), event.reason.as_str()),
        (user_id.as_str(), "revoked")
    );
    assert_eq!(ids(&event), set([&session_id(&s1)]));

    // All sessions.
    let s2 = signed_in(&app, &email).await;
    let res = admin(
        reqwest::Method::DELETE,
        format!("/admin/users/{user_id}/sessions"),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "revoked");
    assert_eq!(ids(&event), set([&session_id(&s0), &session_id(&s2)]));

    // Admin password reset.
    let s3 = signed_in(&app, &email).await;
    let res = admin(
        reqwest::Method::PUT,
        format!("/admin/users/{user_id}"),
        Some(json!({ "password": "another horse" })),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "password_changed");
    assert_eq!(ids(&event), set([&session_id(&s3)]));

    // A malformed ban changes nothing; a ban concerns every session.
    let s4 = sign_in(&app, &email, "another horse").await.body;
    let res = admin(
        reqwest::Method::PUT,
        format!("/admin/users/{user_id}"),
        Some(json!({ "ban_duration": "a while" })),
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.body);
    no_revoked(&mut sub).await;
    assert_eq!(get(&app, "/user", Some(&access(&s4))).await.status, 200);
    let res = admin(
        reqwest::Method::PUT,
        format!("/admin/users/{user_id}"),
        Some(json!({ "ban_duration": "24h" })),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "banned");
    assert_eq!(event.session_ids, None);
    assert!(event.concerns(&user_id, Some(&session_id(&s4))));

    // Deletion (soft and hard).
    for soft in [true, false] {
        let email = common::email();
        let s = sign_up(&app, &email, "correct horse").await.body;
        let id = claims(&access(&s))["sub"].as_str().unwrap().to_owned();
        let res = admin(
            reqwest::Method::DELETE,
            format!("/admin/users/{id}"),
            Some(json!({ "should_soft_delete": soft })),
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let event = next_revoked(&mut sub).await;
        assert_eq!(
            (event.user_id.as_str(), event.reason.as_str()),
            (id.as_str(), "deleted")
        );
        assert_eq!(event.session_ids, None);
    }
    app.stop().await;
}
both!(admin_revocation_ban_delete, admin_revocations);

async fn email_change_confirmed(pg: bool) {
    let Some(app) = app(pg, |_| {}).await else {
        return;
    };
    let old = email();
    assert_eq!(sign_up(&app, &old, "correct horse").await.status, 200);
    let code = last_code(&app, &old);
    let s0 = post(
        &app,
        "/verify",
        &json!({ "type": "signup", "email": old, "token": code }),
        None,
    )
    .await
    .body;
    let s1 = signed_in(&app, &old).await;
    let mut sub = subscribe(&app);
    let new = common::email();
    let res = put(&app, "/user", &json!({ "email": new }), &access(&s0)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let new_code = last_code(&app, &new);
    let old_code = last_code(&app, &old);
    // A wrong code: refused, no event.
    let wrong = if new_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    post(
        &app,
        "/verify",
        &json!({ "type": "email_change", "email": new, "token": wrong }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    for (address, code) in [(&new, &new_code), (&old, &old_code)] {
        let res = post(
            &app,
            "/verify",
            &json!({ "type": "email_change", "email": address, "token": code }),
            None,
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.body);
    }
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "email_changed");
    assert_eq!(ids(&event), set([&session_id(&s0), &session_id(&s1)]));
    no_revoked(&mut sub).await;
    app.stop().await;
}
both!(email_change_on_both, email_change_confirmed);

async fn mfa_factor_changes(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let email = email();
    let s0 = sign_up(&app, &email, "correct horse").await.body;
    let s1 = signed_in(&app, &email).await;
    let user_id = claims(&access(&s0))["sub"].as_str().unwrap().to_owned();
    let mut sub = subscribe(&app);
    let res = post(
        &app,
        "/factors",
        &json!({ "factor_type": "totp", "friendly_name": "phone" }),
        Some(&access(&s0)),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let factor = res.body["id"].as_str().unwrap().to_owned();
    let secret = base32_decode(res.body["totp"]["secret"].as_str().unwrap());
    let challenge = |bearer: String| {
        let app = &app;
        let factor = factor.clone();
        async move {
            let res = post(
                app,
                &format!("/factors/{factor}/challenge"),
                &json!({}),
                Some(&bearer),
            )
            .await;
            assert_eq!(res.status, 200, "{}", res.body);
            res.body["id"].as_str().unwrap().to_owned()
        }
    };
    let step = goforward_auth::mfa::step_of(chrono::Utc::now().timestamp());
    let good = goforward_auth::mfa::code_at(&secret, step);
    let bad = if good == "000000" { "111111" } else { "000000" };
    let c = challenge(access(&s0)).await;
    post(
        &app,
        &format!("/factors/{factor}/verify"),
        &json!({ "challenge_id": c, "code": bad }),
        Some(&access(&s0)),
    )
    .await
    .assert_error(422, "mfa_verification_failed");
    no_revoked(&mut sub).await;
    let c = challenge(access(&s0)).await;
    let res = post(
        &app,
        &format!("/factors/{factor}/verify"),
        &json!({ "challenge_id": c, "code": good }),
        Some(&access(&s0)),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let aal2 = res.body;
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "mfa_factor_changed");
    assert_eq!(ids(&event), set([&session_id(&s1)]));

    // Admin removal of the factor ends every session.
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{user_id}/factors/{factor}"),
        None,
        Some(&app.service_key()),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "mfa_factor_changed");
    assert_eq!(ids(&event), set([&session_id(&aal2)]));
    app.stop().await;
}
both!(mfa_factor_change, mfa_factor_changes);

async fn refresh_revocations(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.refresh_token_reuse_interval_secs = 0;
        c.session_inactivity_timeout_secs = 2;
    })
    .await
    else {
        return;
    };
    let email = email();
    let s0 = sign_up(&app, &email, "correct horse").await.body;
    let mut sub = subscribe(&app);
    let old = s0["refresh_token"].as_str().unwrap().to_owned();
    let rotated = refresh(&app, &old).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    // An unknown token revokes nothing.
    refresh(&app, "not-a-token")
        .await
        .assert_error(400, "refresh_token_not_found");
    no_revoked(&mut sub).await;
    // Reuse of the rotated token: the family (session) ends.
    refresh(&app, &old)
        .await
        .assert_error(400, "refresh_token_already_used");
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "refresh_token_reused");
    assert_eq!(ids(&event), set([&session_id(&s0)]));

    // Inactivity: a session not refreshed for 2 s ends at its next refresh.
    let s1 = signed_in(&app, &email).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    refresh(&app, s1["refresh_token"].as_str().unwrap())
        .await
        .assert_error(400, "session_expired");
    let event = next_revoked(&mut sub).await;
    assert_eq!(event.reason, "session_expired");
    assert_eq!(ids(&event), set([&session_id(&s1)]));
    app.stop().await;
}
both!(refresh_reuse_and_expiry, refresh_revocations);
