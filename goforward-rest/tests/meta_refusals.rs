//! Refusals of the meta API (issue #5), each a clear error in GoForward's
//! shape with nothing changed — on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod meta_common;

use goforward_core::testing::TestApp;
use meta_common::{As, call, meta, table_names};
use reqwest::Method;
use serde_json::{Value, json};

fn simple(name: &str) -> Value {
    json!({"name": name, "columns": [{"name": "id", "type": "integer", "primary_key": true}]})
}

async fn migration_count(app: &TestApp) -> usize {
    meta(app, Method::GET, "/migrations", None)
        .await
        .ok()
        .as_array()
        .unwrap()
        .len()
}

async fn non_admins_are_refused(app: &TestApp) {
    meta(app, Method::POST, "/tables", Some(simple("t")))
        .await
        .ok();
    for who in [
        As::Anon,
        As::User,
        As::Admin("moderator"),
        As::Admin("admin"),
        As::Admin("root"),
    ] {
        for (method, path, body) in [
            (Method::GET, "/tables", None),
            (Method::GET, "/tables/t", None),
            (Method::GET, "/relationships", None),
            (Method::GET, "/migrations", None),
            (Method::GET, "/migrations/export", None),
            (Method::POST, "/tables", Some(simple("u"))),
            (Method::DELETE, "/tables/t", None),
            (Method::POST, "/tables/t/truncate", None),
            (Method::POST, "/migrations/1/revert", None),
            (Method::GET, "/nope", None),
        ] {
            let r = call(app, who, method.clone(), &format!("/meta/v1{path}"), body).await;
            r.assert_error(403, "meta.forbidden");
        }
    }
    // super_admin, system_admin and service_role may.
    for who in [
        As::Admin("super_admin"),
        As::Admin("system_admin"),
        As::Service,
    ] {
        let r = call(app, who, Method::GET, "/meta/v1/tables", None).await;
        assert_eq!(r.status, 200, "{who:?}: {}", r.text);
    }
    assert_eq!(table_names(app).await, ["t"]);
    assert_eq!(migration_count(app).await, 1);
}
both!(non_admins_are_refused);

async fn referenced_tables_need_cascade(app: &TestApp) {
    meta(app, Method::POST, "/tables", Some(simple("parent")))
        .await
        .ok();
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "child",
            "columns": [
                {"name": "id", "type": "integer", "primary_key": true},
                {"name": "parent_id", "type": "integer"},
            ],
            "foreign_keys": [{"columns": ["parent_id"], "foreign_table": "parent", "on_delete": "cascade"}],
        })),
    )
    .await
    .ok();
    let db = app.db();
    use goforward_core::sea_orm::ConnectionTrait;
    db.execute_unprepared("INSERT INTO parent (id) VALUES (1)")
        .await
        .unwrap();
    db.execute_unprepared("INSERT INTO child (id, parent_id) VALUES (10, 1)")
        .await
        .unwrap();

    let r = meta(app, Method::DELETE, "/tables/parent", None).await;
    r.assert_error(409, "meta.table_referenced");
    assert_eq!(r.json["details"]["referenced_by"], json!(["child"]));
    assert_eq!(table_names(app).await, ["child", "parent"]);
    // Dropping a referenced column is refused too.
    let r = meta(app, Method::DELETE, "/tables/parent/columns/id", None).await;
    assert_eq!(r.status, 400, "{}", r.text); // primary key
    assert_eq!(migration_count(app).await, 2);

    // dry_run with cascade shows the plan, changes nothing.
    let r = meta(
        app,
        Method::DELETE,
        "/tables/parent?cascade=true&dry_run=true",
        None,
    )
    .await;
    assert_eq!(r.ok()["dry_run"], true);
    assert_eq!(table_names(app).await, ["child", "parent"]);

    // cascade drops the foreign key (not the child's rows) and the table.
    let r = meta(app, Method::DELETE, "/tables/parent?cascade=true", None).await;
    let id = r.ok()["migration"].as_i64().unwrap();
    assert_eq!(table_names(app).await, ["child"]);
    let child = meta(app, Method::GET, "/tables/child", None)
        .await
        .ok()
        .clone();
    assert_eq!(child["foreign_keys"], json!([]));
    let r = call(app, As::Service, Method::GET, "/meta/v1/tables/child", None).await;
    assert_eq!(r.status, 200);
    let rows = db
        .query_one_raw(goforward_core::sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM child",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rows.try_get_by_index::<i64>(0).unwrap(), 1);

    // Reverting brings the table back empty: the orphaned child row would
    // violate the restored foreign key, so the revert is refused as a whole.
    let r = meta(app, Method::POST, &format!("/migrations/{id}/revert"), None).await;
    r.assert_error(409, "meta.data_conflict");
    assert_eq!(table_names(app).await, ["child"]);
    db.execute_unprepared("UPDATE child SET parent_id = NULL")
        .await
        .unwrap();
    meta(app, Method::POST, &format!("/migrations/{id}/revert"), None)
        .await
        .ok();
    assert_eq!(table_names(app).await, ["child", "parent"]);
    let child = meta(app, Method::GET, "/tables/child", None)
        .await
        .ok()
        .clone();
    assert_eq!(
        child["foreign_keys"][0]["foreign_table"], "parent",
        "{child}"
    );
    assert_eq!(child["foreign_keys"][0]["on_delete"], "CASCADE");
}
both!(referenced_tables_need_cascade);

