//! Phone changes: `PUT /user {phone}` texts a code to the new number,
//! `/verify` type `phone_change` applies it, `/resend` type `phone_change`;
//! and the bad inputs (no state change), on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_auth::entity::one_time_token;
use goforward_core::sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use goforward_core::testing::TestApp;
use serde_json::{Value, json};

fn sms_to(app: &TestApp, number: &str) -> Vec<String> {
    settle();
    let dir = app.gf.config().data_dir.join("sms_outbox");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    names.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|x| x == "txt"));
    names.sort();
    names
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|m| m.starts_with(&format!("To: +{number}\n")))
        .collect()
}

fn last_sms_code(app: &TestApp, number: &str) -> String {
    let text = sms_to(app, number).pop().expect("an sms");
    let at = text.find("Your code is ").unwrap() + "Your code is ".len();
    text[at..at + 6].to_owned()
}

fn token(s: &Value) -> String {
    s["access_token"].as_str().unwrap().to_owned()
}

/// Moves the user's pending phone-change token back in time, past the
/// send interval (so another SMS may go out).
async fn age_phone_change_token(app: &TestApp, user_id: &str) {
    one_time_token::Entity::update_many()
        .col_expr(
            one_time_token::Column::CreatedAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(120)),
        )
        .filter(one_time_token::Column::UserId.eq(user_id))
        .exec(app.db())
        .await
        .unwrap();
}

