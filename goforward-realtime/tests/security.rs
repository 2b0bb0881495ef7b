//! Security checklist items 28 and 29 over real WebSockets: channels closed when
//! their session is revoked (also across nodes sharing Redis), per-user
//! connection caps, slow consumers, and the realtime metrics on `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Client, Closed, app, config};
use goforward_core::bus::{Event, SessionsRevoked};
use goforward_core::testing::TestApp;
use goforward_realtime::{Realtime, RealtimeConfig};
use serde_json::{Value, json};

fn is_broadcast(event: &'static str) -> impl Fn(&common::Msg) -> bool {
    move |m| m.event == "broadcast" && m.payload["event"] == event
}

/// A token of `user` in session `session`.
fn token(app: &TestApp, user: &str, session: &str) -> String {
    app.token(
        json!({"sub": user, "role": "authenticated", "aud": "authenticated",
        "aal": "aal1", "session_id": session}),
    )
}

async fn publish(app: &TestApp, user: &str, sessions: Option<&[&str]>, reason: &str) {
    app.gf
        .context()
        .bus()
        .publish(Event::SessionsRevoked(SessionsRevoked {
            user_id: user.into(),
            session_ids: sessions.map(|s| s.iter().map(|s| (*s).to_owned()).collect()),
            reason: reason.into(),
        }))
        .await
        .unwrap();
}

/// Expects the `system` error then `phx_close` realtime-js gets at token expiry.
async fn expect_revoked(c: &mut Client, name: &str, join_ref: &str, reason: &str) {
    let topic = format!("realtime:{name}");
    let sys = c
        .recv_where(|m| m.event == "system" && m.topic == topic)
        .await;
    assert_eq!(sys.join_ref.as_deref(), Some(join_ref));
    assert_eq!(
        sys.payload,
        json!({"extension": "system", "status": "error",
            "message": format!("Session revoked: {reason}"), "channel": name})
    );
    let close = c.recv().await;
    assert_eq!(
        (close.event.as_str(), close.topic.as_str()),
        ("phx_close", topic.as_str())
    );
    assert_eq!(close.join_ref.as_deref(), Some(join_ref));
}

/// Broadcasts with ack on a joined channel; returns the reply status (or error reason).
async fn ack(c: &mut Client, join_ref: &str, name: &str) -> Value {
    let r = c
        .push(
            Some(join_ref),
            &format!("realtime:{name}"),
            "broadcast",
            json!({"type": "broadcast", "event": "ping", "payload": {}}),
        )
        .await;
    let reply = c.reply(&r).await.payload;
    if reply["status"] == "ok" {
        json!("ok")
    } else {
        reply["response"]["reason"].clone()
    }
}

async fn sessions_revoked_close_channels(pg: bool) {
    let Some(app) = app(pg, RealtimeConfig::default()).await else {
        return;
    };
    let (s1, s2) = ("session-1", "session-2");
    let ack_cfg = || config(false, true, "", json!([]));
    let mut c = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    let (ja, _) = c
        .join_ok("a", ack_cfg(), Some(&token(&app, "u1", s1)))
        .await;
    let (jb, _) = c
        .join_ok("b", ack_cfg(), Some(&token(&app, "u1", s2)))
        .await;
    // Joined with s1, then refreshed to s3: no longer concerned by s1's revocation.
    let (jr, _) = c
        .join_ok("r", ack_cfg(), Some(&token(&app, "u1", s1)))
        .await;
    c.push(
        Some(&jr),
        "realtime:r",
        "access_token",
        json!({"access_token": token(&app, "u1", "session-3")}),
    )
    .await;
    let (jc, _) = c.join_ok("c", ack_cfg(), None).await;
    let mut other = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (jo, _) = other
        .join_ok("a", ack_cfg(), Some(&token(&app, "u2", s1)))
        .await;
    assert_eq!(ack(&mut c, &jr, "r").await, "ok");

    // Another user's revocation, and an unknown session of u1, close nothing.
    publish(&app, "u3", None, "banned").await;
    publish(&app, "u1", Some(&["session-x"]), "signed_out").await;
    c.assert_none(Duration::from_millis(300), |m| {
        m.event == "system" || m.event == "phx_close"
    })
    .await;

    // Local sign-out of s1: only the channel joined with s1 closes.
    publish(&app, "u1", Some(&[s1]), "signed_out").await;
    expect_revoked(&mut c, "a", &ja, "signed_out").await;
    assert_eq!(ack(&mut c, &ja, "a").await, "unmatched topic");
    assert_eq!(ack(&mut c, &jb, "b").await, "ok");
    assert_eq!(ack(&mut c, &jr, "r").await, "ok");
    assert_eq!(ack(&mut other, &jo, "a").await, "ok");

    // Global (ban): every channel of u1 closes; the API-key channel and u2 stay.
    publish(&app, "u1", None, "banned").await;
    let mut closed = Vec::new();
    for _ in 0..4 {
        let m = c
            .recv_where(|m| m.event == "system" || m.event == "phx_close")
            .await;
        if m.event == "system" {
            assert_eq!(m.payload["message"], "Session revoked: banned");
        }
        closed.push((m.topic, m.event));
    }
    closed.sort();
    assert_eq!(
        closed,
        [
            ("realtime:b".into(), "phx_close".into()),
            ("realtime:b".into(), "system".into()),
            ("realtime:r".into(), "phx_close".into()),
            ("realtime:r".into(), "system".into()),
        ]
    );
    assert_eq!(ack(&mut c, &jb, "b").await, "unmatched topic");
    assert_eq!(ack(&mut c, &jc, "c").await, "ok");
    assert_eq!(ack(&mut other, &jo, "a").await, "ok");
    // The socket stays healthy: heartbeats are answered, the user may join again
    // with a new session (signed in after the ban: core refuses the user's tokens
    // issued up to the revocation's second).
    let r = c.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(c.reply(&r).await.payload["status"], "ok");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (ja2, _) = c
        .join_ok("a", ack_cfg(), Some(&token(&app, "u1", "session-4")))
        .await;
    assert_eq!(ack(&mut c, &ja2, "a").await, "ok");
    drop((c, other));
    app.stop().await;
}
both!(sessions_revoked, sessions_revoked_close_channels);