async fn identifiers(app: &TestApp) {
    let long = "x".repeat(64);
    for bad in [
        "a\"b",
        "x; DROP TABLE y",
        "",
        long.as_str(),
        "a'b",
        "goforward_x",
        "tab\tle",
    ] {
        let r = meta(app, Method::POST, "/tables", Some(simple(bad))).await;
        r.assert_error(400, "meta.invalid_identifier");
        let r = meta(
            app,
            Method::POST,
            "/tables",
            Some(json!({"name": "ok", "columns": [{"name": bad, "type": "text"}]})),
        )
        .await;
        r.assert_error(400, "meta.invalid_identifier");
    }
    assert!(table_names(app).await.is_empty());
    assert_eq!(migration_count(app).await, 0);

    // Reserved words and unicode are fine: everything is quoted.
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "select",
            "columns": [
                {"name": "order", "type": "integer", "primary_key": true},
                {"name": "Größe", "type": "text"},
                {"name": "名前", "type": "text", "unique": true},
            ],
            "policy": "public",
        })),
    )
    .await
    .ok();
    let t = meta(app, Method::GET, "/tables/select", None)
        .await
        .ok()
        .clone();
    let names: Vec<&str> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["order", "Größe", "名前"]);
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rest/v1/select",
        Some(json!({"order": 1, "Größe": "L", "名前": "ä"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = call(app, As::Anon, Method::GET, "/rest/v1/select", None).await;
    assert_eq!(r.ok(), &json!([{"order": 1, "Größe": "L", "名前": "ä"}]));
    // Unicode in the path too.
    let r = meta(
        app,
        Method::PATCH,
        "/tables/select/columns/Gr%C3%B6%C3%9Fe",
        Some(json!({"name": "größe2"})),
    )
    .await;
    r.ok();

    // References to things that do not exist are checked, not passed to SQL.
    let r = meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "t2",
            "columns": [{"name": "x", "type": "integer"}],
            "foreign_keys": [{"columns": ["x"], "foreign_table": "nope"}],
        })),
    )
    .await;
    r.assert_error(404, "meta.table_not_found");
    let r = meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "t2",
            "columns": [{"name": "x", "type": "integer"}],
            "indexes": [{"columns": ["y"]}],
        })),
    )
    .await;
    r.assert_error(404, "meta.column_not_found");
    let r = meta(
        app,
        Method::POST,
        "/tables/nope/columns",
        Some(json!({"name": "a", "type": "text"})),
    )
    .await;
    r.assert_error(404, "meta.table_not_found");
    let r = meta(app, Method::DELETE, "/tables/select/columns/nope", None).await;
    r.assert_error(404, "meta.column_not_found");
    let r = meta(app, Method::DELETE, "/indexes/nope", None).await;
    r.assert_error(404, "meta.constraint_not_found");
    let r = meta(
        app,
        Method::DELETE,
        "/tables/select/foreign_keys/nope",
        None,
    )
    .await;
    r.assert_error(404, "meta.constraint_not_found");
    // Closed set of types; unknown fields refused.
    let r = meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({"name": "t3", "columns": [{"name": "x", "type": "text; drop table select"}]})),
    )
    .await;
    r.assert_error(400, "meta.invalid_request");
    let r = meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({"name": "t3", "columns": [], "evil": 1})),
    )
    .await;
    r.assert_error(400, "meta.invalid_request");
    let r = meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({"name": "t3", "columns": []})),
    )
    .await;
    r.assert_error(400, "meta.invalid_request");
    // Exposure policies are checked.
    let r = meta(app, Method::POST, "/tables", Some(json!({"name": "t4", "columns": [{"name": "a", "type": "text"}], "policy": "owner:nope"}))).await;
    r.assert_error(404, "meta.column_not_found");
    let r = meta(
        app,
        Method::POST,
        "/tables",
        Some(
            json!({"name": "t4", "columns": [{"name": "a", "type": "text"}], "policy": "everyone"}),
        ),
    )
    .await;
    r.assert_error(400, "meta.invalid_request");
    let r = meta(
        app,
        Method::PUT,
        "/tables/select/policy",
        Some(json!({"policy": "owner:nope"})),
    )
    .await;
    r.assert_error(404, "meta.column_not_found");
    let r = meta(
        app,
        Method::PUT,
        "/tables/nope/policy",
        Some(json!({"policy": "public"})),
    )
    .await;
    r.assert_error(404, "meta.table_not_found");
    // Already exists.
    let r = meta(app, Method::POST, "/tables", Some(simple("select"))).await;
    r.assert_error(409, "meta.already_exists");
    // Bad JSON: GoForward's shape, not plain text.
    let r = app
        .client()
        .post(app.url("/meta/v1/tables"))
        .header("apikey", app.service_key())
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    assert_eq!(table_names(app).await, ["select"]);
}
both!(identifiers);

