//! The statement timeout (`rest.statement_timeout_ms`) on both backends and
//! native RLS mode (`rest.native_rls`) on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{ALICE, As, BOB, Fixture, call, db_count, get, rest, seed};
use goforward_core::sea_orm::TransactionTrait;
use goforward_core::{
    Context, Plugin,
    access::Policy,
    sea_orm::{ConnectionTrait, DbBackend, Statement},
    testing::{TestApp, postgres_url_or_skip},
};
use goforward_rest::{Rest, error::RestError};
use reqwest::Method;
use serde_json::json;

/// Slow objects: a view that runs for minutes (SQLite: a huge recursive
/// CTE; PostgreSQL: `pg_sleep`), a table whose updates sleep (PostgreSQL
/// trigger) and a function that writes then sleeps.
struct Slow;

const SQLITE_SLOW: &[&str] = &[
    "CREATE VIEW slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
     WHERE x < 5000000000) SELECT count(*) AS n FROM c",
    // Triggers cannot hold a WITH clause; they read the slow view instead.
    "CREATE TABLE slow_rows (id INTEGER PRIMARY KEY, v TEXT)",
    "INSERT INTO slow_rows VALUES (1, 'before')",
    "CREATE TRIGGER slow_rows_sleep BEFORE UPDATE ON slow_rows BEGIN SELECT n FROM slow; END",
    "CREATE TRIGGER slow_rows_insert BEFORE INSERT ON slow_rows WHEN NEW.v = 'slow' \
     BEGIN SELECT n FROM slow; END",
];

const POSTGRES_SLOW: &[&str] = &[
    "CREATE VIEW slow AS SELECT 1 AS n FROM pg_sleep(30)",
    "CREATE TABLE slow_rows (id BIGINT PRIMARY KEY, v TEXT)",
    "INSERT INTO slow_rows VALUES (1, 'before')",
    "CREATE FUNCTION slow_trigger() RETURNS trigger LANGUAGE plpgsql AS \
     $$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$",
    "CREATE TRIGGER slow_rows_sleep BEFORE UPDATE ON slow_rows FOR EACH ROW EXECUTE FUNCTION slow_trigger()",
    "CREATE TRIGGER slow_rows_insert BEFORE INSERT ON slow_rows FOR EACH ROW WHEN (NEW.v = 'slow') \
     EXECUTE FUNCTION slow_trigger()",
    "CREATE FUNCTION write_then_sleep() RETURNS integer LANGUAGE plpgsql AS \
     $$ BEGIN INSERT INTO items (name) VALUES ('written by rpc'); PERFORM pg_sleep(30); RETURN 1; END $$",
    "CREATE FUNCTION current_timeout() RETURNS text LANGUAGE sql AS \
     $$ SELECT current_setting('statement_timeout') $$",
    "CREATE VIEW timeout_now AS SELECT current_setting('statement_timeout') AS t",
];

#[async_trait::async_trait]
impl Plugin for Slow {
    fn name(&self) -> &str {
        "slow"
    }

    async fn start(&self, ctx: &Context) -> goforward_core::Result<()> {
        let db = ctx.db();
        let ddl = match db.get_database_backend() {
            DbBackend::Postgres => POSTGRES_SLOW,
            _ => SQLITE_SLOW,
        };
        for stmt in ddl {
            db.execute_unprepared(stmt).await?;
        }
        Ok(())
    }
}

const LIMIT: Duration = Duration::from_millis(300);

async fn start_slow(postgres: bool, test: &str) -> Option<TestApp> {
    start_slow_at(postgres, test, None).await
}

