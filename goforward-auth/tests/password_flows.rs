//! Sign-up, password sign-in, the user endpoints, logout and anonymous
//! sign-in, on SQLite and PostgreSQL: happy paths and bad inputs, each bad
//! input answered in GoTrue's shape with nothing changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

async fn signup_autoconfirm_returns_session(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let email = email();
    let res = post(
        &app,
        "/signup",
        &json!({ "email": email.to_uppercase(), "password": "correct horse", "data": { "name": "Ada" },
                 "gotrue_meta_security": {}, "code_challenge": null, "code_challenge_method": null }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let s = &res.body;
    assert_eq!(s["token_type"], "bearer");
    assert_eq!(s["expires_in"], 3600);
    let now = chrono::Utc::now().timestamp();
    let expires_at = s["expires_at"].as_i64().unwrap();
    assert!((now + 3590..=now + 3610).contains(&expires_at));
    assert!(s["refresh_token"].as_str().unwrap().len() >= 22);
    let user = &s["user"];
    assert_eq!(user["email"], email);
    assert_eq!(user["phone"], "");
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["role"], "authenticated");
    assert_eq!(user["user_metadata"]["name"], "Ada");
    assert_eq!(
        user["app_metadata"],
        json!({ "provider": "email", "providers": ["email"] })
    );
    assert!(user["email_confirmed_at"].is_string());
    assert!(user["confirmed_at"].is_string());
    assert!(user["last_sign_in_at"].is_string());
    assert_eq!(user["is_anonymous"], false);
    let identity = &user["identities"][0];
    assert_eq!(identity["provider"], "email");
    assert_eq!(identity["id"], user["id"]);
    assert_eq!(identity["user_id"], user["id"]);
    assert_eq!(identity["identity_data"]["email"], email);

    // Access token claims are GoTrue's.
    let c = claims(s["access_token"].as_str().unwrap());
    for key in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "email",
        "phone",
        "app_metadata",
        "user_metadata",
        "role",
        "aal",
        "amr",
        "session_id",
        "is_anonymous",
    ] {
        assert!(c.get(key).is_some(), "claim {key} in {c}");
    }
    assert_eq!(c["sub"], user["id"]);
    assert_eq!(c["aud"], "authenticated");
    assert_eq!(c["role"], "authenticated");
    assert_eq!(c["aal"], "aal1");
    assert_eq!(c["amr"][0]["method"], "password");
    assert_eq!(c["exp"].as_i64().unwrap(), expires_at);
    assert_eq!(c["user_metadata"]["name"], "Ada");
    // …and core verifies them: GET /user answers the same user.
    let me = get(&app, "/user", s["access_token"].as_str()).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["id"], user["id"]);

    // Same address again: user_already_exists, nothing new.
    let users = count(&app, "auth_users").await;
    sign_up(&app, &email, "another password")
        .await
        .assert_error(422, "user_already_exists");
    assert_eq!(count(&app, "auth_users").await, users);
    app.stop().await;
}
both!(signup_autoconfirm, signup_autoconfirm_returns_session);

async fn signup_with_confirmation(pg: bool) {
    let Some(app) = app(pg, |_| {}).await else {
        return;
    };
    let email = email();
    let res = sign_up(&app, &email, "correct horse").await;
    assert_eq!(res.status, 200, "{}", res.body);
    // A bare user (no session) with one identity, and a confirmation email.
    assert!(res.body.get("access_token").is_none());
    assert_eq!(res.body["email"], email);
    assert!(res.body["confirmation_sent_at"].is_string());
    assert!(res.body.get("email_confirmed_at").is_none());
    assert_eq!(res.body["identities"].as_array().unwrap().len(), 1);
    let mail = mails_to(&app, &email).pop().expect("confirmation mail");
    assert!(mail.contains("Subject: Confirm Your Signup"), "{mail}");
    assert!(mail.contains("X-GoForward-Template: confirmation"));

    // Unconfirmed: password sign-in refused.
    sign_in(&app, &email, "correct horse")
        .await
        .assert_error(400, "email_not_confirmed");

    // Confirm with the code, then the password works.
    let code = last_code(&app, &email);
    let verified = post(
        &app,
        "/verify",
        &json!({ "type": "signup", "email": email, "token": code }),
        None,
    )
    .await;
    assert_eq!(verified.status, 200, "{}", verified.body);
    assert!(verified.body["user"]["email_confirmed_at"].is_string());
    assert_eq!(
        verified.body["user"]["identities"][0]["identity_data"]["email_verified"],
        true
    );
    assert_eq!(sign_in(&app, &email, "correct horse").await.status, 200);

    // Signing up again with the confirmed address: no enumeration — 200, a
    // user-shaped body with no identities and a different id, no email sent.
    let sent = outbox(&app).len();
    let again = sign_up(&app, &email, "whatever pass").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["identities"], json!([]));
    assert_ne!(again.body["id"], verified.body["user"]["id"]);
    assert_eq!(outbox(&app).len(), sent);
    // …and the real password did not change.
    assert_eq!(sign_in(&app, &email, "correct horse").await.status, 200);
    sign_in(&app, &email, "whatever pass")
        .await
        .assert_error(400, "invalid_credentials");
    app.stop().await;
}
both!(signup_confirmation, signup_with_confirmation);

