//! The Phoenix socket against a real server: connection, joins, broadcast,
//! presence, limits and two nodes sharing Redis.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Closed, app, app_with, config, ws_url};
use goforward_core::access::{Action, Policy, Rule};
use goforward_realtime::{Realtime, RealtimeConfig};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const QUIET: Duration = Duration::from_millis(300);

async fn connection_and_heartbeat(pg: bool) {
    let Some(app) = app(pg, RealtimeConfig::default()).await else {
        return;
    };
    // Refused upgrades: bad key, expired key, unknown serializer.
    let (status, body) = Client::refused(&ws_url(&app, "not-a-jwt", "2.0.0")).await;
    assert_eq!(status, 401);
    assert_eq!(body["message"], "Invalid API key");
    let expired = app.token(json!({"role": "anon", "exp": chrono::Utc::now().timestamp() - 3600}));
    assert_eq!(
        Client::refused(&ws_url(&app, &expired, "2.0.0")).await.0,
        401
    );
    let (status, body) = Client::refused(&ws_url(&app, &app.anon_key(), "9.9.9")).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "realtime.bad_request");
    // A plain GET (no upgrade) is a 400 in Realtime's shape, not a crash.
    let res = app
        .client()
        .get(app.url(&format!("/realtime/v1/websocket?apikey={}", app.anon_key())))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "realtime.bad_request"
    );

    for vsn in ["1.0.0", "2.0.0"] {
        let mut c = Client::connect(&app, &app.anon_key(), vsn).await;
        let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
        let reply = c.reply(&r).await;
        assert_eq!(reply.topic, "phoenix");
        assert_eq!(reply.payload, json!({"status": "ok", "response": {}}));
        // Garbage, unknown events and unjoined topics do not kill the socket.
        c.raw(Message::text("{not json")).await;
        c.raw(Message::text("[1,2]")).await;
        c.raw(Message::binary(vec![9, 9, 9])).await;
        let r = c.push(None, "realtime:nope", "broadcast", json!({})).await;
        assert_eq!(
            c.reply(&r).await.payload["response"]["reason"],
            "unmatched topic"
        );
        let (jr, _) = c
            .join_ok("room", config(false, false, "", json!([])), None)
            .await;
        let r = c
            .push(Some(&jr), "realtime:room", "whatever", json!({}))
            .await;
        assert_eq!(c.reply(&r).await.payload["status"], "error");
        let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
        assert_eq!(c.reply(&r).await.payload["status"], "ok");
        // Leave answers ok and then the topic is unknown.
        let r = c
            .push(Some(&jr), "realtime:room", "phx_leave", json!({}))
            .await;
        assert_eq!(c.reply(&r).await.payload["status"], "ok");
        let r = c
            .push(
                Some(&jr),
                "realtime:room",
                "broadcast",
                json!({"type": "broadcast", "event": "x", "payload": {}}),
            )
            .await;
        assert_eq!(
            c.reply(&r).await.payload["response"]["reason"],
            "unmatched topic"
        );
    }
    app.stop().await;
}
both!(connection, connection_and_heartbeat);

