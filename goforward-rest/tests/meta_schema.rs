//! Acceptance of the meta API (issue #5): build a small schema entirely
//! through `/meta/v1`, read it back, use it through `/rest/v1` without a
//! restart, change a column type, then revert every recorded migration one
//! by one to an empty schema — on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod meta_common;

use goforward_core::testing::TestApp;
use meta_common::{As, call, meta, table_names};
use reqwest::Method;
use serde_json::{Value, json};

fn find<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|x| x[key] == name))
        .unwrap_or_else(|| panic!("no {key} = {name} in {list}"))
}

async fn build_use_change_and_revert(app: &TestApp) {
    // -- Build: three tables, foreign keys, an index, a unique constraint.
    let r = meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "authors",
            "columns": [
                {"name": "id", "type": "bigint", "primary_key": true, "identity": true},
                {"name": "name", "type": "text", "nullable": false},
                {"name": "email", "type": "text", "unique": true},
            ],
            "policy": "public",
        })),
    )
    .await;
    let authors_migration = r.ok()["migration"].as_i64().expect("migration id");

    // dry_run shows the SQL and changes nothing.
    let books = json!({
        "name": "books",
        "columns": [
            {"name": "id", "type": "bigint", "primary_key": true, "identity": true},
            {"name": "title", "type": "text", "nullable": false},
            {"name": "pages", "type": "integer"},
            {"name": "editor_id", "type": "bigint"},
        ],
        "foreign_keys": [
            {"columns": ["editor_id"], "foreign_table": "authors", "on_delete": "set_null", "on_update": "cascade"},
        ],
        "indexes": [{"columns": ["title"]}],
        "policy": "public",
    });
    let r = meta(
        app,
        Method::POST,
        "/tables?dry_run=true",
        Some(books.clone()),
    )
    .await;
    let dry = r.ok();
    assert_eq!(dry["dry_run"], true);
    let sql = dry["sql"].as_array().unwrap();
    assert!(
        sql[0]
            .as_str()
            .unwrap()
            .starts_with("CREATE TABLE \"books\""),
        "{dry}"
    );
    assert!(
        sql[1].as_str().unwrap().starts_with("CREATE INDEX"),
        "{dry}"
    );
    assert_eq!(table_names(app).await, ["authors"]);

    meta(app, Method::POST, "/tables", Some(books)).await.ok();
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "authorships",
            "columns": [
                {"name": "author_id", "type": "bigint", "nullable": false},
                {"name": "book_id", "type": "bigint", "nullable": false},
                {"name": "role", "type": "text", "default": "writer"},
            ],
            "primary_key": ["author_id", "book_id"],
            "foreign_keys": [
                {"columns": ["author_id"], "foreign_table": "authors", "on_delete": "cascade"},
                {"columns": ["book_id"], "foreign_table": "books", "on_delete": "cascade"},
            ],
            "policy": "public_read",
        })),
    )
    .await
    .ok();

    // -- Read back through introspection.
    assert_eq!(table_names(app).await, ["authors", "authorships", "books"]);
    let books = meta(app, Method::GET, "/tables/books", None)
        .await
        .ok()
        .clone();
    assert_eq!(books["kind"], "table");
    assert_eq!(books["primary_key"], json!(["id"]));
    assert_eq!(find(&books["columns"], "name", "id")["identity"], true);
    assert_eq!(find(&books["columns"], "name", "title")["nullable"], false);
    let fk = &books["foreign_keys"][0];
    assert_eq!(fk["columns"], json!(["editor_id"]));
    assert_eq!(fk["foreign_table"], "authors");
    assert_eq!(fk["foreign_columns"], json!(["id"]));
    assert_eq!(fk["on_delete"], "SET NULL");
    assert_eq!(fk["on_update"], "CASCADE");
    let idx = find(&books["indexes"], "name", "books_title_idx");
    assert_eq!(idx["columns"], json!(["title"]));
    assert_eq!(idx["unique"], false);
    let authors = meta(app, Method::GET, "/tables/authors", None)
        .await
        .ok()
        .clone();
    assert_eq!(
        authors["unique"][0]["columns"],
        json!(["email"]),
        "{authors}"
    );
    let junction = meta(app, Method::GET, "/tables/authorships", None)
        .await
        .ok()
        .clone();
    assert_eq!(junction["primary_key"], json!(["author_id", "book_id"]));
    assert_eq!(
        find(&junction["foreign_keys"], "foreign_table", "books")["on_delete"],
        "CASCADE"
    );
    assert!(
        find(&junction["columns"], "name", "role")["default"]
            .as_str()
            .is_some_and(|d| d.contains("writer"))
    );

    let graph = meta(app, Method::GET, "/relationships", None)
        .await
        .ok()
        .clone();
    assert_eq!(graph["nodes"], json!(["authors", "authorships", "books"]));
    let m2m = &graph["many_to_many"];
    assert_eq!(m2m.as_array().unwrap().len(), 1, "{graph}");
    assert_eq!(m2m[0]["junction"], "authorships");
    assert_eq!(m2m[0]["left"], "authors");
    assert_eq!(m2m[0]["right"], "books");
    let edge = find(&graph["edges"], "from", "books");
    assert_eq!(edge["kind"], "many_to_one");
    assert_eq!(edge["to"], "authors");

    // -- Use through /rest/v1, no restart.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rest/v1/authors",
        Some(json!({"name": "Ann", "email": "ann@example.com"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/rest/v1/authors?select=id,name",
        None,
    )
    .await;
    assert_eq!(r.ok(), &json!([{"id": 1, "name": "Ann"}]));
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rest/v1/books",
        Some(json!({"title": "Rust", "pages": 300, "editor_id": 1})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // The unique constraint holds through REST.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rest/v1/authors",
        Some(json!({"name": "Ann 2", "email": "ann@example.com"})),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text);
    // public_read: anon reads but cannot write the junction; service_role can.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rest/v1/authorships",
        Some(json!({"author_id": 1, "book_id": 1})),
    )
    .await;
    assert!(
        r.status == 401 || r.status == 403,
        "{} {}",
        r.status,
        r.text
    );
    let r = call(
        app,
        As::Service,
        Method::POST,
        "/rest/v1/authorships",
        Some(json!({"author_id": 1, "book_id": 1})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/rest/v1/books?select=title,authors(name)",
        None,
    )
    .await;
    // Two relationships to authors (the editor FK, the authorships junction):
    // ambiguous without a hint, as in PostgREST.
    assert_eq!(r.status, 300, "{}", r.text);
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/rest/v1/books?select=title,editor:authors!books_editor_id_fkey(name),authors!authorships(name)",
        None,
    )
    .await;
    assert_eq!(
        r.ok(),
        &json!([{"title": "Rust", "editor": {"name": "Ann"}, "authors": [{"name": "Ann"}]}])
    );

    // -- Change a column type; the rows survive.
    let r = meta(
        app,
        Method::PATCH,
        "/tables/books/columns/pages",
        Some(json!({"type": "text", "nullable": false})),
    )
    .await;
    r.ok();
    let books = meta(app, Method::GET, "/tables/books", None)
        .await
        .ok()
        .clone();
    let pages = find(&books["columns"], "name", "pages");
    assert_eq!(
        pages["data_type"].as_str().unwrap().to_lowercase(),
        "text",
        "{books}"
    );
    assert_eq!(pages["nullable"], false);
    // The rebuild (SQLite) kept foreign keys and indexes.
    assert_eq!(books["foreign_keys"][0]["on_delete"], "SET NULL");
    find(&books["indexes"], "name", "books_title_idx");
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/rest/v1/books?select=title,pages",
        None,
    )
    .await;
    assert_eq!(r.ok(), &json!([{"title": "Rust", "pages": "300"}]));
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/rest/v1/authorships?select=book_id",
        None,
    )
    .await;
    assert_eq!(
        r.ok(),
        &json!([{"book_id": 1}]),
        "junction rows survive the rebuild"
    );

    // -- History and export.
    let list = meta(app, Method::GET, "/migrations", None)
        .await
        .ok()
        .clone();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "create_table_authors",
            "create_table_books",
            "create_table_authorships",
            "alter_column_books_pages"
        ]
    );
    assert!(list[0]["applied_by"] == meta_common::ADMIN);
    let export = meta(app, Method::GET, "/migrations/export", None)
        .await
        .ok()
        .clone();
    let files = export["files"].as_array().unwrap();
    assert_eq!(files.len(), 8);
    assert!(
        files[0]["name"]
            .as_str()
            .unwrap()
            .ends_with("_create_table_authors.up.sql")
    );
    assert!(
        files[0]["content"]
            .as_str()
            .unwrap()
            .contains("CREATE TABLE \"authors\"")
    );
    assert!(
        files[1]["content"]
            .as_str()
            .unwrap()
            .contains("DROP TABLE \"authors\"")
    );

    // -- Revert one by one, newest first; an older one is refused.
    let r = meta(
        app,
        Method::POST,
        &format!("/migrations/{authors_migration}/revert"),
        None,
    )
    .await;
    r.assert_error(409, "meta.not_latest");
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    for (n, id) in ids.iter().rev().enumerate() {
        meta(app, Method::POST, &format!("/migrations/{id}/revert"), None)
            .await
            .ok();
        if n == 0 {
            let books = meta(app, Method::GET, "/tables/books", None)
                .await
                .ok()
                .clone();
            let pages = find(&books["columns"], "name", "pages");
            assert_eq!(
                pages["data_type"].as_str().unwrap().to_lowercase(),
                "integer",
                "{books}"
            );
            assert_eq!(pages["nullable"], true);
            let r = call(
                app,
                As::Anon,
                Method::GET,
                "/rest/v1/books?select=pages",
                None,
            )
            .await;
            assert_eq!(r.ok(), &json!([{"pages": 300}]));
        }
    }
    assert!(table_names(app).await.is_empty());
    let r = call(app, As::Anon, Method::GET, "/rest/v1/authors", None).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let list = meta(app, Method::GET, "/migrations", None)
        .await
        .ok()
        .clone();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|m| m["reverted_at"].is_string())
    );
    // Reverting twice is refused.
    let r = meta(
        app,
        Method::POST,
        &format!("/migrations/{}/revert", ids[0]),
        None,
    )
    .await;
    r.assert_error(404, "meta.migration_not_found");
}
both!(build_use_change_and_revert);

