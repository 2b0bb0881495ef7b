//! The admin users API with the service_role key, on both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

async fn admin_users(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let service = app.service_key();

    // Only service_role.
    let s = sign_up(&app, &email(), "correct horse").await;
    let user_token = s.body["access_token"].as_str().unwrap().to_owned();
    get(&app, "/admin/users", Some(&user_token))
        .await
        .assert_error(403, "not_admin");
    get(&app, "/admin/users", Some(&app.anon_key()))
        .await
        .assert_error(403, "not_admin");
    post(
        &app,
        "/admin/users",
        &json!({ "email": email() }),
        Some(&user_token),
    )
    .await
    .assert_error(403, "not_admin");

    // Create.
    let email = email();
    let created = post(
        &app,
        "/admin/users",
        &json!({ "email": email, "password": "correct horse", "email_confirm": true,
                 "user_metadata": { "name": "Bo" }, "app_metadata": { "plan": "pro" } }),
        Some(&service),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["app_metadata"]["plan"], "pro");
    assert_eq!(created.body["app_metadata"]["provider"], "email");
    assert!(created.body["email_confirmed_at"].is_string());
    let signed = sign_in(&app, &email, "correct horse").await;
    assert_eq!(signed.status, 200);
    assert_eq!(
        claims(signed.body["access_token"].as_str().unwrap())["app_metadata"]["plan"],
        "pro"
    );
    post(
        &app,
        "/admin/users",
        &json!({ "email": email }),
        Some(&service),
    )
    .await
    .assert_error(422, "email_exists");
    post(
        &app,
        "/admin/users",
        &json!({ "email": "bad" }),
        Some(&service),
    )
    .await
    .assert_error(400, "email_address_invalid");
    post(
        &app,
        "/admin/users",
        &json!({ "email": common::email(), "ban_duration": "forever" }),
        Some(&service),
    )
    .await
    .assert_error(400, "validation_failed");

    // Roles core treats specially cannot be given.
    for reserved in ["service_role", "anon"] {
        put(
            &app,
            &format!("/admin/users/{id}"),
            &json!({ "role": reserved }),
            &service,
        )
        .await
        .assert_error(400, "validation_failed");
    }

    // List with GoTrue's pagination headers (empty page / per_page = defaults).
    for _ in 0..2 {
        post(
            &app,
            "/admin/users",
            &json!({ "email": common::email() }),
            Some(&service),
        )
        .await;
    }
    let all = get(&app, "/admin/users?page=&per_page=", Some(&service)).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.body["aud"], "authenticated");
    let total = all.body["users"].as_array().unwrap().len();
    assert_eq!(total, 4);
    assert_eq!(all.headers["x-total-count"], "4");
    let page = get(&app, "/admin/users?page=1&per_page=3", Some(&service)).await;
    assert_eq!(page.body["users"].as_array().unwrap().len(), 3);
    assert_eq!(
        page.headers["link"].to_str().unwrap(),
        "</admin/users?page=2&per_page=3>; rel=\"next\", </admin/users?page=2&per_page=3>; rel=\"last\""
    );
    get(&app, "/admin/users?page=0", Some(&service))
        .await
        .assert_error(400, "validation_failed");

    // Get.
    let one = get(&app, &format!("/admin/users/{id}"), Some(&service)).await;
    assert_eq!(one.body["email"], email);
    get(
        &app,
        "/admin/users/00000000-0000-0000-0000-000000000000",
        Some(&service),
    )
    .await
    .assert_error(404, "user_not_found");
    get(&app, "/admin/users/not-a-uuid", Some(&service))
        .await
        .assert_error(404, "user_not_found");

    // Update: metadata merge, role, ban (ends sessions), unban.
    let res = put(
        &app,
        &format!("/admin/users/{id}"),
        &json!({ "app_metadata": { "tier": "gold" }, "role": "editor_role" }),
        &service,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["app_metadata"]["plan"], "pro");
    assert_eq!(res.body["app_metadata"]["tier"], "gold");
    // `roles` is the server's mirror of RBAC assignments: not set directly.
    put(
        &app,
        &format!("/admin/users/{id}"),
        &json!({ "app_metadata": { "roles": ["editor"] } }),
        &service,
    )
    .await
    .assert_error(400, "validation_failed");
    assert_eq!(res.body["role"], "editor_role");
    let banned = put(
        &app,
        &format!("/admin/users/{id}"),
        &json!({ "ban_duration": "24h" }),
        &service,
    )
    .await;
    assert!(banned.body["banned_until"].is_string());
    get(&app, "/user", signed.body["access_token"].as_str())
        .await
        .assert_error(403, "user_banned");
    sign_in(&app, &email, "correct horse")
        .await
        .assert_error(400, "user_banned");
    put(
        &app,
        &format!("/admin/users/{id}"),
        &json!({ "ban_duration": "none" }),
        &service,
    )
    .await;
    let back = sign_in(&app, &email, "correct horse").await;
    assert_eq!(back.status, 200);
    assert_eq!(
        claims(back.body["access_token"].as_str().unwrap())["role"],
        "editor_role"
    );

    // Delete: soft, then hard.
    let del = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{id}"),
        Some(json!({ "should_soft_delete": true }).to_string()),
        Some(&service),
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.body);
    get(&app, &format!("/admin/users/{id}"), Some(&service))
        .await
        .assert_error(404, "user_not_found");
    // Its still-unexpired access token finds no user (its session row is
    // there, the user is not).
    get(&app, "/user", back.body["access_token"].as_str())
        .await
        .assert_error(403, "user_not_found");
    sign_in(&app, &email, "correct horse")
        .await
        .assert_error(400, "invalid_credentials");
    let other = all.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] != id)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let del = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{other}"),
        Some(json!({ "should_soft_delete": false }).to_string()),
        Some(&service),
    )
    .await;
    assert_eq!(del.status, 200);
    assert_eq!(del.body, json!({}));
    get(&app, &format!("/admin/users/{other}"), Some(&service))
        .await
        .assert_error(404, "user_not_found");
    assert_eq!(
        get(&app, "/admin/users", Some(&service)).await.headers["x-total-count"],
        "2"
    );
    app.stop().await;
}
both!(users, admin_users);