async fn joins_and_refusals(pg: bool) {
    let Some(app) = app(pg, RealtimeConfig::default()).await else {
        return;
    };
    let policies = app.gf.context().access().policies();
    policies.set_channel("members", Policy::authenticated());
    let mut c = Client::connect(&app, &app.anon_key(), "2.0.0").await;

    // The join reply echoes the bindings in order with integer ids.
    let changes = json!([
        {"event": "*", "schema": "public", "table": "todos"},
        {"event": "INSERT", "schema": "public", "table": "todos", "filter": "id=eq.1"}
    ]);
    let (_, reply) = c
        .join_ok(
            "a",
            config(false, false, "", changes.clone()),
            Some(&app.anon_key()),
        )
        .await;
    let echoed = reply.payload["response"]["postgres_changes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(echoed.len(), 2);
    for (sent, got) in changes.as_array().unwrap().iter().zip(&echoed) {
        for key in ["event", "schema", "table", "filter"] {
            assert_eq!(sent.get(key), got.get(key));
        }
        assert!(got["id"].is_u64());
    }
    assert_ne!(echoed[0]["id"], echoed[1]["id"]);
    let system = c.recv_where(|m| m.event == "system").await;
    assert_eq!(system.payload["extension"], "postgres_changes");

    let reason = |m: &common::Msg| {
        m.payload["response"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Expired and forged user tokens.
    let now = chrono::Utc::now().timestamp();
    let expired = app.token(json!({"sub": "u1", "role": "authenticated", "exp": now - 3600}));
    let (_, reply) = c
        .join("b", config(false, false, "", json!([])), Some(&expired))
        .await;
    assert_eq!(reply.payload["status"], "error");
    assert_eq!(reason(&reply), "InvalidJWTToken: Token has expired");
    let (_, reply) = c
        .join("b", config(false, false, "", json!([])), Some("garbage"))
        .await;
    assert!(
        reason(&reply).starts_with("InvalidJWTToken: "),
        "{:?}",
        reply.payload
    );
    // Private channels: no policy → denied; a policy for signed-in users.
    let mut private = config(false, false, "", json!([]));
    private["private"] = json!(true);
    let (_, reply) = c.join("secret", private.clone(), None).await;
    assert_eq!(
        reason(&reply),
        "Unauthorized: You do not have permissions to read from this Channel topic: secret"
    );
    let (_, reply) = c
        .join("members", private.clone(), Some(&app.anon_key()))
        .await;
    assert_eq!(reply.payload["status"], "error");
    c.join_ok("members", private, Some(&app.user_token("u1")))
        .await;
    // Garbage bindings.
    for bad in [
        json!([{"event": "TRUNCATE", "table": "t"}]),
        json!([{"table": "t", "filter": "id=zz.1"}]),
        json!("x"),
    ] {
        let (_, reply) = c.join("c", config(false, false, "", bad), None).await;
        assert!(
            reason(&reply).starts_with("InvalidPostgresChanges"),
            "{:?}",
            reply.payload
        );
    }
    // The socket is still healthy.
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(c.reply(&r).await.payload["status"], "ok");
    drop(c);
    app.stop().await;
}
both!(joins, joins_and_refusals);

fn is_broadcast(event: &'static str) -> impl Fn(&common::Msg) -> bool {
    move |m| m.event == "broadcast" && m.payload["event"] == event
}

async fn broadcast_self_ack_and_others(pg: bool) {
    let Some(app) = app(pg, RealtimeConfig::default()).await else {
        return;
    };
    let mut a = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let mut b = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    let mut c = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (ja, _) = a
        .join_ok("room", config(false, true, "", json!([])), None)
        .await;
    b.join_ok("room", config(false, false, "", json!([])), None)
        .await;
    let (jc, _) = c
        .join_ok("room", config(true, false, "", json!([])), None)
        .await;
    let mut other = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    other
        .join_ok("elsewhere", config(true, false, "", json!([])), None)
        .await;

    // A (self: false, ack: true) sends JSON: ack ok, B and C receive, A does not.
    let r = a
        .push(
            Some(&ja),
            "realtime:room",
            "broadcast",
            json!({"type": "broadcast", "event": "hi", "payload": {"n": 1}}),
        )
        .await;
    assert_eq!(
        a.reply(&r).await.payload,
        json!({"status": "ok", "response": {}})
    );
    for client in [&mut b, &mut c] {
        let m = client.recv_where(is_broadcast("hi")).await;
        assert_eq!(
            m.payload,
            json!({"type": "broadcast", "event": "hi", "payload": {"n": 1}})
        );
        assert_eq!(m.topic, "realtime:room");
    }
    a.assert_none(QUIET, is_broadcast("hi")).await;

    // C (self: true) sends a kind-3 binary frame: V2 sockets get kind 4, V1 gets JSON; C gets its own.
    c.push_binary(&jc, "realtime:room", "bin", &json!({"x": [1, 2]}), "")
        .await;
    let got_a = a.recv_where(is_broadcast("bin")).await;
    assert!(got_a.binary);
    assert_eq!(got_a.payload["payload"], json!({"x": [1, 2]}));
    let got_b = b.recv_where(is_broadcast("bin")).await;
    assert!(!got_b.binary);
    assert_eq!(got_b.payload["payload"], json!({"x": [1, 2]}));
    assert!(c.recv_where(is_broadcast("bin")).await.binary);
    other.assert_none(QUIET, |m| m.event == "broadcast").await;

    // REST batch and single endpoints and the Rust handle reach everyone.
    let res = app
        .client()
        .post(app.url("/realtime/v1/api/broadcast"))
        .header("apikey", app.anon_key())
        .json(&json!({"messages": [{"topic": "room", "event": "rest", "payload": {"v": 2}, "private": false}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert!(res.text().await.unwrap().is_empty());
    let res = app
        .client()
        .post(app.url("/realtime/v1/api/broadcast/room/events/single"))
        .header("apikey", app.anon_key())
        .json(&json!({"v": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let handle = Realtime::handle(app.gf.context()).expect("handle registered");
    handle
        .broadcast("room", "server", json!({"v": 4}))
        .await
        .unwrap();
    for client in [&mut a, &mut b, &mut c] {
        assert_eq!(
            client.recv_where(is_broadcast("rest")).await.payload["payload"],
            json!({"v": 2})
        );
        assert_eq!(
            client.recv_where(is_broadcast("single")).await.payload["payload"],
            json!({"v": 3})
        );
        assert_eq!(
            client.recv_where(is_broadcast("server")).await.payload["payload"],
            json!({"v": 4})
        );
    }
    // Raw bytes (httpSend with an ArrayBuffer): V2 sockets get a kind-4 binary frame;
    // V1 sockets cannot carry bytes and get nothing.
    let res = app
        .client()
        .post(app.url("/realtime/v1/api/broadcast/room/events/bytes"))
        .header("apikey", app.anon_key())
        .header("content-type", "application/octet-stream")
        .body(vec![1u8, 2, 255])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    for client in [&mut a, &mut c] {
        let m = client.recv_where(is_broadcast("bytes")).await;
        assert!(m.binary);
        assert_eq!(m.payload["payload"], json!([1, 2, 255]));
    }
    b.assert_none(QUIET, is_broadcast("bytes")).await;
    // Bad REST bodies: 422 in Realtime's shape, nothing sent; missing key 401.
    for body in [
        json!({}),
        json!({"messages": []}),
        json!({"messages": [{"topic": "", "event": "e"}]}),
    ] {
        let res = app
            .client()
            .post(app.url("/realtime/v1/api/broadcast"))
            .header("apikey", app.anon_key())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{body}");
        let json: Value = res.json().await.unwrap();
        assert_eq!(json["code"], "realtime.invalid_request");
        assert!(json["message"].is_string());
    }
    let res = app
        .client()
        .post(app.url("/realtime/v1/api/broadcast"))
        .header("apikey", "bad")
        .json(&json!({"messages": [{"topic": "room", "event": "e", "payload": {}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Private channel via REST: anon denied (403), service_role allowed.
    let private =
        json!({"messages": [{"topic": "vip", "event": "e", "payload": {}, "private": true}]});
    let res = app
        .client()
        .post(app.url("/realtime/v1/api/broadcast"))
        .header("apikey", app.anon_key())
        .json(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "realtime.forbidden"
    );
    let res = app
        .client()
        .post(app.url("/realtime/v1/api/broadcast"))
        .header("apikey", app.service_key())
        .json(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    a.assert_none(QUIET, |m| m.event == "broadcast").await;
    drop((a, b, c, other));
    app.stop().await;
}
both!(broadcast, broadcast_self_ack_and_others);

async fn private_channel_actions(pg: bool) {
    let Some(app) = app(pg, RealtimeConfig::default()).await else {
        return;
    };
    // Members may join and read, only "writer" may broadcast, nobody tracks presence.
    app.gf.context().access().policies().set_channel(
        "club",
        Policy::authenticated()
            .with(
                Action::Broadcast,
                Rule::Custom(std::sync::Arc::new(|p| {
                    if p.user_id.as_deref() == Some("writer") {
                        goforward_core::access::Decision::Allow
                    } else {
                        goforward_core::access::Decision::Deny
                    }
                })),
            )
            .with(Action::Presence, Rule::Deny),
    );
    let mut cfg = config(true, true, "", json!([]));
    cfg["private"] = json!(true);
    let mut reader = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (jr, _) = reader
        .join_ok("club", cfg.clone(), Some(&app.user_token("reader")))
        .await;
    let mut writer = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    let (jw, _) = writer
        .join_ok("club", cfg, Some(&app.user_token("writer")))
        .await;

    let r = reader
        .push(
            Some(&jr),
            "realtime:club",
            "broadcast",
            json!({"type": "broadcast", "event": "x", "payload": {}}),
        )
        .await;
    let reply = reader.reply(&r).await;
    assert_eq!(reply.payload["status"], "error");
    assert!(
        reply.payload["response"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("Unauthorized")
    );
    writer.assert_none(QUIET, is_broadcast("x")).await;
    let r = writer
        .push(
            Some(&jw),
            "realtime:club",
            "broadcast",
            json!({"type": "broadcast", "event": "y", "payload": {}}),
        )
        .await;
    assert_eq!(writer.reply(&r).await.payload["status"], "ok");
    reader.recv_where(is_broadcast("y")).await;
    let r = writer
        .push(
            Some(&jw),
            "realtime:club",
            "presence",
            json!({"type": "presence", "event": "track", "payload": {}}),
        )
        .await;
    assert_eq!(writer.reply(&r).await.payload["status"], "error");
    reader
        .assert_none(QUIET, |m| m.event == "presence_diff")
        .await;
    drop((reader, writer));
    app.stop().await;
}
both!(private_actions, private_channel_actions);

async fn presence_state_diff_and_leave(pg: bool) {
    let Some(app) = app(pg, RealtimeConfig::default()).await else {
        return;
    };
    let mut a = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (ja, _) = a
        .join_ok("lobby", config(false, false, "alice", json!([])), None)
        .await;
    let state = a.recv_where(|m| m.event == "presence_state").await;
    assert_eq!(state.payload, json!({}));
    let r = a
        .push(
            Some(&ja),
            "realtime:lobby",
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"mood": "ok"}}),
        )
        .await;
    assert_eq!(a.reply(&r).await.payload["status"], "ok");
    let diff = a.recv_where(|m| m.event == "presence_diff").await;
    let meta = &diff.payload["joins"]["alice"]["metas"][0];
    assert_eq!(meta["mood"], "ok");
    assert!(meta["phx_ref"].is_string());
    assert_eq!(diff.payload["leaves"], json!({}));

    let mut b = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    let (jb, _) = b
        .join_ok("lobby", config(false, false, "bob", json!([])), None)
        .await;
    let state = b.recv_where(|m| m.event == "presence_state").await;
    assert_eq!(state.join_ref.as_deref(), Some(jb.as_str()));
    assert_eq!(state.payload["alice"]["metas"][0]["mood"], "ok");
    let r = b
        .push(
            Some(&jb),
            "realtime:lobby",
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"mood": "meh"}}),
        )
        .await;
    assert_eq!(b.reply(&r).await.payload["status"], "ok");
    let diff = a.recv_where(|m| m.event == "presence_diff").await;
    assert_eq!(diff.payload["joins"]["bob"]["metas"][0]["mood"], "meh");
    // Re-tracking replaces the meta: one leave and one join in one diff.
    let r = a
        .push(
            Some(&ja),
            "realtime:lobby",
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"mood": "great"}}),
        )
        .await;
    assert_eq!(a.reply(&r).await.payload["status"], "ok");
    let diff = b
        .recv_where(|m| m.event == "presence_diff" && m.payload["joins"].get("alice").is_some())
        .await;
    assert_eq!(diff.payload["joins"]["alice"]["metas"][0]["mood"], "great");
    assert_eq!(diff.payload["leaves"]["alice"]["metas"][0]["mood"], "ok");
    // Bob's socket drops: alice sees bob leave.
    drop(b);
    let diff = a
        .recv_where(|m| m.event == "presence_diff" && m.payload["leaves"].get("bob").is_some())
        .await;
    assert_eq!(diff.payload["leaves"]["bob"]["metas"][0]["mood"], "meh");
    // Untrack.
    let mut c = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    c.join_ok("lobby", config(false, false, "carol", json!([])), None)
        .await;
    let state = c.recv_where(|m| m.event == "presence_state").await;
    assert!(state.payload.get("bob").is_none());
    assert_eq!(state.payload["alice"]["metas"].as_array().unwrap().len(), 1);
    let r = a
        .push(
            Some(&ja),
            "realtime:lobby",
            "presence",
            json!({"type": "presence", "event": "untrack"}),
        )
        .await;
    assert_eq!(a.reply(&r).await.payload["status"], "ok");
    let diff = c.recv_where(|m| m.event == "presence_diff").await;
    assert_eq!(diff.payload["leaves"]["alice"]["metas"][0]["mood"], "great");
    drop((a, c));
    app.stop().await;
}
both!(presence, presence_state_diff_and_leave);

async fn limits_are_enforced(pg: bool) {
    let cfg = RealtimeConfig {
        max_channels_per_connection: 2,
        max_joins_per_second: 4,
        max_events_per_second: 3,
        max_message_bytes: 2048,
        ..RealtimeConfig::default()
    };
    let Some(app) = app(pg, cfg).await else {
        return;
    };
    let mut c = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (j1, _) = c
        .join_ok("one", config(false, true, "", json!([])), None)
        .await;
    c.join_ok("two", config(false, false, "", json!([])), None)
        .await;
    let (_, reply) = c
        .join("three", config(false, false, "", json!([])), None)
        .await;
    assert_eq!(
        reply.payload["response"]["reason"],
        "ChannelRateLimitReached: Too many channels"
    );
    // Rejoining a joined topic is not a new channel... but the 5th join this second is refused.
    c.join_ok("two", config(false, false, "", json!([])), None)
        .await;
    let (_, reply) = c
        .join("two", config(false, false, "", json!([])), None)
        .await;
    assert_eq!(
        reply.payload["response"]["reason"],
        "ClientJoinRateLimitReached: Too many joins per second"
    );
    // Events per second.
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = c
            .push(
                Some(&j1),
                "realtime:one",
                "broadcast",
                json!({"type": "broadcast", "event": "e", "payload": {}}),
            )
            .await;
        statuses.push(c.reply(&r).await.payload);
    }
    assert!(
        statuses[..3].iter().all(|p| p["status"] == "ok"),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[3]["response"]["reason"],
        "RateLimitReached: Too many messages per second"
    );
    // Oversized message: closed with 1009.
    c.raw(Message::text(
        json!([null, "9", "phoenix", "heartbeat", {"pad": "x".repeat(4096)}]).to_string(),
    ))
    .await;
    match c.closed(Duration::from_secs(5)).await {
        Closed::Frame(Some((code, _))) => assert_eq!(code, 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    app.stop().await;
}
both!(limits, limits_are_enforced);

async fn connection_limits(pg: bool) {
    let cfg = RealtimeConfig {
        max_connections_per_ip: 2,
        max_connection_secs: 2,
        ..RealtimeConfig::default()
    };
    let Some(app) = app_with(pg, cfg, |c| {
        c.server.cors.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await
    else {
        return;
    };
    let url = ws_url(&app, &app.anon_key(), "2.0.0");
    // Origin allowlist: a foreign page is refused, the app's own origin and non-browsers pass.
    let (status, body) = Client::refused_with(&url, Some("https://evil.example")).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "realtime.origin_not_allowed");
    let mut a = Client::connect_with(
        &app,
        &app.anon_key(),
        "2.0.0",
        Some("https://app.example.com"),
    )
    .await;
    let b = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    // Per-IP cap.
    let (status, body) = Client::refused(&url).await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], "realtime.too_many_connections");
    drop(b);
    let mut freed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await {
            drop(ws);
            freed = true;
            break;
        }
    }
    assert!(freed, "a closed socket frees its slot");
    // Lifetime: the socket is closed normally once it is reached, even while active.
    let r = a.push(None, "phoenix", "heartbeat", json!({})).await;
    a.reply(&r).await;
    match a.closed(Duration::from_secs(5)).await {
        Closed::Frame(Some((code, reason))) => {
            assert_eq!(code, 1000);
            assert_eq!(reason, "connection lifetime reached");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    app.stop().await;
}
both!(connection_caps, connection_limits);

/// A client that stops reading is dropped; the others keep receiving everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_disconnected() {
    let cfg = RealtimeConfig {
        send_queue: 32,
        write_timeout_secs: 1,
        ..RealtimeConfig::default()
    };
    let app = app(false, cfg).await.unwrap();
    let mut slow = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    slow.join_ok("firehose", config(false, false, "", json!([])), None)
        .await;
    let mut fast = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    fast.join_ok("firehose", config(false, false, "", json!([])), None)
        .await;
    let handle = Realtime::handle(app.gf.context()).unwrap();
    let blob = "x".repeat(60_000);
    let total = 600;
    let reader = tokio::spawn(async move {
        for i in 0..total {
            let m = fast.recv_where(is_broadcast("blob")).await;
            assert_eq!(m.payload["payload"]["i"], i);
        }
        fast
    });
    for i in 0..total {
        handle
            .broadcast("firehose", "blob", json!({"i": i, "blob": blob}))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let _fast = reader
        .await
        .expect("the fast client got every message in order");
    // The slow client finds its socket closed after what was already buffered.
    match slow.closed(Duration::from_secs(30)).await {
        Closed::Frame(_) | Closed::Eof => {}
    }
    drop((slow, _fast));
    app.stop().await;
}

/// The idle timeout closes a silent socket with a close frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_socket_is_closed() {
    let cfg = RealtimeConfig {
        idle_timeout_secs: 1,
        ..RealtimeConfig::default()
    };
    let app = app(false, cfg).await.unwrap();
    let mut c = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    match c.closed(Duration::from_secs(5)).await {
        Closed::Frame(Some((code, reason))) => {
            assert_eq!(code, 1000);
            assert_eq!(reason, "idle timeout");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    app.stop().await;
}

/// Two nodes sharing Redis: a broadcast sent on one node arrives exactly once on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_crosses_nodes_exactly_once() {
    let Some(url) =
        goforward_core::testing::redis_url_or_skip("broadcast_crosses_nodes_exactly_once")
    else {
        return;
    };
    let channel = format!("gf-rt-test-{}", uuid_like());
    let node = |url: String, channel: String| async move {
        goforward_core::testing::TestApp::builder()
            .plugin(Realtime::new())
            .config(move |c| {
                c.redis.url = Some(url);
                c.redis.channel = Some(channel);
            })
            .postgres(false)
            .start()
            .await
            .expect("node starts")
    };
    let n1 = node(url.clone(), channel.clone()).await;
    let n2 = node(url.clone(), channel.clone()).await;
    let mut a = Client::connect(&n1, &n1.anon_key(), "2.0.0").await;
    let mut b = Client::connect(&n2, &n2.anon_key(), "1.0.0").await;
    let (ja, _) = a
        .join_ok("x", config(true, true, "alice", json!([])), None)
        .await;
    b.join_ok("x", config(false, false, "bob", json!([])), None)
        .await;
    let r = a
        .push(
            Some(&ja),
            "realtime:x",
            "broadcast",
            json!({"type": "broadcast", "event": "hop", "payload": {"k": 1}}),
        )
        .await;
    assert_eq!(a.reply(&r).await.payload["status"], "ok");
    assert_eq!(
        b.recv_where(is_broadcast("hop")).await.payload["payload"],
        json!({"k": 1})
    );
    assert_eq!(
        a.recv_where(is_broadcast("hop")).await.payload["payload"],
        json!({"k": 1})
    );
    b.assert_none(Duration::from_millis(500), is_broadcast("hop"))
        .await;
    a.assert_none(Duration::from_millis(10), is_broadcast("hop"))
        .await;
    // Presence crosses too.
    let r = a
        .push(
            Some(&ja),
            "realtime:x",
            "presence",
            json!({"type": "presence", "event": "track", "payload": {"at": "n1"}}),
        )
        .await;
    assert_eq!(a.reply(&r).await.payload["status"], "ok");
    let diff = b.recv_where(|m| m.event == "presence_diff").await;
    assert_eq!(diff.payload["joins"]["alice"]["metas"][0]["at"], "n1");
    // A node started later learns who is already present.
    let n3 = node(url.clone(), channel.clone()).await;
    let mut c = Client::connect(&n3, &n3.anon_key(), "2.0.0").await;
    let (_, _) = c
        .join_ok("x", config(false, false, "carol", json!([])), None)
        .await;
    let state = c.recv_where(|m| m.event == "presence_state").await;
    if state.payload.get("alice").is_none() {
        let diff = c
            .recv_where(|m| m.event == "presence_diff" && m.payload["joins"].get("alice").is_some())
            .await;
        assert_eq!(diff.payload["joins"]["alice"]["metas"][0]["at"], "n1");
    }
    // …once: the other nodes already knew alice and see no new join.
    b.assert_none(Duration::from_millis(300), |m| m.event == "presence_diff")
        .await;
    drop(a);
    let diff = b.recv_where(|m| m.event == "presence_diff").await;
    assert_eq!(diff.payload["leaves"]["alice"]["metas"][0]["at"], "n1");
    drop((b, c));
    n1.stop().await;
    n2.stop().await;
    n3.stop().await;
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
