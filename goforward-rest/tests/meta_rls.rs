//! PostgreSQL roles and row-level security through the meta API; on
//! SQLite the same calls answer a clear `meta.unsupported`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod meta_common;

use goforward_core::testing::TestApp;
use meta_common::{meta, start};
use reqwest::Method;
use serde_json::json;

async fn make_table(app: &TestApp) {
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "docs",
            "columns": [
                {"name": "id", "type": "integer", "primary_key": true},
                {"name": "owner", "type": "text"},
            ],
        })),
    )
    .await
    .ok();
}

#[tokio::test]
async fn sqlite_refuses_clearly() {
    let app = start(false, "sqlite_refuses_clearly").await.unwrap();
    make_table(&app).await;
    for (method, path, body) in [
        (Method::GET, "/roles", None),
        (Method::GET, "/policies", None),
        (
            Method::POST,
            "/tables/docs/rls",
            Some(json!({"enabled": true})),
        ),
        (
            Method::POST,
            "/tables/docs/policies",
            Some(json!({"name": "p", "using": "true"})),
        ),
        (Method::DELETE, "/tables/docs/policies/p", None),
    ] {
        meta(&app, method, path, body)
            .await
            .assert_error(400, "meta.unsupported");
    }
    app.stop().await;
}

#[tokio::test]
async fn postgres_policies_and_rls() {
    let Some(app) = start(true, "postgres_policies_and_rls").await else {
        return;
    };
    make_table(&app).await;
    let roles = meta(&app, Method::GET, "/roles", None).await.ok().clone();
    let postgres = roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "postgres")
        .unwrap();
    assert_eq!(postgres["superuser"], true);
    assert!(
        roles
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["name"].as_str().unwrap().starts_with("pg_"))
    );

    // Enable (and force) RLS, add a policy, read them back.
    meta(
        &app,
        Method::POST,
        "/tables/docs/rls",
        Some(json!({"enabled": true, "force": true})),
    )
    .await
    .ok();
    let r = meta(
        &app,
        Method::POST,
        "/tables/docs/policies?dry_run=true",
        Some(json!({"name": "own rows", "command": "select", "using": "owner = current_user"})),
    )
    .await;
    assert_eq!(
        r.ok()["sql"][0],
        "CREATE POLICY \"own rows\" ON \"docs\" AS PERMISSIVE FOR SELECT TO PUBLIC USING (owner = current_user)"
    );
    meta(
        &app,
        Method::POST,
        "/tables/docs/policies",
        Some(json!({"name": "own rows", "command": "select", "roles": ["postgres"], "using": "owner = current_user"})),
    )
    .await
    .ok();
    let v = meta(&app, Method::GET, "/policies", None)
        .await
        .ok()
        .clone();
    let docs = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "docs")
        .unwrap();
    assert_eq!(docs["rls_enabled"], true);
    assert_eq!(docs["rls_forced"], true);
    let p = &v["policies"][0];
    assert_eq!(p["name"], "own rows");
    assert_eq!(p["command"], "SELECT");
    assert_eq!(p["roles"], json!(["postgres"]));
    assert!(p["using"].as_str().unwrap().contains("CURRENT_USER"), "{p}");

    // Refusals: nothing changes.
    for (body, code, status) in [
        (
            json!({"name": "x", "using": "true); DROP TABLE docs; --"}),
            "meta.invalid_request",
            400,
        ),
        (
            json!({"name": "x", "using": "(true"}),
            "meta.invalid_request",
            400,
        ),
        (
            json!({"name": "x", "using": "true", "roles": ["no_such_role"]}),
            "meta.invalid_request",
            400,
        ),
        (
            json!({"name": "x", "using": "true", "command": "truncate"}),
            "meta.invalid_request",
            400,
        ),
        (json!({"name": "x"}), "meta.invalid_request", 400),
        (
            json!({"name": "a\"b", "using": "true"}),
            "meta.invalid_identifier",
            400,
        ),
        (
            json!({"name": "own rows", "using": "true"}),
            "meta.already_exists",
            409,
        ),
    ] {
        meta(&app, Method::POST, "/tables/docs/policies", Some(body))
            .await
            .assert_error(status, code);
    }
    meta(
        &app,
        Method::POST,
        "/tables/nope/policies",
        Some(json!({"name": "x", "using": "true"})),
    )
    .await
    .assert_error(404, "meta.table_not_found");
    meta(&app, Method::DELETE, "/tables/docs/policies/nope", None)
        .await
        .assert_error(404, "meta.constraint_not_found");
    let again = meta(&app, Method::GET, "/policies", None)
        .await
        .ok()
        .clone();
    assert_eq!(again["policies"].as_array().unwrap().len(), 1);

    // Drop, then revert the drop (the policy comes back as it was).
    let r = meta(
        &app,
        Method::DELETE,
        "/tables/docs/policies/own%20rows",
        None,
    )
    .await;
    let id = r.ok()["migration"].as_i64().unwrap();
    let v = meta(&app, Method::GET, "/policies", None)
        .await
        .ok()
        .clone();
    assert_eq!(v["policies"], json!([]));
    meta(
        &app,
        Method::POST,
        &format!("/migrations/{id}/revert"),
        None,
    )
    .await
    .ok();
    let v = meta(&app, Method::GET, "/policies", None)
        .await
        .ok()
        .clone();
    assert_eq!(v["policies"][0]["roles"], json!(["postgres"]));

    // Revert everything, newest first, down to nothing.
    let list = meta(&app, Method::GET, "/migrations", None)
        .await
        .ok()
        .clone();
    let applied: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["reverted_at"].is_null())
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    for id in applied.iter().rev() {
        if *id == applied[0] {
            let v = meta(&app, Method::GET, "/policies", None)
                .await
                .ok()
                .clone();
            let docs = v["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["table"] == "docs")
                .unwrap()
                .clone();
            assert_eq!(docs["rls_enabled"], false);
            assert_eq!(v["policies"], json!([]));
        }
        meta(
            &app,
            Method::POST,
            &format!("/migrations/{id}/revert"),
            None,
        )
        .await
        .ok();
    }
    assert!(meta_common::table_names(&app).await.is_empty());
    app.stop().await;
}
