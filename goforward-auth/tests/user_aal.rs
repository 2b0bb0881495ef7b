//! `PUT /user` and MFA: once a user has a verified factor, changing the
//! email, the phone or the password needs an aal2 session (GoTrue: 401
//! `insufficient_aal`); an aal1 session is refused with nothing changed,
//! an aal2 session goes through. Metadata stays editable from aal1, and an
//! enrolled but unverified factor does not count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_auth::entity::user;
use goforward_core::sea_orm::EntityTrait;
use goforward_core::testing::TestApp;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse";

fn token(s: &Value) -> String {
    s["access_token"].as_str().unwrap().to_owned()
}

/// Enrolls a TOTP factor; returns `(factor_id, secret)`.
async fn enroll(app: &TestApp, bearer: &str) -> (String, Vec<u8>) {
    let res = post(
        app,
        "/factors",
        &json!({ "factor_type": "totp", "friendly_name": "phone app" }),
        Some(bearer),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    (
        res.body["id"].as_str().unwrap().to_owned(),
        base32_decode(res.body["totp"]["secret"].as_str().unwrap()),
    )
}

/// Challenges and verifies the factor: the session becomes aal2.
async fn step_up(app: &TestApp, bearer: &str, factor: &str, secret: &[u8]) -> String {
    let ch = post(
        app,
        &format!("/factors/{factor}/challenge"),
        &json!({}),
        Some(bearer),
    )
    .await;
    assert_eq!(ch.status, 200, "{}", ch.body);
    let step = goforward_auth::mfa::step_of(chrono::Utc::now().timestamp());
    let res = post(
        app,
        &format!("/factors/{factor}/verify"),
        &json!({
            "challenge_id": ch.body["id"],
            "code": goforward_auth::mfa::code_at(secret, step),
        }),
        Some(bearer),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let aal2 = token(&res.body);
    assert_eq!(claims(&aal2)["aal"], "aal2");
    aal2
}

async fn stored(app: &TestApp, id: &str) -> user::Model {
    user::Entity::find_by_id(id.to_owned())
        .one(app.db())
        .await
        .unwrap()
        .unwrap()
}

async fn credential_changes_need_aal2(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.phone_enabled = true;
        c.phone_autoconfirm = true;
    })
    .await
    else {
        return;
    };
    let address = email();
    let signed_up = sign_up(&app, &address, PASSWORD).await;
    assert_eq!(signed_up.status, 200, "{}", signed_up.body);
    let first = token(&signed_up.body);
    let id = signed_up.body["user"]["id"].as_str().unwrap().to_owned();

    // An enrolled but unverified factor does not count: aal1 may still
    // change the phone.
    let (factor, secret) = enroll(&app, &first).await;
    let res = put(&app, "/user", &json!({ "phone": "+15551230001" }), &first).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["phone"], "15551230001");

    // Verified: this session is aal2; a new password sign-in is aal1.
    let aal2 = step_up(&app, &first, &factor, &secret).await;
    let aal1 = {
        let res = sign_in(&app, &address, PASSWORD).await;
        assert_eq!(res.status, 200, "{}", res.body);
        token(&res.body)
    };
    assert_eq!(claims(&aal1)["aal"], "aal1");

    let before = stored(&app, &id).await;
    let mails_before = outbox(&app).len();
    let sessions_before = count(&app, "auth_sessions").await;
    for body in [
        json!({ "password": "a brand new password" }),
        json!({ "email": "someone-else@example.com" }),
        json!({ "phone": "+15551230002" }),
        // Mixed with an allowed change: nothing of it is applied.
        json!({ "password": "a brand new password", "data": { "nick": "x" } }),
        json!({ "email": "Someone-Else@Example.com", "phone": "+15551230002" }),
    ] {
        let res = put(&app, "/user", &body, &aal1).await;
        res.assert_error(401, "insufficient_aal");
        assert_eq!(
            res.body["message"],
            "AAL2 session is required to update email or password when MFA is enabled.",
            "{body}"
        );
    }
    // No state change: same row, no mail, no session ended, the old
    // password still signs in.
    assert_eq!(stored(&app, &id).await, before);
    assert_eq!(outbox(&app).len(), mails_before);
    assert_eq!(count(&app, "auth_sessions").await, sessions_before);
    assert_eq!(sign_in(&app, &address, PASSWORD).await.status, 200);
    let me = get(&app, "/user", Some(&aal1)).await;
    assert_eq!(me.status, 200, "{}", me.body);

    // aal1 may still edit metadata and "change" to the current values.
    let res = put(
        &app,
        "/user",
        &json!({ "data": { "nick": "ada" }, "email": address, "phone": "+15551230001" }),
        &aal1,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["user_metadata"]["nick"], "ada");

    // aal2: every change goes through.
    let res = put(&app, "/user", &json!({ "phone": "+15551230003" }), &aal2).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["phone"], "15551230003");
    let new_address = email();
    let res = put(&app, "/user", &json!({ "email": new_address }), &aal2).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["email"], new_address.as_str());
    let res = put(
        &app,
        "/user",
        &json!({ "password": "a brand new password" }),
        &aal2,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    sign_in(&app, &new_address, PASSWORD)
        .await
        .assert_error(400, "invalid_credentials");
    assert_eq!(
        sign_in(&app, &new_address, "a brand new password")
            .await
            .status,
        200
    );
    // The credential change ended the aal1 session.
    assert_eq!(get(&app, "/user", Some(&aal1)).await.status, 403);
}

both!(user_update_aal, credential_changes_need_aal2);

async fn without_mfa_aal1_is_enough(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let address = email();
    let res = sign_up(&app, &address, PASSWORD).await;
    let bearer = token(&res.body);
    let res = put(
        &app,
        "/user",
        &json!({ "password": "another good password" }),
        &bearer,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        sign_in(&app, &address, "another good password")
            .await
            .status,
        200
    );
}

both!(user_update_no_mfa, without_mfa_aal1_is_enough);
