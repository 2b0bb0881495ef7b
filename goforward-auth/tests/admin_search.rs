//! `GET /admin/users` search and filters: email substring (`filter` as
//! GoTrue, or `email`), phone substring, RBAC role, banned — with LIKE
//! wildcards taken literally and bad values refused. Both backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use goforward_core::testing::TestApp;
use serde_json::{Value, json};

async fn create(app: &TestApp, body: Value) -> String {
    let res = post(app, "/admin/users", &body, Some(&app.service_key())).await;
    assert_eq!(res.status, 200, "{}", res.body);
    res.body["id"].as_str().unwrap().to_owned()
}

/// The ids listed by `GET /admin/users?{query}`, checking `X-Total-Count`.
async fn ids(app: &TestApp, query: &str) -> Vec<String> {
    let res = get(
        app,
        &format!("/admin/users?{query}"),
        Some(&app.service_key()),
    )
    .await;
    assert_eq!(res.status, 200, "{query}: {}", res.body);
    let list: Vec<String> = res.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    let total: usize = res.headers["x-total-count"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, list.len(), "{query}");
    let mut list = list;
    list.sort();
    list
}

fn sorted(mut v: Vec<&String>) -> Vec<String> {
    v.sort();
    v.into_iter().cloned().collect()
}

async fn search_and_filter(pg: bool) {
    let Some(app) = app(pg, |c| c.phone_enabled = true).await else {
        return;
    };
    let service = app.service_key();
    let ada = create(
        &app,
        json!({ "email": "ada.lovelace@math.example", "password": "correct horse", "email_confirm": true }),
    )
    .await;
    let grace = create(
        &app,
        json!({ "email": "grace_hopper@navy.example", "password": "correct horse" }),
    )
    .await;
    let alan = create(
        &app,
        json!({ "email": "alan@math.example", "password": "correct horse" }),
    )
    .await;
    // Phone users sign up themselves (the admin API takes emails).
    let mut phones = Vec::new();
    for phone in ["+15551230001", "+445550009"] {
        let res = post(
            &app,
            "/signup",
            &json!({ "phone": phone, "password": "correct horse" }),
            None,
        )
        .await;
        assert_eq!(res.status, 200, "{}", res.body);
        let id = res.body["user"]["id"]
            .as_str()
            .or(res.body["id"].as_str())
            .unwrap()
            .to_owned();
        phones.push(id);
    }
    let (p1, p2) = (phones[0].clone(), phones[1].clone());

    // Email substring, case-insensitive, via GoTrue's `filter` or `email`.
    assert_eq!(
        ids(&app, "filter=MATH.example").await,
        sorted(vec![&ada, &alan])
    );
    assert_eq!(ids(&app, "email=lovelace").await, sorted(vec![&ada]));
    assert_eq!(
        ids(&app, "filter=math&email=alan").await,
        sorted(vec![&alan])
    );
    // LIKE wildcards are literal.
    assert_eq!(ids(&app, "filter=_").await, sorted(vec![&grace]));
    assert_eq!(ids(&app, "filter=%25").await, Vec::<String>::new());
    // Phone substring (with or without '+').
    assert_eq!(ids(&app, "phone=%2B1555").await, sorted(vec![&p1]));
    assert_eq!(ids(&app, "phone=555000").await, sorted(vec![&p2]));
    assert_eq!(ids(&app, "phone=555").await, sorted(vec![&p1, &p2]));

    // Role (RBAC).
    let res = post(
        &app,
        "/admin/roles",
        &json!({ "name": "editor", "permissions": ["posts:write"] }),
        Some(&service),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = post(
        &app,
        &format!("/admin/users/{grace}/roles"),
        &json!({ "role": "editor" }),
        Some(&service),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(ids(&app, "role=editor").await, sorted(vec![&grace]));
    assert_eq!(ids(&app, "role=ghost").await, Vec::<String>::new());

    // Banned.
    let res = put(
        &app,
        &format!("/admin/users/{alan}"),
        &json!({ "ban_duration": "24h" }),
        &service,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(ids(&app, "banned=true").await, sorted(vec![&alan]));
    assert_eq!(
        ids(&app, "banned=false").await,
        sorted(vec![&ada, &grace, &p1, &p2])
    );
    assert_eq!(
        ids(&app, "banned=false&filter=math.example").await,
        sorted(vec![&ada])
    );
    // Pagination still applies to the filtered set.
    let res = get(
        &app,
        "/admin/users?banned=false&per_page=1&page=2",
        Some(&service),
    )
    .await;
    assert_eq!(res.body["users"].as_array().unwrap().len(), 1);
    assert_eq!(res.headers["x-total-count"], "4");

    // Bad values: 400 validation_failed.
    for query in [
        "banned=maybe",
        "phone=abc",
        "page=0",
        &format!("filter={}", "a".repeat(300)),
    ] {
        get(&app, &format!("/admin/users?{query}"), Some(&service))
            .await
            .assert_error(400, "validation_failed");
    }
    // Still admin-only.
    get(&app, "/admin/users?filter=math", None)
        .await
        .assert_error(403, "not_admin");
    app.stop().await;
}
both!(admin_user_search, search_and_filter);
