//! `GET /realtime/v1/websocket`: the Phoenix socket realtime-js connects to.

mod channel;
mod limits;
mod slots;

use self::slots::IpSlot;
pub(crate) use self::slots::{IpSlots, UserSlots};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody as _;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError};
use goforward_core::Principal;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use self::channel::Channel;
use self::limits::Window;
use crate::error::RealtimeError;
use crate::hub::{ConnId, Inbox, Order, Out, Outbox, Owner, SLOW_CONSUMER, ShardId, SocketBody};
use crate::protocol::{Frame, Vsn, binary};
use crate::state::RealtimeState;

/// The connect query: `?apikey=…&vsn=…` (other parameters, like `log_level`, are ignored).
#[derive(Debug, Deserialize)]
pub(crate) struct ConnectParams {
    apikey: Option<String>,
    vsn: Option<String>,
}

/// Upgrades to a WebSocket after verifying the API key (401 otherwise).
pub(crate) async fn connect(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<ConnectParams>,
    state: web::Data<RealtimeState>,
) -> Result<HttpResponse, RealtimeError> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let apikey = query
        .apikey
        .clone()
        .or_else(|| header("apikey"))
        .or_else(|| header("x-api-key"));
    let principal = state
        .ctx
        .authenticator()
        .authenticate(apikey.as_deref(), None)?;
    let vsn = Vsn::parse(query.vsn.as_deref())
        .ok_or_else(|| RealtimeError::BadRequest("unsupported vsn: use 1.0.0 or 2.0.0".into()))?;
    // Browsers send `Origin`; it must be one the app allows (CORS config).
    if let Some(origin) = req.headers().get(actix_web::http::header::ORIGIN) {
        let allowed = &state.ctx.config().server.cors.allowed_origins;
        let origin = origin.to_str().unwrap_or_default();
        if !allowed
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
        {
            return Err(RealtimeError::OriginNotAllowed);
        }
    }
    let ip = state
        .ctx
        .rate_limits()
        .client_ip(&req)
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let Some(slot) = state.slots.acquire(ip) else {
        state.metrics.refuse("connections_per_ip");
        return Err(RealtimeError::TooManyConnections);
    };
    // actix-ws parses the client's frames; its response (and the 32-slot channel
    // of its `Session`) is replaced by our queue as the body, written without a
    // task hop per frame.
    let (_, _, stream) = actix_ws::handle(&req, body)
        .map_err(|e| RealtimeError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    let mut response = actix_http::ws::handshake(req.head())
        .map_err(|e| RealtimeError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    let max = state.config.max_message_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let state: Arc<RealtimeState> = state.into_inner();
    let (conn, inbox, socket) = Conn::new(state, vsn, principal);
    // Boxed: a task stores its future's arguments next to the state it moves them
    // into, so only pointers are kept twice.
    let fut = Conn::run(Box::new(conn), Box::new(stream), inbox, slot);
    actix_web::rt::spawn(fut);
    let response = response
        .message_body(socket.boxed())
        .map_err(|e| RealtimeError::BadRequest(format!("not a WebSocket upgrade: {e}")))?;
    Ok(response.into())
}

/// What woke a connection's loop.
enum Wake {
    Order(Order),
    Message(Option<Result<AggregatedMessage, ProtocolError>>),
    Timer,
}

/// Why the loop ended, with the close frame to send (if the socket can still take one).
pub(super) enum End {
    Close(Option<CloseReason>),
    Gone,
}

fn close(code: CloseCode, text: &str) -> End {
    End::Close(Some(CloseReason {
        code,
        description: Some(text.to_owned()),
    }))
}

pub(crate) struct Conn {
    id: ConnId,
    state: Arc<RealtimeState>,
    vsn: Vsn,
    socket_principal: Principal,
    /// Boxed: the map's buckets stay small (an idle connection with one channel
    /// allocates ~0.4 KiB for it instead of ~1.1 KiB).
    channels: HashMap<String, Box<Channel>>,
    outbox: Outbox,
    /// This worker's shard of the hub (where the hub's frames for this connection are pushed).
    shard: ShardId,
    joins: Window,
    events: Window,
    /// The users whose tokens this connection's channels were joined with, each holding one
    /// of the user's `max_connections_per_user` slots.
    users: HashMap<String, self::slots::Slot<String>>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        let metrics = &self.state.metrics;
        metrics.connections.dec();
        metrics
            .channels
            .sub(i64::try_from(self.channels.len()).unwrap_or(0));
    }
}

