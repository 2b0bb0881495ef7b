//! `postgres_changes`: bindings, filters and row policies on `RecordChanged`
//! events from the bus, plus token refresh and expiry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Msg, app, config};
use goforward_core::access::Policy;
use goforward_core::bus::{ChangeKind, Event, RecordChanged};
use goforward_core::testing::TestApp;
use goforward_realtime::RealtimeConfig;
use serde_json::{Value, json};

const QUIET: Duration = Duration::from_millis(300);

async fn publish(
    app: &TestApp,
    pg: bool,
    kind: ChangeKind,
    record: Option<Value>,
    old: Option<Value>,
) {
    let change = RecordChanged {
        schema: if pg { "public" } else { "main" }.into(),
        table: "todos".into(),
        kind,
        record,
        old_record: old,
        commit_timestamp: chrono::Utc::now(),
    };
    app.gf
        .context()
        .bus()
        .publish(Event::RecordChanged(change))
        .await
        .unwrap();
}

fn is_change(m: &Msg) -> bool {
    m.event == "postgres_changes"
}

fn todos(event: &str, filter: Option<&str>) -> Value {
    let mut b = json!({"event": event, "schema": "public", "table": "todos"});
    if let Some(f) = filter {
        b["filter"] = json!(f);
    }
    json!([b])
}

/// Joins and returns (join_ref, the binding id from the reply).
async fn subscribe(c: &mut Client, name: &str, changes: Value, token: &str) -> (String, u64) {
    let (jr, reply) = c
        .join_ok(name, config(false, false, "", changes), Some(token))
        .await;
    let id = reply.payload["response"]["postgres_changes"][0]["id"]
        .as_u64()
        .unwrap();
    (jr, id)
}

async fn changes_follow_filters_and_policies(pg: bool) {
    let Some(app) = app(pg, RealtimeConfig::default()).await else {
        return;
    };
    app.gf
        .context()
        .access()
        .policies()
        .set_table("todos", Policy::owner("user_id"));
    let (ta, tb) = (app.user_token("user-a"), app.user_token("user-b"));
    let mut a = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (_, id_a) = subscribe(&mut a, "db", todos("*", None), &ta).await;
    let mut b = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    subscribe(&mut b, "db", todos("*", None), &tb).await;
    let mut anon = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    subscribe(&mut anon, "db", todos("*", None), &app.anon_key()).await;
    let mut f = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (_, id_f) = subscribe(&mut f, "db2", todos("INSERT", Some("id=eq.2")), &ta).await;
    let mut del = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (_, id_del) = subscribe(&mut del, "db3", todos("delete", None), &ta).await;

    publish(
        &app,
        pg,
        ChangeKind::Insert,
        Some(json!({"id": 1, "user_id": "user-a", "title": "t", "done": false})),
        None,
    )
    .await;
    let m = a.recv_where(is_change).await;
    assert_eq!(m.topic, "realtime:db");
    assert_eq!(m.payload["ids"], json!([id_a]));
    let data = &m.payload["data"];
    assert_eq!(data["schema"], "public");
    assert_eq!(data["table"], "todos");
    assert_eq!(data["type"], "INSERT");
    assert_eq!(
        data["record"],
        json!({"id": 1, "user_id": "user-a", "title": "t", "done": false})
    );
    assert!(data.get("old_record").is_none());
    assert!(data["errors"].is_null());
    assert!(data["commit_timestamp"].as_str().unwrap().ends_with('Z'));
    let columns = data["columns"].as_array().unwrap();
    assert!(columns.contains(&json!({"name": "id", "type": "int8"})));
    assert!(columns.contains(&json!({"name": "done", "type": "bool"})));
    // User B may not read user A's row; anon may not read todos; the filter wants id 2.
    b.assert_none(QUIET, is_change).await;
    anon.assert_none(Duration::from_millis(10), is_change).await;
    f.assert_none(Duration::from_millis(10), is_change).await;

    publish(
        &app,
        pg,
        ChangeKind::Insert,
        Some(json!({"id": 2, "user_id": "user-a", "title": "u"})),
        None,
    )
    .await;
    assert_eq!(f.recv_where(is_change).await.payload["ids"], json!([id_f]));
    a.recv_where(is_change).await;

    publish(
        &app,
        pg,
        ChangeKind::Update,
        Some(json!({"id": 1, "user_id": "user-a", "title": "t2"})),
        Some(json!({"id": 1, "user_id": "user-a", "title": "t"})),
    )
    .await;
    let m = a.recv_where(is_change).await;
    assert_eq!(m.payload["data"]["type"], "UPDATE");
    assert_eq!(m.payload["data"]["old_record"]["title"], "t");
    assert_eq!(m.payload["data"]["record"]["title"], "t2");

    publish(
        &app,
        pg,
        ChangeKind::Delete,
        None,
        Some(json!({"id": 1, "user_id": "user-a"})),
    )
    .await;
    for c in [&mut a, &mut del] {
        let m = c.recv_where(is_change).await;
        assert_eq!(m.payload["data"]["type"], "DELETE");
        assert_eq!(
            m.payload["data"]["old_record"],
            json!({"id": 1, "user_id": "user-a"})
        );
        assert!(m.payload["data"].get("record").is_none());
    }
    // Only the DELETE reached the delete-only binding; B saw nothing at all.
    let _ = id_del;
    b.assert_none(QUIET, is_change).await;
    f.assert_none(Duration::from_millis(10), is_change).await;

    // B's row reaches B only.
    publish(
        &app,
        pg,
        ChangeKind::Insert,
        Some(json!({"id": 3, "user_id": "user-b"})),
        None,
    )
    .await;
    assert_eq!(
        b.recv_where(is_change).await.payload["data"]["record"]["id"],
        3
    );
    a.assert_none(QUIET, is_change).await;
    drop((a, b, anon, f, del));
    app.stop().await;
}
both!(filters_and_policies, changes_follow_filters_and_policies);

