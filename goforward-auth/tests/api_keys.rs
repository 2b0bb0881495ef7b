//! Service-account API keys over HTTP, on both backends: created once,
//! accepted as apikey or bearer by a host route reading `Principal`,
//! revoked, expired and tampered keys refused, never more powerful than
//! their creator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use actix_web::{HttpResponse, web};
use common::*;
use goforward_auth::Auth;
use goforward_core::{Principal, testing::TestApp};
use serde_json::{Value, json};

async fn whoami_route(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "role": principal.role.as_str(),
        "user_id": principal.user_id,
        "claims": *principal.claims,
    }))
}

async fn start(pg: bool) -> Option<TestApp> {
    if pg && goforward_core::testing::postgres_url_or_skip("goforward-auth").is_none() {
        return None;
    }
    let auth = Auth::new().configure(|c| {
        c.bcrypt_cost = 4;
        c.mailer_autoconfirm = true;
    });
    Some(
        TestApp::builder()
            .plugin(auth)
            .routes(|cfg| {
                cfg.route("/whoami", web::get().to(whoami_route));
            })
            .postgres(pg)
            .start()
            .await
            .expect("test app starts"),
    )
}

/// GET /whoami with an optional apikey and bearer: (status, body).
async fn whoami(app: &TestApp, apikey: Option<&str>, bearer: Option<&str>) -> (u16, Value) {
    let mut req = app.client().get(app.url("/whoami"));
    if let Some(key) = apikey {
        req = req.header("apikey", key);
    }
    if let Some(token) = bearer {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn create_key(app: &TestApp, body: Value, bearer: &str) -> Res {
    post(app, "/admin/api-keys", &body, Some(bearer)).await
}

async fn account(app: &TestApp, level: &str) -> (String, String) {
    let email = email();
    let created = post(
        app,
        "/admin/users",
        &json!({ "email": email, "password": "correct horse", "email_confirm": true,
                 "app_metadata": { "admin_role": level } }),
        Some(&app.service_key()),
    )
    .await;
    let signed = sign_in(app, &email, "correct horse").await;
    (
        created.body["id"].as_str().unwrap().to_owned(),
        signed.body["access_token"].as_str().unwrap().to_owned(),
    )
}

async fn lifecycle(pg: bool) {
    let Some(app) = start(pg).await else {
        return;
    };
    let service = app.service_key();
    let anon = app.anon_key();

    // Created once: the key is in this answer only.
    let created = create_key(
        &app,
        json!({ "name": "ci", "scopes": ["deploy"], "expires_in": 3600 }),
        &service,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("gf_sa_"), "{key}");
    assert_eq!(created.body["role"], "service_role");
    assert!(created.body["expires_at"].is_string());
    assert!(created.body.get("secret_hash").is_none());
    let listed = get(&app, "/admin/api-keys", Some(&service)).await;
    assert_eq!(listed.status, 200);
    let row = &listed.body["api_keys"][0];
    assert_eq!(row["id"], id.as_str());
    assert!(row.get("key").is_none() && row.get("secret_hash").is_none());
    assert!(row["last_used_at"].is_null());
    assert!(
        !listed.body.to_string().contains(&key[22..]),
        "no secret listed"
    );

    // Accepted as the apikey alone, and as a bearer next to the anon key.
    let (status, body) = whoami(&app, Some(&key), None).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("service_role")));
    assert_eq!(body["claims"]["api_key_id"], id.as_str());
    assert_eq!(body["claims"]["scopes"], json!(["deploy"]));
    assert!(body["user_id"].is_null(), "a key is never a user");
    let (status, body) = whoami(&app, Some(&anon), Some(&key)).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("service_role")));
    // …and by the admin API (service_role).
    assert_eq!(get(&app, "/admin/users", Some(&key)).await.status, 200);
    let listed = get(&app, "/admin/api-keys", Some(&service)).await;
    assert!(listed.body["api_keys"][0]["last_used_at"].is_string());

    // Tampered secret with a valid id, unknown id, malformed: 401.
    let (prefix, secret) = key.rsplit_once('_').unwrap();
    let flipped = if secret.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{prefix}_{flipped}{}", &secret[1..]);
    for bad in [
        tampered.as_str(),
        "gf_sa_0123456789abcdef_nope",
        "gf_sa_nonsense",
        &format!("{key}x"),
    ] {
        assert_eq!(whoami(&app, Some(bad), None).await.0, 401, "{bad}");
        assert_eq!(whoami(&app, Some(&anon), Some(bad)).await.0, 401, "{bad}");
    }

    // Revoked: refused from the next request on.
    let revoked = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/api-keys/{id}"),
        None,
        Some(&service),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(revoked.body["revoked_at"].is_string());
    assert_eq!(whoami(&app, Some(&key), None).await.0, 401);
    assert_eq!(whoami(&app, Some(&anon), Some(&key)).await.0, 401);
    send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/api-keys/{id}"),
        None,
        Some(&service),
    )
    .await
    .assert_error(404, "not_found");

    // Expired: refused.
    let created = create_key(&app, json!({ "name": "short", "expires_in": 60 }), &service).await;
    let short = created.body["key"].as_str().unwrap().to_owned();
    {
        use goforward_core::sea_orm::ConnectionTrait;
        use goforward_core::sea_query::{Alias, Expr, Query};
        let stmt = Query::update()
            .table(Alias::new("auth_api_keys"))
            .value(
                Alias::new("expires_at"),
                chrono::Utc::now() - chrono::Duration::seconds(1),
            )
            .and_where(goforward_core::sea_query::ExprTrait::eq(
                Expr::col(Alias::new("id")),
                created.body["id"].as_str().unwrap(),
            ))
            .to_owned();
        app.db().execute(&stmt).await.unwrap();
    }
    assert_eq!(whoami(&app, Some(&short), None).await.0, 401);

    // Bad requests create nothing.
    let before = count(&app, "auth_api_keys").await;
    for (body, status, code) in [
        (json!({}), 400, "validation_failed"),
        (json!({ "name": "" }), 400, "validation_failed"),
        (
            json!({ "name": "x", "expires_in": 5 }),
            400,
            "validation_failed",
        ),
        (
            json!({ "name": "x", "expires_at": "2000-01-01T00:00:00Z" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "name": "x", "expires_at": "soon" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "name": "x", "expires_in": 600, "expires_at": "2100-01-01T00:00:00Z" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "name": "x", "role": "anon" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "name": "x", "role": "authenticated" }),
            400,
            "validation_failed",
        ),
        (
            json!({ "name": "x", "scopes": ["a b"] }),
            400,
            "validation_failed",
        ),
        (json!({ "name": "x", "scopes": "deploy" }), 400, "bad_json"),
        (json!({ "name": "x", "secret": "mine" }), 400, "bad_json"),
    ] {
        create_key(&app, body.clone(), &service)
            .await
            .assert_error(status, code);
    }
    assert_eq!(count(&app, "auth_api_keys").await, before);
    app.stop().await;
}
both!(key_lifecycle, lifecycle);

