//! Event bus tests: the in-memory bus always, the Redis bus with feature
//! `redis` against `GOFORWARD_TEST_REDIS_URL`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use goforward_core::bus::{
    ChangeKind, Envelope, Event, EventBus, MemoryBus, ObjectEvent, RecordChanged, SharedBus,
    Subscription, UserEvent,
};
use serde_json::json;

/// How long to wait for an event that should arrive.
const ARRIVES_WITHIN: Duration = Duration::from_secs(5);
/// How long to wait for a second copy that must not arrive.
const NO_DUPLICATE_WITHIN: Duration = Duration::from_millis(300);

async fn recv_within(subscription: &mut Subscription, within: Duration) -> Option<Arc<Envelope>> {
    tokio::time::timeout(within, subscription.recv())
        .await
        .ok()
        .flatten()
}

async fn expect_event(subscription: &mut Subscription) -> Arc<Envelope> {
    recv_within(subscription, ARRIVES_WITHIN)
        .await
        .expect("an event within 5 s")
}

async fn expect_nothing_more(subscription: &mut Subscription, what: &str) {
    if let Ok(extra) = tokio::time::timeout(NO_DUPLICATE_WITHIN, subscription.recv()).await {
        panic!("{what}: expected no further event, got {extra:?}");
    }
}

fn custom(name: &str) -> Event {
    Event::custom(name, json!({ "n": name }))
}

// ---------------------------------------------------------------------------
// Events and envelopes
// ---------------------------------------------------------------------------

#[test]
fn events_serialize_with_kind_tag_and_supabase_spelling() {
    let at = "2025-01-02T03:04:05Z".parse().unwrap();
    let change = Event::RecordChanged(RecordChanged {
        schema: "public".into(),
        table: "todos".into(),
        kind: ChangeKind::Insert,
        record: Some(json!({ "id": 1 })),
        old_record: None,
        commit_timestamp: at,
    });
    assert_eq!(
        serde_json::to_value(&change).unwrap(),
        json!({
            "kind": "record_changed",
            "schema": "public",
            "table": "todos",
            "type": "INSERT",
            "record": { "id": 1 },
            "old_record": null,
            "commit_timestamp": "2025-01-02T03:04:05Z",
        })
    );
    assert_eq!(change.name(), "record_changed");

    let signed_in = Event::UserSignedIn(UserEvent {
        user_id: "u1".into(),
        email: Some("a@example.com".into()),
        phone: None,
        provider: "email".into(),
    });
    assert_eq!(
        serde_json::to_value(&signed_in).unwrap()["kind"],
        "user_signed_in"
    );
    assert_eq!(signed_in.name(), "user_signed_in");

    let custom = Event::custom("billing.paid", json!({ "amount": 3 }));
    assert_eq!(
        serde_json::to_value(&custom).unwrap(),
        json!({ "kind": "custom", "name": "billing.paid", "payload": { "amount": 3 } })
    );
    assert_eq!(custom.name(), "billing.paid");

    for kind in [ChangeKind::Insert, ChangeKind::Update, ChangeKind::Delete] {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
    }
}

#[test]
fn envelopes_round_trip_through_json() {
    let events = [
        Event::UserSignedUp(UserEvent {
            user_id: "u1".into(),
            email: None,
            phone: Some("+15550100".into()),
            provider: "phone".into(),
        }),
        Event::ObjectUploaded(ObjectEvent {
            bucket: "avatars".into(),
            path: "u1/me.png".into(),
            owner: Some("u1".into()),
            size: Some(1234),
            content_type: Some("image/png".into()),
        }),
        Event::ObjectDeleted(ObjectEvent {
            bucket: "avatars".into(),
            path: "u1/me.png".into(),
            owner: None,
            size: None,
            content_type: None,
        }),
        Event::RecordChanged(RecordChanged {
            schema: "main".into(),
            table: "todos".into(),
            kind: ChangeKind::Delete,
            record: None,
            old_record: Some(json!({ "id": 7 })),
            commit_timestamp: Utc::now(),
        }),
        custom("x"),
    ];
    for event in events {
        let envelope = Envelope::new(uuid::Uuid::new_v4(), event);
        let text = serde_json::to_string(&envelope).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, envelope, "{text}");
    }
}

// ---------------------------------------------------------------------------
// MemoryBus
// ---------------------------------------------------------------------------

