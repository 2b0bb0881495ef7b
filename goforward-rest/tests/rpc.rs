//! Host-registered functions at `/rest/v1/rpc/{name}` (supabase-js `rpc()`),
//! on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ALICE, As, call};
use goforward_core::sea_orm::{ConnectionTrait, Statement};
use goforward_core::testing::TestApp;
use goforward_rest::{Rest, RestError};
use reqwest::Method;
use serde_json::{Value, json};

fn rest() -> Rest {
    common::rest()
        .rpc("add", |c| async move {
            let n = |k: &str| -> Result<i64, RestError> {
                match c.args.get(k) {
                    Some(Value::Number(n)) => n
                        .as_i64()
                        .ok_or_else(|| RestError::InvalidBody(format!("{k} must be an integer"))),
                    Some(Value::String(s)) => s
                        .parse()
                        .map_err(|_| RestError::InvalidBody(format!("{k} must be an integer"))),
                    _ => Err(RestError::InvalidBody(format!("{k} is required"))),
                }
            };
            Ok(json!(n("a")? + n("b")?))
        })
        .rpc("my_todo_count", |c| async move {
            let Some(uid) = c.principal.user_id.clone() else {
                return Err(RestError::PermissionDenied {
                    table: "todos".into(),
                    anonymous: true,
                });
            };
            let backend = c.db.get_database_backend();
            let sql = match backend {
                goforward_core::sea_orm::DbBackend::Postgres => {
                    "SELECT COUNT(*) FROM todos WHERE user_id = CAST($1 AS uuid)"
                }
                _ => "SELECT COUNT(*) FROM todos WHERE user_id = ?",
            };
            let row =
                c.db.query_one_raw(Statement::from_sql_and_values(
                    backend,
                    sql,
                    [(&*uid).into()],
                ))
                .await
                .map_err(RestError::from_db)?;
            let n: i64 = row
                .map(|r| r.try_get_by_index(0))
                .transpose()
                .map_err(RestError::from_db)?
                .unwrap_or(0);
            Ok(json!([{ "count": n }]))
        })
        .rpc("nothing", |_| async move { Ok(Value::Null) })
}

async fn with_app(postgres: bool, test: &str) -> Option<TestApp> {
    common::start_with(postgres, test, rest()).await
}