/// As [`start_slow`]; `file` puts the SQLite database in that file
/// (a pool of several connections) instead of memory (one connection).
async fn start_slow_at(
    postgres: bool,
    test: &str,
    file: Option<&std::path::Path>,
) -> Option<TestApp> {
    if postgres && postgres_url_or_skip(test).is_none() {
        return None;
    }
    let mut rest = rest()
        .table("slow", Policy::public())
        .table("slow_rows", Policy::public())
        .statement_timeout(Some(LIMIT))
        .rpc("sleepy", |call| async move {
            // Writes in its own transaction, then outlives the limit: the
            // timeout drops it and the transaction rolls back.
            let tx = call.db.begin().await.map_err(RestError::from_db)?;
            let backend = tx.get_database_backend();
            tx.execute_raw(Statement::from_string(
                backend,
                "INSERT INTO items (name) VALUES ('written by sleepy')",
            ))
            .await
            .map_err(RestError::from_db)?;
            tokio::time::sleep(Duration::from_secs(30)).await;
            tx.commit().await.map_err(RestError::from_db)?;
            Ok(json!(1))
        })
        .rpc("quick", |_call| async move { Ok(json!("done")) });
    if postgres {
        rest = rest
            .function("write_then_sleep")
            .function("current_timeout")
            .table("timeout_now", Policy::public());
    }
    let mut builder = TestApp::builder()
        .postgres(postgres)
        .plugin(Fixture)
        .plugin(Slow)
        .plugin(rest);
    if let Some(path) = file {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        builder = builder.config(move |c| c.database.url = Some(url));
    }
    Some(builder.start().await.expect("app starts"))
}

/// A read running past the limit is cancelled with PostgREST's 500
/// `57014`, quickly, and the connection serves the next reads normally
/// (the deadline does not stick to the pooled connection).
async fn slow_read_times_out(app: &TestApp) {
    seed(app, "items", json!([{ "name": "a" }])).await;
    let started = Instant::now();
    let r = get(app, As::Anon, "/slow").await;
    r.assert_error(500, "57014");
    assert_eq!(
        r.json["message"],
        "canceling statement due to statement timeout"
    );
    assert_eq!(r.json["details"], "The statement ran longer than 300 ms");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cancelled late: {:?}",
        started.elapsed()
    );
    // HEAD and count=exact take the same path.
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/slow?select=n",
        &[("prefer", "count=exact")],
        None,
    )
    .await;
    r.assert_error(500, "57014");
    // Past every deadline, fast reads (on whichever pooled connection) work.
    tokio::time::sleep(LIMIT * 2).await;
    for _ in 0..8 {
        let r = get(app, As::Anon, "/items?select=name").await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json, json!([{ "name": "a" }]));
    }
}

#[tokio::test]
async fn slow_read_times_out_sqlite() {
    if let Some(app) = start_slow(false, "slow_read_times_out_sqlite").await {
        slow_read_times_out(&app).await;
        // Other users of the pool are never interrupted either.
        tokio::time::sleep(LIMIT * 2).await;
        for _ in 0..4 {
            let row = app
                .db()
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) \
                     SELECT count(*) FROM c",
                ))
                .await
                .expect("a long statement outside rest runs to the end")
                .expect("row");
            assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 300_000);
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn slow_read_times_out_postgres() {
    if let Some(app) = start_slow(true, "slow_read_times_out_postgres").await {
        slow_read_times_out(&app).await;
        // SET LOCAL: the pooled connections keep core's own timeout.
        for _ in 0..6 {
            let row = app
                .db()
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT current_setting('statement_timeout')",
                ))
                .await
                .unwrap()
                .unwrap();
            assert_ne!(row.try_get_by_index::<String>(0).unwrap(), "300ms");
        }
        // Inside a request the limit holds.
        let r = call(
            &app,
            As::Anon,
            Method::POST,
            "/rpc/current_timeout",
            &[],
            Some(json!({})),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json, "300ms");
        // So does a plain read (REST's read pool carries the limit), also
        // with count=exact, while core's connections keep their own.
        for headers in [&[][..], &[("prefer", "count=exact")][..]] {
            let r = call(&app, As::Anon, Method::GET, "/timeout_now", headers, None).await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.json, json!([{ "t": "300ms" }]));
        }
        app.stop().await;
    }
}