#[tokio::test]
async fn memory_two_subscribers_each_receive_an_event_once() {
    let bus: SharedBus = Arc::new(MemoryBus::new(16));
    let mut first = bus.subscribe();
    let mut second = bus.subscribe();

    bus.publish(custom("one")).await.unwrap();

    for subscription in [&mut first, &mut second] {
        let envelope = expect_event(subscription).await;
        assert_eq!(envelope.event, custom("one"));
        assert_eq!(envelope.origin, bus.node_id());
        expect_nothing_more(subscription, "memory subscriber").await;
    }
    bus.shutdown().await;
}

#[tokio::test]
async fn memory_events_published_before_subscribe_are_not_received() {
    let bus = MemoryBus::new(16);
    bus.publish(custom("early")).await.unwrap();
    let mut late = bus.subscribe();
    bus.publish(custom("late")).await.unwrap();

    assert_eq!(expect_event(&mut late).await.event, custom("late"));
    expect_nothing_more(&mut late, "late subscriber").await;
}

#[tokio::test]
async fn memory_shutdown_ends_subscriptions_and_refuses_publish() {
    let bus = MemoryBus::new(16);
    let mut subscription = bus.subscribe();
    let waiting = tokio::spawn(async move { subscription.recv().await });

    bus.shutdown().await;
    let received = tokio::time::timeout(ARRIVES_WITHIN, waiting)
        .await
        .expect("recv returns after shutdown")
        .unwrap();
    assert!(received.is_none());

    bus.shutdown().await; // idempotent
    assert!(bus.subscribe().recv().await.is_none());
    let err = bus.publish(custom("after")).await.unwrap_err();
    assert!(matches!(err, goforward_core::Error::Bus(_)), "{err:?}");
}

#[tokio::test]
async fn memory_lagging_subscriber_skips_and_continues() {
    let bus = MemoryBus::new(2);
    let mut subscription = bus.subscribe();
    for n in 0..5 {
        bus.publish(custom(&n.to_string())).await.unwrap();
    }
    // The oldest three were overwritten; the subscriber continues with the rest.
    assert_eq!(expect_event(&mut subscription).await.event, custom("3"));
    assert_eq!(expect_event(&mut subscription).await.event, custom("4"));
    bus.publish(custom("5")).await.unwrap();
    assert_eq!(expect_event(&mut subscription).await.event, custom("5"));
}

#[tokio::test]
async fn memory_zero_capacity_is_usable_and_no_subscriber_is_fine() {
    let bus = MemoryBus::new(0);
    bus.publish(custom("nobody listens")).await.unwrap();
    let mut subscription = bus.subscribe();
    bus.publish(custom("someone listens")).await.unwrap();
    assert_eq!(
        expect_event(&mut subscription).await.event,
        custom("someone listens")
    );
}

// ---------------------------------------------------------------------------
// RedisBus
// ---------------------------------------------------------------------------

#[cfg(feature = "redis")]
mod redis_bus {
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use goforward_core::bus::RedisBus;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::{AbortHandle, JoinHandle};

    use super::*;

