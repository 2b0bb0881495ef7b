//! Writes: insert (single, bulk, columns, missing=default), upsert, update,
//! delete, return preferences, constraint errors and bus events, on SQLite
//! and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ALICE, As, call, db_count, get, names, seed_items};
use goforward_core::bus::Event;
use goforward_core::testing::TestApp;
use reqwest::Method;
use serde_json::{Value, json};

const REPR: (&str, &str) = ("prefer", "return=representation");

both!(insert_single_bulk_and_returns);
async fn insert_single_bulk_and_returns(app: &TestApp) {
    // Minimal (the default): 201, empty body.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[],
        Some(json!({"name": "a", "qty": 1})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.text, "");
    assert_eq!(r.header("content-range"), Some("*/*"));
    // Representation with select.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items?select=name,qty",
        &[REPR],
        Some(json!({"name": "b", "qty": "2"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json, json!([{"name": "b", "qty": 2}]));
    // Bulk with columns= (supabase-js quotes them); missing keys become NULL.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items?columns=%22name%22,%22qty%22&select=name,qty",
        &[REPR, ("prefer", "count=exact")],
        Some(json!([{"name": "c", "qty": 3, "price": 9.0}, {"name": "d"}])),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "c", "qty": 3}, {"name": "d", "qty": null}])
    );
    assert_eq!(r.header("content-range"), Some("*/2"));
    let r = get(app, As::Anon, "/items?name=eq.c&select=price").await;
    assert_eq!(r.json, json!([{"price": null}]), "price is not in columns=");
    // missing=default keeps defaults for absent keys.
    let r = call(
        app,
        As::User(ALICE),
        Method::POST,
        "/todos?columns=title,done&select=title,done",
        &[REPR, ("prefer", "missing=default")],
        Some(json!([{"title": "x"}])),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json, json!([{"title": "x", "done": false}]));
    // Single object with the object Accept.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items?select=name",
        &[REPR, ("accept", "application/vnd.pgrst.object+json")],
        Some(json!({"name": "e"})),
    )
    .await;
    assert_eq!(r.json, json!({"name": "e"}));
    // An empty array writes nothing.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[REPR],
        Some(json!([])),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json, json!([]));
    assert_eq!(db_count(app, "items").await, 5);
    // headers-only gives a Location.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[("prefer", "return=headers-only")],
        Some(json!({"name": "f"})),
    )
    .await;
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with("/items?id=eq.")),
        "{:?}",
        r.headers
    );
}

both!(upserts);
async fn upserts(app: &TestApp) {
    seed_items(app).await;
    let merge = ("prefer", "resolution=merge-duplicates");
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items?on_conflict=name&select=name,qty",
        &[merge, REPR],
        Some(json!([{"name": "apple", "qty": 50}, {"name": "kiwi", "qty": 1}])),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"name": "apple", "qty": 50}, {"name": "kiwi", "qty": 1}])
    );
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items?on_conflict=name&select=name,qty",
        &[("prefer", "resolution=ignore-duplicates"), REPR],
        Some(json!([{"name": "apple", "qty": 99}, {"name": "lime", "qty": 2}])),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json, json!([{"name": "lime", "qty": 2}]));
    let r = get(app, As::Anon, "/items?name=eq.apple&select=qty").await;
    assert_eq!(r.json, json!([{"qty": 50}]));
    // Upsert on the primary key by default.
    let id = get(app, As::Anon, "/items?name=eq.kiwi&select=id")
        .await
        .json[0]["id"]
        .clone();
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items?select=name",
        &[merge, REPR],
        Some(json!({"id": id, "name": "kiwi2"})),
    )
    .await;
    assert_eq!(r.json, json!([{"name": "kiwi2"}]));
    assert_eq!(db_count(app, "items").await, 6);
    call(
        app,
        As::Anon,
        Method::POST,
        "/items?on_conflict=nope",
        &[merge],
        Some(json!({"name": "z"})),
    )
    .await
    .assert_error(400, "42703");
}

both!(update_and_delete);
async fn update_and_delete(app: &TestApp) {
    seed_items(app).await;
    let r = call(
        app,
        As::Anon,
        Method::PATCH,
        "/items?qty=lt.8",
        &[],
        Some(json!({"active": false})),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(r.text, "");
    let r = get(
        app,
        As::Anon,
        "/items?active=is.false&select=name&order=name",
    )
    .await;
    assert_eq!(names(&r.json), ["Date", "apple", "banana"]);
    let r = call(
        app,
        As::Anon,
        Method::PATCH,
        "/items?name=eq.apple&select=name,qty",
        &[REPR, ("prefer", "count=exact")],
        Some(json!({"qty": 6})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!([{"name": "apple", "qty": 6}]));
    assert_eq!(r.header("content-range"), Some("0-0/1"));
    // Nothing matches: an empty result.
    let r = call(
        app,
        As::Anon,
        Method::PATCH,
        "/items?name=eq.none",
        &[REPR],
        Some(json!({"qty": 1})),
    )
    .await;
    assert_eq!(r.json, json!([]));

    let r = call(
        app,
        As::Anon,
        Method::DELETE,
        "/items?name=in.(apple,banana)&select=name",
        &[REPR],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut deleted = names(&r.json);
    deleted.sort();
    assert_eq!(deleted, ["apple", "banana"]);
    let r = call(
        app,
        As::Anon,
        Method::DELETE,
        "/items?name=eq.cherry",
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(db_count(app, "items").await, 1);
}

both!(constraint_errors_are_mapped);
async fn constraint_errors_are_mapped(app: &TestApp) {
    seed_items(app).await;
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[],
        Some(json!({"name": "apple"})),
    )
    .await;
    r.assert_error(409, "23505");
    assert!(
        !r.text.to_lowercase().contains("sqlite") && !r.text.contains("items_name_key"),
        "{}",
        r.text
    );
    call(
        app,
        As::Anon,
        Method::POST,
        "/notes",
        &[],
        Some(json!({"profile_id": ALICE, "body": "x"})),
    )
    .await
    .assert_error(409, "23503");
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[],
        Some(json!({"qty": 1})),
    )
    .await;
    r.assert_error(400, "23502");
    assert!(r.json["message"].as_str().unwrap().contains("\"name\""));
    call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[],
        Some(json!({"name": null})),
    )
    .await
    .assert_error(400, "23502");
    // A bulk insert with one bad row writes nothing.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[],
        Some(json!([{"name": "new1"}, {"name": "apple"}])),
    )
    .await;
    r.assert_error(409, "23505");
    assert_eq!(db_count(app, "items").await, 4);
    // A PATCH into a duplicate is refused as a whole.
    call(
        app,
        As::Anon,
        Method::PATCH,
        "/items?qty=gt.0",
        &[],
        Some(json!({"name": "same"})),
    )
    .await
    .assert_error(409, "23505");
    let r = get(app, As::Anon, "/items?name=eq.same").await;
    assert_eq!(r.json, json!([]));
}