async fn invite_flow(pg: bool) {
    let Some(app) = app(pg, |_| {}).await else {
        return;
    };
    let service = app.service_key();
    let email = email();
    post(&app, "/invite", &json!({ "email": email }), None)
        .await
        .assert_error(403, "not_admin");
    let res = post(
        &app,
        "/invite?redirect_to=https%3A%2F%2Fapp.example.com%2Fwelcome",
        &json!({ "email": email, "data": { "team": "blue" } }),
        Some(&service),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body["invited_at"].is_string());
    assert_eq!(res.body["user_metadata"]["team"], "blue");
    let mail = mails_to(&app, &email).pop().unwrap();
    assert!(mail.contains("X-GoForward-Template: invite"), "{mail}");
    let link = last_link(&app, &email);
    assert_eq!(link_param(&link, "type"), "invite");
    assert_eq!(
        link_param(&link, "redirect_to"),
        "https://app.example.com/welcome"
    );
    let code = last_code(&app, &email);
    let s = post(
        &app,
        "/verify",
        &json!({ "type": "invite", "email": email, "token": code }),
        None,
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert!(s.body["user"]["email_confirmed_at"].is_string());
    assert_eq!(
        claims(s.body["access_token"].as_str().unwrap())["amr"][0]["method"],
        "invite"
    );
    // The invitee sets a password.
    let token = s.body["access_token"].as_str().unwrap();
    assert_eq!(
        put(
            &app,
            "/user",
            &json!({ "password": "correct horse" }),
            token
        )
        .await
        .status,
        200
    );
    assert_eq!(sign_in(&app, &email, "correct horse").await.status, 200);
    // Inviting a confirmed address again is refused.
    post(&app, "/invite", &json!({ "email": email }), Some(&service))
        .await
        .assert_error(422, "email_exists");
    app.stop().await;
}
both!(invite, invite_flow);

async fn generate_links_and_factors(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let service = app.service_key();
    let email = email();
    let sent = outbox(&app).len();
    // A signup link: user created (unconfirmed), nothing emailed.
    let res = post(
        &app,
        "/admin/generate_link",
        &json!({ "type": "signup", "email": email, "password": "correct horse", "redirectTo": "https://app.example.com/in" }),
        Some(&service),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["email"], email);
    assert_eq!(res.body["verification_type"], "signup");
    assert_eq!(res.body["redirect_to"], "https://app.example.com/in");
    assert_eq!(res.body["email_otp"].as_str().unwrap().len(), 6);
    let link = res.body["action_link"].as_str().unwrap();
    assert_eq!(
        link_param(link, "token"),
        res.body["hashed_token"].as_str().unwrap()
    );
    assert_eq!(outbox(&app).len(), sent);
    let s = post(
        &app,
        "/verify",
        &json!({ "type": "signup", "token_hash": res.body["hashed_token"] }),
        None,
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.body);
    // Recovery link for a known user; unknown → 404; bad type → 400.
    let res = post(
        &app,
        "/admin/generate_link",
        &json!({ "type": "recovery", "email": email }),
        Some(&service),
    )
    .await;
    assert_eq!(res.status, 200);
    let s = post(
        &app,
        "/verify",
        &json!({ "type": "recovery", "email": email, "token": res.body["email_otp"] }),
        None,
    )
    .await;
    assert_eq!(s.status, 200, "{}", s.body);
    post(
        &app,
        "/admin/generate_link",
        &json!({ "type": "recovery", "email": common::email() }),
        Some(&service),
    )
    .await
    .assert_error(404, "user_not_found");
    post(
        &app,
        "/admin/generate_link",
        &json!({ "type": "bogus", "email": email }),
        Some(&service),
    )
    .await
    .assert_error(400, "validation_failed");
    post(
        &app,
        "/admin/generate_link",
        &json!({ "type": "signup", "email": email, "password": "x1234567" }),
        Some(&service),
    )
    .await
    .assert_error(422, "email_exists");
    post(
        &app,
        "/admin/generate_link",
        &json!({ "type": "magiclink", "email": email }),
        Some(&app.anon_key()),
    )
    .await
    .assert_error(403, "not_admin");

    // Admin factors: list and delete (the user's sessions end).
    let token = s.body["access_token"].as_str().unwrap().to_owned();
    let enrolled = post(
        &app,
        "/factors",
        &json!({ "factor_type": "totp", "friendly_name": "f" }),
        Some(&token),
    )
    .await;
    assert_eq!(enrolled.status, 200);
    let id = s.body["user"]["id"].as_str().unwrap();
    let factors = get(&app, &format!("/admin/users/{id}/factors"), Some(&service)).await;
    assert_eq!(factors.body.as_array().unwrap().len(), 1);
    let factor = enrolled.body["id"].as_str().unwrap();
    let del = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{id}/factors/{factor}"),
        None,
        Some(&service),
    )
    .await;
    assert_eq!(del.status, 200, "{}", del.body);
    assert_eq!(del.body["id"], factor);
    get(&app, "/user", Some(&token))
        .await
        .assert_error(403, "session_not_found");
    let del = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{id}/factors/{factor}"),
        None,
        Some(&service),
    )
    .await;
    del.assert_error(404, "mfa_factor_not_found");
    app.stop().await;
}
both!(generate_link, generate_links_and_factors);

