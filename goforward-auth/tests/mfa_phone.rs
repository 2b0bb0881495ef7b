//! MFA phone factors: enroll with a number, a challenge texts a code (file
//! SMS outbox), verify → aal2 (AMR `mfa/phone`), unenroll; wrong, expired,
//! reused and over-tried codes; on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_auth::entity::{mfa_challenge, mfa_factor};
use goforward_core::sea_orm::{EntityTrait, sea_query::Expr};
use goforward_core::testing::TestApp;
use serde_json::{Value, json};

fn sms_to(app: &TestApp, number: &str) -> Vec<String> {
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

fn other_code(code: &str) -> &'static str {
    if code == "111111" { "222222" } else { "111111" }
}

/// Lets the next challenge of every factor through the SMS frequency limit.
async fn allow_next_challenge(app: &TestApp) {
    mfa_factor::Entity::update_many()
        .col_expr(
            mfa_factor::Column::LastChallengedAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(60)),
        )
        .exec(app.db())
        .await
        .unwrap();
}

async fn challenge(app: &TestApp, bearer: &str, factor: &str) -> String {
    let res = post(
        app,
        &format!("/factors/{factor}/challenge"),
        &json!({ "channel": "sms" }),
        Some(bearer),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["type"], "phone");
    assert!(res.body["expires_at"].is_i64());
    res.body["id"].as_str().unwrap().to_owned()
}

async fn verify(app: &TestApp, bearer: &str, factor: &str, challenge: &str, code: &str) -> Res {
    post(
        app,
        &format!("/factors/{factor}/verify"),
        &json!({ "challenge_id": challenge, "code": code }),
        Some(bearer),
    )
    .await
}