both!(committed_writes_are_published);
async fn committed_writes_are_published(app: &TestApp) {
    let mut rx = app.gf.context().bus().subscribe();
    call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[],
        Some(json!([{"name": "p1"}, {"name": "p2"}])),
    )
    .await;
    call(
        app,
        As::Anon,
        Method::PATCH,
        "/items?name=eq.p1",
        &[],
        Some(json!({"qty": 4})),
    )
    .await;
    call(
        app,
        As::Anon,
        Method::DELETE,
        "/items?name=eq.p2",
        &[],
        None,
    )
    .await;
    // A refused write publishes nothing.
    call(
        app,
        As::Anon,
        Method::POST,
        "/items",
        &[],
        Some(json!({"name": "p1"})),
    )
    .await;
    let mut seen: Vec<(String, Value, Value)> = Vec::new();
    while seen.len() < 4 {
        let envelope = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("event in time")
            .expect("bus open");
        if let Event::RecordChanged(c) = &envelope.event {
            let c = c.clone();
            seen.push((
                c.kind.to_string(),
                c.record.map(|r| r["name"].clone()).unwrap_or(Value::Null),
                c.old_record
                    .map(|r| r["qty"].clone())
                    .unwrap_or(Value::Null),
            ));
        }
    }
    assert_eq!(seen[0], ("INSERT".into(), json!("p1"), Value::Null));
    assert_eq!(seen[1], ("INSERT".into(), json!("p2"), Value::Null));
    assert_eq!(seen[2].0, "UPDATE");
    assert_eq!(seen[2].1, json!("p1"));
    assert_eq!(seen[3].0, "DELETE");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "the refused insert must not be announced"
    );
}

both!(strict_preferences_and_max_affected);
async fn strict_preferences_and_max_affected(app: &TestApp) {
    seed_items(app).await;
    // Unknown preferences: ignored by default, refused under handling=strict.
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/items",
        &[("prefer", "foo=bar")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(
        app,
        As::Anon,
        Method::GET,
        "/items",
        &[("prefer", "handling=strict, foo=bar")],
        None,
    )
    .await;
    r.assert_error(400, "PGRST122");
    assert_eq!(r.json["details"], "Invalid preferences: foo=bar");
    // max-affected under strict: refused before anything changes.
    let strict = ("prefer", "handling=strict, max-affected=1");
    let r = call(
        app,
        As::Anon,
        Method::PATCH,
        "/items?qty=gt.0",
        &[strict],
        Some(json!({"qty": 0})),
    )
    .await;
    r.assert_error(400, "PGRST124");
    assert_eq!(r.json["details"], "The query affects 3 rows");
    call(
        app,
        As::Anon,
        Method::DELETE,
        "/items?qty=gt.0",
        &[strict],
        None,
    )
    .await
    .assert_error(400, "PGRST124");
    assert_eq!(db_count(app, "items").await, 4);
    let r = get(app, As::Anon, "/items?qty=eq.0").await;
    assert_eq!(r.json, json!([]));
    let r = call(
        app,
        As::Anon,
        Method::DELETE,
        "/items?qty=eq.5",
        &[strict],
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(db_count(app, "items").await, 3);
}

both!(views_and_conflict_targets);
async fn views_and_conflict_targets(app: &TestApp) {
    seed_items(app).await;
    // Views read like tables.
    let r = get(app, As::Anon, "/item_names?select=name&name=like.*an*").await;
    assert_eq!(r.json, json!([{"name": "banana"}]));
    let r = get(app, As::Anon, "/item_totals").await;
    assert_eq!(r.json, json!([{"n": 4}]));
    let r = get(app, As::Anon, "/item_totals?n=eq.4").await;
    assert_eq!(r.json, json!([{"n": 4}]));
    // A view the database cannot update: a clean 400, nothing written.
    let r = call(
        app,
        As::Anon,
        Method::POST,
        "/item_totals",
        &[],
        Some(json!({"n": 1})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(db_count(app, "items").await, 4);
    // on_conflict must name a key.
    call(
        app,
        As::Anon,
        Method::POST,
        "/items?on_conflict=qty",
        &[("prefer", "resolution=merge-duplicates")],
        Some(json!({"name": "z", "qty": 5})),
    )
    .await
    .assert_error(400, "42P10");
    assert_eq!(db_count(app, "items").await, 4);
}