async fn password_sign_in_errors(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let email = email();
    assert_eq!(sign_up(&app, &email, "correct horse").await.status, 200);
    let sessions = count(&app, "auth_sessions").await;

    let wrong = sign_in(&app, &email, "wrong horse").await;
    wrong.assert_error(400, "invalid_credentials");
    let unknown = sign_in(&app, "nobody@example.com", "correct horse").await;
    unknown.assert_error(400, "invalid_credentials");
    // Unknown account and wrong password are indistinguishable.
    assert_eq!(wrong.body, unknown.body);
    // Over-long passwords fail like wrong ones.
    sign_in(&app, &email, &"a".repeat(100))
        .await
        .assert_error(400, "invalid_credentials");
    // No password at all.
    post(
        &app,
        "/token?grant_type=password",
        &json!({ "email": email }),
        None,
    )
    .await
    .assert_error(400, "invalid_credentials");
    // Unsupported grant.
    post(&app, "/token?grant_type=magic", &json!({}), None)
        .await
        .assert_error(400, "invalid_credentials");
    // Malformed JSON and wrong types.
    send(
        &app,
        reqwest::Method::POST,
        "/token?grant_type=password",
        Some("{\"email\":".into()),
        None,
    )
    .await
    .assert_error(400, "bad_json");
    post(
        &app,
        "/token?grant_type=password",
        &json!({ "email": 42, "password": [] }),
        None,
    )
    .await
    .assert_error(400, "bad_json");
    assert_eq!(count(&app, "auth_sessions").await, sessions);

    // Email is case-insensitive; a good sign-in records last_sign_in_at.
    let ok = sign_in(&app, &email.to_uppercase(), "correct horse").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(count(&app, "auth_sessions").await, sessions + 1);
    app.stop().await;
}
both!(sign_in_errors, password_sign_in_errors);

async fn password_length_limits(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    // 72 bytes accepted, 73 refused (never truncated); 24×"€" = 72 bytes, 25 = 75.
    for (password, ok) in [
        ("a".repeat(72), true),
        ("a".repeat(73), false),
        ("€".repeat(24), true),
        ("€".repeat(25), false),
    ] {
        let email = email();
        let users = count(&app, "auth_users").await;
        let res = sign_up(&app, &email, &password).await;
        if ok {
            assert_eq!(res.status, 200, "{} bytes: {}", password.len(), res.body);
            assert_eq!(sign_in(&app, &email, &password).await.status, 200);
            // A password sharing the first 71 bytes does not match.
            let mut other = password.clone();
            other.pop();
            sign_in(&app, &email, &other)
                .await
                .assert_error(400, "invalid_credentials");
        } else {
            res.assert_error(400, "validation_failed");
            assert_eq!(count(&app, "auth_users").await, users);
        }
    }
    // Too short: weak_password with reasons.
    let res = sign_up(&app, &email(), "short").await;
    res.assert_error(422, "weak_password");
    assert_eq!(res.body["weak_password"]["reasons"], json!(["length"]));
    // Missing password and invalid email.
    post(&app, "/signup", &json!({ "email": email() }), None)
        .await
        .assert_error(400, "validation_failed");
    sign_up(&app, "not-an-email", "correct horse")
        .await
        .assert_error(400, "email_address_invalid");
    // data must be an object.
    post(
        &app,
        "/signup",
        &json!({ "email": email(), "password": "correct horse", "data": [1] }),
        None,
    )
    .await
    .assert_error(400, "bad_json");
    app.stop().await;
}
both!(password_limits, password_length_limits);

