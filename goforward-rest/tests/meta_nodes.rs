//! Several nodes (issue #5): two app instances sharing one PostgreSQL
//! database and the real Redis event bus. An exposure policy set through
//! node A's `/meta/v1` reaches node B's `/rest/v1` without a restart
//! (`meta.policies_changed` on the bus). Needs `GOFORWARD_TEST_DATABASE_URL`
//! and `GOFORWARD_TEST_REDIS_URL` (both required under `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod meta_common;

use std::time::{Duration, Instant};

use goforward_core::sea_orm::ConnectionTrait;
use goforward_core::testing::{TestApp, postgres_url_or_skip, redis_url_or_skip};
use goforward_rest::{Rest, meta::Meta};
use meta_common::{As, call, meta};
use reqwest::Method;
use serde_json::json;

async fn node(redis: &str, channel: &str, database: Option<String>) -> TestApp {
    let rest = Rest::new();
    let redis = redis.to_owned();
    let channel = channel.to_owned();
    let mut b = TestApp::builder()
        .plugin(Meta::for_rest(&rest))
        .plugin(rest)
        .config(move |c| {
            c.redis.url = Some(redis);
            c.redis.channel = Some(channel);
        });
    b = match database {
        // Node B: the same database as node A.
        Some(url) => b.postgres(false).config(|c| c.database.url = Some(url)),
        None => b.postgres(true),
    };
    b.start().await.expect("node starts")
}

/// Polls `GET url` on `app` as anon until it answers `status` (other nodes
/// learn of changes asynchronously); panics after 15 s.
async fn eventually(app: &TestApp, url: &str, status: u16) -> meta_common::Res {
    let start = Instant::now();
    loop {
        let r = call(app, As::Anon, Method::GET, url, None).await;
        if r.status.as_u16() == status {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{url} still answers {} ({}), expected {status}",
            r.status,
            r.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn policies_reach_other_nodes_without_restart() {
    const TEST: &str = "policies_reach_other_nodes_without_restart";
    let Some(redis) = redis_url_or_skip(TEST) else {
        return;
    };
    if postgres_url_or_skip(TEST).is_none() {
        return;
    }
    let channel = format!(
        "goforward:test:meta_nodes:{}",
        uuid::Uuid::new_v4().simple()
    );
    let a = node(&redis, &channel, None).await;
    let url =
        a.gf.config()
            .database
            .url
            .clone()
            .expect("node A's database");
    let b = node(&redis, &channel, Some(url)).await;

    // A table without policy, made on A: B does not serve it.
    meta(
        &a,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "nodes_notes",
            "columns": [
                {"name": "id", "type": "bigint", "primary_key": true, "identity": true},
                {"name": "body", "type": "text"},
            ],
        })),
    )
    .await
    .ok();
    a.db()
        .execute_unprepared("INSERT INTO nodes_notes (body) VALUES ('hello')")
        .await
        .map(|_| ())
        .expect("insert");
    let r = call(&b, As::Anon, Method::GET, "/rest/v1/nodes_notes", None).await;
    assert_eq!(r.status, 404, "{}", r.text);

    // Exposed through A: B serves it, without a restart.
    meta(
        &a,
        Method::PUT,
        "/tables/nodes_notes/policy",
        Some(json!({"policy": "public_read"})),
    )
    .await
    .ok();
    let r = eventually(&b, "/rest/v1/nodes_notes?select=body", 200).await;
    assert_eq!(r.json, json!([{"body": "hello"}]));
    // public_read on B too: anon cannot write.
    let r = call(
        &b,
        As::Anon,
        Method::POST,
        "/rest/v1/nodes_notes",
        Some(json!({"body": "x"})),
    )
    .await;
    assert!(r.status.is_client_error(), "{} {}", r.status, r.text);

    // A new table created with a policy on A, then renamed: B follows both.
    meta(
        &a,
        Method::POST,
        "/tables",
        Some(json!({
            "name": "nodes_tags",
            "columns": [{"name": "tag", "type": "text", "primary_key": true}],
            "policy": "public",
        })),
    )
    .await
    .ok();
    eventually(&b, "/rest/v1/nodes_tags", 200).await;
    meta(
        &a,
        Method::PATCH,
        "/tables/nodes_tags",
        Some(json!({"name": "nodes_labels"})),
    )
    .await
    .ok();
    eventually(&b, "/rest/v1/nodes_labels", 200).await;

    b.stop().await;
    // Node A owns (and drops) the test database.
    a.stop().await;
}