async fn creator_power(pg: bool) {
    let Some(app) = start(pg).await else {
        return;
    };
    let service = app.service_key();
    let (_, adm) = account(&app, "admin").await;
    let (sup_id, sup) = account(&app, "super_admin").await;
    let role = post(
        &app,
        "/admin/roles",
        &json!({ "name": "reporter", "permissions": ["reports:read"] }),
        Some(&service),
    )
    .await;
    assert_eq!(role.status, 201, "{}", role.body);

    // Keys need ManageAdmins; a user can never mint a service_role key,
    // nor one for a role or scope they do not hold.
    let before = count(&app, "auth_api_keys").await;
    create_key(&app, json!({ "name": "x", "role": "reporter" }), &adm)
        .await
        .assert_error(403, "not_admin");
    get(&app, "/admin/api-keys", Some(&adm))
        .await
        .assert_error(403, "not_admin");
    create_key(&app, json!({ "name": "x" }), &sup)
        .await
        .assert_error(400, "validation_failed");
    create_key(&app, json!({ "name": "x", "role": "service_role" }), &sup)
        .await
        .assert_error(403, "not_admin");
    create_key(&app, json!({ "name": "x", "role": "reporter" }), &sup)
        .await
        .assert_error(403, "not_admin");
    create_key(&app, json!({ "name": "x", "role": "ghost" }), &sup)
        .await
        .assert_error(404, "not_found");
    assert_eq!(count(&app, "auth_api_keys").await, before);

    let res = post(
        &app,
        &format!("/admin/users/{sup_id}/roles"),
        &json!({ "role": "reporter" }),
        Some(&service),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    create_key(
        &app,
        json!({ "name": "x", "role": "reporter", "scopes": ["reports:write"] }),
        &sup,
    )
    .await
    .assert_error(403, "not_admin");
    let created = create_key(
        &app,
        json!({ "name": "reports", "role": "reporter", "scopes": ["reports:read"] }),
        &sup,
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["created_by"], sup_id.as_str());
    let key = created.body["key"].as_str().unwrap().to_owned();
    let (status, body) = whoami(&app, Some(&key), None).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("reporter")));
    // A custom-role key holds no administrator capability.
    get(&app, "/admin/users", Some(&key))
        .await
        .assert_error(403, "not_admin");

    // A user cannot revoke a service_role key.
    let svc = create_key(&app, json!({ "name": "svc" }), &service).await;
    let svc_id = svc.body["id"].as_str().unwrap();
    send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/api-keys/{svc_id}"),
        None,
        Some(&sup),
    )
    .await
    .assert_error(403, "not_admin");
    let svc_key = svc.body["key"].as_str().unwrap();
    assert_eq!(whoami(&app, Some(svc_key), None).await.0, 200);

    // The key dies with its creator's role.
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{sup_id}/roles/reporter"),
        None,
        Some(&service),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(whoami(&app, Some(&key), None).await.0, 401);
    app.stop().await;
}
both!(creator_limits, creator_power);