/// A write (PATCH through a sleeping trigger) and a function that writes
/// then sleeps are cancelled and rolled back: nothing written.
#[tokio::test]
async fn slow_writes_time_out_and_write_nothing_postgres() {
    let Some(app) = start_slow(true, "slow_writes_time_out_postgres").await else {
        return;
    };
    let r = call(
        &app,
        As::Service,
        Method::PATCH,
        "/slow_rows?id=eq.1",
        &[("prefer", "return=representation")],
        Some(json!({ "v": "after" })),
    )
    .await;
    r.assert_error(500, "57014");
    let r = get(&app, As::Service, "/slow_rows?select=v").await;
    assert_eq!(r.json, json!([{ "v": "before" }]));

    let before = db_count(&app, "items").await;
    let r = call(
        &app,
        As::Service,
        Method::POST,
        "/rpc/write_then_sleep",
        &[],
        Some(json!({})),
    )
    .await;
    r.assert_error(500, "57014");
    assert_eq!(
        db_count(&app, "items").await,
        before,
        "the insert rolled back"
    );
    // A bad argument still answers its own error, not a timeout.
    let r = call(
        &app,
        As::Service,
        Method::POST,
        "/rpc/write_then_sleep",
        &[],
        Some(json!({ "nope": 1 })),
    )
    .await;
    r.assert_error(404, "PGRST202");
    app.stop().await;
}

/// On every backend: an UPDATE and an INSERT through a slow trigger and a
/// Rust function that writes in a transaction then sleeps are cancelled
/// with 500 `57014`, quickly, and roll back (nothing written); afterwards
/// fast writes and functions work (no deadline sticks to a connection).
async fn slow_writes_time_out(app: &TestApp) {
    let started = Instant::now();
    let r = call(
        app,
        As::Service,
        Method::PATCH,
        "/slow_rows?id=eq.1",
        &[("prefer", "return=representation")],
        Some(json!({ "v": "after" })),
    )
    .await;
    r.assert_error(500, "57014");
    assert_eq!(r.json["details"], "The statement ran longer than 300 ms");
    let r = get(app, As::Service, "/slow_rows?select=v").await;
    assert_eq!(r.json, json!([{ "v": "before" }]));

    for body in [
        json!({ "id": 2, "v": "slow" }),
        json!([{ "id": 3, "v": "fast" }, { "id": 4, "v": "slow" }]),
    ] {
        let r = call(
            app,
            As::Service,
            Method::POST,
            "/slow_rows",
            &[],
            Some(body),
        )
        .await;
        r.assert_error(500, "57014");
        assert_eq!(
            db_count(app, "slow_rows").await,
            1,
            "the insert rolled back"
        );
    }

    let before = db_count(app, "items").await;
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/rpc/sleepy",
        &[],
        Some(json!({})),
    )
    .await;
    r.assert_error(500, "57014");
    assert_eq!(r.json["details"], "The statement ran longer than 300 ms");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "cancelled late: {:?}",
        started.elapsed()
    );
    assert_eq!(
        db_count(app, "items").await,
        before,
        "the function's insert rolled back"
    );

    // Past every deadline, fast writes and functions work.
    tokio::time::sleep(LIMIT * 2).await;
    for i in 0..6 {
        let r = call(
            app,
            As::Service,
            Method::POST,
            "/slow_rows",
            &[("prefer", "return=representation")],
            Some(json!({ "id": 10 + i, "v": "fast" })),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let r = call(
            app,
            As::Anon,
            Method::POST,
            "/rpc/quick",
            &[],
            Some(json!({})),
        )
        .await;
        assert_eq!(r.json, "done");
    }
    assert_eq!(db_count(app, "slow_rows").await, 7);
}

