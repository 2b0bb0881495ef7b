//! TOTP MFA: enroll, challenge, verify (aal2), replay protection, unenroll,
//! and the bad inputs, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_auth::entity::{identity, mfa_challenge, mfa_factor};
use goforward_core::sea_orm::{ActiveModelTrait, EntityTrait, sea_query::Expr};
use goforward_core::testing::TestApp;
use serde_json::{Value, json};

fn code(secret: &[u8], offset: i64) -> String {
    let step = goforward_auth::mfa::step_of(chrono::Utc::now().timestamp()) + offset;
    goforward_auth::mfa::code_at(secret, step)
}

async fn user_session(app: &TestApp) -> (String, Value) {
    let email = email();
    let res = sign_up(app, &email, "correct horse").await;
    assert_eq!(res.status, 200, "{}", res.body);
    (email, res.body)
}

fn token(s: &Value) -> String {
    s["access_token"].as_str().unwrap().to_owned()
}

async fn enroll(app: &TestApp, bearer: &str, name: &str) -> (String, Vec<u8>, Value) {
    let res = post(
        app,
        "/factors",
        &json!({ "factor_type": "totp", "friendly_name": name, "issuer": "Example" }),
        Some(bearer),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let secret = base32_decode(res.body["totp"]["secret"].as_str().unwrap());
    (
        res.body["id"].as_str().unwrap().to_owned(),
        secret,
        res.body,
    )
}

async fn challenge(app: &TestApp, bearer: &str, factor: &str) -> String {
    let res = post(
        app,
        &format!("/factors/{factor}/challenge"),
        &json!({ "factorId": factor }),
        Some(bearer),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
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

async fn enroll_challenge_verify(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let (email, s) = user_session(&app).await;
    let aal1 = token(&s);
    let (factor, secret, body) = enroll(&app, &aal1, "phone app").await;
    assert_eq!(body["type"], "totp");
    assert_eq!(body["friendly_name"], "phone app");
    assert!(body["totp"]["qr_code"].as_str().unwrap().contains("<svg"));
    let uri = body["totp"]["uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Example%3A"), "{uri}");
    assert_eq!(secret.len(), 20);
    // The secret is encrypted at rest.
    let stored = mfa_factor::Entity::find_by_id(factor.clone())
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored
            .secret
            .contains(body["totp"]["secret"].as_str().unwrap())
    );
    let me = get(&app, "/user", Some(&aal1)).await;
    assert_eq!(me.body["factors"][0]["status"], "unverified");
    assert_eq!(me.body["factors"][0]["factor_type"], "totp");

    let ch = challenge(&app, &aal1, &factor).await;
    verify(&app, &aal1, &factor, &ch, "000000x")
        .await
        .assert_error(422, "mfa_verification_failed");
    let wrong = if code(&secret, 0) == "123456" {
        "654321"
    } else {
        "123456"
    };
    verify(&app, &aal1, &factor, &ch, wrong)
        .await
        .assert_error(422, "mfa_verification_failed");
    let current = code(&secret, 0);
    let s2 = verify(&app, &aal1, &factor, &ch, &current).await;
    assert_eq!(s2.status, 200, "{}", s2.body);
    let aal2 = token(&s2.body);
    let c = claims(&aal2);
    assert_eq!(c["aal"], "aal2");
    assert_eq!(c["amr"][0]["method"], "totp");
    assert_eq!(c["amr"][1]["method"], "password");
    assert_eq!(c["session_id"], claims(&aal1)["session_id"]);
    assert_eq!(s2.body["user"]["factors"][0]["status"], "verified");

    // The challenge is single-use, and the same code (time step) is not accepted twice.
    verify(&app, &aal2, &factor, &ch, &current)
        .await
        .assert_error(422, "mfa_challenge_expired");
    let ch2 = challenge(&app, &aal2, &factor).await;
    verify(&app, &aal2, &factor, &ch2, &current)
        .await
        .assert_error(422, "mfa_verification_failed");

    // aal2 survives refresh.
    let refreshed = refresh(&app, s2.body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status, 200);
    assert_eq!(claims(&token(&refreshed.body))["aal"], "aal2");

    // A new password sign-in is aal1: it may not add factors or remove a verified one.
    let other = sign_in(&app, &email, "correct horse").await;
    let other_aal1 = token(&other.body);
    assert_eq!(claims(&other_aal1)["aal"], "aal1");
    post(
        &app,
        "/factors",
        &json!({ "factor_type": "totp" }),
        Some(&other_aal1),
    )
    .await
    .assert_error(403, "insufficient_aal");
    send(
        &app,
        reqwest::Method::DELETE,
        &format!("/factors/{factor}"),
        None,
        Some(&other_aal1),
    )
    .await
    .assert_error(403, "insufficient_aal");
    // It steps up with the next time step's code.
    let ch3 = challenge(&app, &other_aal1, &factor).await;
    let up = verify(&app, &other_aal1, &factor, &ch3, &code(&secret, 1)).await;
    assert_eq!(up.status, 200, "{}", up.body);
    let other_aal2 = token(&up.body);

    // Unenroll with aal2: other sessions end, this one drops to aal1.
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/factors/{factor}"),
        None,
        Some(&other_aal2),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["id"], factor);
    get(&app, "/user", Some(&aal2))
        .await
        .assert_error(403, "session_not_found");
    let me = get(&app, "/user", Some(&other_aal2)).await;
    assert!(me.body.get("factors").is_none());
    let after = refresh(&app, up.body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(claims(&token(&after.body))["aal"], "aal1");
    app.stop().await;
}
both!(totp_flow, enroll_challenge_verify);

async fn mfa_bad_inputs(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let (_, s) = user_session(&app).await;
    let t = token(&s);
    post(&app, "/factors", &json!({}), Some(&t))
        .await
        .assert_error(400, "validation_failed");
    post(
        &app,
        "/factors",
        &json!({ "factor_type": "webauthn" }),
        Some(&t),
    )
    .await
    .assert_error(400, "validation_failed");
    let (factor, secret, _) = enroll(&app, &t, "one").await;
    post(
        &app,
        "/factors",
        &json!({ "factor_type": "totp", "friendly_name": "one" }),
        Some(&t),
    )
    .await
    .assert_error(422, "mfa_factor_name_conflict");
    post(
        &app,
        "/factors/00000000-0000-0000-0000-000000000000/challenge",
        &json!({}),
        Some(&t),
    )
    .await
    .assert_error(404, "mfa_factor_not_found");
    // Another user's factor is invisible.
    let (_, s2) = user_session(&app).await;
    post(
        &app,
        &format!("/factors/{factor}/challenge"),
        &json!({}),
        Some(&token(&s2)),
    )
    .await
    .assert_error(404, "mfa_factor_not_found");
    // Expired challenge.
    let ch = challenge(&app, &t, &factor).await;
    mfa_challenge::Entity::update_many()
        .col_expr(
            mfa_challenge::Column::CreatedAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(301)),
        )
        .exec(app.db())
        .await
        .unwrap();
    verify(&app, &t, &factor, &ch, &code(&secret, 0))
        .await
        .assert_error(422, "mfa_challenge_expired");
    // Missing challenge id; unknown challenge.
    post(
        &app,
        &format!("/factors/{factor}/verify"),
        &json!({ "code": "123456" }),
        Some(&t),
    )
    .await
    .assert_error(400, "validation_failed");
    verify(&app, &t, &factor, "nope", "123456")
        .await
        .assert_error(404, "mfa_factor_not_found");
    // Nothing became verified.
    let me = get(&app, "/user", Some(&t)).await;
    assert_eq!(me.body["factors"][0]["status"], "unverified");
    // An unverified factor can be removed at aal1.
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/factors/{factor}"),
        None,
        Some(&t),
    )
    .await;
    assert_eq!(res.status, 200);
    // No user token.
    post(&app, "/factors", &json!({ "factor_type": "totp" }), None)
        .await
        .assert_error(401, "no_authorization");
    app.stop().await;

    let Some(app) = common::app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.mfa_totp_enabled = false;
        c.mfa_max_enrolled_factors = 1;
    })
    .await
    else {
        return;
    };
    let (_, s) = user_session(&app).await;
    post(
        &app,
        "/factors",
        &json!({ "factor_type": "totp" }),
        Some(&token(&s)),
    )
    .await
    .assert_error(422, "mfa_totp_enroll_not_enabled");
    app.stop().await;
}
both!(bad_inputs, mfa_bad_inputs);