/// Two nodes sharing Redis: a revocation published on one node closes the
/// user's channels on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_revoked_across_nodes() {
    let Some(url) = goforward_core::testing::redis_url_or_skip("sessions_revoked_across_nodes")
    else {
        return;
    };
    let channel = format!(
        "gf-rt-revoke-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let node = |url: String, channel: String| async move {
        TestApp::builder()
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
    let n2 = node(url, channel).await;
    let mut c = Client::connect(&n2, &n2.anon_key(), "2.0.0").await;
    let (j, _) = c
        .join_ok(
            "x",
            config(false, true, "", json!([])),
            Some(&token(&n2, "u1", "s1")),
        )
        .await;
    let (jk, _) = c
        .join_ok("k", config(false, true, "", json!([])), None)
        .await;
    publish(&n1, "u1", Some(&["s1"]), "password_changed").await;
    expect_revoked(&mut c, "x", &j, "password_changed").await;
    assert_eq!(ack(&mut c, &jk, "k").await, "ok");
    drop(c);
    n1.stop().await;
    n2.stop().await;
}

/// At most `max_connections_per_user` sockets hold channels of one user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_user_are_capped() {
    let cfg = RealtimeConfig {
        max_connections_per_user: 2,
        ..RealtimeConfig::default()
    };
    let app = app(false, cfg).await.unwrap();
    let u1 = app.user_token("u1");
    let cfg = || config(false, false, "", json!([]));
    let mut a = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let mut b = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    let mut c = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let (ja, _) = a.join_ok("one", cfg(), Some(&u1)).await;
    // A second channel of the same user on the same socket is the same connection.
    a.join_ok("two", cfg(), Some(&u1)).await;
    b.join_ok("one", cfg(), Some(&u1)).await;
    let (_, reply) = c.join("one", cfg(), Some(&u1)).await;
    assert_eq!(reply.payload["status"], "error");
    assert_eq!(
        reply.payload["response"]["reason"],
        "ConnectionRateLimitReached: Too many connections for this user"
    );
    // The refused socket stays usable: API-key channels and other users join.
    c.join_ok("one", cfg(), None).await;
    c.join_ok("three", cfg(), Some(&app.user_token("u2"))).await;
    // A refresh to u1's token on c is refused the same way: the channel closes.
    c.push(
        None,
        "realtime:three",
        "access_token",
        json!({"access_token": u1}),
    )
    .await;
    let sys = c.recv_where(|m| m.event == "system").await;
    assert_eq!(sys.payload["message"], "Too many connections for this user");
    c.recv_where(|m| m.event == "phx_close").await;
    // Leaving one of two channels keeps the slot; leaving both frees it.
    let r = a
        .push(Some(&ja), "realtime:one", "phx_leave", json!({}))
        .await;
    a.reply(&r).await;
    let (_, reply) = c.join("four", cfg(), Some(&u1)).await;
    assert_eq!(reply.payload["status"], "error");
    let r = a.push(None, "realtime:two", "phx_leave", json!({})).await;
    a.reply(&r).await;
    c.join_ok("four", cfg(), Some(&u1)).await;
    // A closed socket frees its slot too.
    drop(b);
    let mut freed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, reply) = a.join("five", cfg(), Some(&u1)).await;
        if reply.payload["status"] == "ok" {
            freed = true;
            break;
        }
    }
    assert!(freed, "a closed socket frees its user slot");
    drop((a, c));
    app.stop().await;
}