/// Every kind of change applies, shows in introspection, keeps the rows,
/// and reverts in order back to nothing.
async fn every_change_reverts(app: &TestApp) {
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({"name": "parent", "columns": [
            {"name": "id", "type": "integer", "primary_key": true},
            {"name": "code", "type": "text", "unique": true},
        ]})),
    )
    .await
    .ok();
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({"name": "child", "columns": [
            {"name": "id", "type": "integer", "primary_key": true},
            {"name": "parent_id", "type": "integer"},
            {"name": "note", "type": "text"},
        ], "policy": "public"})),
    )
    .await
    .ok();
    use goforward_core::sea_orm::ConnectionTrait;
    app.db()
        .execute_unprepared("INSERT INTO parent (id, code) VALUES (1, 'p1'), (2, 'p2')")
        .await
        .unwrap();
    app.db()
        .execute_unprepared(
            "INSERT INTO child (id, parent_id, note) VALUES (10, 1, 'a'), (11, 2, 'b')",
        )
        .await
        .unwrap();
    let rows = || async {
        call(
            app,
            As::Anon,
            Method::GET,
            "/rest/v1/child?select=id&order=id",
            None,
        )
        .await
        .ok()
        .clone()
    };

    let steps: Vec<(Method, &str, Value)> = vec![
        (
            Method::POST,
            "/tables/child/foreign_keys",
            json!({"columns": ["parent_id"], "foreign_table": "parent", "on_delete": "cascade"}),
        ),
        (
            Method::POST,
            "/tables/child/indexes",
            json!({"columns": ["note"]}),
        ),
        (
            Method::POST,
            "/tables/child/columns",
            json!({"name": "flag", "type": "boolean", "nullable": false, "default": false}),
        ),
        (
            Method::POST,
            "/tables/child/columns",
            json!({"name": "tag", "type": "text", "unique": true}),
        ),
        (
            Method::PATCH,
            "/tables/child/columns/note",
            json!({"name": "body"}),
        ),
        (Method::DELETE, "/tables/child/columns/tag", Value::Null),
        (Method::PATCH, "/tables/child", json!({"name": "kid"})),
    ];
    for (method, path, body) in steps {
        let body = (!body.is_null()).then_some(body);
        meta(app, method, path, body).await.ok();
    }
    let kid = meta(app, Method::GET, "/tables/kid", None)
        .await
        .ok()
        .clone();
    let names: Vec<&str> = kid["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "parent_id", "body", "flag"], "{kid}");
    assert_eq!(kid["foreign_keys"][0]["on_delete"], "CASCADE", "{kid}");
    assert_eq!(
        kid["indexes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| !i["constraint"].as_bool().unwrap())
            .count(),
        1,
        "{kid}"
    );
    // The policy followed the rename; the rows survived every rebuild.
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/rest/v1/kid?select=id,body,flag&order=id",
        None,
    )
    .await;
    assert_eq!(
        r.ok(),
        &json!([{"id": 10, "body": "a", "flag": false}, {"id": 11, "body": "b", "flag": false}])
    );
    // The foreign key works (cascade).
    app.db()
        .execute_unprepared("DELETE FROM parent WHERE id = 2")
        .await
        .unwrap();
    let r = call(app, As::Anon, Method::GET, "/rest/v1/kid?select=id", None).await;
    assert_eq!(r.ok(), &json!([{"id": 10}]));

    // Drop the foreign key and the index by name.
    let fk = kid["foreign_keys"][0]["name"].as_str().unwrap().to_owned();
    meta(
        app,
        Method::DELETE,
        &format!("/tables/kid/foreign_keys/{fk}"),
        None,
    )
    .await
    .ok();
    let idx = kid["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| !i["constraint"].as_bool().unwrap())
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    meta(app, Method::DELETE, &format!("/indexes/{idx}"), None)
        .await
        .ok();
    let kid2 = meta(app, Method::GET, "/tables/kid", None)
        .await
        .ok()
        .clone();
    assert_eq!(kid2["foreign_keys"], json!([]));

    // Revert newest first, checking a few states on the way.
    let list = meta(app, Method::GET, "/migrations", None)
        .await
        .ok()
        .clone();
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 11);
    for id in ids.iter().rev() {
        meta(app, Method::POST, &format!("/migrations/{id}/revert"), None)
            .await
            .ok();
        if id == &ids[7] {
            // Back before the rename: child again, with its rows.
            assert_eq!(rows().await, json!([{"id": 10}]));
        }
        if id == &ids[2] {
            let child = meta(app, Method::GET, "/tables/child", None)
                .await
                .ok()
                .clone();
            let names: Vec<&str> = child["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["id", "parent_id", "note"], "{child}");
            assert_eq!(child["foreign_keys"], json!([]));
            assert_eq!(rows().await, json!([{"id": 10}]));
        }
    }
    assert!(table_names(app).await.is_empty());
}
both!(every_change_reverts);

/// Copy structure; schemas, functions and triggers.
async fn copy_and_catalog_extras(app: &TestApp) {
    meta(
        app,
        Method::POST,
        "/tables",
        Some(json!({"name": "src", "columns": [
            {"name": "id", "type": "integer", "primary_key": true},
            {"name": "email", "type": "text", "unique": true, "nullable": false},
            {"name": "parent", "type": "integer"},
            {"name": "n", "type": "integer", "default": 7},
        ],
        "foreign_keys": [{"columns": ["parent"], "foreign_table": "src"}],
        "indexes": [{"columns": ["n"]}]})),
    )
    .await
    .ok();
    use goforward_core::sea_orm::ConnectionTrait;
    app.db()
        .execute_unprepared("INSERT INTO src (id, email) VALUES (1, 'a@x')")
        .await
        .unwrap();
    let r = meta(
        app,
        Method::POST,
        "/tables/src/copy",
        Some(json!({"name": "dst"})),
    )
    .await;
    let id = r.ok()["migration"].as_i64().unwrap();
    let src = meta(app, Method::GET, "/tables/src", None)
        .await
        .ok()
        .clone();
    let dst = meta(app, Method::GET, "/tables/dst", None)
        .await
        .ok()
        .clone();
    assert_eq!(src["columns"], dst["columns"]);
    assert_eq!(dst["primary_key"], json!(["id"]));
    assert_eq!(dst["unique"][0]["columns"], json!(["email"]));
    assert_eq!(
        dst["foreign_keys"][0]["foreign_table"], "dst",
        "self reference follows: {dst}"
    );
    let plain: Vec<&Value> = dst["indexes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["constraint"] == false)
        .collect();
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0]["name"], "dst_n_idx");
    assert_eq!(plain[0]["columns"], json!(["n"]));
    // Structure only.
    let r = call(
        app,
        As::Service,
        Method::PUT,
        "/meta/v1/tables/dst/policy",
        Some(json!({"policy": "public"})),
    )
    .await;
    r.ok();
    let r = call(app, As::Anon, Method::GET, "/rest/v1/dst", None).await;
    assert_eq!(r.ok(), &json!([]));
    meta(
        app,
        Method::POST,
        "/tables/src/copy",
        Some(json!({"name": "dst"})),
    )
    .await
    .assert_error(409, "meta.already_exists");
    meta(
        app,
        Method::POST,
        "/tables/nope/copy",
        Some(json!({"name": "x"})),
    )
    .await
    .assert_error(404, "meta.table_not_found");

    // Schemas, functions, triggers.
    let schemas = meta(app, Method::GET, "/schemas", None).await.ok().clone();
    let postgres = app.db().get_database_backend() == goforward_core::sea_orm::DbBackend::Postgres;
    let expected = if postgres { "public" } else { "main" };
    assert!(
        schemas
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == expected),
        "{schemas}"
    );
    if postgres {
        app.db().execute_unprepared(
            "CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.n := NEW.n + 1; RETURN NEW; END $$",
        ).await.unwrap();
        app.db()
            .execute_unprepared(
                "CREATE TRIGGER src_bump BEFORE INSERT ON src FOR EACH ROW EXECUTE FUNCTION bump()",
            )
            .await
            .unwrap();
        let f = meta(app, Method::GET, "/functions", None)
            .await
            .ok()
            .clone();
        let bump = find(&f, "name", "bump");
        assert_eq!(bump["returns"], "trigger");
        assert_eq!(bump["language"], "plpgsql");
    } else {
        app.db().execute_unprepared(
            "CREATE TRIGGER src_bump AFTER INSERT ON src BEGIN UPDATE src SET n = n + 1 WHERE id = NEW.id; END",
        ).await.unwrap();
        assert_eq!(
            meta(app, Method::GET, "/functions", None).await.ok(),
            &json!([])
        );
    }
    let t = meta(app, Method::GET, "/triggers", None).await.ok().clone();
    let trig = find(&t, "name", "src_bump");
    assert_eq!(trig["table"], "src");
    assert_eq!(trig["enabled"], true);
    assert!(trig["definition"].as_str().unwrap().contains("src_bump"));

    meta(app, Method::POST, &format!("/migrations/{id}/revert"), None)
        .await
        .ok();
    assert_eq!(table_names(app).await, ["src"]);
}
both!(copy_and_catalog_extras);