async fn bodies_malformed_and_oversize(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let users = count(&app, "auth_users").await;
    send(
        &app,
        reqwest::Method::POST,
        "/signup",
        Some("not json".into()),
        None,
    )
    .await
    .assert_error(400, "bad_json");
    let huge = json!({ "email": email(), "password": "correct horse", "data": { "blob": "x".repeat(1_100_000) } });
    let res = post(&app, "/signup", &huge, None).await;
    res.assert_error(413, "request_too_large");
    assert_eq!(count(&app, "auth_users").await, users);
    app.stop().await;
}
both!(malformed_and_oversize, bodies_malformed_and_oversize);

async fn settings_and_toggles(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.disable_signup = true;
        c.anonymous_users = false;
    })
    .await
    else {
        return;
    };
    let settings = get(&app, "/settings", None).await;
    assert_eq!(settings.status, 200);
    assert_eq!(settings.body["disable_signup"], true);
    assert_eq!(settings.body["mailer_autoconfirm"], false);
    assert_eq!(settings.body["external"]["email"], true);
    assert_eq!(settings.body["external"]["anonymous_users"], false);
    sign_up(&app, &email(), "correct horse")
        .await
        .assert_error(422, "signup_disabled");
    post(
        &app,
        "/signup",
        &json!({ "data": {}, "gotrue_meta_security": {} }),
        None,
    )
    .await
    .assert_error(422, "anonymous_provider_disabled");
    assert_eq!(count(&app, "auth_users").await, 0);
    app.stop().await;
}
both!(settings_toggles, settings_and_toggles);

