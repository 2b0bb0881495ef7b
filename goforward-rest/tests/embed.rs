//! Embedded resources through foreign keys: many-to-one, one-to-many,
//! nested, hints, `!inner`, the embedded table's policy and hidden columns,
//! types identical on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ALICE, As, BOB, get, seed};
use goforward_core::testing::TestApp;
use serde_json::json;

async fn data(app: &TestApp) {
    seed(
        app,
        "profiles",
        json!([{"id": ALICE, "username": "alice"}, {"id": BOB, "username": "bob"}]),
    )
    .await;
    seed(
        app,
        "notes",
        json!([{"profile_id": ALICE, "body": "n1"}, {"profile_id": ALICE, "body": "n2"}]),
    )
    .await;
    seed(
        app,
        "messages",
        json!([{"sender": ALICE, "receiver": BOB, "body": "hi bob"}]),
    )
    .await;
    seed(
        app,
        "private_notes",
        json!([
            {"profile_id": ALICE, "owner": ALICE, "body": "alice's", "flag": true, "score": 1.0,
             "meta": {"k": [1, 2]}, "at": "2024-05-06T07:08:09Z"},
            {"profile_id": ALICE, "owner": BOB, "body": "bob's", "flag": false, "score": 2.5, "meta": null, "at": null},
        ]),
    )
    .await;
}

both!(embeds_through_foreign_keys);
async fn embeds_through_foreign_keys(app: &TestApp) {
    data(app).await;
    // many-to-one
    let r = get(
        app,
        As::Anon,
        "/notes?select=body,profile:profiles(username)&order=body",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"body": "n1", "profile": {"username": "alice"}}, {"body": "n2", "profile": {"username": "alice"}}])
    );
    // one-to-many, empty as []
    let r = get(
        app,
        As::Anon,
        "/profiles?select=username,notes(body)&order=username",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut alice_notes: Vec<String> = r.json[0]["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["body"].as_str().unwrap().to_owned())
        .collect();
    alice_notes.sort();
    assert_eq!(alice_notes, ["n1", "n2"]);
    assert_eq!(r.json[1], json!({"username": "bob", "notes": []}));
    // nested, and `*` inside
    let r = get(
        app,
        As::Anon,
        "/notes?select=body,profiles(username,notes(body))&body=eq.n1",
    )
    .await;
    assert_eq!(r.json[0]["profiles"]["username"], "alice");
    assert_eq!(r.json[0]["profiles"]["notes"].as_array().unwrap().len(), 2);
    let r = get(app, As::Anon, "/notes?select=profiles(*)&body=eq.n1").await;
    assert_eq!(
        r.json,
        json!([{"profiles": {"id": ALICE, "username": "alice"}}])
    );
    // !inner keeps only parents with related rows
    let r = get(app, As::Anon, "/profiles?select=username,notes!inner(body)").await;
    assert_eq!(r.json.as_array().unwrap().len(), 1);
    assert_eq!(r.json[0]["username"], "alice");
    // two foreign keys: ambiguous without a hint, fine with one
    get(app, As::Anon, "/profiles?select=messages(body)")
        .await
        .assert_error(300, "PGRST201");
    let r = get(
        app,
        As::Anon,
        "/profiles?select=username,messages!messages_sender_fkey(body)&order=username",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"username": "alice", "messages": [{"body": "hi bob"}]}, {"username": "bob", "messages": []}])
    );
    let r = get(
        app,
        As::Anon,
        "/profiles?select=username,messages!receiver(body)&order=username",
    )
    .await;
    assert_eq!(
        r.json,
        json!([{"username": "alice", "messages": []}, {"username": "bob", "messages": [{"body": "hi bob"}]}])
    );
    // to-one through a hint from the other side
    let r = get(
        app,
        As::Anon,
        "/messages?select=body,from:profiles!sender(username),to:profiles!receiver(username)",
    )
    .await;
    assert_eq!(
        r.json,
        json!([{"body": "hi bob", "from": {"username": "alice"}, "to": {"username": "bob"}}])
    );
    // to-one through the foreign-key column as target (no hint)
    let r = get(
        app,
        As::Anon,
        "/messages?select=body,sender(username),to:receiver(username)",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"body": "hi bob", "sender": {"username": "alice"}, "to": {"username": "bob"}}])
    );
}

