//! RBAC and the administrator hierarchy over HTTP, on both backends:
//! capabilities gate the admin API, levels are granted only below one's
//! own, roles flow into `app_metadata` and the JWT, banned users' tokens
//! are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_core::testing::TestApp;
use serde_json::{Value, json};

/// An account created by the service key with `admin_role` (or none),
/// signed in: `(id, email, access_token, refresh_token)`.
async fn account(app: &TestApp, level: Option<&str>) -> (String, String, String, String) {
    let email = email();
    let mut app_metadata = json!({});
    if let Some(level) = level {
        app_metadata["admin_role"] = json!(level);
    }
    let created = post(
        app,
        "/admin/users",
        &json!({ "email": email, "password": "correct horse", "email_confirm": true,
                 "app_metadata": app_metadata }),
        Some(&app.service_key()),
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let signed = sign_in(app, &email, "correct horse").await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let token = signed.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        claims(&token)["app_metadata"]["admin_role"].as_str(),
        level,
        "the level is in the JWT"
    );
    (
        created.body["id"].as_str().unwrap().to_owned(),
        email,
        token,
        signed.body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn user_row(app: &TestApp, id: &str) -> Value {
    get(app, &format!("/admin/users/{id}"), Some(&app.service_key()))
        .await
        .body
}

async fn hierarchy(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let service = app.service_key();
    let (sys_id, _, sys, _) = account(&app, Some("system_admin")).await;
    let (sup_id, sup_email, sup, _) = account(&app, Some("super_admin")).await;
    let (adm_id, _, adm, _) = account(&app, Some("admin")).await;
    let (adm2_id, _, _, _) = account(&app, Some("admin")).await;
    let (_, _, moder, _) = account(&app, Some("moderator")).await;
    let (plain_id, plain_email, plain, plain_refresh) = account(&app, None).await;

    // Reads: ViewUsers (moderator and up); a plain user is refused.
    for token in [&moder, &adm, &sup, &sys] {
        let res = get(&app, "/admin/users", Some(token)).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(
            get(&app, &format!("/admin/users/{plain_id}"), Some(token))
                .await
                .status,
            200
        );
    }
    get(&app, "/admin/users", Some(&plain))
        .await
        .assert_error(403, "not_admin");
    // The audit log: ViewLogs (admin and up).
    get(&app, "/admin/audit", Some(&moder))
        .await
        .assert_error(403, "not_admin");
    let log = get(&app, "/admin/audit?per_page=5", Some(&adm)).await;
    assert_eq!(log.status, 200, "{}", log.body);
    assert!(log.body.as_array().unwrap().len() <= 5);
    assert!(
        log.headers["x-total-count"]
            .to_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            > 5
    );
    let logins = get(&app, "/admin/audit?action=login", Some(&adm)).await;
    assert!(
        logins
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["payload"]["action"] == "login")
    );
    get(&app, "/admin/audit?page=0", Some(&adm))
        .await
        .assert_error(400, "validation_failed");

    // Writes: ManageUsers (admin and up); a moderator changes nothing.
    let before = count(&app, "auth_users").await;
    post(
        &app,
        "/admin/users",
        &json!({ "email": email() }),
        Some(&moder),
    )
    .await
    .assert_error(403, "not_admin");
    put(
        &app,
        &format!("/admin/users/{plain_id}"),
        &json!({ "user_metadata": { "x": 1 } }),
        &moder,
    )
    .await
    .assert_error(403, "not_admin");
    assert_eq!(count(&app, "auth_users").await, before);
    assert!(user_row(&app, &plain_id).await["user_metadata"]["x"].is_null());
    let res = put(
        &app,
        &format!("/admin/users/{plain_id}"),
        &json!({ "user_metadata": { "x": 1 } }),
        &adm,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);

    // An admin acts only on users below them: not a peer, not above, not
    // themselves; no links that would sign in as them.
    for target in [&adm2_id, &sup_id, &sys_id, &adm_id] {
        put(
            &app,
            &format!("/admin/users/{target}"),
            &json!({ "password": "taken over!", "ban_duration": "24h" }),
            &adm,
        )
        .await
        .assert_error(403, "not_admin");
        send(
            &app,
            reqwest::Method::DELETE,
            &format!("/admin/users/{target}"),
            None,
            Some(&adm),
        )
        .await
        .assert_error(403, "not_admin");
    }
    post(
        &app,
        "/admin/generate_link",
        &json!({ "type": "magiclink", "email": sup_email }),
        Some(&adm),
    )
    .await
    .assert_error(403, "not_admin");
    assert!(user_row(&app, &sup_id).await["banned_until"].is_null());
    assert_eq!(sign_in(&app, &sup_email, "correct horse").await.status, 200);
    let link = post(
        &app,
        "/admin/generate_link",
        &json!({ "type": "magiclink", "email": plain_email }),
        Some(&adm),
    )
    .await;
    assert_eq!(link.status, 200, "{}", link.body);

    // Granting levels needs ManageAdmins (super_admin and up), strictly below one's own.
    for (token, level) in [
        (&adm, "moderator"),
        (&sup, "super_admin"),
        (&sup, "system_admin"),
        (&sys, "system_admin"),
    ] {
        put(
            &app,
            &format!("/admin/users/{plain_id}/admin_role"),
            &json!({ "admin_role": level }),
            token,
        )
        .await
        .assert_error(403, "not_admin");
        put(
            &app,
            &format!("/admin/users/{plain_id}"),
            &json!({ "app_metadata": { "admin_role": level } }),
            token,
        )
        .await
        .assert_error(403, "not_admin");
    }
    let before = count(&app, "auth_users").await;
    post(
        &app,
        "/admin/users",
        &json!({ "email": email(), "app_metadata": { "admin_role": "system_admin" } }),
        Some(&sup),
    )
    .await
    .assert_error(403, "not_admin");
    assert_eq!(count(&app, "auth_users").await, before);
    assert!(
        user_row(&app, &plain_id).await["app_metadata"]["admin_role"].is_null(),
        "nothing granted"
    );
    // A super_admin cannot demote the system_admin either.
    put(
        &app,
        &format!("/admin/users/{sys_id}/admin_role"),
        &json!({ "admin_role": null }),
        &sup,
    )
    .await
    .assert_error(403, "not_admin");
    // Changing the database role needs ManageAdmins too.
    put(
        &app,
        &format!("/admin/users/{plain_id}"),
        &json!({ "role": "editor_role" }),
        &adm,
    )
    .await
    .assert_error(403, "not_admin");
    // Bad levels are 400s.
    for (body, code) in [
        (json!({ "admin_role": "root" }), "validation_failed"),
        (json!({ "admin_role": 5 }), "validation_failed"),
        (json!({}), "bad_json"),
        (json!({ "admin_role": "admin", "extra": 1 }), "bad_json"),
    ] {
        put(
            &app,
            &format!("/admin/users/{plain_id}/admin_role"),
            &body,
            &sup,
        )
        .await
        .assert_error(400, code);
    }

    // A super_admin grants admin; it reaches the JWT on the next refresh.
    let res = put(
        &app,
        &format!("/admin/users/{plain_id}/admin_role"),
        &json!({ "admin_role": "admin" }),
        &sup,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["app_metadata"]["admin_role"], "admin");
    assert!(claims(&plain)["app_metadata"]["admin_role"].is_null());
    get(&app, "/admin/users", Some(&plain))
        .await
        .assert_error(403, "not_admin");
    let refreshed = refresh(&app, &plain_refresh).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let promoted = refreshed.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&promoted)["app_metadata"]["admin_role"], "admin");
    assert_eq!(get(&app, "/admin/audit", Some(&promoted)).await.status, 200);
    let plain_refresh = refreshed.body["refresh_token"].as_str().unwrap().to_owned();

    // A system_admin grants super_admin; only service_role makes a system_admin.
    let res = put(
        &app,
        &format!("/admin/users/{plain_id}/admin_role"),
        &json!({ "admin_role": "super_admin" }),
        &sys,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = put(
        &app,
        &format!("/admin/users/{plain_id}/admin_role"),
        &json!({ "admin_role": "system_admin" }),
        &service,
    )
    .await;
    assert_eq!(res.body["app_metadata"]["admin_role"], "system_admin");

    // Demotion applies at once to the admin API, before the token expires.
    let res = put(
        &app,
        &format!("/admin/users/{plain_id}"),
        &json!({ "app_metadata": { "admin_role": null } }),
        &service,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body["app_metadata"].get("admin_role").is_none());
    assert_eq!(claims(&promoted)["app_metadata"]["admin_role"], "admin");
    get(&app, "/admin/audit", Some(&promoted))
        .await
        .assert_error(403, "not_admin");
    let refreshed = refresh(&app, &plain_refresh).await;
    assert!(
        claims(refreshed.body["access_token"].as_str().unwrap())["app_metadata"]
            .get("admin_role")
            .is_none()
    );

    // Users can never give themselves a level.
    let me = sign_in(&app, &plain_email, "correct horse").await;
    let mine = me.body["access_token"].as_str().unwrap().to_owned();
    put(
        &app,
        "/user",
        &json!({ "app_metadata": { "admin_role": "system_admin" } }),
        &mine,
    )
    .await
    .assert_error(403, "not_admin");
    let res = put(
        &app,
        "/user",
        &json!({ "data": { "admin_role": "system_admin" } }),
        &mine,
    )
    .await;
    assert_eq!(res.status, 200, "user_metadata is the user's: {}", res.body);
    let again = sign_in(&app, &plain_email, "correct horse").await;
    let token = again.body["access_token"].as_str().unwrap();
    assert!(claims(token)["app_metadata"].get("admin_role").is_none());
    assert_eq!(
        claims(token)["user_metadata"]["admin_role"],
        "system_admin",
        "only user_metadata carries it, which grants nothing"
    );
    get(&app, "/admin/users", Some(token))
        .await
        .assert_error(403, "not_admin");

    // Who did what is in the audit log.
    let changes = get(&app, "/admin/audit?action=admin_role_changed", Some(&sys)).await;
    let actors: Vec<&str> = changes
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["payload"]["actor_id"].as_str())
        .collect();
    assert!(actors.contains(&sup_id.as_str()) && actors.contains(&sys_id.as_str()));
    app.stop().await;
}
both!(admin_hierarchy, hierarchy);