async fn anonymous_sign_in_and_conversion(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let res = post(
        &app,
        "/signup",
        &json!({ "data": { "nick": "anon" }, "gotrue_meta_security": {} }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let user = &res.body["user"];
    assert_eq!(user["is_anonymous"], true);
    assert_eq!(user["email"], "");
    assert_eq!(user["identities"], json!([]));
    let token = res.body["access_token"].as_str().unwrap().to_owned();
    let c = claims(&token);
    assert_eq!(c["is_anonymous"], true);
    assert_eq!(c["amr"][0]["method"], "anonymous");
    assert_eq!(c["role"], "authenticated");

    // Converting: set an email and a password (autoconfirm on).
    let email = email();
    let updated = put(
        &app,
        "/user",
        &json!({ "email": email, "password": "correct horse" }),
        &token,
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["is_anonymous"], false);
    assert_eq!(updated.body["email"], email);
    assert_eq!(updated.body["identities"][0]["provider"], "email");
    assert_eq!(sign_in(&app, &email, "correct horse").await.status, 200);
    app.stop().await;
}
both!(anonymous, anonymous_sign_in_and_conversion);

async fn user_update_rules(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let email = email();
    let first = sign_up(&app, &email, "correct horse").await;
    let token = first.body["access_token"].as_str().unwrap().to_owned();
    let second = sign_in(&app, &email, "correct horse").await;
    let other_token = second.body["access_token"].as_str().unwrap().to_owned();
    let other_refresh = second.body["refresh_token"].as_str().unwrap().to_owned();

    // Metadata merges; null deletes a key.
    let res = put(
        &app,
        "/user",
        &json!({ "data": { "a": 1, "b": 2 } }),
        &token,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = put(
        &app,
        "/user",
        &json!({ "data": { "b": null, "c": 3 } }),
        &token,
    )
    .await;
    assert_eq!(res.body["user_metadata"], json!({ "a": 1, "c": 3 }));

    // Server-only fields are refused, and nothing else in the body is applied.
    for field in [
        "app_metadata",
        "role",
        "email_confirmed_at",
        "is_anonymous",
        "aud",
        "id",
    ] {
        let body = json!({ field: { "admin": true }, "data": { "sneaky": true } });
        let res = put(&app, "/user", &body, &token).await;
        res.assert_error(403, "not_admin");
    }
    let me = get(&app, "/user", Some(&token)).await;
    assert_eq!(
        me.body["app_metadata"],
        json!({ "provider": "email", "providers": ["email"] })
    );
    assert_eq!(me.body["role"], "authenticated");
    assert!(me.body["user_metadata"].get("sneaky").is_none());

    // Same password, weak password: refused, nothing changes.
    put(
        &app,
        "/user",
        &json!({ "password": "correct horse" }),
        &token,
    )
    .await
    .assert_error(422, "same_password");
    put(&app, "/user", &json!({ "password": "short" }), &token)
        .await
        .assert_error(422, "weak_password");
    put(
        &app,
        "/user",
        &json!({ "password": "x".repeat(73) }),
        &token,
    )
    .await
    .assert_error(400, "validation_failed");
    assert_eq!(get(&app, "/user", Some(&other_token)).await.status, 200);

    // A password change ends the other sessions (their tokens and refresh tokens die).
    let res = put(
        &app,
        "/user",
        &json!({ "password": "battery staple" }),
        &token,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    get(&app, "/user", Some(&other_token))
        .await
        .assert_error(403, "session_not_found");
    refresh(&app, &other_refresh)
        .await
        .assert_error(400, "refresh_token_not_found");
    assert_eq!(get(&app, "/user", Some(&token)).await.status, 200);
    sign_in(&app, &email, "correct horse")
        .await
        .assert_error(400, "invalid_credentials");
    assert_eq!(sign_in(&app, &email, "battery staple").await.status, 200);

    // Changing to an address another account uses.
    let taken = email_addr_taken(&app).await;
    put(&app, "/user", &json!({ "email": taken }), &token)
        .await
        .assert_error(422, "email_exists");

    // Without a user token.
    get(&app, "/user", None)
        .await
        .assert_error(401, "no_authorization");
    get(&app, "/user", Some("not-a-jwt"))
        .await
        .assert_error(401, "bad_jwt");
    app.stop().await;
}
both!(user_update, user_update_rules);

async fn email_addr_taken(app: &goforward_core::testing::TestApp) -> String {
    let other = email();
    assert_eq!(sign_up(app, &other, "correct horse").await.status, 200);
    other
}

async fn logout_scopes(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let email = email();
    sign_up(&app, &email, "correct horse").await;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        let s = sign_in(&app, &email, "correct horse").await;
        tokens.push(s.body["access_token"].as_str().unwrap().to_owned());
    }
    // local: only this session.
    let res = post(&app, "/logout?scope=local", &json!({}), Some(&tokens[0])).await;
    assert_eq!(res.status, 204);
    get(&app, "/user", Some(&tokens[0]))
        .await
        .assert_error(403, "session_not_found");
    assert_eq!(get(&app, "/user", Some(&tokens[1])).await.status, 200);
    // others: all but this one.
    assert_eq!(
        post(&app, "/logout?scope=others", &json!({}), Some(&tokens[1]))
            .await
            .status,
        204
    );
    assert_eq!(get(&app, "/user", Some(&tokens[1])).await.status, 200);
    get(&app, "/user", Some(&tokens[2]))
        .await
        .assert_error(403, "session_not_found");
    // bad scope: nothing happens.
    post(
        &app,
        "/logout?scope=everything",
        &json!({}),
        Some(&tokens[1]),
    )
    .await
    .assert_error(400, "validation_failed");
    assert_eq!(get(&app, "/user", Some(&tokens[1])).await.status, 200);
    // global (default).
    let res = send(
        &app,
        reqwest::Method::POST,
        "/logout",
        None,
        Some(&tokens[1]),
    )
    .await;
    assert_eq!(res.status, 204);
    get(&app, "/user", Some(&tokens[1]))
        .await
        .assert_error(403, "session_not_found");
    assert_eq!(count(&app, "auth_sessions").await, 0);
    app.stop().await;
}
both!(logout, logout_scopes);

async fn migrations_down_and_up(pg: bool) {
    use goforward_core::migrate::Migrator;
    use goforward_core::sea_orm::ConnectionTrait;
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    assert_eq!(sign_up(&app, &email(), "correct horse").await.status, 200);
    let mut migrator = Migrator::new();
    migrator
        .add("auth", goforward_auth::migration::migrations())
        .unwrap();
    let reverted = migrator.down(app.db(), u32::MAX).await.unwrap();
    assert_eq!(
        reverted.len(),
        goforward_auth::migration::migrations().len()
    );
    for table in [
        "auth_users",
        "auth_identities",
        "auth_sessions",
        "auth_refresh_tokens",
        "auth_one_time_tokens",
        "auth_audit_log",
        "auth_mfa_factors",
        "auth_mfa_challenges",
        "auth_flow_state",
        "auth_roles",
        "auth_permissions",
        "auth_role_permissions",
        "auth_user_roles",
        "auth_api_keys",
        "auth_mfa_recovery_codes",
        "auth_oauth_state",
    ] {
        let gone = app
            .db()
            .execute_unprepared(&format!("SELECT 1 FROM {table}"))
            .await;
        assert!(gone.is_err(), "{table} dropped");
    }
    let applied = migrator.up(app.db()).await.unwrap();
    assert_eq!(applied.len(), goforward_auth::migration::migrations().len());
    assert_eq!(count(&app, "auth_users").await, 0);
    assert_eq!(sign_up(&app, &email(), "correct horse").await.status, 200);
    app.stop().await;
}
both!(migrations, migrations_down_and_up);

async fn account_lockout(pg: bool) {
    use goforward_auth::entity::user;
    use goforward_core::sea_orm::{EntityTrait, sea_query::Expr};
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.lockout_max_failed_sign_ins = 3;
    })
    .await
    else {
        return;
    };
    let email = email();
    let other = common::email();
    sign_up(&app, &email, "correct horse").await;
    sign_up(&app, &other, "correct horse").await;
    for _ in 0..3 {
        sign_in(&app, &email, "wrong horse")
            .await
            .assert_error(400, "invalid_credentials");
    }
    // Locked: even the right password is refused until the window ends.
    let locked = sign_in(&app, &email, "correct horse").await;
    locked.assert_error(429, "over_request_rate_limit");
    let retry: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 3000, "{retry}");
    // Other accounts are not affected.
    assert_eq!(sign_in(&app, &other, "correct horse").await.status, 200);
    // Once the window is over, the right password works and resets the count.
    user::Entity::update_many()
        .col_expr(
            user::Column::FailedSignInsSince,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(3601)),
        )
        .exec(app.db())
        .await
        .unwrap();
    assert_eq!(sign_in(&app, &email, "correct horse").await.status, 200);
    sign_in(&app, &email, "wrong horse")
        .await
        .assert_error(400, "invalid_credentials");
    assert_eq!(sign_in(&app, &email, "correct horse").await.status, 200);
    app.stop().await;
}
both!(lockout, account_lockout);