async fn aal2_extractor(pg: bool) {
    use actix_web::{HttpResponse, web};
    if pg && goforward_core::testing::postgres_url_or_skip("aal2").is_none() {
        return;
    }
    let app = TestApp::builder()
        .plugin(goforward_auth::Auth::new().configure(|c| {
            c.bcrypt_cost = 4;
            c.mailer_autoconfirm = true;
        }))
        .routes(|cfg| {
            cfg.route(
                "/vault",
                web::get().to(|who: goforward_auth::Aal2| async move {
                    HttpResponse::Ok().json(json!({ "user": who.0.user_id }))
                }),
            );
        })
        .postgres(pg)
        .start()
        .await
        .unwrap();
    let (_, s) = user_session(&app).await;
    let aal1 = token(&s);
    let vault = |bearer: Option<String>| {
        let mut req = app
            .client()
            .get(app.url("/vault"))
            .header("apikey", app.anon_key());
        if let Some(b) = bearer {
            req = req.header("authorization", format!("Bearer {b}"));
        }
        req.send()
    };
    let res = vault(Some(aal1.clone())).await.unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "insufficient_aal");
    assert_eq!(vault(Some("garbage".into())).await.unwrap().status(), 401);
    let (factor, secret, _) = enroll(&app, &aal1, "vault").await;
    let ch = challenge(&app, &aal1, &factor).await;
    let s2 = verify(&app, &aal1, &factor, &ch, &code(&secret, 0)).await;
    let res = vault(Some(token(&s2.body))).await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"], s["user"]["id"]);
    app.stop().await;
}
both!(aal2_routes, aal2_extractor);