async fn scenario(app: &TestApp) {
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rpc/add",
        &[],
        Some(json!({"a": 2, "b": 3})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!(5));
    let r = call(app, As::Anon, Method::GET, "/rpc/add?a=4&b=5", &[], None).await;
    assert_eq!(r.json, json!(9));
    call(
        app,
        As::Anon,
        Method::POST,
        "/rpc/add",
        &[],
        Some(json!({"a": 1})),
    )
    .await
    .assert_error(400, "PGRST102");
    call(
        app,
        As::Anon,
        Method::POST,
        "/rpc/add",
        &[],
        Some(json!([1, 2])),
    )
    .await
    .assert_error(400, "PGRST102");
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rpc/nosuch",
        &[],
        Some(json!({})),
    )
    .await;
    r.assert_error(404, "PGRST202");
    let r = call(app, As::Anon, Method::POST, "/rpc/nothing", &[], None).await;
    assert_eq!(r.status, 204);

    call(
        app,
        As::User(ALICE),
        Method::POST,
        "/todos",
        &[],
        Some(json!([{"title": "a"}, {"title": "b"}])),
    )
    .await;
    let r = call(
        app,
        As::User(ALICE),
        Method::POST,
        "/rpc/my_todo_count",
        &[],
        None,
    )
    .await;
    assert_eq!(r.json, json!([{"count": 2}]));
    let r = call(
        app,
        As::User(ALICE),
        Method::POST,
        "/rpc/my_todo_count",
        &[("accept", "application/vnd.pgrst.object+json")],
        None,
    )
    .await;
    assert_eq!(r.json, json!({"count": 2}));
    call(app, As::Anon, Method::POST, "/rpc/my_todo_count", &[], None)
        .await
        .assert_error(401, "42501");
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rpc/add",
        &[("prefer", "return=minimal")],
        Some(json!({"a": 1, "b": 1})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, "");
    let limit = app.gf.config().server.json_limit;
    let r = app
        .client()
        .post(app.url("/rest/v1/rpc/add"))
        .header("apikey", app.anon_key())
        .header("content-type", "application/json")
        .body(format!("{{\"a\": \"{}\"}}", "1".repeat(limit)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = call(app, As::Anon, Method::GET, "/", &[], None).await;
    assert!(
        r.json["paths"].get("/rpc/add").is_some(),
        "functions are described"
    );
}

#[tokio::test]
async fn rpc_sqlite() {
    if let Some(app) = with_app(false, "rpc").await {
        scenario(&app).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn rpc_postgres() {
    if let Some(app) = with_app(true, "rpc").await {
        scenario(&app).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn postgres_functions() {
    let rest = rest()
        .function("add_ints")
        .function("items_over")
        .function("whoami")
        .function("touch")
        .function("fail");
    let Some(app) = common::start_with(true, "postgres_functions", rest).await else {
        return;
    };
    for ddl in [
        "CREATE FUNCTION add_ints(a integer, b integer DEFAULT 10) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT a + b $$",
        "CREATE FUNCTION items_over(min_qty integer) RETURNS SETOF items LANGUAGE sql STABLE AS $$ SELECT * FROM items WHERE qty > min_qty ORDER BY id $$",
        "CREATE FUNCTION whoami() RETURNS text LANGUAGE sql STABLE AS $$ SELECT current_setting('request.jwt.claims', true)::json->>'sub' $$",
        "CREATE FUNCTION touch() RETURNS void LANGUAGE sql AS $$ INSERT INTO hidden_table VALUES (1, 'x') $$",
        "CREATE FUNCTION fail() RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'nope: %', 42; END $$",
        "CREATE FUNCTION not_exposed() RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$",
    ] {
        app.db().execute_unprepared(ddl).await.unwrap();
    }
    let r = call(
        &app,
        As::Service,
        Method::POST,
        "/_schema/reload",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    common::seed_items(&app).await;

    let r = call(
        &app,
        As::Anon,
        Method::POST,
        "/rpc/add_ints",
        &[],
        Some(json!({"a": 1, "b": 2})),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.json.clone()),
        (200, json!(3)),
        "{}",
        r.text
    );
    let r = call(&app, As::Anon, Method::GET, "/rpc/add_ints?a=5", &[], None).await;
    assert_eq!(r.json, json!(15), "defaults apply");
    call(
        &app,
        As::Anon,
        Method::POST,
        "/rpc/add_ints",
        &[],
        Some(json!({"a": "x"})),
    )
    .await
    .assert_error(400, "22P02");
    call(
        &app,
        As::Anon,
        Method::POST,
        "/rpc/add_ints",
        &[],
        Some(json!({"b": 1})),
    )
    .await
    .assert_error(404, "PGRST202");
    call(
        &app,
        As::Anon,
        Method::POST,
        "/rpc/add_ints",
        &[],
        Some(json!({"a": 1, "evil": 1})),
    )
    .await
    .assert_error(404, "PGRST202");
    let r = call(
        &app,
        As::Anon,
        Method::POST,
        "/rpc/items_over",
        &[],
        Some(json!({"min_qty": 6})),
    )
    .await;
    let names: Vec<&str> = r
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["banana", "Date"]);
    let r = call(
        &app,
        As::User(ALICE),
        Method::POST,
        "/rpc/whoami",
        &[],
        None,
    )
    .await;
    assert_eq!(r.json, json!(ALICE), "claims are visible to the function");
    let r = call(&app, As::Anon, Method::POST, "/rpc/touch", &[], None).await;
    assert_eq!(r.status, 204);
    assert_eq!(common::db_count(&app, "hidden_table").await, 1);
    let r = call(&app, As::Anon, Method::GET, "/rpc/touch", &[], None).await;
    r.assert_error(405, "25006");
    assert_eq!(
        common::db_count(&app, "hidden_table").await,
        1,
        "GET is read-only"
    );
    let r = call(&app, As::Anon, Method::POST, "/rpc/fail", &[], None).await;
    r.assert_error(400, "P0001");
    assert_eq!(r.json["message"], "nope: 42");
    call(&app, As::Anon, Method::POST, "/rpc/not_exposed", &[], None)
        .await
        .assert_error(404, "PGRST202");
    app.stop().await;
}