async fn reauthentication(pg: bool) {
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.password_change_requires_reauthentication = true;
    })
    .await
    else {
        return;
    };
    let email = email();
    let s = sign_up(&app, &email, "correct horse").await;
    let token = s.body["access_token"].as_str().unwrap().to_owned();
    // Metadata needs no nonce; a password does.
    assert_eq!(
        put(&app, "/user", &json!({ "data": { "x": 1 } }), &token)
            .await
            .status,
        200
    );
    put(
        &app,
        "/user",
        &json!({ "password": "battery staple" }),
        &token,
    )
    .await
    .assert_error(400, "reauthentication_needed");
    let res = get(&app, "/reauthenticate", Some(&token)).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let mail = mails_to(&app, &email).pop().unwrap();
    assert!(
        mail.contains("X-GoForward-Template: reauthentication"),
        "{mail}"
    );
    let code = last_code(&app, &email);
    let wrong = if code == "111111" { "222222" } else { "111111" };
    put(
        &app,
        "/user",
        &json!({ "password": "battery staple", "nonce": wrong }),
        &token,
    )
    .await
    .assert_error(400, "reauthentication_not_valid");
    // The nonce cannot sign anyone in.
    post(
        &app,
        "/verify",
        &json!({ "type": "email", "email": email, "token": code }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    let ok = put(
        &app,
        "/user",
        &json!({ "password": "battery staple", "nonce": code }),
        &token,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(sign_in(&app, &email, "battery staple").await.status, 200);
    // Single use.
    put(
        &app,
        "/user",
        &json!({ "password": "third password", "nonce": code }),
        &token,
    )
    .await
    .assert_error(400, "reauthentication_not_valid");
    get(&app, "/reauthenticate", None)
        .await
        .assert_error(401, "no_authorization");
    app.stop().await;
}
both!(reauthenticate, reauthentication);