async fn token_refresh_and_expiry(pg: bool) {
    let Some(app) = app(pg, RealtimeConfig::default()).await else {
        return;
    };
    app.gf
        .context()
        .access()
        .policies()
        .set_table("todos", Policy::owner("user_id"));
    let mut c = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (jr, _) = subscribe(&mut c, "db", todos("*", None), &app.user_token("user-b")).await;

    // Swapping to user A's token changes what the row policy lets through.
    c.push(
        Some(&jr),
        "realtime:db",
        "access_token",
        json!({"access_token": app.user_token("user-a")}),
    )
    .await;
    // `sb_` keys are ignored.
    c.push(
        Some(&jr),
        "realtime:db",
        "access_token",
        json!({"access_token": "sb_publishable_x"}),
    )
    .await;
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    c.reply(&r).await;
    publish(
        &app,
        pg,
        ChangeKind::Insert,
        Some(json!({"id": 1, "user_id": "user-a"})),
        None,
    )
    .await;
    assert_eq!(
        c.recv_where(is_change).await.payload["data"]["record"]["id"],
        1
    );
    publish(
        &app,
        pg,
        ChangeKind::Insert,
        Some(json!({"id": 2, "user_id": "user-b"})),
        None,
    )
    .await;
    c.assert_none(QUIET, is_change).await;

    // An invalid token closes the channel: system error, then phx_close; nothing more arrives.
    c.push(
        Some(&jr),
        "realtime:db",
        "access_token",
        json!({"access_token": "garbage"}),
    )
    .await;
    let system = c.recv_where(|m| m.event == "system").await;
    assert_eq!(system.payload["extension"], "system");
    assert_eq!(system.payload["status"], "error");
    assert_eq!(system.payload["channel"], "db");
    let close = c.recv_where(|m| m.event == "phx_close").await;
    assert_eq!(close.join_ref.as_deref(), Some(jr.as_str()));
    publish(
        &app,
        pg,
        ChangeKind::Insert,
        Some(json!({"id": 3, "user_id": "user-a"})),
        None,
    )
    .await;
    c.assert_none(QUIET, is_change).await;

    // A token that expires while joined closes its channel at expiry.
    let now = chrono::Utc::now().timestamp();
    let short = app.token(json!({"sub": "user-a", "role": "authenticated", "exp": now + 2}));
    let (jr, _) = subscribe(&mut c, "db", todos("*", None), &short).await;
    let system = c
        .recv_where(|m| m.event == "system" && m.payload["extension"] == "system")
        .await;
    assert_eq!(system.payload["message"], "Token has expired");
    let close = c.recv_where(|m| m.event == "phx_close").await;
    assert_eq!(close.join_ref.as_deref(), Some(jr.as_str()));
    publish(
        &app,
        pg,
        ChangeKind::Insert,
        Some(json!({"id": 4, "user_id": "user-a"})),
        None,
    )
    .await;
    c.assert_none(QUIET, is_change).await;
    drop(c);
    app.stop().await;
}
both!(token_refresh, token_refresh_and_expiry);

/// Checklist 28: hidden columns (REST's `hide_columns`, shared through core's
/// policy registry) never reach a subscriber, and a subscription filter on
/// one behaves as on a column that does not exist, so it cannot probe values.
async fn hidden_columns_never_leave(pg: bool) {
    let Some(app) = app(pg, RealtimeConfig::default()).await else {
        return;
    };
    let policies = app.gf.context().access().policies();
    policies.set_table("todos", Policy::owner("user_id"));
    policies.set_hidden_columns("todos", ["secret"]);
    let ta = app.user_token("user-a");
    let mut all = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    subscribe(&mut all, "all", todos("*", None), &ta).await;
    let mut probe = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    subscribe(&mut probe, "probe", todos("*", Some("secret=eq.42")), &ta).await;

    publish(
        &app,
        pg,
        ChangeKind::Insert,
        Some(json!({"id": 7, "user_id": "user-a", "secret": 42})),
        None,
    )
    .await;
    let m = all.recv_where(is_change).await;
    let data = &m.payload["data"];
    assert_eq!(data["record"], json!({"id": 7, "user_id": "user-a"}));
    assert!(!data["columns"].to_string().contains("secret"), "{data}");
    probe.assert_none(QUIET, is_change).await;

    publish(
        &app,
        pg,
        ChangeKind::Update,
        Some(json!({"id": 7, "user_id": "user-a", "secret": 43})),
        Some(json!({"id": 7, "user_id": "user-a", "secret": 42})),
    )
    .await;
    let m = all.recv_where(is_change).await;
    let data = &m.payload["data"];
    // Not a substring test for the value: the commit timestamp may contain "43".
    assert!(!data.to_string().contains("secret"), "{data}");
    assert_eq!(data["record"], json!({"id": 7, "user_id": "user-a"}));
    assert_eq!(data["old_record"], json!({"id": 7, "user_id": "user-a"}));
    probe.assert_none(QUIET, is_change).await;
    app.stop().await;
}
both!(hidden_columns, hidden_columns_never_leave);
