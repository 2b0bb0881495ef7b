//! Refusals: each answers the right status in PostgREST's shape, never names
//! what the caller cannot see, and writes nothing. SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ALICE, As, BOB, call, db_count, get, seed, seed_items};
use goforward_core::testing::TestApp;
use reqwest::Method;
use serde_json::json;

both!(unknown_and_unexposed_tables);
async fn unknown_and_unexposed_tables(app: &TestApp) {
    for path in ["/nope", "/hidden_table", "/goforward_migrations_rest"] {
        let r = get(app, As::Service, path).await;
        r.assert_error(404, "PGRST205");
        assert_eq!(r.json["hint"], serde_json::Value::Null, "no suggestions");
        call(
            app,
            As::Service,
            Method::POST,
            path,
            &[],
            Some(json!({"x": 1})),
        )
        .await
        .assert_error(404, "PGRST205");
        call(
            app,
            As::Service,
            Method::DELETE,
            &format!("{path}?x=eq.1"),
            &[],
            None,
        )
        .await
        .assert_error(404, "PGRST205");
    }
    assert_eq!(db_count(app, "hidden_table").await, 0);
}

both!(hidden_and_unknown_columns);
async fn hidden_and_unknown_columns(app: &TestApp) {
    seed(app, "todos", json!({"user_id": ALICE, "title": "t"})).await;
    {
        use goforward_core::sea_orm::ConnectionTrait;
        app.db()
            .execute_unprepared("UPDATE todos SET secret = 's3cret'")
            .await
            .unwrap();
    }
    let alice = As::User(ALICE);
    // Never in `*`.
    let r = get(app, alice, "/todos").await;
    assert_eq!(r.status, 200);
    assert!(
        !r.text.contains("secret") && !r.text.contains("s3cret"),
        "{}",
        r.text
    );
    // Hidden answers exactly like unknown.
    for (hidden, unknown) in [
        ("/todos?select=secret", "/todos?select=nosuch"),
        ("/todos?select=x:secret", "/todos?select=x:nosuch"),
        ("/todos?secret=eq.s3cret", "/todos?nosuch=eq.s3cret"),
        (
            "/todos?or=(secret.eq.s3cret,id.eq.1)",
            "/todos?or=(nosuch.eq.s3cret,id.eq.1)",
        ),
        ("/todos?order=secret", "/todos?order=nosuch"),
        ("/todos?secret=like.s*", "/todos?nosuch=like.s*"),
    ] {
        let h = get(app, alice, hidden).await;
        h.assert_error(400, "42703");
        let u = get(app, alice, unknown).await;
        u.assert_error(400, "42703");
        assert_eq!(
            h.json["message"].as_str().unwrap().replace("secret", "X"),
            u.json["message"].as_str().unwrap().replace("nosuch", "X"),
        );
    }
    // Writes to a hidden column: as unknown (PGRST204), nothing written.
    let before = db_count(app, "todos").await;
    call(
        app,
        alice,
        Method::POST,
        "/todos",
        &[],
        Some(json!({"title": "x", "secret": "y"})),
    )
    .await
    .assert_error(400, "PGRST204");
    call(
        app,
        alice,
        Method::POST,
        "/todos",
        &[],
        Some(json!({"title": "x", "nosuch": "y"})),
    )
    .await
    .assert_error(400, "PGRST204");
    call(
        app,
        alice,
        Method::POST,
        "/todos?columns=title,secret",
        &[],
        Some(json!([{"title": "x"}])),
    )
    .await
    .assert_error(400, "PGRST204");
    call(
        app,
        alice,
        Method::PATCH,
        "/todos?id=gt.0",
        &[],
        Some(json!({"secret": "y"})),
    )
    .await
    .assert_error(400, "PGRST204");
    assert_eq!(db_count(app, "todos").await, before);
    let r = get(app, As::Service, "/todos?select=title").await;
    assert_eq!(r.json, json!([{"title": "t"}]));
}

