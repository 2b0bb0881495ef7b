//! Channel events: join, leave, broadcast, presence and token refresh.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use goforward_core::Principal;
use goforward_core::access::{Action, Resource};
use goforward_core::token::TokenError;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::{Conn, End};
use crate::changes::{Binding, RawBinding, parse_binding};
use crate::hub::{BroadcastMsg, PresenceMsg, Revoke, Subscriber, UserSession};
use crate::protocol::Frame;
use crate::protocol::binary::{BroadcastPush, Encoding};
use crate::state::channel_name;

/// Join refusal when the user already has `max_connections_per_user` connections.
const TOO_MANY_USER_CONNECTIONS: &str =
    "ConnectionRateLimitReached: Too many connections for this user";

/// Most `postgres_changes` entries one join may carry.
const MAX_BINDINGS: usize = 100;

/// One joined channel of a connection.
pub(crate) struct Channel {
    join_ref: String,
    name: String,
    principal: Principal,
    private: bool,
    ack: bool,
    presence_key: String,
    tracked: Option<Value>,
    bindings: Vec<RawBinding>,
    expires_at: Option<Instant>,
}

fn token_reason(err: &TokenError) -> String {
    match err {
        TokenError::Expired => "InvalidJWTToken: Token has expired".to_owned(),
        other => format!("InvalidJWTToken: {other}"),
    }
}

fn expiry(principal: &Principal) -> Option<Instant> {
    let exp = principal.claims.get("exp")?.as_i64()?;
    let left = exp.saturating_sub(chrono::Utc::now().timestamp()).max(0);
    Some(Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0)))
}

