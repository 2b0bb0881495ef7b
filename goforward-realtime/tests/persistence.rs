//! Broadcast persistence and replay on private channels.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Msg, app, config};
use goforward_core::access::Policy;
use goforward_realtime::RealtimeConfig;
use serde_json::{Value, json};

fn private(replay: Option<Value>) -> Value {
    let mut c = config(false, true, "", json!([]));
    c["private"] = json!(true);
    if let Some(r) = replay {
        c["broadcast"]["replay"] = r;
    }
    c
}

fn is_broadcast(m: &Msg) -> bool {
    m.event == "broadcast"
}

async fn persisted_broadcasts_are_replayed(pg: bool) {
    let cfg = RealtimeConfig {
        broadcast_persistence: true,
        ..RealtimeConfig::default()
    };
    let Some(app) = app(pg, cfg).await else {
        return;
    };
    let policies = app.gf.context().access().policies();
    policies.set_channel("vault", Policy::authenticated());
    policies.set_channel_default(Policy::public());
    let token = app.user_token("u1");
    let mut a = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (ja, _) = a.join_ok("vault", private(None), Some(&token)).await;
    let mut live = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    live.join_ok("vault", private(None), Some(&token)).await;

    // JSON push with persist, binary push with persist metadata, one without, one expiring at once.
    let sends = [
        (
            json!({"type": "broadcast", "event": "kept", "payload": {"n": 1}, "persist": true}),
            true,
        ),
        (
            json!({"type": "broadcast", "event": "gone", "payload": {"n": 2}}),
            false,
        ),
        (
            json!({"type": "broadcast", "event": "short", "payload": {"n": 3}, "persist": {"ttl": 0}}),
            true,
        ),
    ];
    for (payload, _) in &sends {
        let r = a
            .push(Some(&ja), "realtime:vault", "broadcast", payload.clone())
            .await;
        assert_eq!(a.reply(&r).await.payload["status"], "ok");
    }
    let r = a
        .push_binary(
            &ja,
            "realtime:vault",
            "bin",
            &json!({"n": 4}),
            r#"{"persist":true}"#,
        )
        .await;
    assert_eq!(a.reply(&r).await.payload["status"], "ok");
    // Live subscribers see the stored id in `meta`.
    for (payload, stored) in &sends {
        let m = live.recv_where(is_broadcast).await;
        assert_eq!(m.payload["event"], payload["event"]);
        assert_eq!(
            m.payload["meta"]["id"].is_string(),
            *stored,
            "{:?}",
            m.payload
        );
    }
    let m = live.recv_where(is_broadcast).await;
    assert_eq!(m.payload["event"], "bin");
    assert!(m.payload["meta"]["id"].is_string());
    // REST single send with persist on a private channel (service_role).
    let res = app
        .client()
        .post(app.url("/realtime/v1/api/broadcast/vault/events/rest?private=true&persist=true"))
        .header("apikey", app.service_key())
        .json(&json!({"n": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    live.recv_where(is_broadcast).await;

    // A later join asking for replay gets the stored, unexpired ones, oldest first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut late = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (jl, _) = late
        .join_ok(
            "vault",
            private(Some(json!({"since": 0, "limit": 10}))),
            Some(&token),
        )
        .await;
    let mut events = Vec::new();
    for _ in 0..3 {
        let m = late.recv_where(is_broadcast).await;
        assert_eq!(m.join_ref.as_deref(), Some(jl.as_str()));
        assert_eq!(m.payload["meta"]["replayed"], true);
        assert!(m.payload["meta"]["id"].is_string());
        events.push((m.payload["event"].clone(), m.payload["payload"].clone()));
    }
    assert_eq!(
        events,
        vec![
            (json!("kept"), json!({"n": 1})),
            (json!("bin"), json!({"n": 4})),
            (json!("rest"), json!({"n": 5})),
        ]
    );
    late.assert_none(Duration::from_millis(300), is_broadcast)
        .await;
    // `limit` and `since` are honoured.
    let mut one = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    one.join_ok(
        "vault",
        private(Some(json!({"since": 0, "limit": 1}))),
        Some(&token),
    )
    .await;
    assert_eq!(one.recv_where(is_broadcast).await.payload["event"], "rest");
    one.assert_none(Duration::from_millis(300), is_broadcast)
        .await;
    let future = chrono::Utc::now().timestamp_millis() + 60_000;
    let mut none = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    none.join_ok(
        "vault",
        private(Some(json!({"since": future}))),
        Some(&token),
    )
    .await;
    none.assert_none(Duration::from_millis(300), is_broadcast)
        .await;
    // Public channels neither store nor replay.
    let mut p = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (jp, _) = p
        .join_ok("square", config(false, true, "", json!([])), None)
        .await;
    let r = p
        .push(
            Some(&jp),
            "realtime:square",
            "broadcast",
            json!({"type": "broadcast", "event": "e", "payload": {}, "persist": true}),
        )
        .await;
    assert_eq!(p.reply(&r).await.payload["status"], "ok");
    let mut q = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let mut cfg = config(false, false, "", json!([]));
    cfg["broadcast"]["replay"] = json!({"since": 0});
    q.join_ok("square", cfg, None).await;
    q.assert_none(Duration::from_millis(300), is_broadcast)
        .await;
    drop((a, live, late, one, none, p, q));
    app.stop().await;
}
both!(replay, persisted_broadcasts_are_replayed);