async fn metrics_text(app: &TestApp) -> String {
    app.client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Gauges and counters on `/metrics`; a slow consumer is dropped (and counted)
/// while another subscriber keeps receiving everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_slow_consumer() {
    let cfg = RealtimeConfig {
        send_queue: 8,
        write_timeout_secs: 1,
        max_channels_per_connection: 2,
        ..RealtimeConfig::default()
    };
    let app = app(false, cfg).await.unwrap();
    let mut a = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    let mut b = Client::connect(&app, &app.anon_key(), "1.0.0").await;
    let (ja, _) = a
        .join_ok("m", config(true, true, "", json!([])), None)
        .await;
    a.join_ok("n", config(false, false, "", json!([])), None)
        .await;
    b.join_ok("m", config(false, false, "", json!([])), None)
        .await;
    let (_, reply) = a.join("o", config(false, false, "", json!([])), None).await;
    assert_eq!(reply.payload["status"], "error");
    assert_eq!(ack(&mut a, &ja, "m").await, "ok");
    b.recv_where(is_broadcast("ping")).await;
    let text = metrics_text(&app).await;
    assert_eq!(
        metric(&text, "goforward_realtime_connections"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "goforward_realtime_channels"),
        Some(3.0),
        "{text}"
    );
    // 3 joins + a refused join + a broadcast on `a` and `b`'s join.
    assert!(
        metric(&text, "goforward_realtime_messages_in_total").unwrap() >= 5.0,
        "{text}"
    );
    // Join replies, the ack, the echo and b's copy.
    assert!(
        metric(&text, "goforward_realtime_messages_out_total").unwrap() >= 7.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "goforward_realtime_refused_total{reason=\"channels_per_connection\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "goforward_realtime_slow_consumers_total"),
        Some(0.0)
    );

    // `slow` never reads; `a` reads everything. The hub never waits for `slow`.
    let mut slow = Client::connect(&app, &app.anon_key(), "2.0.0").await;
    slow.join_ok("firehose", config(false, false, "", json!([])), None)
        .await;
    let (_jf, _) = b
        .join_ok("firehose", config(false, false, "", json!([])), None)
        .await;
    let handle = Realtime::handle(app.gf.context()).unwrap();
    let blob = "x".repeat(50_000);
    let total = 300;
    // The broadcaster stays at most `window` messages ahead of the reader
    // (under its queue of 8), so a reader delayed by a loaded machine is
    // never the one dropped; `slow` falls behind by all of them.
    let window = 4;
    let (progress, mut received) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        for i in 0..total {
            let m = b.recv_where(is_broadcast("blob")).await;
            assert_eq!(m.payload["payload"]["i"], i);
            progress.send_replace(i + 1);
        }
        b
    });
    for i in 0..total {
        received
            .wait_for(|&got| got + window > i)
            .await
            .expect("the reader is alive");
        handle
            .broadcast("firehose", "blob", json!({"i": i, "blob": blob}))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let b = reader
        .await
        .expect("the reading client got every message in order");
    match slow.closed(Duration::from_secs(30)).await {
        Closed::Frame(_) | Closed::Eof => {}
    }
    let mut text = String::new();
    for _ in 0..50 {
        text = metrics_text(&app).await;
        if metric(&text, "goforward_realtime_connections") == Some(2.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&text, "goforward_realtime_connections"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "goforward_realtime_slow_consumers_total"),
        Some(1.0),
        "{text}"
    );
    // Everyone gone: the gauges are back to zero.
    drop((a, b, slow));
    for _ in 0..50 {
        text = metrics_text(&app).await;
        if metric(&text, "goforward_realtime_connections") == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(&text, "goforward_realtime_connections"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "goforward_realtime_channels"),
        Some(0.0),
        "{text}"
    );
    app.stop().await;
}