/// The `persist` option of a broadcast: `true` (longest retention) or `{"ttl": secs}`.
/// `None` when not asked for; `Some(None)` for the longest retention.
pub(crate) fn persist_option(value: Option<&Value>) -> Option<Option<u64>> {
    match value? {
        Value::Bool(true) => Some(None),
        Value::Object(o) => Some(o.get("ttl").and_then(Value::as_u64)),
        _ => None,
    }
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

impl Conn {
    /// The principal of a join or refresh: the given user token, or the socket's API key.
    fn principal_for(&self, token: Option<&str>) -> Result<Principal, String> {
        match token {
            Some(t) if !t.starts_with("sb_") => self
                .state
                .ctx
                .authenticator()
                .verify_access_token(t)
                .map_err(|e| token_reason(&e)),
            _ => Ok(self.socket_principal.clone()),
        }
    }

    async fn allowed(&self, principal: &Principal, action: Action, name: &str) -> bool {
        self.state
            .ctx
            .access()
            .decide(principal, &action, &Resource::Channel { topic: name })
            .await
            .is_allowed()
    }

    async fn bindings_for(&self, principal: &Principal, raw: &[RawBinding]) -> Vec<Binding> {
        let mut out = Vec::with_capacity(raw.len());
        for b in raw {
            #[cfg(feature = "postgres")]
            if let (Some(pg), Some(table)) = (&self.state.pg, &b.table) {
                pg.ensure(&b.schema, table).await;
            }
            let table = b.table.as_deref().unwrap_or("*");
            let access = self
                .state
                .ctx
                .access()
                .decide(
                    principal,
                    &Action::Select,
                    &Resource::Table {
                        schema: &b.schema,
                        name: table,
                    },
                )
                .await;
            out.push(Binding {
                id: b.id,
                event: b.event,
                schema: b.schema.clone(),
                table: b.table.clone(),
                filter: b.filter.clone(),
                access,
            });
        }
        out
    }

    pub(super) async fn join(&mut self, frame: Frame) -> Result<(), End> {
        let Some(name) = channel_name(&frame.topic).map(str::to_owned) else {
            return self.reply_error(&frame, "unmatched topic").await;
        };
        if !self.joins.allow() {
            self.state.metrics.refuse("joins_per_second");
            return self
                .reply_error(
                    &frame,
                    "ClientJoinRateLimitReached: Too many joins per second",
                )
                .await;
        }
        let rejoin = self.channels.contains_key(&frame.topic);
        if !rejoin && self.channels.len() >= self.state.config.max_channels_per_connection {
            self.state.metrics.refuse("channels_per_connection");
            return self
                .reply_error(&frame, "ChannelRateLimitReached: Too many channels")
                .await;
        }
        if rejoin {
            // Phoenix: a second join of the same topic closes the first.
            if let Some(old) = self.close_channel(&frame.topic).await {
                let close = Frame::push(Some(&old.join_ref), &frame.topic, "phx_close", json!({}));
                self.send(&close).await?;
            }
        }
        match self.prepare_join(&name, &frame).await {
            Ok(channel) if !self.claim_user(&channel.principal) => {
                self.state.metrics.refuse("connections_per_user");
                self.reply_error(&frame, TOO_MANY_USER_CONNECTIONS).await
            }
            Ok(channel) => self.finish_join(frame, channel).await,
            Err(reason) => self.reply_error(&frame, &reason).await,
        }
    }

    /// Makes this connection count as one of the connections of `principal`'s user
    /// (if it has one and is not counted yet); `false` when the user has the maximum.
    fn claim_user(&mut self, principal: &Principal) -> bool {
        let Some(user) = &principal.user_id else {
            return true;
        };
        if self.users.contains_key(&**user) {
            return true;
        }
        match self.state.user_slots.acquire(user.to_string()) {
            Some(slot) => {
                self.users.insert(user.to_string(), slot);
                true
            }
            None => false,
        }
    }

    /// Frees the user slots no joined channel needs any more.
    fn release_users(&mut self) {
        if self.users.is_empty() {
            return;
        }
        let channels = &self.channels;
        self.users.retain(|user, _| {
            channels
                .values()
                .any(|c| c.principal.user_id.as_deref() == Some(user.as_str()))
        });
    }

    async fn prepare_join(&self, name: &str, frame: &Frame) -> Result<Channel, String> {
        let payload = &frame.payload;
        let config = payload.get("config").cloned().unwrap_or(Value::Null);
        let flag = |path: &[&str]| at(&config, path).and_then(Value::as_bool);
        let private = flag(&["private"]).unwrap_or(false);
        let token = payload.get("access_token").and_then(Value::as_str);
        let principal = self.principal_for(token)?;
        if self.state.config.private_only && !private {
            return Err("PrivateOnly: This project only allows private channels".into());
        }
        if private && !self.allowed(&principal, Action::Join, name).await {
            return Err(format!(
                "Unauthorized: You do not have permissions to read from this Channel topic: {name}"
            ));
        }
        let raw = match at(&config, &["postgres_changes"]) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= MAX_BINDINGS => items
                .iter()
                .map(parse_binding)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("InvalidPostgresChanges: {e}"))?,
            Some(Value::Array(_)) => {
                return Err(format!(
                    "InvalidPostgresChanges: at most {MAX_BINDINGS} bindings per channel"
                ));
            }
            Some(_) => return Err("InvalidPostgresChanges: postgres_changes must be a list".into()),
        };
        let presence_key = match at(&config, &["presence", "key"]).and_then(Value::as_str) {
            Some(k) if !k.is_empty() => k.to_owned(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        Ok(Channel {
            join_ref: frame
                .join_ref
                .clone()
                .or_else(|| frame.msg_ref.clone())
                .unwrap_or_default(),
            name: name.to_owned(),
            expires_at: expiry(&principal),
            private,
            ack: flag(&["broadcast", "ack"]).unwrap_or(false),
            presence_key,
            tracked: None,
            bindings: raw,
            principal,
        })
    }

    async fn finish_join(&mut self, frame: Frame, channel: Channel) -> Result<(), End> {
        let config = frame.payload.get("config").cloned().unwrap_or(Value::Null);
        let echo_self = at(&config, &["broadcast", "self"])
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // Old clients do not send `presence.enabled`: then presence is on.
        let presence = at(&config, &["presence", "enabled"])
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let changes = self
            .bindings_for(&channel.principal, &channel.bindings)
            .await;
        let reply: Vec<Value> = channel
            .bindings
            .iter()
            .map(|b| {
                let mut echo = b.echo.clone();
                echo.insert("id".into(), json!(b.id));
                Value::Object(echo)
            })
            .collect();
        let has_changes = !reply.is_empty();
        let subscriber = Subscriber {
            outbox: self.outbox.clone(),
            vsn: self.vsn,
            echo_self,
            presence,
            changes,
            session: UserSession::of(&channel.principal),
            shard: Some(self.shard),
        };
        let join_ref = channel.join_ref.clone();
        let name = channel.name.clone();
        let private = channel.private;
        let state = self.state.hub.subscribe(&frame.topic, self.id, subscriber);
        if self
            .channels
            .insert(frame.topic.clone(), Box::new(channel))
            .is_none()
        {
            self.state.metrics.channels.inc();
        }
        self.reply(&frame, "ok", json!({ "postgres_changes": reply }))
            .await?;
        if let Some(state) = state {
            let push = Frame::push(Some(&join_ref), &frame.topic, "presence_state", state);
            self.send(&push).await?;
        }
        if let Some(replay) = at(&config, &["broadcast", "replay"]) {
            self.replay(&frame.topic, &join_ref, private, replay)
                .await?;
        }
        if has_changes {
            let system = json!({
                "extension": "postgres_changes",
                "status": "ok",
                "message": "Subscribed to PostgreSQL",
                "channel": name,
            });
            self.send(&Frame::push(
                Some(&join_ref),
                &frame.topic,
                "system",
                system,
            ))
            .await?;
        }
        Ok(())
    }

    /// Sends the stored broadcasts a join asked for with `broadcast.replay {since, limit}`
    /// (private channels, persistence on), each with `meta {id, replayed: true}`.
    async fn replay(
        &mut self,
        topic: &str,
        join_ref: &str,
        private: bool,
        replay: &Value,
    ) -> Result<(), End> {
        let Some(store) = self.state.store.clone() else {
            return Ok(());
        };
        if !private {
            return Ok(());
        }
        let since_ms = replay.get("since").and_then(Value::as_i64).unwrap_or(0);
        let since = chrono::DateTime::from_timestamp_millis(since_ms).unwrap_or_default();
        let limit = replay
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(crate::persist::MAX_REPLAY);
        let stored = match store.replay(topic, since, limit).await {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(error = %err, "could not replay realtime messages");
                return Ok(());
            }
        };
        for m in stored {
            let payload = json!({
                "type": "broadcast",
                "event": m.event,
                "payload": m.payload,
                "meta": {"id": m.id, "replayed": true},
            });
            self.send(&Frame::push(Some(join_ref), topic, "broadcast", payload))
                .await?;
        }
        Ok(())
    }

    pub(super) async fn leave(&mut self, frame: Frame) -> Result<(), End> {
        self.close_channel(&frame.topic).await;
        self.reply(&frame, "ok", json!({})).await
    }

    /// Forgets a channel: unsubscribes and withdraws its presence.
    pub(super) async fn close_channel(&mut self, topic: &str) -> Option<Box<Channel>> {
        let channel = self.channels.remove(topic)?;
        self.state.metrics.channels.dec();
        self.state.hub.unsubscribe(topic, self.id);
        self.release_users();
        if let Some(meta) = &channel.tracked {
            let leave = PresenceMsg {
                topic: topic.to_owned(),
                owner: Some(self.owner()),
                joins: HashMap::new(),
                leaves: HashMap::from([(channel.presence_key.clone(), vec![meta.clone()])]),
            };
            if let Err(err) = self.state.hub.publish_presence(&leave).await {
                tracing::warn!(error = %err, "could not publish a presence leave");
            }
        }
        Some(channel)
    }

    /// Closes a channel the server no longer allows: `system` error, then `phx_close`.
    async fn revoke(&mut self, topic: &str, message: &str) -> Result<(), End> {
        let Some(channel) = self.close_channel(topic).await else {
            return Ok(());
        };
        let system = json!({
            "extension": "system",
            "status": "error",
            "message": message,
            "channel": channel.name,
        });
        self.send(&Frame::push(
            Some(&channel.join_ref),
            topic,
            "system",
            system,
        ))
        .await?;
        self.send(&Frame::push(
            Some(&channel.join_ref),
            topic,
            "phx_close",
            json!({}),
        ))
        .await
    }

    /// Closes `revoke.topic` if the session it was joined (or last refreshed) with
    /// was revoked; the client gets the same `system` error + `phx_close` as at expiry.
    pub(super) async fn revoke_session(&mut self, revoke: &Revoke) -> Result<(), End> {
        let concerned = self.channels.get(&revoke.topic).is_some_and(|c| {
            UserSession::of(&c.principal).is_some_and(|s| s.revoked_by(&revoke.event))
        });
        if !concerned {
            return Ok(());
        }
        let message = format!("Session revoked: {}", revoke.event.reason);
        self.revoke(&revoke.topic, &message).await
    }

    /// The earliest token expiry of the joined channels.
    pub(super) fn next_expiry(&self) -> Option<Instant> {
        self.channels.values().filter_map(|c| c.expires_at).min()
    }

    /// Closes the channels whose token has expired.
    pub(super) async fn expire_channels(&mut self) -> Result<(), End> {
        let now = Instant::now();
        let expired: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.expires_at.is_some_and(|e| e <= now))
            .map(|(t, _)| t.clone())
            .collect();
        for topic in expired {
            self.revoke(&topic, "Token has expired").await?;
        }
        Ok(())
    }

    fn rate_limited(&mut self) -> bool {
        let limited = !self.events.allow();
        if limited {
            self.state.metrics.refuse("events_per_second");
        }
        limited
    }

    pub(super) async fn broadcast_json(&mut self, frame: Frame) -> Result<(), End> {
        let Some(event) = frame.payload.get("event").and_then(Value::as_str) else {
            return self.reply_error(&frame, "broadcast needs an `event`").await;
        };
        let persist = persist_option(frame.payload.get("persist"));
        let msg = BroadcastMsg {
            topic: frame.topic.clone(),
            event: event.to_owned(),
            payload: frame.payload.get("payload").cloned().unwrap_or(Value::Null),
            binary: None,
            from_binary: false,
            sender: Some(self.owner()),
            id: None,
        };
        self.send_broadcast(&frame, msg, persist).await
    }

    pub(super) async fn on_binary_broadcast(&mut self, push: BroadcastPush) -> Result<(), End> {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let frame = Frame {
            join_ref: non_empty(&push.join_ref),
            msg_ref: non_empty(&push.msg_ref),
            topic: push.topic.clone(),
            event: "broadcast".into(),
            payload: Value::Null,
        };
        if !self.channels.contains_key(&push.topic) {
            return self.reply_error(&frame, "unmatched topic").await;
        }
        let (payload, binary) = match push.encoding {
            Encoding::Json => match serde_json::from_slice::<Value>(&push.payload) {
                Ok(v) => (v, None),
                Err(_) => {
                    return self
                        .reply_error(&frame, "malformed broadcast payload")
                        .await;
                }
            },
            Encoding::Binary => (
                Value::Null,
                Some(base64::engine::general_purpose::STANDARD.encode(&push.payload)),
            ),
        };
        let persist = serde_json::from_str::<Value>(&push.metadata)
            .ok()
            .and_then(|meta| persist_option(meta.get("persist")));
        let msg = BroadcastMsg {
            topic: push.topic,
            event: push.event,
            payload,
            binary,
            from_binary: true,
            sender: Some(self.owner()),
            id: None,
        };
        self.send_broadcast(&frame, msg, persist).await
    }

    async fn send_broadcast(
        &mut self,
        frame: &Frame,
        mut msg: BroadcastMsg,
        persist: Option<Option<u64>>,
    ) -> Result<(), End> {
        if self.rate_limited() {
            return self
                .reply_error(frame, "RateLimitReached: Too many messages per second")
                .await;
        }
        let Some(channel) = self.channels.get(&frame.topic) else {
            return Ok(());
        };
        let (private, ack, name, principal) = (
            channel.private,
            channel.ack,
            channel.name.clone(),
            channel.principal.clone(),
        );
        if private && !self.allowed(&principal, Action::Broadcast, &name).await {
            return self
                .reply_error(
                    frame,
                    &format!(
                        "Unauthorized: You do not have permissions to write to this Channel topic: {name}"
                    ),
                )
                .await;
        }
        // Persisted on private channels only (as Supabase), JSON payloads only.
        if let (Some(ttl), Some(store), true, None) =
            (persist, &self.state.store, private, &msg.binary)
        {
            match store.save(&msg.topic, &msg.event, &msg.payload, ttl).await {
                Ok(id) => msg.id = Some(id),
                Err(err) => {
                    tracing::warn!(error = %err, "could not persist a realtime broadcast");
                    if ack {
                        return self
                            .reply_error(frame, "Unable to persist the message")
                            .await;
                    }
                }
            }
        }
        if let Err(err) = self.state.hub.publish_broadcast(&msg).await {
            tracing::warn!(error = %err, "realtime broadcast not handed to other nodes");
            if ack {
                return self.reply_error(frame, "Unable to broadcast").await;
            }
            return Ok(());
        }
        if ack {
            return self.reply(frame, "ok", json!({})).await;
        }
        Ok(())
    }

    pub(super) async fn presence(&mut self, frame: Frame) -> Result<(), End> {
        if self.rate_limited() {
            return self
                .reply_error(&frame, "RateLimitReached: Too many messages per second")
                .await;
        }
        let Some(channel) = self.channels.get(&frame.topic) else {
            return Ok(());
        };
        let (private, name, principal, key, tracked) = (
            channel.private,
            channel.name.clone(),
            channel.principal.clone(),
            channel.presence_key.clone(),
            channel.tracked.clone(),
        );
        if private && !self.allowed(&principal, Action::Presence, &name).await {
            return self
                .reply_error(
                    &frame,
                    &format!(
                        "Unauthorized: You do not have permissions to track presence on this Channel topic: {name}"
                    ),
                )
                .await;
        }
        let mut msg = PresenceMsg {
            topic: frame.topic.clone(),
            owner: Some(self.owner()),
            ..PresenceMsg::default()
        };
        if let Some(old) = &tracked {
            msg.leaves.insert(key.clone(), vec![old.clone()]);
        }
        let new_meta = match frame.payload.get("event").and_then(Value::as_str) {
            Some("track") => {
                let mut meta = match frame.payload.get("payload") {
                    Some(Value::Object(map)) => map.clone(),
                    None | Some(Value::Null) => Map::new(),
                    Some(_) => {
                        return self
                            .reply_error(&frame, "presence payload must be an object")
                            .await;
                    }
                };
                meta.insert(
                    "phx_ref".into(),
                    Value::from(uuid::Uuid::new_v4().simple().to_string()),
                );
                let meta = Value::Object(meta);
                msg.joins.insert(key, vec![meta.clone()]);
                Some(meta)
            }
            Some("untrack") => None,
            _ => return self.reply_error(&frame, "unknown presence event").await,
        };
        if let Some(channel) = self.channels.get_mut(&frame.topic) {
            channel.tracked = new_meta;
        }
        if (!msg.joins.is_empty() || !msg.leaves.is_empty())
            && let Err(err) = self.state.hub.publish_presence(&msg).await
        {
            tracing::warn!(error = %err, "presence change not handed to other nodes");
        }
        self.reply(&frame, "ok", json!({})).await
    }

    pub(super) async fn access_token(&mut self, frame: Frame) -> Result<(), End> {
        if self.rate_limited() {
            return self
                .reply_error(&frame, "RateLimitReached: Too many messages per second")
                .await;
        }
        let Some(token) = frame.payload.get("access_token").and_then(Value::as_str) else {
            return Ok(());
        };
        if token.starts_with("sb_") {
            return Ok(());
        }
        let principal = match self.principal_for(Some(token)) {
            Ok(p) => p,
            Err(reason) => {
                let message = reason
                    .strip_prefix("InvalidJWTToken: ")
                    .unwrap_or(&reason)
                    .to_owned();
                return self.revoke(&frame.topic, &message).await;
            }
        };
        let Some(channel) = self.channels.get(&frame.topic) else {
            return Ok(());
        };
        let (private, name, raw) = (
            channel.private,
            channel.name.clone(),
            channel.bindings.clone(),
        );
        if private && !self.allowed(&principal, Action::Join, &name).await {
            let message =
                format!("You do not have permissions to read from this Channel topic: {name}");
            return self.revoke(&frame.topic, &message).await;
        }
        if !self.claim_user(&principal) {
            self.state.metrics.refuse("connections_per_user");
            let message = TOO_MANY_USER_CONNECTIONS
                .strip_prefix("ConnectionRateLimitReached: ")
                .unwrap_or(TOO_MANY_USER_CONNECTIONS);
            return self.revoke(&frame.topic, message).await;
        }
        let changes = self.bindings_for(&principal, &raw).await;
        let session = UserSession::of(&principal);
        self.state
            .hub
            .set_principal(&frame.topic, self.id, changes, session);
        if let Some(channel) = self.channels.get_mut(&frame.topic) {
            channel.expires_at = expiry(&principal);
            channel.principal = principal;
        }
        self.release_users();
        Ok(())
    }
}
