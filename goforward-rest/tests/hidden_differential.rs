//! Hidden columns are inert (security checklist 16): two databases that
//! differ only in hidden values answer generated queries byte for byte alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ALICE, As, BOB, call, get};
use goforward_core::sea_orm::ConnectionTrait;
use goforward_core::testing::TestApp;
use reqwest::Method;
use serde_json::json;

async fn seeded(postgres: bool, secret: &str) -> Option<TestApp> {
    let app = common::start(postgres, "hidden_differential").await?;
    for (who, title, priority) in [(ALICE, "a", 1), (ALICE, "b", 2), (BOB, "c", 3)] {
        let r = call(
            &app,
            As::Service,
            Method::POST,
            "/todos",
            &[],
            Some(json!({"user_id": who, "title": title, "priority": priority, "created_at": "2024-01-01T00:00:00Z"})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    app.db()
        .execute_unprepared(&format!("UPDATE todos SET secret = '{secret}' || title"))
        .await
        .unwrap();
    Some(app)
}

fn queries() -> Vec<String> {
    let columns = ["id", "title", "priority", "secret", "done", "user_id"];
    let filters = [
        "eq.a",
        "like.*a*",
        "is.null",
        "not.is.null",
        "gt.0",
        "in.(a,b)",
    ];
    let mut out = vec!["/todos".to_owned(), "/todos?select=*".to_owned()];
    for c in columns {
        out.push(format!("/todos?select={c}"));
        out.push(format!("/todos?order={c}.desc"));
        out.push(format!("/todos?select=x:{c}"));
        for f in filters {
            out.push(format!("/todos?{c}={f}"));
            out.push(format!("/todos?or=({c}.{f},id.eq.1)"));
        }
    }
    out
}

async fn differential(postgres: bool) {
    let Some(one) = seeded(postgres, "first-").await else {
        return;
    };
    let Some(two) = seeded(postgres, "second-").await else {
        one.stop().await;
        return;
    };
    for who in [As::User(ALICE), As::User(BOB), As::Anon, As::Service] {
        for q in queries() {
            let a = get(&one, who, &q).await;
            let b = get(&two, who, &q).await;
            assert_eq!((a.status, &a.text), (b.status, &b.text), "{q} as {who:?}");
            assert!(
                !a.text.contains("first-"),
                "{q}: hidden value leaked: {}",
                a.text
            );
        }
    }
    one.stop().await;
    two.stop().await;
}

#[tokio::test]
async fn hidden_values_never_change_responses_sqlite() {
    differential(false).await;
}

#[tokio::test]
async fn hidden_values_never_change_responses_postgres() {
    differential(true).await;
}
