//! The SQL runner (checklist item 21): off by default, its own secret on
//! top of the RunSql capability, loopback only, boot refused with a weak
//! secret or a privileged PostgreSQL role, server-side timeout the client
//! cannot lift, read-only mode, row limit, audit log, history and saved
//! queries — on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod meta_common;

use std::time::Instant;

use goforward_core::{
    sea_orm::ConnectionTrait,
    testing::{TestApp, create_postgres_database, drop_postgres_database, postgres_url_or_skip},
};
use goforward_rest::{Rest, meta::Meta};
use meta_common::{As, Res};
use reqwest::Method;
use serde_json::{Value, json};

const SECRET: &str = "k3J9x2LqP7vR4tW8zY1mN5bC6dF0gH2jQ";

fn runner_config(extra: Value) -> impl FnOnce(&mut goforward_core::Config) {
    move |c| {
        let mut sql = json!({"enabled": true, "admin_secret": SECRET, "statement_timeout_ms": 1500, "max_rows": 100});
        if let (Some(base), Some(more)) = (sql.as_object_mut(), extra.as_object()) {
            for (k, v) in more {
                base.insert(k.clone(), v.clone());
            }
        }
        c.sections.insert("meta".into(), json!({ "sql": sql }));
    }
}

async fn sqlite_app(extra: Value) -> TestApp {
    let rest = Rest::new();
    TestApp::builder()
        .postgres(false)
        .config(runner_config(extra))
        .plugin(Meta::for_rest(&rest))
        .plugin(rest)
        .start()
        .await
        .expect("app starts")
}

/// A PostgreSQL app whose runner connects as a fresh unprivileged role.
struct PgRunner {
    app: TestApp,
    admin: String,
    db: String,
    role: String,
}

impl PgRunner {
    async fn start(test: &str, extra: Value) -> Option<Self> {
        let admin = postgres_url_or_skip(test)?;
        let (url, db) = create_postgres_database(&admin).await.unwrap();
        let role = format!("gf_runner_{}", uuid::Uuid::new_v4().simple());
        let conn = goforward_core::db::connect_url(&url).await.unwrap();
        for stmt in [
            format!("CREATE ROLE {role} LOGIN PASSWORD 'runner-pw'"),
            format!("GRANT ALL ON SCHEMA public TO {role}"),
            "CREATE TABLE runner_data (id int PRIMARY KEY, label text)".to_owned(),
            format!("GRANT ALL ON runner_data TO {role}"),
        ] {
            conn.execute_unprepared(&stmt).await.unwrap();
        }
        conn.close().await.unwrap();
        let mut runner_url = url::Url::parse(&url).unwrap();
        runner_url.set_username(&role).unwrap();
        runner_url.set_password(Some("runner-pw")).unwrap();
        let mut extra = extra;
        extra["database_url"] = json!(runner_url.to_string());
        let rest = Rest::new();
        let app = TestApp::builder()
            .postgres(false)
            .config(move |c| c.database.url = Some(url))
            .config(runner_config(extra))
            .plugin(Meta::for_rest(&rest))
            .plugin(rest)
            .start()
            .await
            .expect("app starts");
        Some(Self {
            app,
            admin,
            db,
            role,
        })
    }

    async fn stop(self) {
        self.app.stop().await;
        drop_postgres_database(&self.admin, &self.db).await.unwrap();
        let admin = goforward_core::db::connect_url(&self.admin).await.unwrap();
        admin
            .execute_unprepared(&format!("DROP ROLE IF EXISTS {}", self.role))
            .await
            .unwrap();
        admin.close().await.unwrap();
    }
}