impl Conn {
    fn new(state: Arc<RealtimeState>, vsn: Vsn, principal: Principal) -> (Self, Inbox, SocketBody) {
        let (outbox, inbox, socket) = Outbox::new(
            state.config.send_queue,
            Duration::from_secs(state.config.write_timeout_secs),
            Some(state.metrics.messages_out.clone()),
        );
        state.metrics.connections.inc();
        // Runs on the HTTP worker that serves the socket.
        let shard = state.hub.local_shard();
        let conn = Self {
            id: state.hub.next_conn_id(),
            shard,
            joins: Window::new(state.config.max_joins_per_second),
            events: Window::new(state.config.max_events_per_second),
            state,
            vsn,
            socket_principal: principal,
            channels: HashMap::new(),
            outbox,
            users: HashMap::new(),
        };
        (conn, inbox, socket)
    }

    fn owner(&self) -> Owner {
        Owner {
            node: self.state.hub.node(),
            conn: self.id,
        }
    }

    /// Serves the socket until it closes; `slot` (the client IP's) is freed at the end.
    async fn run(
        mut self: Box<Self>,
        mut stream: Box<AggregatedMessageStream>,
        inbox: Inbox,
        slot: IpSlot,
    ) {
        let idle = Duration::from_secs(self.state.config.idle_timeout_secs);
        let lifetime = self.state.config.max_connection_secs;
        let started = Instant::now();
        let close_at = (lifetime > 0).then(|| started + Duration::from_secs(lifetime));
        let mut last_seen = started;
        let end = loop {
            let idle_at = last_seen + idle;
            let deadline = [self.next_expiry(), close_at]
                .into_iter()
                .flatten()
                .fold(idle_at, Instant::min);
            // The select only says what happened; the handling is awaited after it, so the
            // branch futures and the handlers' futures share their space in this task.
            let event = tokio::select! {
                biased;
                order = inbox.order() => Wake::Order(order),
                msg = stream.recv() => Wake::Message(msg),
                () = tokio::time::sleep_until(deadline) => Wake::Timer,
            };
            let done = match event {
                Wake::Order(Order::Kick(reason)) => {
                    if reason == SLOW_CONSUMER {
                        self.state.metrics.slow_consumers.inc();
                    }
                    Err(close(CloseCode::Policy, reason))
                }
                Wake::Message(None) => Err(End::Gone),
                Wake::Message(Some(Err(ProtocolError::Overflow))) => {
                    Err(close(CloseCode::Size, "message too large"))
                }
                Wake::Message(Some(Err(err))) => {
                    tracing::debug!(error = %err, "realtime socket protocol error");
                    Err(close(CloseCode::Protocol, "protocol error"))
                }
                Wake::Message(Some(Ok(msg))) => {
                    last_seen = Instant::now();
                    self.state.metrics.messages_in.inc();
                    // Boxed: the handlers' state lives on the heap only while one runs,
                    // which keeps every idle connection's task small.
                    // Replies go out before what the hub queues meanwhile.
                    inbox.hold();
                    let done = Box::pin(self.on_message(msg)).await;
                    inbox.release();
                    done
                }
                Wake::Order(Order::Revoke(revoke)) => Box::pin(self.revoke_session(&revoke)).await,
                Wake::Timer => {
                    let now = Instant::now();
                    if now >= last_seen + idle {
                        Err(close(CloseCode::Normal, "idle timeout"))
                    } else if close_at.is_some_and(|at| now >= at) {
                        Err(close(CloseCode::Normal, "connection lifetime reached"))
                    } else {
                        Box::pin(self.expire_channels()).await
                    }
                }
            };
            if let Err(end) = done {
                break end;
            }
        };
        inbox.close(match end {
            End::Close(reason) => Some(reason),
            End::Gone => None,
        });
        Box::pin(self.cleanup()).await;
        drop(slot);
    }