/// Two nodes on one PostgreSQL database: a table created through one
/// node's meta API is served by the other's REST plugin without a restart
/// (NOTIFY pgrst, 'reload schema').
#[tokio::test]
async fn other_nodes_reload_on_postgres() {
    use goforward_core::access::Policy;
    let Some(a) = meta_common::start(true, "other_nodes_reload_on_postgres").await else {
        return;
    };
    let url = a.gf.config().database_url().to_owned();
    let b = TestApp::builder()
        .postgres(false)
        .config(move |c| c.database.url = Some(url))
        .plugin(
            goforward_rest::Rest::new()
                .table("late", Policy::public())
                .table("probe", Policy::public()),
        )
        .start()
        .await
        .unwrap();
    let r = call(&b, As::Anon, Method::GET, "/rest/v1/late", None).await;
    assert_eq!(r.status, 404);
    // Wait until b's listener is subscribed (a NOTIFY before LISTEN is lost).
    use goforward_core::sea_orm::ConnectionTrait;
    a.db()
        .execute_unprepared("CREATE TABLE probe (id int)")
        .await
        .unwrap();
    let mut subscribed = false;
    for _ in 0..50 {
        a.db()
            .execute_unprepared("NOTIFY pgrst, 'reload schema'")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if call(&b, As::Anon, Method::GET, "/rest/v1/probe", None)
            .await
            .status
            == 200
        {
            subscribed = true;
            break;
        }
    }
    assert!(subscribed);
    meta(
        &a,
        Method::POST,
        "/tables",
        Some(json!({"name": "late", "columns": [{"name": "id", "type": "integer", "primary_key": true}]})),
    )
    .await
    .ok();
    let mut status = 0;
    for _ in 0..50 {
        status = call(&b, As::Anon, Method::GET, "/rest/v1/late", None)
            .await
            .status
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the other node reloaded its schema cache");
    b.stop().await;
    a.stop().await;
}