    /// The Redis to test against, or `None` (skip) outside CI.
    fn redis_url() -> Option<String> {
        match std::env::var("GOFORWARD_TEST_REDIS_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                    panic!("GOFORWARD_TEST_REDIS_URL must be set in CI");
                }
                println!("skipped: GOFORWARD_TEST_REDIS_URL not set");
                None
            }
        }
    }

    fn unique_channel() -> String {
        format!("goforward-test:{}", uuid::Uuid::new_v4())
    }

    #[tokio::test]
    async fn event_reaches_every_subscriber_on_every_node_exactly_once() {
        let Some(url) = redis_url() else { return };
        let channel = unique_channel();
        let a = RedisBus::connect(&url, &channel, 64).await.unwrap();
        let b = RedisBus::connect(&url, &channel, 64).await.unwrap();
        assert_ne!(a.node_id(), b.node_id());
        let mut on_a = a.subscribe();
        let mut on_b = b.subscribe();
        let mut on_b_too = b.subscribe();

        a.publish(custom("from a")).await.unwrap();
        for (subscription, name) in [(&mut on_a, "a"), (&mut on_b, "b"), (&mut on_b_too, "b2")] {
            let envelope = expect_event(subscription).await;
            assert_eq!(envelope.event, custom("from a"), "subscriber {name}");
            assert_eq!(envelope.origin, a.node_id(), "subscriber {name}");
        }

        b.publish(custom("from b")).await.unwrap();
        for (subscription, name) in [(&mut on_a, "a"), (&mut on_b, "b"), (&mut on_b_too, "b2")] {
            let envelope = expect_event(subscription).await;
            assert_eq!(envelope.event, custom("from b"), "subscriber {name}");
            assert_eq!(envelope.origin, b.node_id(), "subscriber {name}");
        }

        for (subscription, name) in [(&mut on_a, "a"), (&mut on_b, "b"), (&mut on_b_too, "b2")] {
            expect_nothing_more(subscription, name).await;
        }
        a.shutdown().await;
        b.shutdown().await;
    }

    #[tokio::test]
    async fn a_subscriber_right_after_connect_misses_nothing() {
        let Some(url) = redis_url() else { return };
        let channel = unique_channel();
        let a = RedisBus::connect(&url, &channel, 64).await.unwrap();
        for round in 0..5 {
            let b = RedisBus::connect(&url, &channel, 64).await.unwrap();
            let mut on_b = b.subscribe();
            a.publish(custom(&format!("round {round}"))).await.unwrap();
            assert_eq!(
                expect_event(&mut on_b).await.event,
                custom(&format!("round {round}"))
            );
            b.shutdown().await;
        }
        a.shutdown().await;
    }

    #[tokio::test]
    async fn buses_on_different_channels_do_not_see_each_other() {
        let Some(url) = redis_url() else { return };
        let channel = unique_channel();
        let a = RedisBus::connect(&url, &channel, 64).await.unwrap();
        let same = RedisBus::connect(&url, &channel, 64).await.unwrap();
        let other = RedisBus::connect(&url, &unique_channel(), 64)
            .await
            .unwrap();
        let mut on_same = same.subscribe();
        let mut on_other = other.subscribe();

        a.publish(custom("hello")).await.unwrap();
        // Once a node on the same channel has it, Redis has fanned it out.
        assert_eq!(expect_event(&mut on_same).await.event, custom("hello"));
        expect_nothing_more(&mut on_other, "other channel").await;

        other.publish(custom("elsewhere")).await.unwrap();
        assert_eq!(expect_event(&mut on_other).await.event, custom("elsewhere"));
        expect_nothing_more(&mut on_same, "same channel").await;

        for bus in [a, same, other] {
            bus.shutdown().await;
        }
    }

    #[tokio::test]
    async fn shutdown_ends_subscriptions_and_is_idempotent() {
        let Some(url) = redis_url() else { return };
        let bus: SharedBus = Arc::new(
            RedisBus::connect(&url, &unique_channel(), 64)
                .await
                .unwrap(),
        );
        let mut subscription = bus.subscribe();
        bus.shutdown().await;
        bus.shutdown().await;
        assert!(
            recv_within(&mut subscription, ARRIVES_WITHIN)
                .await
                .is_none()
        );
        assert!(bus.subscribe().recv().await.is_none());
        assert!(bus.publish(custom("after")).await.is_err());
    }

    #[tokio::test]
    async fn connect_failure_names_the_url_without_credentials() {
        // Nothing listens on port 1: the connection is refused at once.
        let err = RedisBus::connect("redis://app:s3cret@127.0.0.1:1/0", "x", 8)
            .await
            .unwrap_err();
        let goforward_core::Error::Bus(message) = &err else {
            panic!("expected Error::Bus, got {err:?}");
        };
        assert!(message.contains("redis://***@127.0.0.1:1/0"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");

        let err = RedisBus::connect("not a url", "x", 8).await.unwrap_err();
        assert!(matches!(err, goforward_core::Error::Bus(_)), "{err:?}");
        let err = RedisBus::connect("redis://127.0.0.1:1", "", 8)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("channel"), "{err}");
    }

    /// A TCP proxy in front of Redis whose connections the test can cut.
    struct Proxy {
        addr: SocketAddr,
        connections: Arc<Mutex<Vec<AbortHandle>>>,
        /// While false, new connections are closed at once (Redis "down").
        open: Arc<AtomicBool>,
        accept: JoinHandle<()>,
    }

    impl Proxy {
        async fn start(upstream: String) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let connections = Arc::new(Mutex::new(Vec::new()));
            let tracked = Arc::clone(&connections);
            let open = Arc::new(AtomicBool::new(true));
            let is_open = Arc::clone(&open);
            let accept = tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if !is_open.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(upstream).await {
                            // Either direction ending closes both sockets.
                            tokio::select! {
                                _ = pipe(&client, &server) => {}
                                _ = pipe(&server, &client) => {}
                            }
                        }
                    });
                    tracked.lock().unwrap().push(task.abort_handle());
                }
            });
            Self {
                addr,
                connections,
                open,
                accept,
            }
        }

        /// Refuses (`false`) or accepts (`true`) new connections.
        fn set_open(&self, open: bool) {
            self.open.store(open, Ordering::SeqCst);
        }

        /// Closes every proxied connection (both sides).
        fn cut(&self) {
            for connection in self.connections.lock().unwrap().drain(..) {
                connection.abort();
            }
        }
    }

    /// Copies bytes from `from` to `to` until EOF or an error (without
    /// tokio's `io-util` feature, which core does not enable).
    async fn pipe(from: &TcpStream, to: &TcpStream) -> std::io::Result<()> {
        let mut buffer = vec![0_u8; 16 * 1024];
        loop {
            from.readable().await?;
            let read = match from.try_read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err),
            };
            let mut written = 0;
            while written < read {
                to.writable().await?;
                match to.try_write(&buffer[written..read]) {
                    Ok(n) => written += n,
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(err) => return Err(err),
                }
            }
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.cut();
            self.accept.abort();
        }
    }

    #[tokio::test]
    async fn listener_and_publisher_reconnect_after_the_connection_drops() {
        let Some(url) = redis_url() else { return };
        let mut proxied = url::Url::parse(&url).unwrap();
        let upstream = format!(
            "{}:{}",
            proxied.host_str().unwrap(),
            proxied.port().unwrap_or(6379)
        );
        let proxy = Proxy::start(upstream).await;
        proxied.set_host(Some("127.0.0.1")).unwrap();
        proxied.set_port(Some(proxy.addr.port())).unwrap();

        let channel = unique_channel();
        let direct = RedisBus::connect(&url, &channel, 64).await.unwrap();
        let behind_proxy = RedisBus::connect(proxied.as_str(), &channel, 64)
            .await
            .unwrap();
        let mut on_direct = direct.subscribe();
        let mut on_proxied = behind_proxy.subscribe();

        // Redis "goes down" for a while: the listener's reconnect attempts
        // fail and back off; then it comes back.
        proxy.set_open(false);
        proxy.cut();
        tokio::time::sleep(Duration::from_millis(800)).await;
        proxy.set_open(true);

        // The listener behind the proxy reconnects on its own: probe until
        // an event from the other node arrives again.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut probes = 0;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "listener did not reconnect"
            );
            probes += 1;
            direct
                .publish(custom(&format!("probe {probes}")))
                .await
                .unwrap();
            if let Some(envelope) = recv_within(&mut on_proxied, Duration::from_millis(200)).await {
                assert_eq!(envelope.origin, direct.node_id());
                break;
            }
        }
        while recv_within(&mut on_proxied, NO_DUPLICATE_WITHIN)
            .await
            .is_some()
        {}
        while recv_within(&mut on_direct, NO_DUPLICATE_WITHIN)
            .await
            .is_some()
        {}

        // Delivery is exactly once again, both ways; the publisher behind the
        // proxy had its connection cut too and reconnects within `publish`.
        behind_proxy.publish(custom("after cut")).await.unwrap();
        assert_eq!(
            expect_event(&mut on_direct).await.event,
            custom("after cut")
        );
        assert_eq!(
            expect_event(&mut on_proxied).await.event,
            custom("after cut")
        );
        direct.publish(custom("and back")).await.unwrap();
        assert_eq!(
            expect_event(&mut on_proxied).await.event,
            custom("and back")
        );
        assert_eq!(expect_event(&mut on_direct).await.event, custom("and back"));
        expect_nothing_more(&mut on_direct, "direct").await;
        expect_nothing_more(&mut on_proxied, "behind proxy").await;

        direct.shutdown().await;
        behind_proxy.shutdown().await;
    }
}