    /// Leaves every channel and withdraws this connection's presence everywhere.
    async fn cleanup(&mut self) {
        // The connection's own record of what it tracked is authoritative: a track
        // still on its way through the bus is followed by its leave, in order.
        let topics: Vec<String> = self.channels.keys().cloned().collect();
        for topic in topics {
            self.close_channel(&topic).await;
        }
        for leave in self.state.hub.presence_leaves_of(self.id) {
            if let Err(err) = self.state.hub.publish_presence(&leave).await {
                tracing::warn!(error = %err, "could not publish a presence leave");
            }
        }
    }

    /// Queues a frame for the socket (a full queue kicks the connection, which then
    /// closes as a slow consumer).
    #[allow(clippy::unused_async)]
    async fn write(&mut self, out: Out) -> Result<(), End> {
        self.outbox.send_own(out);
        Ok(())
    }

    pub(super) async fn send(&mut self, frame: &Frame) -> Result<(), End> {
        let text = frame.encode(self.vsn);
        self.write(Out::Text(text.into())).await
    }

    pub(super) async fn reply(
        &mut self,
        to: &Frame,
        status: &str,
        response: Value,
    ) -> Result<(), End> {
        self.send(&Frame::reply(to, status, response)).await
    }

    pub(super) async fn reply_error(&mut self, to: &Frame, reason: &str) -> Result<(), End> {
        if to.msg_ref.is_none() {
            return Ok(());
        }
        self.reply(to, "error", json!({ "reason": reason })).await
    }

    async fn on_message(&mut self, msg: AggregatedMessage) -> Result<(), End> {
        match msg {
            AggregatedMessage::Text(text) => match Frame::decode_text(self.vsn, &text) {
                Ok(frame) => self.on_frame(frame).await,
                Err(err) => {
                    tracing::debug!(error = %err, "ignored a malformed realtime message");
                    Ok(())
                }
            },
            AggregatedMessage::Binary(bytes) if self.vsn == Vsn::V2 => {
                match binary::decode_push(&bytes) {
                    Ok(push) => self.on_binary_broadcast(push).await,
                    Err(err) => {
                        tracing::debug!(error = %err, "ignored a malformed binary realtime message");
                        Ok(())
                    }
                }
            }
            AggregatedMessage::Binary(_) | AggregatedMessage::Pong(_) => Ok(()),
            AggregatedMessage::Ping(bytes) => self.write(Out::Pong(bytes)).await,
            AggregatedMessage::Close(reason) => Err(End::Close(reason)),
        }
    }

    async fn on_frame(&mut self, frame: Frame) -> Result<(), End> {
        if frame.topic == "phoenix" {
            if frame.event == "heartbeat" {
                return self.reply(&frame, "ok", json!({})).await;
            }
            return Ok(());
        }
        if frame.event == "phx_join" {
            return self.join(frame).await;
        }
        if !self.channels.contains_key(&frame.topic) {
            return self.reply_error(&frame, "unmatched topic").await;
        }
        match frame.event.as_str() {
            "phx_leave" => self.leave(frame).await,
            "broadcast" => self.broadcast_json(frame).await,
            "presence" => self.presence(frame).await,
            "access_token" => self.access_token(frame).await,
            _ => self.reply_error(&frame, "unknown event").await,
        }
    }
}