async fn conflicting_data_changes_nothing(app: &TestApp) {
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "notes",
            "columns": [
                {"name": "id", "type": "integer", "primary_key": true},
                {"name": "body", "type": "text"},
                {"name": "tag", "type": "text"},
            ],
        })),
    )
    .await
    .ok();
    use goforward_core::sea_orm::ConnectionTrait;
    app.db()
        .execute_unprepared(
            "INSERT INTO notes (id, body, tag) VALUES (1, NULL, 'a'), (2, 'x', 'a')",
        )
        .await
        .unwrap();
    let before = meta(app, Method::GET, "/tables/notes", None)
        .await
        .ok()
        .clone();
    let r = meta(
        app,
        Method::PATCH,
        "/tables/notes/columns/body",
        Some(json!({"nullable": false})),
    )
    .await;
    r.assert_error(409, "meta.data_conflict");
    let r = meta(
        app,
        Method::PATCH,
        "/tables/notes/columns/tag",
        Some(json!({"unique": true})),
    )
    .await;
    r.assert_error(409, "meta.data_conflict");
    let r = meta(
        app,
        Method::POST,
        "/tables/notes/indexes",
        Some(json!({"columns": ["tag"], "unique": true})),
    )
    .await;
    r.assert_error(409, "meta.data_conflict");
    let r = meta(
        app,
        Method::POST,
        "/tables/notes/columns",
        Some(json!({"name": "n", "type": "integer", "nullable": false})),
    )
    .await;
    r.assert_error(409, "meta.data_conflict");
    let r = meta(
        app,
        Method::PATCH,
        "/tables/notes/columns/tag",
        Some(json!({})),
    )
    .await;
    r.assert_error(400, "meta.invalid_request");
    let after = meta(app, Method::GET, "/tables/notes", None)
        .await
        .ok()
        .clone();
    assert_eq!(before, after);
    assert_eq!(migration_count(app).await, 1);

    // Truncate deletes every row; it is data, not a migration.
    meta(app, Method::POST, "/tables/notes/truncate", None)
        .await
        .ok();
    use goforward_core::sea_orm::Statement;
    let db = app.db();
    let n = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM notes",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(migration_count(app).await, 1);
    // With the data gone, the same change goes through.
    meta(
        app,
        Method::PATCH,
        "/tables/notes/columns/body",
        Some(json!({"nullable": false, "default": "empty"})),
    )
    .await
    .ok();
    let t = meta(app, Method::GET, "/tables/notes", None)
        .await
        .ok()
        .clone();
    assert_eq!(t["columns"][1]["nullable"], false);
    assert!(
        t["columns"][1]["default"]
            .as_str()
            .unwrap()
            .contains("empty")
    );
}
both!(conflicting_data_changes_nothing);