#[tokio::test]
async fn slow_writes_time_out_sqlite_memory() {
    if let Some(app) = start_slow(false, "slow_writes_time_out_sqlite_memory").await {
        slow_writes_time_out(&app).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn slow_writes_time_out_sqlite_file() {
    let path = std::env::temp_dir().join(format!("gf-rest-timeout-{}.db", uuid::Uuid::new_v4()));
    if let Some(app) = start_slow_at(false, "slow_writes_time_out_sqlite_file", Some(&path)).await {
        slow_writes_time_out(&app).await;
        // Reads (core's pool) and writes (their own connection) still
        // share one database: a read sees the writes.
        let r = get(&app, As::Anon, "/slow_rows?select=id&id=gte.10&order=id").await;
        assert_eq!(r.json.as_array().map(Vec::len), Some(6), "{}", r.text);
        app.stop().await;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn slow_writes_time_out_postgres() {
    if let Some(app) = start_slow(true, "slow_writes_time_out_pg").await {
        slow_writes_time_out(&app).await;
        app.stop().await;
    }
}

/// Roles and an RLS-protected table (PostgreSQL), owner by the JWT `sub`.
struct RlsFixture;

const RLS: &[&str] = &[
    // Roles are cluster-wide: created once, tolerant of parallel tests.
    "DO $$ BEGIN CREATE ROLE anon NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "DO $$ BEGIN CREATE ROLE authenticated NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "DO $$ BEGIN CREATE ROLE gf_other NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "CREATE TABLE rls_notes (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, owner uuid NOT NULL, body TEXT)",
    "ALTER TABLE rls_notes ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY own ON rls_notes USING \
     (owner::text = current_setting('request.jwt.claims', true)::json->>'sub') \
     WITH CHECK (owner::text = current_setting('request.jwt.claims', true)::json->>'sub')",
    "GRANT USAGE ON SCHEMA public TO anon, authenticated",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON rls_notes TO anon, authenticated",
    "CREATE FUNCTION whoami() RETURNS text LANGUAGE sql AS \
     $$ SELECT current_user || ' ' || coalesce(current_setting('request.jwt.claim.sub', true), '') \
     || ' ' || coalesce(current_setting('request.jwt.claim.role', true), '') $$",
    "GRANT EXECUTE ON FUNCTION whoami() TO anon, authenticated",
];

#[async_trait::async_trait]
impl Plugin for RlsFixture {
    fn name(&self) -> &str {
        "rls_fixture"
    }

    async fn start(&self, ctx: &Context) -> goforward_core::Result<()> {
        for stmt in RLS {
            ctx.db().execute_unprepared(stmt).await?;
        }
        Ok(())
    }
}

async fn start_rls(test: &str, rest: Rest) -> Option<TestApp> {
    postgres_url_or_skip(test)?;
    Some(
        TestApp::builder()
            .postgres(true)
            .plugin(Fixture)
            .plugin(RlsFixture)
            .plugin(rest)
            .start()
            .await
            .expect("app starts"),
    )
}

fn rls_rest() -> Rest {
    // The query-rewriting policy lets everyone through: only the database's
    // RLS policy separates the users.
    rest()
        .table("rls_notes", Policy::public())
        .function("whoami")
        .native_rls(["anon", "authenticated"])
}

async fn user_call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> common::Res {
    let mut req = app
        .client()
        .request(method, app.url(&format!("/rest/v1{path}")))
        .header("apikey", app.anon_key())
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    common::Res {
        status,
        headers,
        text,
        json,
    }
}

#[tokio::test]
async fn native_rls_separates_users_postgres() {
    let Some(app) = start_rls("native_rls_separates_users_postgres", rls_rest()).await else {
        return;
    };
    seed(
        &app,
        "rls_notes",
        json!([
            { "owner": ALICE, "body": "alice 1" },
            { "owner": ALICE, "body": "alice 2" },
            { "owner": BOB, "body": "bob 1" },
        ]),
    )
    .await;
    let bodies = |r: &common::Res| -> Vec<String> {
        let mut v: Vec<String> = r
            .json
            .as_array()
            .unwrap_or_else(|| panic!("array: {}", r.text))
            .iter()
            .map(|x| x["body"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let r = get(&app, As::User(ALICE), "/rls_notes?select=body").await;
    assert_eq!(bodies(&r), ["alice 1", "alice 2"]);
    let r = get(&app, As::User(BOB), "/rls_notes?select=body").await;
    assert_eq!(bodies(&r), ["bob 1"]);
    let r = call(
        &app,
        As::User(BOB),
        Method::GET,
        "/rls_notes?select=body",
        &[("prefer", "count=exact")],
        None,
    )
    .await;
    assert_eq!(r.header("content-range"), Some("0-0/1"));
    // anon has no `sub`: the policy matches nothing.
    let r = get(&app, As::Anon, "/rls_notes?select=body").await;
    assert_eq!(r.json, json!([]));
    // service_role keeps the server's role (the table owner): every row.
    let r = get(&app, As::Service, "/rls_notes?select=body").await;
    assert_eq!(bodies(&r).len(), 3);

    // The function sees the role and the claims.
    let r = call(
        &app,
        As::User(BOB),
        Method::POST,
        "/rpc/whoami",
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(r.json, format!("authenticated {BOB} authenticated"));
    let r = call(
        &app,
        As::Anon,
        Method::POST,
        "/rpc/whoami",
        &[],
        Some(json!({})),
    )
    .await;
    assert_eq!(r.json, "anon  anon");

    // Writes: Bob cannot touch Alice's rows (RLS hides them) nor insert
    // rows for her (WITH CHECK): 403 42501, nothing written.
    let r = call(
        &app,
        As::User(BOB),
        Method::PATCH,
        "/rls_notes?body=eq.alice 1",
        &[("prefer", "return=representation")],
        Some(json!({ "body": "bob was here" })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!([]));
    let r = call(
        &app,
        As::User(BOB),
        Method::DELETE,
        "/rls_notes?body=like.alice*",
        &[],
        None,
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text);
    let r = call(
        &app,
        As::User(BOB),
        Method::POST,
        "/rls_notes",
        &[],
        Some(json!({ "owner": ALICE, "body": "spoof" })),
    )
    .await;
    r.assert_error(403, "42501");
    let r = get(&app, As::Service, "/rls_notes?select=body&order=body").await;
    assert_eq!(
        r.json,
        json!([{ "body": "alice 1" }, { "body": "alice 2" }, { "body": "bob 1" }])
    );
    // Bob's own insert passes the check and comes back.
    let r = call(
        &app,
        As::User(BOB),
        Method::POST,
        "/rls_notes",
        &[("prefer", "return=representation")],
        Some(json!({ "owner": BOB, "body": "bob 2" })),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json[0]["body"], "bob 2");

    // SET LOCAL: the pooled connections are back to the server's role
    // with no claims after the requests.
    for _ in 0..6 {
        let row = app
            .db()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_user, coalesce(current_setting('request.jwt.claims', true), '')",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "postgres");
        assert_eq!(row.try_get_by_index::<String>(1).unwrap(), "");
    }
    app.stop().await;
}

/// A role claim outside `rest.native_rls_roles` is refused before any SQL
/// (existing database role or not), on every verb.
#[tokio::test]
async fn native_rls_refuses_unknown_roles_postgres() {
    let Some(app) = start_rls("native_rls_refuses_unknown_roles_postgres", rls_rest()).await else {
        return;
    };
    seed(&app, "rls_notes", json!([{ "owner": ALICE, "body": "a" }])).await;
    for role in [
        "gf_other",
        "postgres",
        "no_such_role",
        "anon\"; DROP TABLE rls_notes; --",
    ] {
        let token = app.token(json!({ "sub": ALICE, "role": role, "aud": "authenticated" }));
        let r = user_call(&app, &token, Method::GET, "/rls_notes", &[], None).await;
        r.assert_error(403, "42501");
        assert!(
            r.json["message"]
                .as_str()
                .unwrap()
                .contains("permission denied to set role")
        );
        let r = user_call(
            &app,
            &token,
            Method::POST,
            "/rls_notes",
            &[],
            Some(json!({ "owner": ALICE, "body": "x" })),
        )
        .await;
        r.assert_error(403, "42501");
        let r = user_call(
            &app,
            &token,
            Method::POST,
            "/rpc/whoami",
            &[],
            Some(json!({})),
        )
        .await;
        r.assert_error(403, "42501");
    }
    assert_eq!(db_count(&app, "rls_notes").await, 1);
    app.stop().await;
}

/// Native RLS mode refuses to start with a role the database lacks, or on SQLite.
#[tokio::test]
async fn native_rls_config_is_checked() {
    if postgres_url_or_skip("native_rls_config_is_checked").is_some() {
        let Err(err) = TestApp::builder()
            .postgres(true)
            .plugin(Fixture)
            .plugin(rest().native_rls(["anon", "gf_missing_role_xyz"]))
            .start()
            .await
        else {
            panic!("missing role: the app started");
        };
        assert!(err.to_string().contains("native_rls_roles"), "{err}");
    }
    let Err(err) = TestApp::builder()
        .postgres(false)
        .plugin(Fixture)
        .plugin(rest().native_rls(["anon"]))
        .start()
        .await
    else {
        panic!("sqlite: the app started");
    };
    assert!(err.to_string().contains("native_rls"), "{err}");
}