/// Every route mounted with the auth plugin alone answers in GoTrue's shape
/// (no wiring 500s), with and without a user token (STYLE 14).
async fn routes_smoke(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let s = sign_up(&app, &email(), "correct horse").await;
    let user = s.body["access_token"].as_str().unwrap().to_owned();
    let nil = "00000000-0000-0000-0000-000000000000";
    let routes: &[(&str, String)] = &[
        ("GET", "/settings".into()),
        ("POST", "/signup".into()),
        ("POST", "/token?grant_type=password".into()),
        ("POST", "/token?grant_type=refresh_token".into()),
        ("POST", "/token?grant_type=pkce".into()),
        ("GET", "/user".into()),
        ("PUT", "/user".into()),
        ("POST", "/logout?scope=local".into()),
        ("GET", "/reauthenticate".into()),
        ("POST", "/verify".into()),
        ("GET", "/verify?type=signup&token=x".into()),
        ("POST", "/otp".into()),
        ("POST", "/magiclink".into()),
        ("POST", "/recover".into()),
        ("POST", "/resend".into()),
        ("POST", "/factors".into()),
        ("POST", "/factors/recovery_codes".into()),
        ("GET", "/factors/recovery_codes".into()),
        ("POST", "/factors/recovery_codes/verify".into()),
        ("POST", format!("/factors/{nil}/challenge")),
        ("POST", format!("/factors/{nil}/verify")),
        ("DELETE", format!("/factors/{nil}")),
        ("POST", "/invite".into()),
        ("GET", "/admin/users".into()),
        ("POST", "/admin/users".into()),
        ("GET", format!("/admin/users/{nil}")),
        ("PUT", format!("/admin/users/{nil}")),
        ("DELETE", format!("/admin/users/{nil}")),
        ("GET", format!("/admin/users/{nil}/factors")),
        ("DELETE", format!("/admin/users/{nil}/factors/{nil}")),
        ("POST", "/admin/generate_link".into()),
        ("GET", "/admin/audit".into()),
        ("GET", "/admin/roles".into()),
        ("POST", "/admin/roles".into()),
        ("PUT", "/admin/roles/editor".into()),
        ("DELETE", "/admin/roles/editor".into()),
        ("GET", "/admin/permissions".into()),
        ("GET", format!("/admin/users/{nil}/sessions")),
        ("DELETE", format!("/admin/users/{nil}/sessions")),
        ("DELETE", format!("/admin/users/{nil}/sessions/{nil}")),
        ("GET", format!("/admin/users/{nil}/roles")),
        ("POST", format!("/admin/users/{nil}/roles")),
        ("DELETE", format!("/admin/users/{nil}/roles/editor")),
        ("PUT", format!("/admin/users/{nil}/admin_role")),
        ("GET", "/admin/api-keys".into()),
        ("POST", "/admin/api-keys".into()),
        ("DELETE", format!("/admin/api-keys/{nil}")),
        ("GET", "/no-such-route".into()),
    ];
    let service = app.service_key();
    for bearer in [None, Some(user.as_str()), Some(service.as_str())] {
        for (method, path) in routes {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let body = (method != reqwest::Method::GET).then(|| "{}".to_owned());
            let res = send(&app, method.clone(), path, body, bearer).await;
            assert!(
                res.status < 500,
                "{method} {path}: {} {}",
                res.status,
                res.body
            );
            assert!(
                (200..300).contains(&res.status)
                    || res.status == 303
                    || res.body["code"].is_string(),
                "{method} {path}: {} {}",
                res.status,
                res.body
            );
        }
    }
    app.stop().await;
}
both!(smoke, routes_smoke);