/// Recovery codes: generated from aal2 only, shown once, hashed at rest;
/// one reaches aal2 from a fresh aal1 sign-in, once; regenerating voids the
/// old set; wrong and malformed codes change nothing.
async fn recovery_codes(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.mfa_recovery_codes = 8;
    })
    .await
    else {
        return;
    };
    let (email, s) = user_session(&app).await;
    let aal1 = token(&s);
    // Without a verified factor (aal1): no codes.
    post(&app, "/factors/recovery_codes", &json!({}), Some(&aal1))
        .await
        .assert_error(403, "insufficient_aal");
    post(
        &app,
        "/factors/recovery_codes/verify",
        &json!({ "code": "aaaaa-aaaaa" }),
        Some(&aal1),
    )
    .await
    .assert_error(404, "mfa_factor_not_found");
    let (factor, secret, _) = enroll(&app, &aal1, "app").await;
    let ch = challenge(&app, &aal1, &factor).await;
    let s2 = verify(&app, &aal1, &factor, &ch, &code(&secret, 0)).await;
    let aal2 = token(&s2.body);

    let generated = post(&app, "/factors/recovery_codes", &json!({}), Some(&aal2)).await;
    assert_eq!(generated.status, 200, "{}", generated.body);
    let codes: Vec<String> = generated.body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 8);
    assert_eq!(count(&app, "auth_mfa_recovery_codes").await, 8);
    {
        use goforward_auth::entity::mfa_recovery_code;
        let rows = mfa_recovery_code::Entity::find()
            .all(app.db())
            .await
            .unwrap();
        assert!(rows.iter().all(|r| !codes.contains(&r.code_hash)), "hashed");
    }
    let left = get(&app, "/factors/recovery_codes", Some(&aal2)).await;
    assert_eq!(left.body["remaining"], 8);

    // A new aal1 sign-in uses one code to reach aal2.
    let fresh = sign_in(&app, &email, "correct horse").await;
    let fresh = token(&fresh.body);
    assert_eq!(claims(&fresh)["aal"], "aal1");
    for bad in ["", "aaaaa-aaaaa", &"x".repeat(100)] {
        post(
            &app,
            "/factors/recovery_codes/verify",
            &json!({ "code": bad }),
            Some(&fresh),
        )
        .await
        .assert_error(422, "mfa_verification_failed");
    }
    post(
        &app,
        "/factors/recovery_codes/verify",
        &json!({ "code": codes[0], "factor_id": factor }),
        Some(&fresh),
    )
    .await
    .assert_error(400, "bad_json");
    assert_eq!(
        get(&app, "/factors/recovery_codes", Some(&fresh))
            .await
            .body["remaining"],
        8,
        "nothing spent"
    );
    // Typed loosely (upper case, spaces) it still matches.
    let typed = codes[0].to_uppercase().replace('-', " ");
    let upgraded = post(
        &app,
        "/factors/recovery_codes/verify",
        &json!({ "code": typed }),
        Some(&fresh),
    )
    .await;
    assert_eq!(upgraded.status, 200, "{}", upgraded.body);
    let upgraded_token = token(&upgraded.body);
    assert_eq!(claims(&upgraded_token)["aal"], "aal2");
    assert_eq!(claims(&upgraded_token)["amr"][0]["method"], "recovery_code");
    // Single use.
    let other = sign_in(&app, &email, "correct horse").await;
    let other = token(&other.body);
    post(
        &app,
        "/factors/recovery_codes/verify",
        &json!({ "code": codes[0] }),
        Some(&other),
    )
    .await
    .assert_error(422, "mfa_verification_failed");
    assert_eq!(
        get(&app, "/factors/recovery_codes", Some(&other))
            .await
            .body["remaining"],
        7
    );

    // Regenerating voids the old set.
    let regenerated = post(
        &app,
        "/factors/recovery_codes",
        &json!({}),
        Some(&upgraded_token),
    )
    .await;
    assert_eq!(regenerated.status, 200, "{}", regenerated.body);
    assert_eq!(count(&app, "auth_mfa_recovery_codes").await, 8);
    post(
        &app,
        "/factors/recovery_codes/verify",
        &json!({ "code": codes[1] }),
        Some(&other),
    )
    .await
    .assert_error(422, "mfa_verification_failed");
    let new_code = regenerated.body["recovery_codes"][0].as_str().unwrap();
    let res = post(
        &app,
        "/factors/recovery_codes/verify",
        &json!({ "code": new_code }),
        Some(&other),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    app.stop().await;
}
both!(mfa_recovery_codes, recovery_codes);

