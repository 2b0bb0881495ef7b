//! Email OTPs and links: confirmation, magic link / OTP sign-in, recovery,
//! resend, email change on both addresses, `GET /verify` redirects, the
//! redirect allow-list, single use, expiry, re-issue, send intervals and
//! per-IP rate limits — on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_auth::entity::one_time_token;
use goforward_core::sea_orm::{EntityTrait, sea_query::Expr};
use goforward_core::testing::TestApp;
use serde_json::json;

async fn confirmed_user(app: &TestApp) -> (String, serde_json::Value) {
    let email = email();
    assert_eq!(sign_up(app, &email, "correct horse").await.status, 200);
    let code = last_code(app, &email);
    let res = post(
        app,
        "/verify",
        &json!({ "type": "signup", "email": email, "token": code }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    (email, res.body)
}

async fn links_and_redirects(pg: bool) {
    let Some(app) = app(pg, |_| {}).await else {
        return;
    };
    // An allowed redirect_to travels in the link; GET /verify answers 303 with the session in the fragment.
    let email = email();
    let res = post(
        &app,
        "/signup?redirect_to=https%3A%2F%2Fapp.example.com%2Fwelcome",
        &json!({ "email": email, "password": "correct horse" }),
        None,
    )
    .await;
    assert_eq!(res.status, 200);
    let link = last_link(&app, &email);
    assert_eq!(link_param(&link, "type"), "signup");
    assert_eq!(
        link_param(&link, "redirect_to"),
        "https://app.example.com/welcome"
    );
    assert_eq!(link_param(&link, "token").len(), 64);
    let path = link.split("/auth/v1").nth(1).unwrap();
    // No apikey needed (browsers follow email links).
    let res = app
        .client()
        .get(app.url(&format!("/auth/v1{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("https://app.example.com/welcome#access_token="),
        "{location}"
    );
    for part in [
        "refresh_token=",
        "expires_in=3600",
        "expires_at=",
        "token_type=bearer",
        "type=signup",
    ] {
        assert!(location.contains(part), "{part} in {location}");
    }
    // The link is single-use: the second visit redirects with an error.
    let res = app
        .client()
        .get(app.url(&format!("/auth/v1{path}")))
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("error=access_denied") && location.contains("error_code=otp_expired"),
        "{location}"
    );

    // A disallowed redirect_to falls back to the site URL, in the email and on GET /verify.
    let email = common::email();
    post(
        &app,
        "/signup?redirect_to=https%3A%2F%2Fevil.example.net%2Fphish",
        &json!({ "email": email, "password": "correct horse" }),
        None,
    )
    .await;
    let link = last_link(&app, &email);
    assert_eq!(link_param(&link, "redirect_to"), "http://localhost:3000/");
    let token = link_param(&link, "token");
    let res = app
        .client()
        .get(app.url(&format!(
            "/auth/v1/verify?type=signup&token={token}&redirect_to=https://evil.example.net/"
        )))
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("http://localhost:3000/#access_token="),
        "{location}"
    );
    app.stop().await;
}
both!(redirects, links_and_redirects);

async fn otp_single_use_expiry_and_purpose(pg: bool) {
    let Some(app) = app(pg, |c| c.email_min_interval_secs = 0).await else {
        return;
    };
    let email = email();
    sign_up(&app, &email, "correct horse").await;
    let code = last_code(&app, &email);
    // Wrong purpose and wrong code fail without consuming the token.
    post(
        &app,
        "/verify",
        &json!({ "type": "recovery", "email": email, "token": code }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    post(
        &app,
        "/verify",
        &json!({ "type": "signup", "email": email, "token": "000000x" }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    post(
        &app,
        "/verify",
        &json!({ "type": "signup", "email": "other@example.com", "token": code }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    // Re-issue invalidates the old code.
    let resent = post(
        &app,
        "/resend",
        &json!({ "type": "signup", "email": email }),
        None,
    )
    .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    let new_code = last_code(&app, &email);
    if new_code != code {
        post(
            &app,
            "/verify",
            &json!({ "type": "signup", "email": email, "token": code }),
            None,
        )
        .await
        .assert_error(403, "otp_expired");
    }
    // Expired: nothing works, even the right code.
    one_time_token::Entity::update_many()
        .col_expr(
            one_time_token::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .exec(app.db())
        .await
        .unwrap();
    post(
        &app,
        "/verify",
        &json!({ "type": "signup", "email": email, "token": new_code }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    let me = sign_in(&app, &email, "correct horse").await;
    me.assert_error(400, "email_not_confirmed");

    // A fresh code works once, and only once.
    post(
        &app,
        "/resend",
        &json!({ "type": "signup", "email": email }),
        None,
    )
    .await;
    let code = last_code(&app, &email);
    let ok = post(
        &app,
        "/verify",
        &json!({ "type": "email", "email": email, "token": code }),
        None,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        claims(ok.body["access_token"].as_str().unwrap())["amr"][0]["method"],
        "otp"
    );
    post(
        &app,
        "/verify",
        &json!({ "type": "email", "email": email, "token": code }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    // Bad verify requests.
    post(
        &app,
        "/verify",
        &json!({ "type": "bogus", "email": email, "token": code }),
        None,
    )
    .await
    .assert_error(400, "validation_failed");
    post(&app, "/verify", &json!({ "type": "signup" }), None)
        .await
        .assert_error(400, "validation_failed");
    post(
        &app,
        "/verify",
        &json!({ "type": "signup", "token_hash": "abc" }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    assert_eq!(count(&app, "auth_one_time_tokens").await, 0);

    // Attempts are limited: after five wrong codes the right one is void too.
    let email = common::email();
    sign_up(&app, &email, "correct horse").await;
    let code = last_code(&app, &email);
    let wrong = if code == "111111" { "222222" } else { "111111" };
    for _ in 0..goforward_auth::otp::MAX_ATTEMPTS {
        post(
            &app,
            "/verify",
            &json!({ "type": "signup", "email": email, "token": wrong }),
            None,
        )
        .await
        .assert_error(403, "otp_expired");
    }
    post(
        &app,
        "/verify",
        &json!({ "type": "signup", "email": email, "token": code }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    app.stop().await;
}
both!(otp_rules, otp_single_use_expiry_and_purpose);

async fn recovery_flow(pg: bool) {
    let Some(app) = app(pg, |_| {}).await else {
        return;
    };
    let (email, _) = confirmed_user(&app).await;
    // Unknown address: same answer, no mail.
    let sent = outbox(&app).len();
    let unknown = post(
        &app,
        "/recover",
        &json!({ "email": "nobody@example.com" }),
        None,
    )
    .await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.body, json!({}));
    assert_eq!(outbox(&app).len(), sent);
    let known = post(
        &app,
        "/recover",
        &json!({ "email": email, "gotrue_meta_security": {} }),
        None,
    )
    .await;
    assert_eq!(known.status, 200);
    assert_eq!(known.body, unknown.body);
    let mail = mails_to(&app, &email).pop().unwrap();
    assert!(mail.contains("Subject: Reset Your Password"));
    // Too soon for another one.
    let again = post(&app, "/recover", &json!({ "email": email }), None).await;
    again.assert_error(429, "over_email_send_rate_limit");
    assert!(again.headers.get("retry-after").is_some());

    let code = last_code(&app, &email);
    let session = post(
        &app,
        "/verify",
        &json!({ "type": "recovery", "email": email, "token": code }),
        None,
    )
    .await;
    assert_eq!(session.status, 200, "{}", session.body);
    let token = session.body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["amr"][0]["method"], "recovery");
    assert_eq!(
        put(
            &app,
            "/user",
            &json!({ "password": "new password!" }),
            token
        )
        .await
        .status,
        200
    );
    assert_eq!(sign_in(&app, &email, "new password!").await.status, 200);
    sign_in(&app, &email, "correct horse")
        .await
        .assert_error(400, "invalid_credentials");
    // Invalid email.
    post(&app, "/recover", &json!({ "email": "nope" }), None)
        .await
        .assert_error(400, "email_address_invalid");
    app.stop().await;
}
both!(recovery, recovery_flow);

async fn otp_and_magic_link(pg: bool) {
    let Some(app) = app(pg, |_| {}).await else {
        return;
    };
    // Unknown address with create_user false: refused, nothing created.
    let users = count(&app, "auth_users").await;
    post(
        &app,
        "/otp",
        &json!({ "email": email(), "create_user": false }),
        None,
    )
    .await
    .assert_error(422, "otp_disabled");
    assert_eq!(count(&app, "auth_users").await, users);

    // Unknown address (default create_user): a user is created and confirmed by the code.
    let fresh = email();
    let res = post(
        &app,
        "/otp",
        &json!({ "email": fresh, "data": { "src": "otp" }, "create_user": true }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, json!({}));
    let code = last_code(&app, &fresh);
    let s = post(
        &app,
        "/verify",
        &json!({ "type": "email", "email": fresh, "token": code }),
        None,
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.body["user"]["user_metadata"]["src"], "otp");
    assert!(s.body["user"]["email_confirmed_at"].is_string());

    // Known, confirmed address: a magic link; its token_hash signs in once.
    let (email, _) = confirmed_user(&app).await;
    assert_eq!(
        post(&app, "/magiclink", &json!({ "email": email }), None)
            .await
            .status,
        200
    );
    let mail = mails_to(&app, &email).pop().unwrap();
    assert!(mail.contains("Subject: Your Magic Link"));
    let hash = link_param(&last_link(&app, &email), "token");
    let s = post(
        &app,
        "/verify",
        &json!({ "type": "magiclink", "token_hash": hash }),
        None,
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(
        claims(s.body["access_token"].as_str().unwrap())["amr"][0]["method"],
        "magiclink"
    );
    post(
        &app,
        "/verify",
        &json!({ "type": "magiclink", "token_hash": hash }),
        None,
    )
    .await
    .assert_error(403, "otp_expired");
    // Phone sign-in is off by default.
    post(&app, "/otp", &json!({ "phone": "+15555550100" }), None)
        .await
        .assert_error(422, "phone_provider_disabled");
    app.stop().await;
}
both!(otp_magic_link, otp_and_magic_link);

async fn email_change_on_both_addresses(pg: bool) {
    let Some(app) = app(pg, |_| {}).await else {
        return;
    };
    let (old, session) = confirmed_user(&app).await;
    let token = session["access_token"].as_str().unwrap().to_owned();
    let new = email();
    let res = put(&app, "/user", &json!({ "email": new }), &token).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["email"], old);
    assert_eq!(res.body["new_email"], new);
    assert!(res.body["email_change_sent_at"].is_string());
    let new_code = last_code(&app, &new);
    let old_code = last_code(&app, &old);
    let half = post(
        &app,
        "/verify",
        &json!({ "type": "email_change", "email": new, "token": new_code }),
        None,
    )
    .await;
    assert_eq!(half.status, 200, "{}", half.body);
    assert_eq!(half.body["code"], 200);
    assert!(half.body["msg"].as_str().unwrap().contains("other email"));
    assert_eq!(get(&app, "/user", Some(&token)).await.body["email"], old);
    let done = post(
        &app,
        "/verify",
        &json!({ "type": "email_change", "email": old, "token": old_code }),
        None,
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["user"]["email"], new);
    assert!(done.body["user"].get("new_email").is_none());
    assert_eq!(done.body["user"]["identities"][0]["email"], new);
    // The old sessions ended; the new address signs in.
    get(&app, "/user", Some(&token))
        .await
        .assert_error(403, "session_not_found");
    assert_eq!(sign_in(&app, &new, "correct horse").await.status, 200);
    sign_in(&app, &old, "correct horse")
        .await
        .assert_error(400, "invalid_credentials");
    app.stop().await;
}
both!(email_change, email_change_on_both_addresses);

async fn per_ip_rate_limits(pg: bool) {
    let Some(app) = app(pg, |c| c.rate_limits.otp = 2).await else {
        return;
    };
    for _ in 0..2 {
        assert_eq!(
            post(
                &app,
                "/recover",
                &json!({ "email": "nobody@example.com" }),
                None
            )
            .await
            .status,
            200
        );
    }
    let res = post(
        &app,
        "/recover",
        &json!({ "email": "nobody@example.com" }),
        None,
    )
    .await;
    res.assert_error(429, "over_request_rate_limit");
    let retry: u64 = res.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    // Other groups are unaffected.
    assert_eq!(sign_up(&app, &email(), "correct horse").await.status, 200);
    app.stop().await;
}
both!(rate_limits, per_ip_rate_limits);

// SMTP delivery through a real SMTP server process: tests/smtp.rs.

async fn custom_templates_and_unreachable_smtp(pg: bool) {
    // A host-provided template is used for the outbox message.
    if pg && goforward_core::testing::postgres_url_or_skip("templates").is_none() {
        return;
    }
    let app = TestApp::builder()
        .plugin(
            goforward_auth::Auth::new()
                .configure(|c| c.bcrypt_cost = 4)
                .template(
                    goforward_auth::EmailKind::Confirmation,
                    "Welcome to {{ site_url }}",
                    "Your code is {{ token }}.\n",
                ),
        )
        .postgres(pg)
        .start()
        .await
        .unwrap();
    let email = email();
    assert_eq!(sign_up(&app, &email, "correct horse").await.status, 200);
    let mail = mails_to(&app, &email).pop().unwrap();
    assert!(
        mail.contains("Subject: Welcome to http://localhost:3000/"),
        "{mail}"
    );
    assert!(mail.contains("Your code is "), "{mail}");
    app.stop().await;

    // An SMTP server that is not there: an opaque 500, nothing leaked.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let Some(app) = app_with_smtp_port(pg, port).await else {
        return;
    };
    let res = sign_up(&app, &common::email(), "correct horse").await;
    res.assert_error(500, "unexpected_failure");
    assert_eq!(res.body["message"], "Internal server error");
    // The sign-up was undone: the address can sign up again later.
    assert_eq!(count(&app, "auth_users").await, 0);
    assert_eq!(count(&app, "auth_identities").await, 0);
    app.stop().await;
}
both!(
    templates_and_smtp_failure,
    custom_templates_and_unreachable_smtp
);

async fn app_with_smtp_port(pg: bool, port: u16) -> Option<TestApp> {
    app(pg, move |c| {
        c.smtp = Some(goforward_auth::config::SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: goforward_auth::config::SmtpTls::None,
            user: None,
            password: None,
        });
    })
    .await
}

fn s256(verifier: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// Follows an email link like a browser and returns the `Location`.
async fn follow(app: &TestApp, link: &str) -> String {
    let path = link.split("/auth/v1").nth(1).unwrap();
    let res = app
        .client()
        .get(app.url(&format!("/auth/v1{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    res.headers()["location"].to_str().unwrap().to_owned()
}

async fn pkce_flows(pg: bool) {
    use goforward_auth::entity::flow_state;
    let Some(app) = app(pg, |_| {}).await else {
        return;
    };
    let (email, _) = confirmed_user(&app).await;
    let verifier = format!("v-{}", "x".repeat(50));
    // Bad challenges are refused before anything is sent.
    let sent = outbox(&app).len();
    post(
        &app,
        "/recover",
        &json!({ "email": email, "code_challenge": "short", "code_challenge_method": "s256" }),
        None,
    )
    .await
    .assert_error(400, "validation_failed");
    post(&app, "/recover", &json!({ "email": email, "code_challenge": s256(&verifier), "code_challenge_method": "md5" }), None)
        .await
        .assert_error(400, "validation_failed");
    post(
        &app,
        "/recover",
        &json!({ "email": email, "code_challenge": s256(&verifier) }),
        None,
    )
    .await
    .assert_error(400, "validation_failed");
    assert_eq!(outbox(&app).len(), sent);

    // Recovery with PKCE: the link redirects with ?code=, exchanged with the verifier.
    let res = post(
        &app,
        "/recover?redirect_to=https%3A%2F%2Fapp.example.com%2Freset",
        &json!({ "email": email, "code_challenge": s256(&verifier), "code_challenge_method": "s256" }),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let location = follow(&app, &last_link(&app, &email)).await;
    assert!(
        location.starts_with("https://app.example.com/reset?code="),
        "{location}"
    );
    assert!(!location.contains("access_token"));
    let code = link_param(&location, "code");
    let app_ref = &app;
    let exchange = |verifier: String| {
        let body = json!({ "auth_code": code, "code_verifier": verifier });
        async move { post(app_ref, "/token?grant_type=pkce", &body, None).await }
    };
    exchange("wrong-verifier-wrong-verifier-wrong-verifier".into())
        .await
        .assert_error(400, "bad_code_verifier");
    let session = exchange(verifier.clone()).await;
    assert_eq!(session.status, 200, "{}", session.body);
    assert_eq!(
        claims(session.body["access_token"].as_str().unwrap())["amr"][0]["method"],
        "recovery"
    );
    assert_eq!(session.body["user"]["email"], email);
    // Single use.
    exchange(verifier.clone())
        .await
        .assert_error(404, "flow_state_not_found");
    post(
        &app,
        "/token?grant_type=pkce",
        &json!({ "auth_code": code }),
        None,
    )
    .await
    .assert_error(400, "validation_failed");

    // Sign-up with a plain challenge; an expired auth code is refused.
    let new = common::email();
    let plain = "p".repeat(43);
    let res = post(
        &app,
        "/signup",
        &json!({ "email": new, "password": "correct horse", "code_challenge": plain, "code_challenge_method": "plain" }),
        None,
    )
    .await;
    assert_eq!(res.status, 200);
    let location = follow(&app, &last_link(&app, &new)).await;
    assert!(
        location.starts_with("http://localhost:3000/?code="),
        "{location}"
    );
    let code = link_param(&location, "code");
    flow_state::Entity::update_many()
        .col_expr(
            flow_state::Column::AuthCodeIssuedAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(601)),
        )
        .exec(app.db())
        .await
        .unwrap();
    post(
        &app,
        "/token?grant_type=pkce",
        &json!({ "auth_code": code, "code_verifier": plain }),
        None,
    )
    .await
    .assert_error(422, "flow_state_expired");
    // The email was confirmed when the link was followed.
    assert_eq!(sign_in(&app, &new, "correct horse").await.status, 200);

    // A magic link with PKCE signs in through the exchange too.
    let res = post(&app, "/otp", &json!({ "email": new, "code_challenge": s256(&verifier), "code_challenge_method": "S256" }), None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let location = follow(&app, &last_link(&app, &new)).await;
    let code = link_param(&location, "code");
    let session = post(
        &app,
        "/token?grant_type=pkce",
        &json!({ "auth_code": code, "code_verifier": verifier }),
        None,
    )
    .await;
    assert_eq!(session.status, 200, "{}", session.body);
    assert_eq!(
        claims(session.body["access_token"].as_str().unwrap())["amr"][0]["method"],
        "magiclink"
    );
    app.stop().await;
}
both!(pkce, pkce_flows);