async fn me(app: &TestApp, bearer: &str) -> Value {
    let res = get(app, "/user", Some(bearer)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body
}

async fn verify_change(app: &TestApp, phone: &str, code: &str) -> Res {
    post(
        app,
        "/verify",
        &json!({ "type": "phone_change", "phone": phone, "token": code }),
        None,
    )
    .await
}

async fn phone_change_flow(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.phone_enabled = true;
        c.mailer_autoconfirm = true;
    })
    .await
    else {
        return;
    };
    let email = email();
    let s = sign_up(&app, &email, "correct horse").await;
    assert_eq!(s.status, 200, "{}", s.body);
    let t = token(&s.body);
    let user_id = s.body["user"]["id"].as_str().unwrap().to_owned();
    // Another account holds 15555550111 (an unconfirmed phone sign-up).
    let other = post(
        &app,
        "/signup",
        &json!({ "phone": "+15555550111", "password": "correct horse" }),
        None,
    )
    .await;
    assert_eq!(other.status, 200, "{}", other.body);
    assert_eq!(sms_to(&app, "15555550111").len(), 1);

    // Bad inputs change nothing and send nothing.
    put(&app, "/user", &json!({ "phone": "12ab" }), &t)
        .await
        .assert_error(400, "validation_failed");
    put(&app, "/user", &json!({ "phone": "+0123456789" }), &t)
        .await
        .assert_error(400, "validation_failed");
    put(&app, "/user", &json!({ "phone": "+1 555 555 0111" }), &t)
        .await
        .assert_error(422, "phone_exists");
    put(&app, "/user", &json!({ "phone": 15555550122_i64 }), &t)
        .await
        .assert_error(400, "bad_json");
    let u = me(&app, &t).await;
    assert_eq!(u["phone"], "");
    assert!(u.get("new_phone").is_none(), "{u}");
    assert!(u.get("phone_change_sent_at").is_none(), "{u}");
    assert_eq!(sms_to(&app, "15555550111").len(), 1);
    assert_eq!(count(&app, "auth_one_time_tokens").await, 1);

    // The change: a code to the new number, the number pending.
    let res = put(&app, "/user", &json!({ "phone": "+1 (555) 555-0122" }), &t).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["phone"], "");
    assert_eq!(res.body["new_phone"], "15555550122");
    assert!(res.body["phone_change_sent_at"].is_string());
    let code = last_sms_code(&app, "15555550122");
    // Too soon for another code.
    put(&app, "/user", &json!({ "phone": "+15555550123" }), &t)
        .await
        .assert_error(429, "over_sms_send_rate_limit");
    assert!(sms_to(&app, "15555550123").is_empty());
    assert_eq!(me(&app, &t).await["new_phone"], "15555550122");

    // Wrong code, the code with another number, a malformed number, an
    // unknown type with a phone: refused, nothing applied.
    let wrong = if code == "111111" { "222222" } else { "111111" };
    verify_change(&app, "+15555550122", wrong)
        .await
        .assert_error(403, "otp_expired");
    verify_change(&app, "+15555550111", &code)
        .await
        .assert_error(403, "otp_expired");
    verify_change(&app, "not a phone", &code)
        .await
        .assert_error(400, "validation_failed");
    // An SMS code has no link.
    let link = get(
        &app,
        &format!("/verify?type=phone_change&token={code}&redirect_to=https://app.example.com/x"),
        None,
    )
    .await;
    assert_eq!(link.status, 303);
    let u = me(&app, &t).await;
    assert_eq!(u["phone"], "");
    assert_eq!(u["new_phone"], "15555550122");

    // The right code applies the number and signs in.
    let v = verify_change(&app, "+15555550122", &code).await;
    assert_eq!(v.status, 200, "{}", v.body);
    let user = &v.body["user"];
    assert_eq!(user["id"], user_id.as_str());
    assert_eq!(user["phone"], "15555550122");
    assert_eq!(user["email"], email.as_str());
    assert!(user["phone_confirmed_at"].is_string());
    assert!(user.get("new_phone").is_none(), "{user}");
    let phone_identity = user["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["provider"] == "phone")
        .expect("a phone identity")
        .clone();
    assert_eq!(phone_identity["identity_data"]["phone"], "15555550122");
    assert_eq!(phone_identity["identity_data"]["phone_verified"], true);
    let c = claims(v.body["access_token"].as_str().unwrap());
    assert_eq!(c["phone"], "15555550122");
    assert_eq!(c["amr"][0]["method"], "otp");
    // The change ended the other sessions.
    get(&app, "/user", Some(&t))
        .await
        .assert_error(403, "session_not_found");
    // Single use.
    verify_change(&app, "+15555550122", &code)
        .await
        .assert_error(403, "otp_expired");
    let t = token(&v.body);

    // An expired code applies nothing.
    age_phone_change_token(&app, &user_id).await;
    let res = put(&app, "/user", &json!({ "phone": "+15555550133" }), &t).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let code = last_sms_code(&app, "15555550133");
    one_time_token::Entity::update_many()
        .col_expr(
            one_time_token::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(one_time_token::Column::UserId.eq(user_id.as_str()))
        .exec(app.db())
        .await
        .unwrap();
    verify_change(&app, "+15555550133", &code)
        .await
        .assert_error(403, "otp_expired");
    let u = me(&app, &t).await;
    assert_eq!(u["phone"], "15555550122");
    assert_eq!(u["new_phone"], "15555550133");

    // /resend texts a fresh code to the pending number; the old one is void.
    age_phone_change_token(&app, &user_id).await;
    post(
        &app,
        "/resend",
        &json!({ "type": "phone_change", "phone": "x1" }),
        None,
    )
    .await
    .assert_error(400, "validation_failed");
    let r = post(
        &app,
        "/resend",
        &json!({ "type": "phone_change", "email": email }),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, json!({}));
    assert_eq!(sms_to(&app, "15555550133").len(), 2);
    let fresh = last_sms_code(&app, "15555550133");
    post(
        &app,
        "/resend",
        &json!({ "type": "phone_change", "email": email }),
        None,
    )
    .await
    .assert_error(429, "over_sms_send_rate_limit");
    // Unknown account or none pending: `{}`, nothing sent.
    let r = post(
        &app,
        "/resend",
        &json!({ "type": "phone_change", "email": "nobody@example.com" }),
        None,
    )
    .await;
    assert_eq!((r.status, r.body.clone()), (200, json!({})));
    let v = verify_change(&app, "+15555550133", &fresh).await;
    assert_eq!(v.status, 200, "{}", v.body);
    assert_eq!(v.body["user"]["phone"], "15555550133");
    let t = token(&v.body);

    // A number taken between the request and the code: refused, unchanged.
    age_phone_change_token(&app, &user_id).await;
    let res = put(&app, "/user", &json!({ "phone": "+15555550144" }), &t).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let code = last_sms_code(&app, "15555550144");
    let taker = post(
        &app,
        "/signup",
        &json!({ "phone": "+15555550144", "password": "correct horse" }),
        None,
    )
    .await;
    assert_eq!(taker.status, 200, "{}", taker.body);
    verify_change(&app, "+15555550144", &code)
        .await
        .assert_error(422, "phone_exists");
    let u = me(&app, &t).await;
    assert_eq!(u["phone"], "15555550133");
    // The same number again is no change (nothing sent).
    let before = sms_to(&app, "15555550133").len();
    let res = put(&app, "/user", &json!({ "phone": "+15555550133" }), &t).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(sms_to(&app, "15555550133").len(), before);
    app.stop().await;
}
both!(flow, phone_change_flow);

async fn phone_change_autoconfirm(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.phone_enabled = true;
        c.phone_autoconfirm = true;
        c.mailer_autoconfirm = true;
    })
    .await
    else {
        return;
    };
    let email = email();
    let s1 = sign_up(&app, &email, "correct horse").await;
    assert_eq!(s1.status, 200, "{}", s1.body);
    let s2 = sign_in(&app, &email, "correct horse").await;
    assert_eq!(s2.status, 200, "{}", s2.body);
    let res = put(
        &app,
        "/user",
        &json!({ "phone": "+447700900456" }),
        &token(&s1.body),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["phone"], "447700900456");
    assert!(res.body["phone_confirmed_at"].is_string());
    assert!(res.body.get("new_phone").is_none());
    assert!(sms_to(&app, "447700900456").is_empty());
    // The other session ended, this one lives; phone + password signs in.
    get(&app, "/user", Some(&token(&s2.body)))
        .await
        .assert_error(403, "session_not_found");
    assert_eq!(me(&app, &token(&s1.body)).await["phone"], "447700900456");
    let p = post(
        &app,
        "/token?grant_type=password",
        &json!({ "phone": "+447700900456", "password": "correct horse" }),
        None,
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.body);
    app.stop().await;
}
both!(autoconfirm, phone_change_autoconfirm);

async fn phone_change_disabled(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let s = sign_up(&app, &email(), "correct horse").await;
    assert_eq!(s.status, 200, "{}", s.body);
    put(
        &app,
        "/user",
        &json!({ "phone": "+15555550100" }),
        &token(&s.body),
    )
    .await
    .assert_error(422, "phone_provider_disabled");
    verify_change(&app, "+15555550100", "123456")
        .await
        .assert_error(422, "phone_provider_disabled");
    assert_eq!(me(&app, &token(&s.body)).await["phone"], "");
    assert_eq!(count(&app, "auth_one_time_tokens").await, 0);
    app.stop().await;
}
both!(disabled, phone_change_disabled);