async fn sql_call(
    app: &TestApp,
    who: As<'_>,
    secret: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Res {
    let key = match who {
        As::Service => app.service_key(),
        _ => app.anon_key(),
    };
    let bearer = match who {
        As::User => app.user_token(meta_common::USER),
        As::Admin(level) => app.token(json!({
            "sub": meta_common::ADMIN, "role": "authenticated", "aud": "authenticated",
            "app_metadata": {"admin_role": level},
        })),
        _ => key.clone(),
    };
    let mut req = app
        .client()
        .request(method, app.url(&format!("/meta/v1/sql{path}")))
        .header("apikey", key)
        .header("authorization", format!("Bearer {bearer}"));
    if let Some(s) = secret {
        req = req.header("x-goforward-sql-secret", s);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Res { status, text, json }
}

async fn run(app: &TestApp, body: Value) -> Res {
    sql_call(
        app,
        As::Admin("system_admin"),
        Some(SECRET),
        Method::POST,
        "/run",
        Some(body),
    )
    .await
}

#[tokio::test]
async fn off_by_default() {
    let app = meta_common::start(false, "off_by_default").await.unwrap();
    let r = sql_call(
        &app,
        As::Service,
        Some(SECRET),
        Method::POST,
        "/run",
        Some(json!({"sql": "SELECT 1"})),
    )
    .await;
    r.assert_error(404, "meta.sql_disabled");
    app.stop().await;
}

#[tokio::test]
async fn boot_is_refused_with_a_weak_secret() {
    let long_same = "a".repeat(40);
    let jwt = goforward_core::testing::TEST_JWT_SECRET.to_owned();
    for secret in [
        Value::Null,
        json!(""),
        json!("short-secret"),
        json!("changeme-changeme-changeme-changeme"),
        json!(long_same),
        json!(jwt),
    ] {
        let rest = Rest::new();
        let err = TestApp::builder()
            .postgres(false)
            .config(move |c| {
                c.sections.insert(
                    "meta".into(),
                    json!({"sql": {"enabled": true, "admin_secret": secret}}),
                );
            })
            .plugin(Meta::for_rest(&rest))
            .plugin(rest)
            .start()
            .await
            .expect_err("boot must be refused");
        assert!(err.to_string().contains("meta.sql.admin_secret"), "{err}");
        assert!(
            !err.to_string().contains("changeme"),
            "secret leaked: {err}"
        );
    }
}

#[tokio::test]
async fn boot_is_refused_with_a_privileged_postgres_role() {
    let Some(admin) = postgres_url_or_skip("boot_is_refused_with_a_privileged_postgres_role")
    else {
        return;
    };
    // No runner URL at all.
    let rest = Rest::new();
    let err = TestApp::builder()
        .postgres(true)
        .config(runner_config(json!({})))
        .plugin(Meta::for_rest(&rest))
        .plugin(rest)
        .start()
        .await
        .expect_err("boot must be refused");
    assert!(err.to_string().contains("meta.sql.database_url"), "{err}");
    // The test server's admin (a superuser).
    let rest = Rest::new();
    let err = TestApp::builder()
        .postgres(true)
        .config(runner_config(json!({"database_url": admin})))
        .plugin(Meta::for_rest(&rest))
        .plugin(rest)
        .start()
        .await
        .expect_err("boot must be refused");
    assert!(err.to_string().contains("superuser"), "{err}");
}

#[tokio::test]
async fn the_lock() {
    let app = sqlite_app(json!({})).await;
    let body = || Some(json!({"sql": "SELECT 1 AS one"}));
    // A user JWT, even a system_admin's, never reaches it without the secret.
    for who in [As::User, As::Admin("system_admin"), As::Service, As::Anon] {
        for secret in [None, Some("wrong"), Some(&SECRET[..SECRET.len() - 1])] {
            sql_call(&app, who, secret, Method::POST, "/run", body())
                .await
                .assert_error(401, "meta.sql_locked");
        }
    }
    // The secret alone is not enough either: RunSql is system_admin or service_role.
    for who in [
        As::Anon,
        As::User,
        As::Admin("admin"),
        As::Admin("super_admin"),
    ] {
        sql_call(&app, who, Some(SECRET), Method::POST, "/run", body())
            .await
            .assert_error(403, "meta.forbidden");
    }
    for who in [As::Admin("system_admin"), As::Service] {
        let r = sql_call(&app, who, Some(SECRET), Method::POST, "/run", body()).await;
        assert_eq!(r.ok()["rows"], json!([[1]]));
    }
    app.stop().await;

    // Loopback only: a client behind a trusted proxy is not loopback.
    let rest = Rest::new();
    let app = TestApp::builder()
        .postgres(false)
        .config(runner_config(json!({})))
        .config(|c| c.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()])
        .plugin(Meta::for_rest(&rest))
        .plugin(rest)
        .start()
        .await
        .unwrap();
    let r = app
        .client()
        .post(app.url("/meta/v1/sql/run"))
        .header("apikey", app.service_key())
        .header("x-goforward-sql-secret", SECRET)
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "meta.sql_remote_refused");
    app.stop().await;
}