async fn roles(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let (_, _, sup, _) = account(&app, Some("super_admin")).await;
    let (_, _, adm, _) = account(&app, Some("admin")).await;
    let (_, _, moder, _) = account(&app, Some("moderator")).await;
    let (sup2_id, _, _, _) = account(&app, Some("super_admin")).await;
    let (plain_id, _, _, plain_refresh) = account(&app, None).await;

    // Defining roles: ManageAdmins.
    let created = post(
        &app,
        "/admin/roles",
        &json!({ "name": "editor", "description": "Edits posts",
                 "permissions": ["posts:write", "posts:read", "posts:read"] }),
        Some(&sup),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        created.body["permissions"],
        json!(["posts:read", "posts:write"])
    );
    let before = count(&app, "auth_roles").await;
    for (token, body, status, code) in [
        (&adm, json!({ "name": "viewer" }), 403, "not_admin"),
        (&sup, json!({ "name": "editor" }), 409, "conflict"),
        (&sup, json!({ "name": "Editor!" }), 400, "validation_failed"),
        (&sup, json!({ "name": "admin" }), 400, "validation_failed"),
        (
            &sup,
            json!({ "name": "service_role" }),
            400,
            "validation_failed",
        ),
        (&sup, json!({}), 400, "validation_failed"),
        (
            &sup,
            json!({ "name": "viewer", "permissions": ["a b"] }),
            400,
            "validation_failed",
        ),
        (
            &sup,
            json!({ "name": "viewer", "permissions": "posts:read" }),
            400,
            "bad_json",
        ),
        (
            &sup,
            json!({ "name": "viewer", "admin": true }),
            400,
            "bad_json",
        ),
    ] {
        post(&app, "/admin/roles", &body, Some(token))
            .await
            .assert_error(status, code);
    }
    assert_eq!(count(&app, "auth_roles").await, before, "nothing created");
    let list = get(&app, "/admin/roles", Some(&moder)).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["roles"][0]["name"], "editor");
    let perms = get(&app, "/admin/permissions", Some(&moder)).await;
    assert_eq!(perms.body["permissions"].as_array().unwrap().len(), 2);

    // Assigning: ManageAdmins (roles carry AccessControl power), on users
    // below the caller. An admin or a moderator (ManageUsers at most) cannot.
    for token in [&adm, &moder] {
        post(
            &app,
            &format!("/admin/users/{plain_id}/roles"),
            &json!({ "role": "editor" }),
            Some(token),
        )
        .await
        .assert_error(403, "not_admin");
    }
    assert_eq!(count(&app, "auth_user_roles").await, 0, "nothing assigned");
    let res = post(
        &app,
        &format!("/admin/users/{plain_id}/roles"),
        &json!({ "role": "editor" }),
        Some(&sup),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["roles"], json!(["editor"]));
    // Not to a peer.
    post(
        &app,
        &format!("/admin/users/{sup2_id}/roles"),
        &json!({ "role": "editor" }),
        Some(&sup),
    )
    .await
    .assert_error(403, "not_admin");
    post(
        &app,
        &format!("/admin/users/{plain_id}/roles"),
        &json!({ "role": "ghost" }),
        Some(&sup),
    )
    .await
    .assert_error(404, "not_found");
    post(
        &app,
        &format!("/admin/users/{plain_id}/roles"),
        &json!({}),
        Some(&sup),
    )
    .await
    .assert_error(400, "validation_failed");
    assert_eq!(count(&app, "auth_user_roles").await, 1);
    // `app_metadata.roles` is the server's: not writable through the user update.
    put(
        &app,
        &format!("/admin/users/{plain_id}"),
        &json!({ "app_metadata": { "roles": ["owner"] } }),
        &adm,
    )
    .await
    .assert_error(400, "validation_failed");

    // The role names reach the JWT on refresh.
    let refreshed = refresh(&app, &plain_refresh).await;
    let token = refreshed.body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["app_metadata"]["roles"], json!(["editor"]));
    let plain_refresh = refreshed.body["refresh_token"].as_str().unwrap().to_owned();
    let held = get(
        &app,
        &format!("/admin/users/{plain_id}/roles"),
        Some(&moder),
    )
    .await;
    assert_eq!(
        held.body,
        json!({ "user_id": plain_id, "admin_role": null, "roles": ["editor"] })
    );

    // Changing a role's permissions; roles cannot be renamed.
    let res = put(
        &app,
        "/admin/roles/editor",
        &json!({ "permissions": ["posts:read"] }),
        &sup,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["permissions"], json!(["posts:read"]));
    put(&app, "/admin/roles/editor", &json!({ "name": "x" }), &sup)
        .await
        .assert_error(400, "validation_failed");
    put(&app, "/admin/roles/ghost", &json!({}), &sup)
        .await
        .assert_error(404, "not_found");
    put(
        &app,
        "/admin/roles/editor",
        &json!({ "permissions": [] }),
        &adm,
    )
    .await
    .assert_error(403, "not_admin");

    // Unassigning (ManageAdmins too), then deleting a role removes it from its holders.
    send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{plain_id}/roles/editor"),
        None,
        Some(&adm),
    )
    .await
    .assert_error(403, "not_admin");
    assert_eq!(count(&app, "auth_user_roles").await, 1, "still assigned");
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{plain_id}/roles/editor"),
        None,
        Some(&sup),
    )
    .await;
    assert_eq!(res.body["roles"], json!([]));
    send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{plain_id}/roles/editor"),
        None,
        Some(&sup),
    )
    .await
    .assert_error(404, "not_found");
    assert!(
        user_row(&app, &plain_id).await["app_metadata"]
            .get("roles")
            .is_none()
    );
    post(
        &app,
        &format!("/admin/users/{plain_id}/roles"),
        &json!({ "role": "editor" }),
        Some(&sup),
    )
    .await;
    send(
        &app,
        reqwest::Method::DELETE,
        "/admin/roles/editor",
        None,
        Some(&adm),
    )
    .await
    .assert_error(403, "not_admin");
    let res = send(
        &app,
        reqwest::Method::DELETE,
        "/admin/roles/editor",
        None,
        Some(&sup),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(count(&app, "auth_user_roles").await, 0);
    assert!(
        user_row(&app, &plain_id).await["app_metadata"]
            .get("roles")
            .is_none()
    );
    let refreshed = refresh(&app, &plain_refresh).await;
    assert!(
        claims(refreshed.body["access_token"].as_str().unwrap())["app_metadata"]
            .get("roles")
            .is_none()
    );
    app.stop().await;
}
both!(rbac_roles, roles);

