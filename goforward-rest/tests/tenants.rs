//! The two-tenant matrix: under an owner policy, each user sees, counts,
//! changes and deletes only their own rows, over every verb; anon nothing;
//! service_role everything. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ALICE, As, BOB, call, db_count, get};
use goforward_core::testing::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

async fn titles(app: &TestApp, who: As<'_>) -> Vec<String> {
    let r = get(app, who, "/todos?select=title&order=title").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn count(app: &TestApp, who: As<'_>, filter: &str) -> String {
    let r = call(
        app,
        who,
        Method::HEAD,
        &format!("/todos?{filter}"),
        &[("prefer", "count=exact")],
        None,
    )
    .await;
    r.header("content-range")
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .to_owned()
}

both!(two_tenants);
async fn two_tenants(app: &TestApp) {
    let (alice, bob) = (As::User(ALICE), As::User(BOB));
    for (who, titles) in [(alice, ["a1", "a2"]), (bob, ["b1", "b2"])] {
        let rows: Vec<Value> = titles.iter().map(|t| json!({"title": t})).collect();
        let r = call(
            app,
            who,
            Method::POST,
            "/todos",
            &[],
            Some(Value::Array(rows)),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // select / count
    assert_eq!(titles(app, alice).await, ["a1", "a2"]);
    assert_eq!(titles(app, bob).await, ["b1", "b2"]);
    assert!(titles(app, As::Anon).await.is_empty());
    assert_eq!(titles(app, As::Service).await, ["a1", "a2", "b1", "b2"]);
    assert_eq!(count(app, alice, "").await, "2");
    assert_eq!(count(app, alice, "title=eq.b1").await, "0");
    assert_eq!(count(app, As::Anon, "").await, "0");
    assert_eq!(count(app, As::Service, "").await, "4");
    // A filter on the owner column cannot widen the policy.
    let r = get(
        app,
        alice,
        &format!("/todos?select=title&or=(user_id.eq.{BOB},title.eq.b1)"),
    )
    .await;
    assert_eq!(r.json, json!([]));
    // single on someone else's row: 0 rows.
    let r = call(
        app,
        alice,
        Method::GET,
        "/todos?title=eq.b1",
        &[("accept", "application/vnd.pgrst.object+json")],
        None,
    )
    .await;
    assert_eq!(r.status, 406);
    // patch: only own rows change.
    let r = call(
        app,
        alice,
        Method::PATCH,
        "/todos?title=in.(a1,b1)&select=title",
        &[("prefer", "return=representation")],
        Some(json!({"done": true})),
    )
    .await;
    assert_eq!(r.json, json!([{"title": "a1"}]));
    let r = get(app, As::Service, "/todos?done=is.true&select=title").await;
    assert_eq!(r.json, json!([{"title": "a1"}]));
    // delete: only own rows go.
    let r = call(
        app,
        bob,
        Method::DELETE,
        "/todos?title=like.*1&select=title",
        &[("prefer", "return=representation")],
        None,
    )
    .await;
    assert_eq!(r.json, json!([{"title": "b1"}]));
    assert_eq!(db_count(app, "todos").await, 3);
    // anon changes nothing.
    let r = call(
        app,
        As::Anon,
        Method::PATCH,
        "/todos?title=eq.a2",
        &[],
        Some(json!({"title": "pwned"})),
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        app,
        As::Anon,
        Method::DELETE,
        "/todos?title=eq.a2",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(titles(app, As::Service).await, ["a1", "a2", "b2"]);
    // upsert on someone else's key is refused.
    let id = get(app, As::Service, "/todos?title=eq.b2&select=id")
        .await
        .json[0]["id"]
        .clone();
    let r = call(
        app,
        alice,
        Method::POST,
        "/todos",
        &[("prefer", "resolution=merge-duplicates")],
        Some(json!({"id": id, "title": "mine now"})),
    )
    .await;
    r.assert_error(403, "42501");
    assert_eq!(titles(app, bob).await, ["b2"]);
}