/// Every route answers (no wiring 500s), for an administrator and for nobody.
async fn every_route_answers(app: &TestApp) {
    meta(app, Method::POST, "/tables", Some(simple("t")))
        .await
        .ok();
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/tables", None),
        (Method::GET, "/tables/t", None),
        (Method::GET, "/views", None),
        (Method::GET, "/schemas", None),
        (Method::GET, "/functions", None),
        (Method::GET, "/triggers", None),
        (Method::GET, "/relationships", None),
        (Method::GET, "/roles", None),
        (Method::GET, "/policies", None),
        (Method::GET, "/migrations", None),
        (Method::GET, "/migrations/export", None),
        (Method::GET, "/tables/t/export", None),
        (Method::POST, "/tables/t/import", None),
        (Method::POST, "/tables?dry_run=true", Some(simple("u"))),
        (
            Method::PATCH,
            "/tables/t?dry_run=true",
            Some(json!({"name": "v"})),
        ),
        (
            Method::POST,
            "/tables/t/copy?dry_run=true",
            Some(json!({"name": "w"})),
        ),
        (Method::POST, "/tables/t/truncate?dry_run=true", None),
        (
            Method::PUT,
            "/tables/t/policy",
            Some(json!({"policy": "none"})),
        ),
        (
            Method::POST,
            "/tables/t/columns?dry_run=true",
            Some(json!({"name": "c", "type": "text"})),
        ),
        (
            Method::PATCH,
            "/tables/t/columns/id?dry_run=true",
            Some(json!({"name": "id2"})),
        ),
        (Method::DELETE, "/tables/t/columns/id?dry_run=true", None),
        (
            Method::POST,
            "/tables/t/foreign_keys?dry_run=true",
            Some(json!({"columns": ["id"], "foreign_table": "t"})),
        ),
        (Method::DELETE, "/tables/t/foreign_keys/x", None),
        (
            Method::POST,
            "/tables/t/indexes?dry_run=true",
            Some(json!({"columns": ["id"]})),
        ),
        (Method::DELETE, "/indexes/x", None),
        (
            Method::POST,
            "/tables/t/rls?dry_run=true",
            Some(json!({"enabled": true})),
        ),
        (
            Method::POST,
            "/tables/t/policies?dry_run=true",
            Some(json!({"name": "p", "using": "true"})),
        ),
        (Method::DELETE, "/tables/t/policies/p", None),
        (Method::POST, "/migrations/999/revert", None),
        (Method::DELETE, "/tables/t?dry_run=true", None),
        (Method::POST, "/sql/run", Some(json!({"sql": "SELECT 1"}))),
        (Method::GET, "/sql/history", None),
        (Method::GET, "/sql/saved", None),
        (Method::GET, "/sql/audit", None),
        (Method::GET, "/nope", None),
    ];
    for (method, path, body) in routes {
        let r = meta(app, method.clone(), path, body.clone()).await;
        assert!(
            r.status.as_u16() < 500,
            "{method} {path}: {} {}",
            r.status,
            r.text
        );
        assert!(
            r.json.is_object() || r.json.is_array(),
            "{method} {path}: {}",
            r.text
        );
        let r = call(
            app,
            As::User,
            method.clone(),
            &format!("/meta/v1{path}"),
            body,
        )
        .await;
        assert!(
            r.status == 403 || (path.starts_with("/sql") && r.status == 404),
            "{method} {path} as a user: {} {}",
            r.status,
            r.text
        );
    }
    assert_eq!(table_names(app).await, ["t"]);
}
both!(every_route_answers);