both!(malformed_and_mistyped);
async fn malformed_and_mistyped(app: &TestApp) {
    seed_items(app).await;
    for bad in [
        "/items?qty=eq",
        "/items?qty=zz.1",
        "/items?or=(qty.eq.1",
        "/items?qty=in.1,2",
        "/items?limit=abc",
        "/items?order=qty.up",
        "/items?select=qty::evil",
        "/items?rel.qty=eq.1",
    ] {
        get(app, As::Anon, bad).await.assert_error(400, "PGRST100");
    }
    for bad in [
        "/items?qty=eq.abc",
        "/items?active=eq.maybe",
        "/items?qty=in.(1,x)",
        "/items?price=gt.cheap",
    ] {
        let r = get(app, As::Anon, bad).await;
        r.assert_error(400, "22P02");
        assert!(
            r.json["details"]
                .as_str()
                .unwrap()
                .starts_with("column items."),
            "{}",
            r.text
        );
    }
    get(app, As::Anon, "/items?name=cs.{a}")
        .await
        .assert_error(400, "PGRST100");
    get(app, As::Anon, "/items?qty->a=eq.1")
        .await
        .assert_error(400, "PGRST100");
    // Body type mismatches name the column; nothing written.
    for body in [
        json!({"name": "n", "qty": "many"}),
        json!({"name": "n", "active": 3}),
        json!({"name": 5, "qty": [1]}),
    ] {
        let r = call(app, As::Anon, Method::POST, "/items", &[], Some(body)).await;
        r.assert_error(400, "22P02");
    }
    call(
        app,
        As::User(ALICE),
        Method::POST,
        "/todos",
        &[],
        Some(json!({"user_id": "not-a-uuid", "title": "t"})),
    )
    .await
    .assert_error(400, "22P02");
    assert_eq!(db_count(app, "todos").await, 0);
    for body in ["", "not json", "[1,2]", "42"] {
        let r = app
            .client()
            .post(app.url("/rest/v1/items"))
            .header("apikey", app.anon_key())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "body {body:?}");
        let j: serde_json::Value = r.json().await.unwrap();
        assert_eq!(j["code"], "PGRST102");
    }
    call(
        app,
        As::Anon,
        Method::PATCH,
        "/items?qty=eq.5",
        &[],
        Some(json!([{"qty": 1}])),
    )
    .await
    .assert_error(400, "PGRST102");
    assert_eq!(db_count(app, "items").await, 4);
    let r = get(app, As::Anon, "/items?qty=eq.5&select=qty").await;
    assert_eq!(r.json, json!([{"qty": 5}]));
}

both!(unfiltered_bulk_writes_are_refused);
async fn unfiltered_bulk_writes_are_refused(app: &TestApp) {
    seed_items(app).await;
    for who in [As::Anon, As::Service] {
        call(
            app,
            who,
            Method::PATCH,
            "/items",
            &[],
            Some(json!({"qty": 0})),
        )
        .await
        .assert_error(400, "21000");
        call(app, who, Method::DELETE, "/items", &[], None)
            .await
            .assert_error(400, "21000");
    }
    assert_eq!(db_count(app, "items").await, 4);
    let r = get(app, As::Anon, "/items?qty=eq.0").await;
    assert_eq!(r.json, json!([]));
}