async fn phone_factor_flow(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.mfa_phone_enabled = true;
    })
    .await
    else {
        return;
    };
    let s = sign_up(&app, &email(), "correct horse").await;
    assert_eq!(s.status, 200, "{}", s.body);
    let t = token(&s.body);

    // Bad enrollments change nothing.
    for (body, status, code) in [
        (json!({ "factor_type": "phone" }), 400, "validation_failed"),
        (
            json!({ "factor_type": "phone", "phone": "" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "factor_type": "phone", "phone": "12ab" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "factor_type": "sms", "phone": "+15555550177" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "factor_type": "phone", "phone": 15555550177_i64 }),
            400,
            "bad_json",
        ),
    ] {
        post(&app, "/factors", &body, Some(&t))
            .await
            .assert_error(status, code);
    }
    assert_eq!(count(&app, "auth_mfa_factors").await, 0);

    // Enroll; enrolling the same number again replaces the unverified factor.
    let first = post(
        &app,
        "/factors",
        &json!({ "factor_type": "phone", "phone": "+1 555 555 0177", "friendly_name": "old" }),
        Some(&t),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let res = post(
        &app,
        "/factors",
        &json!({ "factor_type": "phone", "phone": "+15555550177", "friendly_name": "work phone" }),
        Some(&t),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["type"], "phone");
    assert_eq!(res.body["friendly_name"], "work phone");
    assert_eq!(res.body["phone"], "15555550177");
    assert!(res.body.get("totp").is_none());
    let factor = res.body["id"].as_str().unwrap().to_owned();
    assert_ne!(first.body["id"], factor.as_str());
    assert_eq!(count(&app, "auth_mfa_factors").await, 1);
    let u = get(&app, "/user", Some(&t)).await.body;
    assert_eq!(u["factors"][0]["factor_type"], "phone");
    assert_eq!(u["factors"][0]["phone"], "15555550177");
    assert_eq!(u["factors"][0]["status"], "unverified");

    // Bad challenges send nothing and store nothing.
    post(
        &app,
        &format!("/factors/{factor}/challenge"),
        &json!({ "channel": "whatsapp" }),
        Some(&t),
    )
    .await
    .assert_error(400, "validation_failed");
    send(
        &app,
        reqwest::Method::POST,
        &format!("/factors/{factor}/challenge"),
        Some("{not json".into()),
        Some(&t),
    )
    .await
    .assert_error(400, "bad_json");
    assert!(sms_to(&app, "15555550177").is_empty());
    assert_eq!(count(&app, "auth_mfa_challenges").await, 0);

    // A challenge texts a code; another right away is too soon.
    let ch = challenge(&app, &t, &factor).await;
    let code = last_sms_code(&app, "15555550177");
    post(
        &app,
        &format!("/factors/{factor}/challenge"),
        &json!({}),
        Some(&t),
    )
    .await
    .assert_error(429, "over_sms_send_rate_limit");
    assert_eq!(sms_to(&app, "15555550177").len(), 1);

    // A wrong code: refused, the session stays aal1, the factor unverified.
    verify(&app, &t, &factor, &ch, other_code(&code))
        .await
        .assert_error(422, "mfa_verification_failed");
    assert_eq!(claims(&t)["aal"], "aal1");
    let u = get(&app, "/user", Some(&t)).await.body;
    assert_eq!(u["factors"][0]["status"], "unverified");

    // The right code: aal2, AMR `mfa/phone` first, the factor verified.
    let up = verify(&app, &t, &factor, &ch, &code).await;
    assert_eq!(up.status, 200, "{}", up.body);
    let aal2 = token(&up.body);
    let c = claims(&aal2);
    assert_eq!(c["aal"], "aal2");
    assert_eq!(c["amr"][0]["method"], "mfa/phone");
    assert_eq!(c["amr"][1]["method"], "password");
    let u = get(&app, "/user", Some(&aal2)).await.body;
    assert_eq!(u["factors"][0]["status"], "verified");
    // Reused: refused.
    verify(&app, &aal2, &factor, &ch, &code)
        .await
        .assert_error(422, "mfa_challenge_expired");

    // An expired challenge: even the right code is refused.
    allow_next_challenge(&app).await;
    let ch = challenge(&app, &aal2, &factor).await;
    let code = last_sms_code(&app, "15555550177");
    mfa_challenge::Entity::update_many()
        .col_expr(
            mfa_challenge::Column::CreatedAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(301)),
        )
        .exec(app.db())
        .await
        .unwrap();
    verify(&app, &aal2, &factor, &ch, &code)
        .await
        .assert_error(422, "mfa_challenge_expired");

    // Five wrong codes void the challenge: the right one no longer works.
    allow_next_challenge(&app).await;
    let ch = challenge(&app, &aal2, &factor).await;
    let code = last_sms_code(&app, "15555550177");
    for _ in 0..5 {
        verify(&app, &aal2, &factor, &ch, other_code(&code))
            .await
            .assert_error(422, "mfa_verification_failed");
    }
    verify(&app, &aal2, &factor, &ch, &code)
        .await
        .assert_error(422, "mfa_challenge_expired");

    // A verified factor with the number exists: enrolling it again is refused.
    post(
        &app,
        "/factors",
        &json!({ "factor_type": "phone", "phone": "+15555550177" }),
        Some(&aal2),
    )
    .await
    .assert_error(422, "mfa_verified_factor_exists");
    assert_eq!(count(&app, "auth_mfa_factors").await, 1);

    // A new sign-in is aal1 and steps up with a fresh SMS code.
    let email = u["email"].as_str().unwrap().to_owned();
    let again = sign_in(&app, &email, "correct horse").await;
    assert_eq!(again.status, 200, "{}", again.body);
    let aal1 = token(&again.body);
    assert_eq!(claims(&aal1)["aal"], "aal1");
    send(
        &app,
        reqwest::Method::DELETE,
        &format!("/factors/{factor}"),
        None,
        Some(&aal1),
    )
    .await
    .assert_error(403, "insufficient_aal");
    allow_next_challenge(&app).await;
    let ch = challenge(&app, &aal1, &factor).await;
    let up = verify(
        &app,
        &aal1,
        &factor,
        &ch,
        &last_sms_code(&app, "15555550177"),
    )
    .await;
    assert_eq!(up.status, 200, "{}", up.body);
    let stepped = token(&up.body);
    assert_eq!(claims(&stepped)["amr"][0]["method"], "mfa/phone");

    // Unenroll (aal2).
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/factors/{factor}"),
        None,
        Some(&stepped),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["id"], factor.as_str());
    let u = get(&app, "/user", Some(&stepped)).await.body;
    assert!(u.get("factors").is_none(), "{u}");
    app.stop().await;
}
both!(flow, phone_factor_flow);

async fn phone_factor_disabled(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let s = sign_up(&app, &email(), "correct horse").await;
    assert_eq!(s.status, 200, "{}", s.body);
    post(
        &app,
        "/factors",
        &json!({ "factor_type": "phone", "phone": "+15555550177" }),
        Some(&token(&s.body)),
    )
    .await
    .assert_error(422, "mfa_phone_enroll_not_enabled");
    assert_eq!(count(&app, "auth_mfa_factors").await, 0);
    app.stop().await;
}
both!(disabled, phone_factor_disabled);