async fn banned(pg: bool) {
    use goforward_core::sea_orm::ConnectionTrait;
    use goforward_core::sea_query::{Alias, Expr, Query};
    let id_is = |id: &str| {
        goforward_core::sea_query::ExprTrait::eq(Expr::col(Alias::new("id")), id.to_owned())
    };
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let (id, _, token, refresh_token) = account(&app, None).await;
    // A ban written without ending the sessions (e.g. by another node or a
    // script): the still-valid access token is refused where it acts as the user.
    let until = chrono::Utc::now() + chrono::Duration::hours(1);
    let stmt = Query::update()
        .table(Alias::new("auth_users"))
        .value(Alias::new("banned_until"), until)
        .and_where(id_is(&id))
        .to_owned();
    app.db().execute(&stmt).await.unwrap();

    get(&app, "/user", Some(&token))
        .await
        .assert_error(403, "user_banned");
    put(&app, "/user", &json!({ "data": { "x": 1 } }), &token)
        .await
        .assert_error(403, "user_banned");
    assert!(user_row(&app, &id).await["user_metadata"]["x"].is_null());
    post(
        &app,
        "/factors",
        &json!({ "factor_type": "totp" }),
        Some(&token),
    )
    .await
    .assert_error(403, "user_banned");
    assert_eq!(count(&app, "auth_mfa_factors").await, 0);
    get(&app, "/reauthenticate", Some(&token))
        .await
        .assert_error(403, "user_banned");
    refresh(&app, &refresh_token)
        .await
        .assert_error(400, "user_banned");

    // A banned administrator loses the admin API at once.
    let (admin_id, _, admin_token, _) = account(&app, Some("admin")).await;
    assert_eq!(
        get(&app, "/admin/users", Some(&admin_token)).await.status,
        200
    );
    let stmt = Query::update()
        .table(Alias::new("auth_users"))
        .value(Alias::new("banned_until"), until)
        .and_where(id_is(&admin_id))
        .to_owned();
    app.db().execute(&stmt).await.unwrap();
    get(&app, "/admin/users", Some(&admin_token))
        .await
        .assert_error(403, "user_banned");

    // Signing out still works (it only removes sessions).
    let out = post(&app, "/logout", &json!({}), Some(&token)).await;
    assert_eq!(out.status, 204, "{}", out.body);
    app.stop().await;
}
both!(banned_users, banned);

