//! Classic injection payloads in every position the query string and body
//! offer, on SQLite and PostgreSQL: each is a clean 4xx or an empty result,
//! never a 500, and the table is intact afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{As, call, db_count, get, seed_items};
use goforward_core::testing::TestApp;
use reqwest::Method;
use serde_json::json;

const PAYLOADS: &[&str] = &[
    "'",
    "''",
    "' OR '1'='1",
    "1; DROP TABLE items; --",
    "1) OR (1=1",
    "\" OR \"\"=\"",
    "x\"; DROP TABLE items; --",
    "/* comment */ 1",
    "-- comment",
    "%' OR 1=1 --",
    "\\",
    "\\' OR 1=1",
    "名前' OR 'x'='x",
    "\u{0}",
    "a\u{2028}b",
    "$1",
    "?",
    "items\".\"name",
    "`name`",
];

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

both!(payloads_leave_the_table_intact);
async fn payloads_leave_the_table_intact(app: &TestApp) {
    seed_items(app).await;
    let before = get(app, As::Anon, "/items?order=id").await.text;
    for p in PAYLOADS {
        let e = enc(p);
        let paths = [
            format!("/items?name=eq.{e}"),
            format!("/items?name=like.{e}"),
            format!("/items?name=in.({e})"),
            format!("/items?qty=eq.{e}"),
            format!("/items?or=(name.eq.{e},qty.eq.1)"),
            format!("/items?select={e}"),
            format!("/items?{e}=eq.1"),
            format!("/items?order={e}"),
            format!("/items?data->>{e}=eq.1"),
            format!("/items?name=fts(english).{e}"),
            format!("/items?name=wfts.{e}"),
            format!("/items?name=fts({e}).apple"),
            format!("/items?data=ov.%7B{e}%7D"),
            format!("/items?select=name,{e}.sum()"),
            format!("/items?select=...{e}(*)"),
            format!("/{e}"),
        ];
        for path in &paths {
            let r = get(app, As::Anon, path).await;
            assert!(
                r.status.is_client_error() || (r.status == 200 && r.json == json!([])),
                "{path}: {} {}",
                r.status,
                r.text
            );
        }
        let r = call(
            app,
            As::Anon,
            Method::POST,
            "/items?select=name",
            &[("prefer", "return=representation")],
            Some(json!({"name": p})),
        )
        .await;
        if p.contains('\u{0}') {
            assert!(r.status.is_client_error() || r.status == 201, "{}", r.text);
        } else {
            assert_eq!(r.status, 201, "{p:?}: {}", r.text);
            assert_eq!(r.json, json!([{"name": p}]), "stored verbatim");
            let r = get(app, As::Anon, &format!("/items?select=name&name=eq.{e}")).await;
            assert_eq!(r.json, json!([{"name": p}]), "found verbatim");
            let r = call(
                app,
                As::Anon,
                Method::DELETE,
                &format!("/items?name=eq.{e}"),
                &[],
                None,
            )
            .await;
            assert_eq!(r.status, 204);
        }
        let r = call(
            app,
            As::Anon,
            Method::PATCH,
            &format!("/items?name=eq.{e}"),
            &[],
            Some(json!({"name": p})),
        )
        .await;
        assert!(
            r.status.is_success() || r.status.is_client_error(),
            "{}",
            r.text
        );
    }
    let r = call(
        app,
        As::Anon,
        Method::DELETE,
        "/items?name=eq.%00",
        &[],
        None,
    )
    .await;
    assert!(r.status.as_u16() < 500);
    assert_eq!(db_count(app, "items").await, 4);
    assert_eq!(get(app, As::Anon, "/items?order=id").await.text, before);
}