/// `GET /user` reads the session, user, identities and factors in one
/// joined statement (a row per identity × factor pair): each identity and
/// factor appears once, oldest first, exactly as the admin API's separate
/// reads render the same user.
async fn user_object_with_identities_and_factors(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let (_, s) = user_session(&app).await;
    let bearer = token(&s);
    let user_id = s["user"]["id"].as_str().unwrap().to_owned();
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    identity::ActiveModel::from(identity::Model {
        id: uuid::Uuid::new_v4().to_string(),
        provider_id: "gh-4711".to_owned(),
        user_id: user_id.clone(),
        identity_data: json!({ "sub": "gh-4711" }).to_string(),
        provider: "github".to_owned(),
        email: None,
        last_sign_in_at: None,
        created_at: later,
        updated_at: later,
    })
    .insert(app.db())
    .await
    .unwrap();
    let (first, _, _) = enroll(&app, &bearer, "phone app").await;
    let (second, _, _) = enroll(&app, &bearer, "laptop").await;

    let me = get(&app, "/user", Some(&bearer)).await;
    assert_eq!(me.status, 200, "{}", me.body);
    let providers: Vec<&str> = me.body["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["email", "github"]);
    let factors: Vec<&str> = me.body["factors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(factors, [first.as_str(), second.as_str()]);
    let admin = get(
        &app,
        &format!("/admin/users/{user_id}"),
        Some(&app.service_key()),
    )
    .await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    assert_eq!(me.body, admin.body);
    app.stop().await;
}
both!(
    mfa_user_object_joined_read,
    user_object_with_identities_and_factors
);
