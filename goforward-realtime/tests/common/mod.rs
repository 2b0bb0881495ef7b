//! Shared helpers of the realtime integration tests: a test app with the
//! realtime plugin and a raw Phoenix WebSocket client (tokio-tungstenite).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use goforward_core::testing::{TestApp, postgres_url_or_skip};
use goforward_realtime::{Realtime, RealtimeConfig};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Runs one scenario on SQLite and on PostgreSQL: `both!(name, scenario_fn)`.
#[macro_export]
macro_rules! both {
    ($name:ident, $scenario:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(false).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario(true).await;
            }
        }
    };
}

/// An app with the realtime plugin (`config` instead of the defaults);
/// `None` when PostgreSQL is requested but not configured (a failure under `CI=true`).
pub async fn app(pg: bool, config: RealtimeConfig) -> Option<TestApp> {
    app_with(pg, config, |_| {}).await
}

/// As [`app`], with a change to the core config.
pub async fn app_with(
    pg: bool,
    config: RealtimeConfig,
    core: impl FnOnce(&mut goforward_core::Config),
) -> Option<TestApp> {
    if pg && postgres_url_or_skip("goforward-realtime").is_none() {
        return None;
    }
    Some(
        TestApp::builder()
            .plugin(Realtime::new().with_config(config))
            .config(core)
            .postgres(pg)
            .start()
            .await
            .expect("test app starts"),
    )
}

/// The WebSocket URL of `app` with `key` and serializer `vsn`.
pub fn ws_url(app: &TestApp, key: &str, vsn: &str) -> String {
    format!(
        "{}/realtime/v1/websocket?apikey={key}&log_level=info&vsn={vsn}",
        app.base_url.replacen("http", "ws", 1)
    )
}

/// A received message, whatever the serializer.
#[derive(Debug, Clone)]
pub struct Msg {
    pub join_ref: Option<String>,
    pub msg_ref: Option<String>,
    pub topic: String,
    pub event: String,
    pub payload: Value,
    /// Whether it came as a kind-4 binary frame.
    pub binary: bool,
}

/// What a socket ended with.
#[derive(Debug)]
pub enum Closed {
    Frame(Option<(u16, String)>),
    Eof,
}

/// A Phoenix client.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub v2: bool,
    next_ref: u64,
}

pub const WAIT: Duration = Duration::from_secs(5);

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

impl Client {
    /// Connects with `vsn` "1.0.0" or "2.0.0".
    pub async fn connect(app: &TestApp, key: &str, vsn: &str) -> Client {
        Self::connect_with(app, key, vsn, None).await
    }

