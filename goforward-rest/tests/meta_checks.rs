//! Check constraints through `/meta/v1` (issue #5): declared with a new
//! table, added and dropped later, each a revertible migration with
//! `dry_run`; expressions vetted (no injection, no subqueries, only the
//! table's columns); listed by introspection on both backends; and (SQLite)
//! table rebuilds that keep checks, triggers and `AUTOINCREMENT`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod meta_common;

use goforward_core::sea_orm::{ConnectionTrait, DbBackend};
use goforward_core::testing::TestApp;
use meta_common::{meta, table_names};
use reqwest::Method;
use serde_json::{Value, json};

fn check_names(table: &Value) -> Vec<String> {
    let mut names: Vec<String> = table["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}

async fn table(app: &TestApp, name: &str) -> Value {
    meta(app, Method::GET, &format!("/tables/{name}"), None)
        .await
        .ok()
        .clone()
}

async fn exec(app: &TestApp, sql: &str) -> bool {
    app.db().execute_unprepared(sql).await.is_ok()
}

async fn migrations_count(app: &TestApp) -> usize {
    meta(app, Method::GET, "/migrations", None)
        .await
        .ok()
        .as_array()
        .expect("array")
        .len()
}

async fn latest_migration(app: &TestApp) -> i64 {
    let r = meta(app, Method::GET, "/migrations", None).await;
    r.ok()
        .as_array()
        .and_then(|a| a.iter().rev().find(|m| m["reverted_at"].is_null()))
        .and_then(|m| m["id"].as_i64())
        .expect("an applied migration")
}

async fn checks_lifecycle(app: &TestApp) {
    // -- Declared with the table: one named, one synthesised name.
    let r = meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "items",
            "columns": [
                {"name": "id", "type": "integer", "primary_key": true, "identity": true},
                {"name": "price", "type": "integer", "nullable": false},
                {"name": "qty", "type": "integer"},
                {"name": "label", "type": "text"},
            ],
            "checks": [
                {"name": "price_positive", "expression": "price > 0"},
                {"expression": "qty >= 0 AND qty < 1000"},
            ],
        })),
    )
    .await;
    let up = r.ok()["sql"][0].as_str().expect("sql").to_owned();
    assert!(
        up.contains("CONSTRAINT \"price_positive\" CHECK (\"price\" > 0)"),
        "{up}"
    );
    let t = table(app, "items").await;
    assert_eq!(check_names(&t), ["items_qty_check", "price_positive"]);
    let def = t["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "price_positive")
        .unwrap()["definition"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(def.starts_with("CHECK (") && def.contains("price"), "{def}");
    assert!(
        exec(
            app,
            "INSERT INTO items (price, qty, label) VALUES (5, 1, 'ok')"
        )
        .await
    );
    assert!(
        !exec(
            app,
            "INSERT INTO items (price, qty, label) VALUES (0, 1, 'x')"
        )
        .await
    );
    assert!(
        !exec(
            app,
            "INSERT INTO items (price, qty, label) VALUES (1, 5000, 'x')"
        )
        .await
    );

    // -- dry_run: the SQL, nothing changed.
    let before = migrations_count(app).await;
    let r = meta(
        app,
        Method::POST,
        "/tables/items/checks?dry_run=true",
        Some(json!({"name": "label_short", "expression": "length(label) < 10"})),
    )
    .await;
    assert_eq!(r.ok()["dry_run"], true);
    assert!(r.json["sql"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(r.json["down"].as_array().is_some_and(|s| !s.is_empty()));
    assert_eq!(check_names(&table(app, "items").await).len(), 2);
    assert_eq!(migrations_count(app).await, before);

    // -- Existing rows violating a new check: 409, nothing changed.
    meta(
        app,
        Method::POST,
        "/tables/items/checks",
        Some(json!({"name": "label_long", "expression": "length(label) > 5"})),
    )
    .await
    .assert_error(409, "meta.data_conflict");
    assert_eq!(check_names(&table(app, "items").await).len(), 2);
    assert_eq!(migrations_count(app).await, before);

    // -- Added for real, enforced, then reverted.
    let r = meta(
        app,
        Method::POST,
        "/tables/items/checks",
        Some(json!({"name": "label_short", "expression": "length(label) < 10"})),
    )
    .await;
    let id = r.ok()["migration"].as_i64().expect("migration");
    assert_eq!(r.json["name"], "add_check_items_label_short");
    assert_eq!(
        check_names(&table(app, "items").await),
        ["items_qty_check", "label_short", "price_positive"]
    );
    assert!(
        !exec(
            app,
            "INSERT INTO items (price, label) VALUES (1, 'far too long a label')"
        )
        .await
    );
    // The rows survived (SQLite rebuilt the table).
    let r = meta(app, Method::GET, "/tables/items/export", None).await;
    assert_eq!(r.ok().as_array().map(Vec::len), Some(1));
    // A taken name.
    meta(
        app,
        Method::POST,
        "/tables/items/checks",
        Some(json!({"name": "label_short", "expression": "qty > 0"})),
    )
    .await
    .assert_error(409, "meta.already_exists");
    meta(app, Method::POST, &format!("/migrations/{id}/revert"), None)
        .await
        .ok();
    assert_eq!(
        check_names(&table(app, "items").await),
        ["items_qty_check", "price_positive"]
    );
    assert!(
        exec(
            app,
            "INSERT INTO items (price, label) VALUES (2, 'far too long a label')"
        )
        .await
    );

    // -- Dropped, then the drop reverted.
    let r = meta(
        app,
        Method::DELETE,
        "/tables/items/checks/price_positive?dry_run=true",
        None,
    )
    .await;
    assert_eq!(r.ok()["dry_run"], true);
    assert_eq!(check_names(&table(app, "items").await).len(), 2);
    let r = meta(
        app,
        Method::DELETE,
        "/tables/items/checks/price_positive",
        None,
    )
    .await;
    r.ok();
    assert_eq!(r.json["name"], "drop_check_items_price_positive");
    assert_eq!(check_names(&table(app, "items").await), ["items_qty_check"]);
    let id = latest_migration(app).await;
    meta(app, Method::POST, &format!("/migrations/{id}/revert"), None)
        .await
        .ok();
    assert_eq!(
        check_names(&table(app, "items").await),
        ["items_qty_check", "price_positive"]
    );
    assert!(!exec(app, "INSERT INTO items (price) VALUES (-1)").await);
    meta(app, Method::DELETE, "/tables/items/checks/nope", None)
        .await
        .assert_error(404, "meta.constraint_not_found");
    meta(
        app,
        Method::DELETE,
        "/tables/nope/checks/price_positive",
        None,
    )
    .await
    .assert_error(404, "meta.table_not_found");

    // -- A column a check reads cannot be dropped.
    let r = meta(app, Method::DELETE, "/tables/items/columns/qty", None).await;
    r.assert_error(409, "meta.column_in_use");
    assert_eq!(
        r.json["details"]["used_by"],
        "check constraint \"items_qty_check\""
    );
    assert!(
        table(app, "items").await["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "qty")
    );
    // Other rebuilds keep the checks (SQLite): a NOT NULL change.
    meta(
        app,
        Method::PATCH,
        "/tables/items/columns/label",
        Some(json!({"nullable": false})),
    )
    .await
    .ok();
    assert_eq!(
        check_names(&table(app, "items").await),
        ["items_qty_check", "price_positive"]
    );
    assert!(!exec(app, "INSERT INTO items (price, label) VALUES (-3, 'x')").await);

    // -- The migrations export carries the check statements.
    let r = meta(app, Method::GET, "/migrations/export?format=sql", None).await;
    assert!(r.ok().to_string().contains("price_positive"));
}

both!(checks_lifecycle);

async fn bad_expressions_are_refused(app: &TestApp) {
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "goods",
            "columns": [
                {"name": "id", "type": "integer", "primary_key": true},
                {"name": "price", "type": "integer"},
            ],
        })),
    )
    .await
    .ok();
    let before = migrations_count(app).await;
    for expression in [
        "price > 0); DROP TABLE goods; --",
        "price > 0; DROP TABLE goods",
        "1 = 1) OR (1 = 1",
        "price > 0 -- comment",
        "price > 0 /* comment */",
        "DROP TABLE goods",
        "SELECT 1",
        "price > (SELECT max(price) FROM goods)",
        "EXISTS (SELECT 1 FROM goods)",
        "price IN (SELECT price FROM goods)",
        "missing > 0",
        "goods.price > 0",
        "pg_sleep(1) IS NULL",
        "price > $1",
        "price > 0 price",
        "",
        "(((price > 0)",
    ] {
        let r = meta(
            app,
            Method::POST,
            "/tables/goods/checks",
            Some(json!({"expression": expression})),
        )
        .await;
        r.assert_error(400, "meta.invalid_request");
        assert!(
            r.json["message"]
                .as_str()
                .unwrap()
                .starts_with("expression:"),
            "{expression}: {}",
            r.text
        );
        // Also inside a new table: not created.
        meta(
            app,
            Method::POST,
            "/tables",
            Some(json!({
                "name": "other",
                "columns": [{"name": "price", "type": "integer"}],
                "checks": [{"expression": expression}],
            })),
        )
        .await
        .assert_error(400, "meta.invalid_request");
    }
    // Bad names, unknown fields.
    meta(
        app,
        Method::POST,
        "/tables/goods/checks",
        Some(json!({"name": "a\"b", "expression": "price > 0"})),
    )
    .await
    .assert_error(400, "meta.invalid_identifier");
    meta(
        app,
        Method::POST,
        "/tables/goods/checks",
        Some(json!({"expression": "price > 0", "sql": "x"})),
    )
    .await
    .assert_error(400, "meta.invalid_request");
    assert_eq!(table_names(app).await, ["goods"]);
    assert!(
        table(app, "goods").await["checks"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(migrations_count(app).await, before);
    // The table is intact.
    assert!(exec(app, "INSERT INTO goods (id, price) VALUES (1, 1)").await);
}

both!(bad_expressions_are_refused);

/// SQLite: introspection lists column- and table-level checks of a table
/// made by hand; rebuilds keep triggers, checks and AUTOINCREMENT; a
/// trigger reading a column keeps it from being dropped.
#[tokio::test]
async fn sqlite_rebuild_keeps_checks_triggers_and_autoincrement() {
    let app = meta_common::start(false, "sqlite_rebuild")
        .await
        .expect("app");
    assert_eq!(app.db().get_database_backend(), DbBackend::Sqlite);
    for sql in [
        "CREATE TABLE hand (a integer CHECK (a > 0), b integer CONSTRAINT b_small CHECK (b < 10), \
         c integer, CHECK (c <> a), CHECK (1 = 1))",
        "CREATE TABLE log (id integer PRIMARY KEY, item integer, note text)",
        "CREATE TABLE things (id integer PRIMARY KEY AUTOINCREMENT, note text, size integer, \
         CONSTRAINT size_ok CHECK (size >= 0))",
        "CREATE TRIGGER things_log AFTER INSERT ON things BEGIN \
         INSERT INTO log (item, note) VALUES (new.id, new.note); END",
    ] {
        app.db().execute_unprepared(sql).await.expect(sql);
    }
    let hand = table(&app, "hand").await;
    let checks: Vec<(String, String)> = hand["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["definition"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        checks,
        [
            ("hand_a_check".to_owned(), "CHECK (a > 0)".to_owned()),
            ("b_small".to_owned(), "CHECK (b < 10)".to_owned()),
            ("hand_c_check".to_owned(), "CHECK (c <> a)".to_owned()),
            ("hand_check".to_owned(), "CHECK (1 = 1)".to_owned()),
        ]
    );

    for sql in [
        "INSERT INTO things (note, size) VALUES ('a', 1)",
        "INSERT INTO things (note, size) VALUES ('b', 2)",
        "INSERT INTO things (note, size) VALUES ('c', 3)",
        "DELETE FROM things WHERE id = 3",
    ] {
        app.db().execute_unprepared(sql).await.expect(sql);
    }
    // A rebuild: the type of `note` changes.
    let r = meta(
        &app,
        Method::PATCH,
        "/tables/things/columns/size",
        Some(json!({"type": "bigint"})),
    )
    .await;
    r.ok();
    let things = table(&app, "things").await;
    assert_eq!(check_names(&things), ["size_ok"]);
    let triggers = meta(&app, Method::GET, "/triggers", None).await;
    assert!(
        triggers
            .ok()
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "things_log"),
        "{}",
        triggers.text
    );
    let sql: (String,) = {
        let row = app
            .db()
            .query_one_raw(goforward_core::sea_orm::Statement::from_string(
                DbBackend::Sqlite,
                "SELECT sql FROM sqlite_master WHERE name = 'things'",
            ))
            .await
            .unwrap()
            .unwrap();
        (row.try_get_by_index(0).unwrap(),)
    };
    assert!(sql.0.contains("AUTOINCREMENT"), "{}", sql.0);
    // The check holds, the trigger fires, the counter did not go back.
    assert!(!exec(&app, "INSERT INTO things (note, size) VALUES ('bad', -1)").await);
    assert!(exec(&app, "INSERT INTO things (note, size) VALUES ('d', 4)").await);
    let row = app
        .db()
        .query_one_raw(goforward_core::sea_orm::Statement::from_string(
            DbBackend::Sqlite,
            "SELECT (SELECT max(id) FROM things), (SELECT count(*) FROM log WHERE note = 'd')",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 4);
    assert_eq!(row.try_get_by_index::<i64>(1).unwrap(), 1);
    // Reverting rebuilds again, keeping them too.
    let id = latest_migration(&app).await;
    meta(
        &app,
        Method::POST,
        &format!("/migrations/{id}/revert"),
        None,
    )
    .await
    .ok();
    assert!(exec(&app, "INSERT INTO things (note, size) VALUES ('e', 5)").await);
    let row = app
        .db()
        .query_one_raw(goforward_core::sea_orm::Statement::from_string(
            DbBackend::Sqlite,
            "SELECT (SELECT max(id) FROM things), (SELECT count(*) FROM log WHERE note = 'e')",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 5);
    assert_eq!(row.try_get_by_index::<i64>(1).unwrap(), 1);

    // The trigger reads `note`: dropping it is refused, nothing changes.
    let before = migrations_count(&app).await;
    let r = meta(&app, Method::DELETE, "/tables/things/columns/note", None).await;
    r.assert_error(409, "meta.column_in_use");
    assert_eq!(r.json["details"]["used_by"], "trigger \"things_log\"");
    assert_eq!(migrations_count(&app).await, before);
    assert_eq!(
        table(&app, "things").await["columns"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    // A column only a check reads: refused too.
    meta(&app, Method::DELETE, "/tables/hand/columns/b", None)
        .await
        .assert_error(409, "meta.column_in_use");
    // Adding a check through the API to the hand-made table keeps the others.
    meta(
        &app,
        Method::POST,
        "/tables/hand/checks",
        Some(json!({"expression": "c < 100"})),
    )
    .await
    .ok();
    assert_eq!(
        check_names(&table(&app, "hand").await),
        [
            "b_small",
            "hand_a_check",
            "hand_c_check",
            "hand_c_check1",
            "hand_check"
        ]
    );

    // A rename is SQLite's own RENAME COLUMN: the trigger follows it.
    meta(
        &app,
        Method::PATCH,
        "/tables/things/columns/note",
        Some(json!({"name": "remark"})),
    )
    .await
    .ok();
    let text = trigger_sql(&app, "things_log").await.expect("trigger kept");
    assert!(text.contains("remark"), "{text}");
    assert!(exec(&app, "INSERT INTO things (remark, size) VALUES ('f', 6)").await);

    // Dropping the table and reverting brings the trigger back.
    meta(&app, Method::DELETE, "/tables/things", None)
        .await
        .ok();
    assert!(trigger_sql(&app, "things_log").await.is_none());
    let id = latest_migration(&app).await;
    meta(
        &app,
        Method::POST,
        &format!("/migrations/{id}/revert"),
        None,
    )
    .await
    .ok();
    assert!(trigger_sql(&app, "things_log").await.is_some());
    assert_eq!(check_names(&table(&app, "things").await), ["size_ok"]);
    assert!(!exec(&app, "INSERT INTO things (remark, size) VALUES ('g', -7)").await);
    app.stop().await;
}

/// The `CREATE TRIGGER` text of trigger `name`, as `/meta/v1/triggers` lists it.
async fn trigger_sql(app: &TestApp, name: &str) -> Option<String> {
    let r = meta(app, Method::GET, "/triggers", None).await;
    r.ok()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .map(|t| t["definition"].as_str().unwrap().to_owned())
}
