//! Refresh-token rotation against the store's concurrency: a SQLite file
//! (WAL, a pool of connections that really write concurrently, unlike the
//! one-connection `sqlite::memory:` of the other tests), and a rotation
//! interrupted between its two writes (child inserted, parent not yet
//! marked revoked) on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use common::*;
use goforward_auth::{Auth, AuthConfig};
use goforward_core::testing::TestApp;
use serde_json::Value;

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!(
            "goforward-auth-refresh-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An app on a SQLite file in `dir` (core's production settings).
async fn file_app(
    dir: &std::path::Path,
    tweak: impl Fn(&mut AuthConfig) + Send + Sync + 'static,
) -> TestApp {
    let auth = Auth::new().configure(move |c| {
        c.bcrypt_cost = 4;
        c.mailer_autoconfirm = true;
        tweak(c);
    });
    let url = format!("sqlite://{}?mode=rwc", dir.join("auth.db").display());
    TestApp::builder()
        .plugin(auth)
        .postgres(false)
        .config(move |c| c.database.url = Some(url))
        .start()
        .await
        .expect("test app starts")
}

fn rt(v: &Value) -> String {
    v["refresh_token"].as_str().unwrap().to_owned()
}

async fn new_session(app: &TestApp) -> Value {
    let res = sign_up(app, &email(), "correct horse").await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_on_a_sqlite_file() {
    let dir = TempDir::new();
    let app = file_app(dir.path(), |_| {}).await;
    let s0 = new_session(&app).await;
    let r0 = rt(&s0);
    let results = futures_util::future::join_all((0..50).map(|_| refresh(&app, &r0))).await;
    let mut children = HashSet::new();
    for res in &results {
        assert_eq!(res.status, 200, "{}", res.body);
        children.insert(rt(&res.body));
    }
    assert_eq!(children.len(), 1, "one child for 50 concurrent refreshes");
    assert_eq!(count(&app, "auth_refresh_tokens").await, 2);
    assert_eq!(count(&app, "auth_sessions").await, 1);
    // Many tokens of many sessions rotating at once each get their own child.
    let mut tokens = vec![rt(&refresh(&app, &children.into_iter().next().unwrap())
        .await
        .body)];
    for _ in 0..7 {
        tokens.push(rt(&new_session(&app).await));
    }
    for _ in 0..5 {
        let next = futures_util::future::join_all(tokens.iter().map(|t| refresh(&app, t))).await;
        tokens = next
            .iter()
            .map(|res| {
                assert_eq!(res.status, 200, "{}", res.body);
                rt(&res.body)
            })
            .collect();
        assert_eq!(tokens.iter().collect::<HashSet<_>>().len(), 8);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_after_window_revokes_family_on_a_sqlite_file() {
    let dir = TempDir::new();
    let app = file_app(dir.path(), |c| c.refresh_token_reuse_interval_secs = 0).await;
    let s0 = new_session(&app).await;
    let r0 = rt(&s0);
    let r1 = rt(&refresh(&app, &r0).await.body);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    refresh(&app, &r0)
        .await
        .assert_error(400, "refresh_token_already_used");
    refresh(&app, &r1)
        .await
        .assert_error(400, "refresh_token_not_found");
    assert_eq!(count(&app, "auth_sessions").await, 0);
    app.stop().await;
}

/// Marks every refresh token unrevoked, as if the process had stopped
/// between a rotation's two writes (the child inserted, the parent not yet
/// marked).
async fn unrevoke_all(app: &TestApp) {
    use goforward_core::sea_orm::ConnectionTrait;
    use goforward_core::sea_query::{Alias, Expr, ExprTrait, Query};
    let stmt = Query::update()
        .table(Alias::new("auth_refresh_tokens"))
        .value(Alias::new("revoked"), false)
        .and_where(ExprTrait::eq(Expr::col(Alias::new("revoked")), true))
        .to_owned();
    let done = app.db().execute(&stmt).await.unwrap();
    assert_eq!(done.rows_affected(), 1);
}

async fn interrupted_rotation(pg: bool) {
    // Within the reuse interval: the parent yields the existing child.
    let Some(first) = app(pg, |c| c.mailer_autoconfirm = true).await else {
        return;
    };
    let r0 = rt(&new_session(&first).await);
    let r1 = rt(&refresh(&first, &r0).await.body);
    unrevoke_all(&first).await;
    let again = refresh(&first, &r0).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(rt(&again.body), r1);
    assert_eq!(count(&first, "auth_refresh_tokens").await, 2);
    assert_eq!(refresh(&first, &r1).await.status, 200);
    first.stop().await;

    // Past it: presenting the parent is a reuse and ends the family.
    let Some(app) = app(pg, |c| {
        c.mailer_autoconfirm = true;
        c.refresh_token_reuse_interval_secs = 0;
    })
    .await
    else {
        return;
    };
    let r0 = rt(&new_session(&app).await);
    let r1 = rt(&refresh(&app, &r0).await.body);
    unrevoke_all(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    refresh(&app, &r0)
        .await
        .assert_error(400, "refresh_token_already_used");
    refresh(&app, &r1)
        .await
        .assert_error(400, "refresh_token_not_found");
    assert_eq!(count(&app, "auth_sessions").await, 0);
    app.stop().await;
}
both!(interrupted, interrupted_rotation);

/// Batched rotations on a SQLite file: copies of each token, distinct
/// families and an unknown token, all at once. Each token gets exactly one
/// child (every copy receives it), the unknown token is refused alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_batches_on_a_sqlite_file() {
    let dir = TempDir::new();
    let app = file_app(dir.path(), |_| {}).await;
    let mut parents = Vec::new();
    for _ in 0..8 {
        parents.push(rt(&new_session(&app).await));
    }
    let mut requests: Vec<String> = parents
        .iter()
        .flat_map(|p| [p.clone(), p.clone(), p.clone()])
        .collect();
    requests.insert(7, "unknown-token".to_owned());
    let results = futures_util::future::join_all(requests.iter().map(|t| refresh(&app, t))).await;
    let mut children: std::collections::HashMap<&String, HashSet<String>> =
        std::collections::HashMap::new();
    for (token, res) in requests.iter().zip(&results) {
        if token == "unknown-token" {
            res.assert_error(400, "refresh_token_not_found");
            continue;
        }
        assert_eq!(res.status, 200, "{}", res.body);
        children.entry(token).or_default().insert(rt(&res.body));
    }
    assert_eq!(children.len(), 8);
    assert!(
        children.values().all(|c| c.len() == 1),
        "one child per token"
    );
    assert_eq!(count(&app, "auth_refresh_tokens").await, 16);
    assert_eq!(count(&app, "auth_sessions").await, 8);
    app.stop().await;
}