    /// As [`Client::connect`], sending an `Origin` header.
    pub async fn connect_with(app: &TestApp, key: &str, vsn: &str, origin: Option<&str>) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = ws_url(app, key, vsn).into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects");
        Client {
            ws,
            v2: vsn == "2.0.0",
            next_ref: 0,
        }
    }

    /// The HTTP status a refused upgrade got.
    pub async fn refused(url: &str) -> (u16, Value) {
        Self::refused_with(url, None).await
    }

    /// As [`Client::refused`], sending an `Origin` header.
    pub async fn refused_with(url: &str, origin: Option<&str>) -> (u16, Value) {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(request).await {
            Err(tungstenite::Error::Http(res)) => {
                let body = res
                    .body()
                    .as_ref()
                    .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                    .unwrap_or(Value::Null);
                (res.status().as_u16(), body)
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("upgrade was accepted"),
        }
    }

    pub fn make_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Sends a text frame; returns its ref.
    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        topic: &str,
        event: &str,
        payload: Value,
    ) -> String {
        let r = self.make_ref();
        let text = if self.v2 {
            json!([join_ref, r, topic, event, payload]).to_string()
        } else {
            json!({"join_ref": join_ref, "ref": r, "topic": topic, "event": event, "payload": payload})
                .to_string()
        };
        self.raw(Message::text(text)).await;
        r
    }

    pub async fn raw(&mut self, msg: Message) {
        self.ws.send(msg).await.expect("send");
    }

    /// Sends a kind-3 binary broadcast (V2 only); returns its ref.
    pub async fn push_binary(
        &mut self,
        join_ref: &str,
        topic: &str,
        event: &str,
        payload: &Value,
        metadata: &str,
    ) -> String {
        let r = self.make_ref();
        let body = payload.to_string();
        let mut frame = vec![
            3,
            join_ref.len() as u8,
            r.len() as u8,
            topic.len() as u8,
            event.len() as u8,
            metadata.len() as u8,
            1,
        ];
        for part in [join_ref, r.as_str(), topic, event, metadata] {
            frame.extend_from_slice(part.as_bytes());
        }
        frame.extend_from_slice(body.as_bytes());
        self.raw(Message::binary(frame)).await;
        r
    }

    /// The next Phoenix message (panics after 5 s or on close).
    pub async fn recv(&mut self) -> Msg {
        match tokio::time::timeout(WAIT, self.next_msg()).await {
            Ok(Ok(msg)) => msg,
            Ok(Err(closed)) => panic!("socket closed while waiting: {closed:?}"),
            Err(_) => panic!("no message within {WAIT:?}"),
        }
    }

    async fn next_msg(&mut self) -> Result<Msg, Closed> {
        loop {
            let Some(frame) = self.ws.next().await else {
                return Err(Closed::Eof);
            };
            match frame {
                Ok(Message::Text(text)) => {
                    let v: Value = serde_json::from_str(&text).expect("server JSON");
                    return Ok(if self.v2 {
                        Msg {
                            join_ref: s(&v[0]),
                            msg_ref: s(&v[1]),
                            topic: s(&v[2]).unwrap(),
                            event: s(&v[3]).unwrap(),
                            payload: v[4].clone(),
                            binary: false,
                        }
                    } else {
                        Msg {
                            join_ref: s(&v["join_ref"]),
                            msg_ref: s(&v["ref"]),
                            topic: s(&v["topic"]).unwrap(),
                            event: s(&v["event"]).unwrap(),
                            payload: v["payload"].clone(),
                            binary: false,
                        }
                    });
                }
                Ok(Message::Binary(b)) => {
                    assert_eq!(b[0], 4, "server binary frames are kind 4");
                    let (t, e, m, enc) = (b[1] as usize, b[2] as usize, b[3] as usize, b[4]);
                    let mut at = 5;
                    let topic = String::from_utf8(b[at..at + t].to_vec()).unwrap();
                    at += t;
                    let event = String::from_utf8(b[at..at + e].to_vec()).unwrap();
                    at += e;
                    let meta: Option<Value> =
                        (m > 0).then(|| serde_json::from_slice(&b[at..at + m]).unwrap());
                    at += m;
                    let payload = if enc == 1 {
                        serde_json::from_slice(&b[at..]).unwrap()
                    } else {
                        Value::from(b[at..].to_vec())
                    };
                    let mut payload =
                        json!({"type": "broadcast", "event": event, "payload": payload});
                    if let Some(meta) = meta {
                        payload["meta"] = meta;
                    }
                    return Ok(Msg {
                        join_ref: None,
                        msg_ref: None,
                        topic,
                        event: "broadcast".into(),
                        payload,
                        binary: true,
                    });
                }
                Ok(Message::Close(frame)) => {
                    return Err(Closed::Frame(
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ));
                }
                Ok(_) => {}
                Err(_) => return Err(Closed::Eof),
            }
        }
    }

    /// The next message matching `pred`, skipping others.
    pub async fn recv_where(&mut self, pred: impl Fn(&Msg) -> bool) -> Msg {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next_msg()).await {
                Ok(Ok(msg)) if pred(&msg) => return msg,
                Ok(Ok(_)) => {}
                Ok(Err(closed)) => panic!("socket closed while waiting: {closed:?}"),
                Err(_) => panic!("no matching message within {WAIT:?}"),
            }
        }
    }

    /// The reply to `r`.
    pub async fn reply(&mut self, r: &str) -> Msg {
        let r = r.to_owned();
        self.recv_where(move |m| m.event == "phx_reply" && m.msg_ref.as_deref() == Some(&r))
            .await
    }

    /// Asserts no message matching `pred` arrives within `wait`.
    pub async fn assert_none(&mut self, wait: Duration, pred: impl Fn(&Msg) -> bool) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next_msg()).await {
                Ok(Ok(msg)) if pred(&msg) => panic!("unexpected message {msg:?}"),
                Ok(Ok(_)) => {}
                Ok(Err(closed)) => panic!("socket closed: {closed:?}"),
                Err(_) => return,
            }
        }
    }

    /// Reads until the socket ends; returns how.
    pub async fn closed(&mut self, wait: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.next_msg()).await {
                Ok(Ok(_)) => {}
                Ok(Err(closed)) => return closed,
                Err(_) => panic!("socket still open after {wait:?}"),
            }
        }
    }

    /// Joins `realtime:<name>` with `config` (and `access_token` if given); returns (join_ref, reply).
    pub async fn join(&mut self, name: &str, config: Value, token: Option<&str>) -> (String, Msg) {
        let r = self.make_ref();
        let mut payload = json!({"config": config});
        if let Some(t) = token {
            payload["access_token"] = json!(t);
        }
        let topic = format!("realtime:{name}");
        let text = if self.v2 {
            json!([r, r, topic, "phx_join", payload]).to_string()
        } else {
            json!({"join_ref": r, "ref": r, "topic": topic, "event": "phx_join", "payload": payload})
                .to_string()
        };
        self.raw(Message::text(text)).await;
        let reply = self.reply(&r).await;
        (r, reply)
    }

    /// Joins and asserts the reply is ok.
    pub async fn join_ok(
        &mut self,
        name: &str,
        config: Value,
        token: Option<&str>,
    ) -> (String, Msg) {
        let (r, reply) = self.join(name, config, token).await;
        assert_eq!(
            reply.payload["status"], "ok",
            "join reply {:?}",
            reply.payload
        );
        (r, reply)
    }
}

/// A join config like realtime-js builds it.
pub fn config(self_: bool, ack: bool, presence_key: &str, changes: Value) -> Value {
    json!({
        "broadcast": {"self": self_, "ack": ack},
        "presence": {"key": presence_key, "enabled": true},
        "postgres_changes": changes,
        "private": false
    })
}