both!(owner_spoofing_and_moving_rows_out);
async fn owner_spoofing_and_moving_rows_out(app: &TestApp) {
    let alice = As::User(ALICE);
    // The owner column is filled from the caller.
    let r = call(
        app,
        alice,
        Method::POST,
        "/todos?select=user_id",
        &[("prefer", "return=representation")],
        Some(json!({"title": "mine"})),
    )
    .await;
    assert_eq!(r.json, json!([{"user_id": ALICE}]));
    // Inserting for someone else: 403 42501, nothing written.
    let r = call(
        app,
        alice,
        Method::POST,
        "/todos",
        &[],
        Some(json!({"title": "x", "user_id": BOB})),
    )
    .await;
    r.assert_error(403, "42501");
    assert!(
        r.json["message"]
            .as_str()
            .unwrap()
            .contains("row-level security")
    );
    call(
        app,
        alice,
        Method::POST,
        "/todos",
        &[],
        Some(json!([{"title": "ok"}, {"title": "x", "user_id": BOB}])),
    )
    .await
    .assert_error(403, "42501");
    // Anonymous: 401.
    call(
        app,
        As::Anon,
        Method::POST,
        "/todos",
        &[],
        Some(json!({"title": "x", "user_id": BOB})),
    )
    .await
    .assert_error(401, "42501");
    assert_eq!(db_count(app, "todos").await, 1);
    // Moving a row to someone else: refused, unchanged.
    call(
        app,
        alice,
        Method::PATCH,
        "/todos?title=eq.mine",
        &[],
        Some(json!({"user_id": BOB})),
    )
    .await
    .assert_error(403, "42501");
    let r = get(app, alice, "/todos?select=title,user_id").await;
    assert_eq!(r.json, json!([{"title": "mine", "user_id": ALICE}]));
    // Upserting over someone else's row does not take it over.
    let id = get(app, alice, "/todos?select=id").await.json[0]["id"].clone();
    let r = call(
        app,
        As::User(BOB),
        Method::POST,
        "/todos",
        &[("prefer", "resolution=merge-duplicates")],
        Some(json!({"id": id, "title": "stolen"})),
    )
    .await;
    r.assert_error(403, "42501");
    let r = get(app, As::Service, "/todos?select=title,user_id").await;
    assert_eq!(r.json, json!([{"title": "mine", "user_id": ALICE}]));
    // profiles: insert only your own id; anon reads.
    call(
        app,
        As::User(BOB),
        Method::POST,
        "/profiles",
        &[],
        Some(json!({"id": ALICE, "username": "bob"})),
    )
    .await
    .assert_error(403, "42501");
    let r = call(
        app,
        As::User(BOB),
        Method::POST,
        "/profiles",
        &[],
        Some(json!({"id": BOB, "username": "bob"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    call(
        app,
        As::Anon,
        Method::DELETE,
        "/profiles?id=eq.x",
        &[],
        None,
    )
    .await
    .assert_error(400, "22P02");
    let r = call(
        app,
        As::User(BOB),
        Method::DELETE,
        &format!("/profiles?id=eq.{BOB}"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 204, "deny = no rows affected");
    assert_eq!(db_count(app, "profiles").await, 1);
}

both!(oversize_queries);
async fn oversize_queries(app: &TestApp) {
    let many = (0..201).map(|_| "qty=gt.0").collect::<Vec<_>>().join("&");
    get(app, As::Anon, &format!("/items?{many}"))
        .await
        .assert_error(400, "PGRST100");
    let deep = format!("or=({}qty.eq.1{})", "or(".repeat(12), ")".repeat(12));
    get(app, As::Anon, &format!("/items?{deep}"))
        .await
        .assert_error(400, "PGRST100");
    let long = "x".repeat(4000);
    get(app, As::Anon, &format!("/items?name=eq.{long}"))
        .await
        .assert_error(400, "PGRST100");
    let order = (0..9).map(|_| "qty").collect::<Vec<_>>().join(",");
    get(app, As::Anon, &format!("/items?order={order}"))
        .await
        .assert_error(400, "PGRST100");
    let in_list = (0..300)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    get(app, As::Anon, &format!("/items?qty=in.({in_list})"))
        .await
        .assert_error(400, "PGRST100");
}

both!(schema_reload_is_service_only);
async fn schema_reload_is_service_only(app: &TestApp) {
    use goforward_core::sea_orm::ConnectionTrait;
    app.db()
        .execute_unprepared("CREATE TABLE later (id INTEGER PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    app.gf
        .context()
        .access()
        .policies()
        .set_table("later", goforward_core::access::Policy::public());
    get(app, As::Anon, "/later")
        .await
        .assert_error(404, "PGRST205");
    call(app, As::Anon, Method::POST, "/_schema/reload", &[], None)
        .await
        .assert_error(401, "42501");
    call(
        app,
        As::User(ALICE),
        Method::POST,
        "/_schema/reload",
        &[],
        None,
    )
    .await
    .assert_error(403, "42501");
    let r = call(app, As::Service, Method::POST, "/_schema/reload", &[], None).await;
    assert_eq!(r.status, 204);
    let r = get(app, As::Anon, "/later").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json, json!([]));
}

both!(oversize_bodies);
async fn oversize_bodies(app: &TestApp) {
    let limit = app.gf.config().server.json_limit;
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(limit + 1));
    for (method, path) in [
        (reqwest::Method::POST, "/rest/v1/items"),
        (reqwest::Method::PATCH, "/rest/v1/items?id=eq.1"),
    ] {
        let r = app
            .client()
            .request(method, app.url(path))
            .header("apikey", app.anon_key())
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
        let j: serde_json::Value = r.json().await.unwrap();
        assert!(j["code"].is_string() && j["message"].is_string(), "{j}");
    }
    assert_eq!(db_count(app, "items").await, 0);
}