async fn features(app: &TestApp, postgres: bool) {
    // A script; the result of its last statement; column names and types.
    let r = run(
        app,
        json!({"sql": "CREATE TABLE scratch (id integer PRIMARY KEY, name text, score real); \
                       INSERT INTO scratch VALUES (1, 'a', 1.5), (2, 'b', NULL), (3, 'c', 3.0); \
                       SELECT id, name, score FROM scratch ORDER BY id"}),
    )
    .await;
    let v = r.ok().clone();
    let names: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "name", "score"]);
    assert!(
        v["columns"][0]["type"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    assert_eq!(
        v["rows"],
        json!([[1, "a", 1.5], [2, "b", null], [3, "c", 3.0]])
    );
    assert!(v["elapsed_ms"].as_f64().is_some());
    assert_eq!(v["truncated"], false);

    // Row limit (the request may only lower the configured one).
    let r = run(
        app,
        json!({"sql": "SELECT id FROM scratch ORDER BY id", "max_rows": 2}),
    )
    .await;
    assert_eq!(r.ok()["rows"], json!([[1], [2]]));
    assert_eq!(r.json["truncated"], true);

    // Read-only: a write is refused and nothing changes; one statement only.
    let r = run(
        app,
        json!({"sql": "DELETE FROM scratch", "read_only": true}),
    )
    .await;
    r.assert_error(400, "meta.sql_read_only");
    let r = run(
        app,
        json!({"sql": "SELECT 1; DELETE FROM scratch", "read_only": true}),
    )
    .await;
    r.assert_error(400, "meta.sql_refused");
    let r = run(
        app,
        json!({"sql": "SELECT count(*) AS n FROM scratch;", "read_only": true}),
    )
    .await;
    assert_eq!(r.ok()["rows"], json!([[3]]));

    // EXPLAIN.
    let r = run(
        app,
        json!({"sql": "SELECT * FROM scratch WHERE id = 1", "explain": "plan"}),
    )
    .await;
    assert!(!r.ok()["rows"].as_array().unwrap().is_empty(), "{}", r.text);
    let r = run(
        app,
        json!({"sql": "SELECT * FROM scratch", "explain": "analyze"}),
    )
    .await;
    if postgres {
        assert!(
            r.ok()["rows"][0][0]
                .as_str()
                .unwrap()
                .contains("actual time"),
            "{}",
            r.text
        );
    } else {
        r.assert_error(400, "meta.unsupported");
    }

    // Database errors carry the database's own message for the administrator.
    let r = run(app, json!({"sql": "SELECT * FROM no_such_table"})).await;
    r.assert_error(400, "meta.sql_error");
    assert!(
        r.json["details"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_table")
    );

    if !postgres {
        for sql in [
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "VACUUM INTO '/tmp/y.db'",
            "pragma query_only = off",
            "SELECT load_extension('x')",
        ] {
            run(app, json!({ "sql": sql }))
                .await
                .assert_error(400, "meta.sql_refused");
        }
    }

    // The audit log has every run with who and what (refusals included).
    let r = sql_call(
        app,
        As::Service,
        Some(SECRET),
        Method::GET,
        "/audit?limit=1000",
        None,
    )
    .await;
    let audit = r.ok().as_array().unwrap().clone();
    assert!(audit.iter().all(|e| e["actor"] == meta_common::ADMIN));
    assert!(audit.iter().any(|e| e["sql"] == "DELETE FROM scratch"
        && e["outcome"] == "meta.sql_read_only"
        && e["read_only"] == true));
    assert!(
        audit
            .iter()
            .any(|e| e["outcome"] == "ok" && e["row_count"] == 2)
    );

    // History per admin: listable, deletable, and not the audit log.
    let admin = As::Admin("system_admin");
    let h = sql_call(app, admin, Some(SECRET), Method::GET, "/history", None)
        .await
        .ok()
        .clone();
    let last_sql = if postgres {
        "SELECT * FROM no_such_table"
    } else {
        "SELECT load_extension('x')"
    };
    assert_eq!(h[0]["sql"], last_sql, "newest first: {h}");
    let first = h[0]["id"].as_i64().unwrap();
    sql_call(
        app,
        admin,
        Some(SECRET),
        Method::DELETE,
        &format!("/history/{first}"),
        None,
    )
    .await
    .ok();
    let h2 = sql_call(app, admin, Some(SECRET), Method::GET, "/history", None)
        .await
        .ok()
        .clone();
    assert_eq!(
        h2.as_array().unwrap().len(),
        h.as_array().unwrap().len() - 1
    );
    // Another admin (service_role) has its own, empty history.
    let other = sql_call(
        app,
        As::Service,
        Some(SECRET),
        Method::GET,
        "/history",
        None,
    )
    .await
    .ok()
    .clone();
    assert_eq!(other, json!([]));
    sql_call(app, admin, Some(SECRET), Method::DELETE, "/history", None)
        .await
        .ok();
    let h3 = sql_call(app, admin, Some(SECRET), Method::GET, "/history", None)
        .await
        .ok()
        .clone();
    assert_eq!(h3, json!([]));
    let after = sql_call(
        app,
        As::Service,
        Some(SECRET),
        Method::GET,
        "/audit?limit=1000",
        None,
    )
    .await
    .ok()
    .clone();
    assert!(after.as_array().unwrap().len() >= audit.len());

    // Saved queries.
    let r = sql_call(
        app,
        admin,
        Some(SECRET),
        Method::POST,
        "/saved",
        Some(json!({"name": "count", "sql": "SELECT count(*) FROM scratch"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let saved = sql_call(app, admin, Some(SECRET), Method::GET, "/saved", None)
        .await
        .ok()
        .clone();
    assert_eq!(saved[0]["name"], "count");
    let id = saved[0]["id"].as_i64().unwrap();
    let r = sql_call(
        app,
        As::Service,
        Some(SECRET),
        Method::DELETE,
        &format!("/saved/{id}"),
        None,
    )
    .await;
    r.assert_error(400, "meta.invalid_request"); // someone else's
    sql_call(
        app,
        admin,
        Some(SECRET),
        Method::DELETE,
        &format!("/saved/{id}"),
        None,
    )
    .await
    .ok();
    let saved = sql_call(app, admin, Some(SECRET), Method::GET, "/saved", None)
        .await
        .ok()
        .clone();
    assert_eq!(saved, json!([]));
}

#[tokio::test]
async fn features_sqlite() {
    let app = sqlite_app(json!({})).await;
    features(&app, false).await;
    app.stop().await;
}

#[tokio::test]
async fn features_postgres() {
    if let Some(pg) = PgRunner::start("features_postgres", json!({})).await {
        features(&pg.app, true).await;
        pg.stop().await;
    }
}

#[tokio::test]
async fn timeout_sqlite_cancels_a_runaway_cte() {
    let app = sqlite_app(json!({})).await;
    let started = Instant::now();
    // Asking for more time than configured does not lift the limit (1.5 s).
    let r = run(
        &app,
        json!({"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c", "timeout_ms": 600000}),
    )
    .await;
    r.assert_error(408, "meta.sql_timeout");
    assert!(started.elapsed().as_secs() < 20, "cancelled, not finished");
    let audit = sql_call(&app, As::Service, Some(SECRET), Method::GET, "/audit", None)
        .await
        .ok()
        .clone();
    assert_eq!(audit[0]["outcome"], "meta.sql_timeout", "{audit}");
    assert!(audit[0]["elapsed_ms"].as_i64().unwrap() >= 1000, "{audit}");
    // The connection is healthy afterwards (and no longer interrupted).
    let r = run(&app, json!({"sql": "SELECT 42"})).await;
    assert_eq!(r.ok()["rows"], json!([[42]]));
    let r = meta_common::meta(&app, Method::GET, "/tables", None).await;
    r.ok();
    app.stop().await;
}

#[tokio::test]
async fn postgres_role_and_timeout() {
    let Some(pg) = PgRunner::start("postgres_role_and_timeout", json!({})).await else {
        return;
    };
    let app = &pg.app;
    // The runner role has no server program/file access.
    let r = run(app, json!({"sql": "COPY runner_data FROM PROGRAM 'id'"})).await;
    r.assert_error(400, "meta.sql_error");
    assert_eq!(r.json["details"]["sqlstate"], "42501", "{}", r.text);
    let r = run(app, json!({"sql": "SELECT pg_read_file('/etc/passwd')"})).await;
    r.assert_error(400, "meta.sql_error");
    assert_eq!(r.json["details"]["sqlstate"], "42501", "{}", r.text);
    let r = run(app, json!({"sql": "SELECT current_user"})).await;
    assert_eq!(r.ok()["rows"], json!([[pg.role]]));

    // pg_sleep is cancelled on the server at the limit…
    let started = Instant::now();
    let r = run(
        app,
        json!({"sql": "SELECT pg_sleep(30)", "timeout_ms": 600000}),
    )
    .await;
    r.assert_error(408, "meta.sql_timeout");
    assert!(started.elapsed().as_secs() < 10);
    // …also when the script lifts statement_timeout itself (the watchdog cancels it).
    let started = Instant::now();
    let r = run(
        app,
        json!({"sql": "SET statement_timeout = 0; SELECT pg_sleep(30)"}),
    )
    .await;
    r.assert_error(408, "meta.sql_timeout");
    assert!(started.elapsed().as_secs() < 10);
    // Nothing of ours is still sleeping on the server.
    let n = app
        .db()
        .query_one_raw(goforward_core::sea_orm::Statement::from_string(
            goforward_core::sea_orm::DbBackend::Postgres,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND state = 'active' AND pid <> pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(n, 0);
    let r = run(app, json!({"sql": "SELECT 1"})).await;
    assert_eq!(r.ok()["rows"], json!([[1]]));
    pg.stop().await;
}

#[tokio::test]
async fn sqlite_open_transaction_is_rolled_back() {
    let app = sqlite_app(json!({})).await;
    run(&app, json!({"sql": "CREATE TABLE t (x integer)"}))
        .await
        .ok();
    // A script that leaves a transaction open does not keep the app's connection in it.
    run(&app, json!({"sql": "BEGIN; INSERT INTO t VALUES (1)"}))
        .await
        .ok();
    let r = run(&app, json!({"sql": "SELECT count(*) FROM t"})).await;
    assert_eq!(r.ok()["rows"], json!([[0]]));
    // The meta API (same connection) still works.
    meta_common::meta(&app, Method::GET, "/tables", None)
        .await
        .ok();
    app.stop().await;
}