both!(embeds_respect_policies_and_hidden_columns);
async fn embeds_respect_policies_and_hidden_columns(app: &TestApp) {
    data(app).await;
    let q = "/profiles?select=username,private_notes(body,flag,score,meta,at)&username=eq.alice";
    let r = get(app, As::User(ALICE), q).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"username": "alice", "private_notes": [
            {"body": "alice's", "flag": true, "score": 1.0, "meta": {"k": [1, 2]}, "at": "2024-05-06T07:08:09+00:00"}
        ]}])
    );
    assert!(
        r.text.contains("\"score\":1.0"),
        "floats read alike: {}",
        r.text
    );
    let r = get(app, As::User(BOB), q).await;
    assert_eq!(r.json[0]["private_notes"].as_array().unwrap().len(), 1);
    assert_eq!(r.json[0]["private_notes"][0]["body"], "bob's");
    let r = get(app, As::Anon, q).await;
    assert_eq!(r.json, json!([{"username": "alice", "private_notes": []}]));
    // `!inner` with a policy: anon sees no profile at all.
    let r = get(
        app,
        As::Anon,
        "/profiles?select=username,private_notes!inner(body)",
    )
    .await;
    assert_eq!(r.json, json!([]));
    // hidden columns of the embedded table: absent from *, unknown when named
    let r = get(
        app,
        As::Service,
        "/profiles?select=private_notes(*)&username=eq.alice",
    )
    .await;
    assert!(!r.text.contains("secret"), "{}", r.text);
    get(app, As::Service, "/profiles?select=private_notes(secret)")
        .await
        .assert_error(400, "42703");
    // unknown and unexposed tables look the same
    let a = get(app, As::Anon, "/notes?select=hidden_table(*)").await;
    a.assert_error(400, "PGRST200");
    let b = get(app, As::Anon, "/notes?select=nosuch(*)").await;
    b.assert_error(400, "PGRST200");
    assert_eq!(
        a.json["message"]
            .as_str()
            .unwrap()
            .replace("hidden_table", "X"),
        b.json["message"].as_str().unwrap().replace("nosuch", "X")
    );
    // no foreign key between the tables
    get(app, As::Anon, "/notes?select=items(*)")
        .await
        .assert_error(400, "PGRST200");
}

both!(embedded_filters_order_and_paging);
async fn embedded_filters_order_and_paging(app: &TestApp) {
    data(app).await;
    seed(
        app,
        "notes",
        json!([{"profile_id": ALICE, "body": "n3"}, {"profile_id": BOB, "body": "b1"}]),
    )
    .await;
    let bodies = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n["body"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = get(
        app,
        As::Anon,
        "/profiles?select=username,notes(body)&notes.order=body.desc&notes.limit=2&order=username",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(bodies(&r.json[0]["notes"]), ["n3", "n2"]);
    assert_eq!(bodies(&r.json[1]["notes"]), ["b1"]);
    let r = get(
        app,
        As::Anon,
        "/profiles?select=username,notes(body)&notes.order=body&notes.offset=1&username=eq.alice",
    )
    .await;
    assert_eq!(bodies(&r.json[0]["notes"]), ["n2", "n3"]);
    // A filter on the embed filters the embedded rows only…
    let r = get(
        app,
        As::Anon,
        "/profiles?select=username,notes(body)&notes.body=eq.b1&order=username",
    )
    .await;
    assert_eq!(
        r.json,
        json!([{"username": "alice", "notes": []}, {"username": "bob", "notes": [{"body": "b1"}]}])
    );
    // …and, with !inner, the parents too (supabase-js `.eq('notes.body', …)`).
    let r = get(
        app,
        As::Anon,
        "/profiles?select=username,notes!inner(body)&notes.body=eq.b1",
    )
    .await;
    assert_eq!(
        r.json,
        json!([{"username": "bob", "notes": [{"body": "b1"}]}])
    );
    let r = get(
        app,
        As::Anon,
        "/profiles?select=username,n:notes!inner(body)&n.or=(body.eq.n1,body.eq.b1)&order=username",
    )
    .await;
    assert_eq!(r.json.as_array().unwrap().len(), 2);
    // Filters on something not embedded, or on a hidden column of the embed, are refused.
    get(app, As::Anon, "/profiles?select=username&notes.body=eq.x")
        .await
        .assert_error(400, "PGRST100");
    get(
        app,
        As::Service,
        "/profiles?select=private_notes(body)&private_notes.secret=eq.x",
    )
    .await
    .assert_error(400, "42703");
    get(
        app,
        As::Anon,
        "/profiles?select=notes(body)&notes.order=nosuch",
    )
    .await
    .assert_error(400, "42703");
}

both!(write_representations_embed);
async fn write_representations_embed(app: &TestApp) {
    data(app).await;
    let repr = [("prefer", "return=representation")];
    let r = common::call(
        app,
        As::Anon,
        reqwest::Method::POST,
        "/notes?select=body,author:profiles(username)",
        &repr,
        Some(json!([{"profile_id": BOB, "body": "x1"}, {"profile_id": ALICE, "body": "x2"}])),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.json,
        json!([{"body": "x1", "author": {"username": "bob"}}, {"body": "x2", "author": {"username": "alice"}}])
    );
    let r = common::call(
        app,
        As::Anon,
        reqwest::Method::PATCH,
        "/notes?body=eq.x1&select=body,profiles(username)",
        &repr,
        Some(json!({"body": "x1!"})),
    )
    .await;
    assert_eq!(
        r.json,
        json!([{"body": "x1!", "profiles": {"username": "bob"}}])
    );
    // A bad embed is refused before anything is written.
    let before = common::db_count(app, "notes").await;
    common::call(
        app,
        As::Anon,
        reqwest::Method::POST,
        "/notes?select=nosuch(*)",
        &repr,
        Some(json!({"profile_id": BOB, "body": "y"})),
    )
    .await
    .assert_error(400, "PGRST200");
    assert_eq!(common::db_count(app, "notes").await, before);
    common::call(
        app,
        As::Anon,
        reqwest::Method::DELETE,
        "/notes?body=eq.x2&select=profiles(*)",
        &repr,
        None,
    )
    .await
    .assert_error(400, "PGRST100");
}