/// Admin session listing and revocation: ViewUsers reads, ManageUsers
/// revokes (only users below the caller); a revoked session's refresh
/// token and access token stop working.
async fn admin_sessions(pg: bool) {
    let Some(app) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let (id, email, first, _) = account(&app, None).await;
    let second = sign_in(&app, &email, "correct horse").await;
    let second_refresh = second.body["refresh_token"].as_str().unwrap().to_owned();
    let second_session = claims(second.body["access_token"].as_str().unwrap())["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (sup_id, _, sup, _) = account(&app, Some("super_admin")).await;
    let (_, _, adm, _) = account(&app, Some("admin")).await;
    let (moder_id, _, moder, _) = account(&app, Some("moderator")).await;

    let list = get(&app, &format!("/admin/users/{id}/sessions"), Some(&moder)).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["sessions"].as_array().unwrap().len(), 2);
    assert!(list.body.to_string().contains(&second_session));
    get(&app, &format!("/admin/users/{id}/sessions"), Some(&first))
        .await
        .assert_error(403, "not_admin");

    // Refusals change nothing.
    let before = count(&app, "auth_sessions").await;
    for (path, token, status, code) in [
        (
            format!("/admin/users/{id}/sessions/{second_session}"),
            &moder,
            403,
            "not_admin",
        ),
        (
            format!("/admin/users/{sup_id}/sessions"),
            &adm,
            403,
            "not_admin",
        ),
        (
            format!("/admin/users/{id}/sessions/00000000-0000-0000-0000-000000000000"),
            &adm,
            404,
            "not_found",
        ),
        // Another user's session through this user's path.
        (
            format!("/admin/users/{moder_id}/sessions/{second_session}"),
            &sup,
            404,
            "not_found",
        ),
        // Not even one's own sessions through the admin API.
        (
            format!("/admin/users/{sup_id}/sessions"),
            &sup,
            403,
            "not_admin",
        ),
    ] {
        send(&app, reqwest::Method::DELETE, &path, None, Some(token))
            .await
            .assert_error(status, code);
    }
    assert_eq!(count(&app, "auth_sessions").await, before);

    // One session, then all.
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{id}/sessions/{second_session}"),
        None,
        Some(&adm),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    refresh(&app, &second_refresh)
        .await
        .assert_error(400, "refresh_token_not_found");
    assert_eq!(get(&app, "/user", Some(&first)).await.status, 200);
    let res = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/users/{id}/sessions"),
        None,
        Some(&adm),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    get(&app, "/user", Some(&first))
        .await
        .assert_error(403, "session_not_found");
    let list = get(&app, &format!("/admin/users/{id}/sessions"), Some(&adm)).await;
    assert_eq!(list.body["sessions"], json!([]));
    app.stop().await;
}
both!(admin_user_sessions, admin_sessions);
