//! The hub: who is subscribed to what on this node, and the fan-out of bus
//! events (broadcasts, presence diffs, record changes) to them.
//!
//! Every broadcast and presence change is published on core's bus and only
//! delivered when it comes back from it, so a message reaches each subscriber
//! on every node exactly once whichever node it was sent on.

mod outbox;
mod presence;
mod shard;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use goforward_core::access::PolicyRegistry;
use goforward_core::bus::{Event, RecordChanged, SessionsRevoked, SharedBus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub(crate) use self::outbox::{Inbox, Order, Out, Outbox, Revoke, SLOW_CONSUMER, SocketBody};
pub(crate) use self::presence::PresenceMsg;
use self::presence::PresenceTable;
pub(crate) use self::shard::ShardId;
use self::shard::{Batch, Job, ShardHandle};
use crate::changes::{Binding, change_data, normalize_schema, visible_change};
use crate::protocol::binary::{self, Encoding};
use crate::protocol::{Vsn, encode_raw_push};

/// Bus event name of a broadcast.
pub(crate) const BROADCAST_EVENT: &str = "realtime.broadcast";
/// Bus event name of a presence diff.
pub(crate) const PRESENCE_EVENT: &str = "realtime.presence";
/// Bus event name of a node's periodic "still alive" announcement.
pub(crate) const ALIVE_EVENT: &str = "realtime.node_alive";
/// Bus event name of a starting node's request for everyone's presence entries.
pub(crate) const SYNC_EVENT: &str = "realtime.presence_sync";

/// Distinct change frames (topic, bindings, serializer) kept per change for reuse.
const MAX_SHARED_FRAMES: usize = 16;

/// A connection's id, unique on its node.
pub(crate) type ConnId = u64;

/// A connection somewhere in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Owner {
    pub node: Uuid,
    pub conn: ConnId,
}

/// A broadcast as it travels on the bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BroadcastMsg {
    /// Full topic, `realtime:<name>`.
    pub topic: String,
    pub event: String,
    #[serde(default)]
    pub payload: Value,
    /// Raw bytes (base64) when the payload is binary, not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// Sent as a V2 binary frame: V2 subscribers get a binary frame back.
    #[serde(default)]
    pub from_binary: bool,
    /// The sending connection, to honour `self: false`.
    #[serde(default)]
    pub sender: Option<Owner>,
    /// Id of the stored copy (sent as `meta.id`) when the broadcast was persisted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// One channel join of one local connection.
pub(crate) struct Subscriber {
    pub outbox: Outbox,
    pub vsn: Vsn,
    pub echo_self: bool,
    pub presence: bool,
    pub changes: Vec<Binding>,
    /// The user session the channel was joined with (`None` for API keys).
    pub session: Option<Box<UserSession>>,
    /// The shard (HTTP worker) of the connection: the hub's frames for it are pushed
    /// there. `None`: pushed by the hub's own task.
    pub shard: Option<ShardId>,
}

/// A user and session a channel was joined (or last refreshed) with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserSession {
    pub user_id: String,
    pub session_id: Option<String>,
}

impl UserSession {
    /// The user session of `principal` (`None` without a user).
    pub(crate) fn of(principal: &goforward_core::Principal) -> Option<Box<Self>> {
        principal.user_id.as_ref().map(|user_id| {
            Box::new(Self {
                user_id: user_id.to_string(),
                session_id: principal.session_id.as_deref().map(str::to_owned),
            })
        })
    }

    /// Whether `revoked` ends this session.
    pub(crate) fn revoked_by(&self, revoked: &SessionsRevoked) -> bool {
        revoked.concerns(&self.user_id, self.session_id.as_deref())
    }
}

/// The local subscribers of one topic, grouped by shard (one group per HTTP worker,
/// and one for subscribers without a shard).
#[derive(Default)]
struct Topic {
    groups: Vec<(Option<ShardId>, HashMap<ConnId, Subscriber>)>,
}

impl Topic {
    fn insert(&mut self, conn: ConnId, sub: Subscriber) {
        match self
            .groups
            .iter_mut()
            .find(|(shard, _)| *shard == sub.shard)
        {
            Some((_, subs)) => {
                subs.insert(conn, sub);
            }
            None => self.groups.push((sub.shard, HashMap::from([(conn, sub)]))),
        }
    }

    fn get(&self, conn: ConnId) -> Option<&Subscriber> {
        self.groups.iter().find_map(|(_, subs)| subs.get(&conn))
    }

    fn get_mut(&mut self, conn: ConnId) -> Option<&mut Subscriber> {
        self.groups
            .iter_mut()
            .find_map(|(_, subs)| subs.get_mut(&conn))
    }

    fn remove(&mut self, conn: ConnId) -> Option<Subscriber> {
        let removed = self
            .groups
            .iter_mut()
            .find_map(|(_, subs)| subs.remove(&conn));
        self.groups.retain(|(_, subs)| !subs.is_empty());
        removed
    }

    fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every subscriber, group after group.
    fn iter(&self) -> impl Iterator<Item = (&ConnId, &Subscriber)> {
        self.groups.iter().flat_map(|(_, subs)| subs.iter())
    }

    /// The subscribers of shard `shard`.
    fn group(&self, shard: Option<ShardId>) -> Option<&HashMap<ConnId, Subscriber>> {
        self.groups
            .iter()
            .find(|(s, _)| *s == shard)
            .map(|(_, subs)| subs)
    }
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    /// Table (or `*`) → local subscriptions with bindings on it.
    tables: HashMap<String, HashSet<(ConnId, String)>>,
    presence: HashMap<String, PresenceTable>,
}

/// The node's subscriptions; shared by every worker.
pub(crate) struct Hub {
    node: Uuid,
    bus: SharedBus,
    next_conn: AtomicU64,
    state: RwLock<State>,
    /// Other nodes and when they were last heard of.
    nodes: Mutex<HashMap<Uuid, tokio::time::Instant>>,
    node_timeout: Duration,
    /// `schema.table`s whose changes the PostgreSQL source captures (bus events for them are ignored).
    captured: RwLock<HashSet<String>>,
    /// Where hidden columns are declared (REST's `hide_columns`).
    policies: Option<Arc<PolicyRegistry>>,
    /// One per HTTP worker that accepted a connection.
    shards: RwLock<Vec<ShardHandle>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn table_keys(changes: &[Binding]) -> HashSet<String> {
    changes
        .iter()
        .map(|b| b.table.clone().unwrap_or_else(|| "*".to_owned()))
        .collect()
}

impl Hub {
    /// A hub on `bus`; presence of nodes silent for `node_timeout` is dropped.
    pub(crate) fn new(bus: SharedBus, node_timeout: Duration) -> Self {
        Self {
            node: bus.node_id(),
            bus,
            next_conn: AtomicU64::new(1),
            state: RwLock::new(State::default()),
            nodes: Mutex::new(HashMap::new()),
            node_timeout,
            captured: RwLock::new(HashSet::new()),
            policies: None,
            shards: RwLock::new(Vec::new()),
        }
    }

    /// Records that the PostgreSQL source captures `schema.table`.
    pub(crate) fn mark_captured(&self, schema: &str, table: &str) {
        self.captured
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(format!("{}.{table}", normalize_schema(schema)));
    }

    /// Whether the PostgreSQL source captures `schema.table`.
    pub(crate) fn is_captured(&self, schema: &str, table: &str) -> bool {
        self.captured
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&format!("{}.{table}", normalize_schema(schema)))
    }

    pub(crate) fn node(&self) -> Uuid {
        self.node
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a join; returns the presence state to send right after the
    /// join reply (atomically with the registration, so no diff is lost or doubled).
    pub(crate) fn subscribe(&self, topic: &str, conn: ConnId, sub: Subscriber) -> Option<Value> {
        let mut state = self.write();
        let presence = sub.presence.then(|| {
            state
                .presence
                .get(topic)
                .map_or_else(|| Value::Object(Map::new()), PresenceTable::state)
        });
        for key in table_keys(&sub.changes) {
            state
                .tables
                .entry(key)
                .or_default()
                .insert((conn, topic.to_owned()));
        }
        state
            .topics
            .entry(topic.to_owned())
            .or_default()
            .insert(conn, sub);
        presence
    }

    /// Replaces the change bindings and the user session of a join (after a token refresh).
    pub(crate) fn set_principal(
        &self,
        topic: &str,
        conn: ConnId,
        changes: Vec<Binding>,
        session: Option<Box<UserSession>>,
    ) {
        let mut state = self.write();
        if let Some(sub) = state.topics.get_mut(topic).and_then(|t| t.get_mut(conn)) {
            sub.changes = changes;
            sub.session = session;
        }
    }

    /// Tells every local connection holding a channel of a revoked session to close it.
    fn revoke_sessions(&self, revoked: &SessionsRevoked) {
        let state = self.read();
        let mut batch = Batch::default();
        for (topic, subs) in &state.topics {
            for (_, sub) in subs.iter() {
                if sub.session.as_ref().is_some_and(|s| s.revoked_by(revoked)) {
                    let revoke = Revoke {
                        topic: topic.clone(),
                        event: revoked.clone(),
                    };
                    batch.send(sub, Out::Revoke(Arc::new(revoke)));
                }
            }
        }
        batch.flush(self);
    }

    /// Removes a join.
    pub(crate) fn unsubscribe(&self, topic: &str, conn: ConnId) {
        let mut state = self.write();
        let removed = match state.topics.get_mut(topic) {
            Some(subs) => {
                let removed = subs.remove(conn);
                if subs.is_empty() {
                    state.topics.remove(topic);
                }
                removed
            }
            None => None,
        };
        if let Some(sub) = removed {
            for key in table_keys(&sub.changes) {
                if let Some(set) = state.tables.get_mut(&key) {
                    set.remove(&(conn, topic.to_owned()));
                    if set.is_empty() {
                        state.tables.remove(&key);
                    }
                }
            }
        }
    }

    /// Publishes a broadcast to every node.
    pub(crate) async fn publish_broadcast(&self, msg: &BroadcastMsg) -> goforward_core::Result<()> {
        let payload = serde_json::to_value(msg)
            .map_err(|e| goforward_core::Error::Internal(e.to_string()))?;
        self.bus
            .publish(Event::custom(BROADCAST_EVENT, payload))
            .await
    }

    /// Publishes a presence diff to every node.
    pub(crate) async fn publish_presence(&self, msg: &PresenceMsg) -> goforward_core::Result<()> {
        let payload = serde_json::to_value(msg)
            .map_err(|e| goforward_core::Error::Internal(e.to_string()))?;
        self.bus
            .publish(Event::custom(PRESENCE_EVENT, payload))
            .await
    }

    /// The presence entries a connection owns, as leave diffs (one per topic).
    pub(crate) fn presence_leaves_of(&self, conn: ConnId) -> Vec<PresenceMsg> {
        let owner = Owner {
            node: self.node,
            conn,
        };
        let state = self.read();
        state
            .presence
            .iter()
            .filter_map(|(topic, table)| table.leaves_of(topic, owner))
            .collect()
    }

    /// Handles one event from the bus, published by node `origin`; returns the
    /// presence messages to publish in answer (to a starting node's sync request).
    pub(crate) fn dispatch(&self, origin: Uuid, event: &Event) -> Vec<PresenceMsg> {
        if origin != self.node {
            self.nodes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(origin, tokio::time::Instant::now());
        }
        match event {
            Event::Custom { name, payload } if name == BROADCAST_EVENT => {
                match serde_json::from_value::<BroadcastMsg>(payload.clone()) {
                    Ok(msg) => self.deliver_broadcast(msg),
                    Err(err) => {
                        tracing::warn!(error = %err, "malformed realtime broadcast on the bus")
                    }
                }
            }
            Event::Custom { name, payload } if name == PRESENCE_EVENT => {
                match serde_json::from_value::<PresenceMsg>(payload.clone()) {
                    Ok(msg) => self.apply_presence(msg),
                    Err(err) => {
                        tracing::warn!(error = %err, "malformed realtime presence on the bus")
                    }
                }
            }
            Event::Custom { name, .. } if name == SYNC_EVENT && origin != self.node => {
                let state = self.read();
                return state
                    .presence
                    .iter()
                    .flat_map(|(topic, table)| table.joins_of_node(topic, self.node))
                    .collect();
            }
            // Sign-out, password change, ban, deletion, admin revocation (any node).
            Event::SessionsRevoked(revoked) => self.revoke_sessions(revoked),
            // Captured tables are delivered from the database's own notifications.
            Event::RecordChanged(change) if !self.is_captured(&change.schema, &change.table) => {
                self.deliver_change(change)
            }
            _ => {}
        }
        Vec::new()
    }

    /// Delivers a broadcast: to subscribers without a shard at once, to the others
    /// through one job per shard.
    fn deliver_broadcast(&self, msg: BroadcastMsg) {
        let state = self.read();
        let Some(topic) = state.topics.get(&msg.topic) else {
            return;
        };
        let mut shared: Option<Arc<BroadcastMsg>> = None;
        for (shard, subs) in &topic.groups {
            match shard {
                None => broadcast_to(self.node, subs, &msg),
                Some(id) => {
                    let msg = shared.get_or_insert_with(|| Arc::new(msg.clone()));
                    self.send_job(*id, Job::Broadcast(Arc::clone(msg)));
                }
            }
        }
    }

    /// Runs a broadcast job of shard `id` (on its worker).
    fn broadcast_on(&self, id: ShardId, msg: &BroadcastMsg) {
        let state = self.read();
        if let Some(subs) = state.topics.get(&msg.topic).and_then(|t| t.group(Some(id))) {
            broadcast_to(self.node, subs, msg);
        }
    }

    fn apply_presence(&self, msg: PresenceMsg) {
        let mut state = self.write();
        let table = state.presence.entry(msg.topic.clone()).or_default();
        let diff = table.apply(&msg);
        if table.is_empty() {
            state.presence.remove(&msg.topic);
        }
        if let Some(diff) = diff {
            send_presence_diff(self, &state, &msg.topic, &diff);
        }
    }

    /// Drops the presence of nodes not heard of for `node_timeout` (killed nodes)
    /// and tells local subscribers; returns how many nodes were dropped.
    pub(crate) fn sweep_dead_nodes(&self, now: tokio::time::Instant) -> usize {
        let dead: Vec<Uuid> = {
            let mut nodes = self
                .nodes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let dead: Vec<Uuid> = nodes
                .iter()
                .filter(|(_, seen)| now.saturating_duration_since(**seen) > self.node_timeout)
                .map(|(node, _)| *node)
                .collect();
            for node in &dead {
                nodes.remove(node);
            }
            dead
        };
        if dead.is_empty() {
            return 0;
        }
        let mut state = self.write();
        let topics: Vec<String> = state.presence.keys().cloned().collect();
        for topic in topics {
            let Some(table) = state.presence.get_mut(&topic) else {
                continue;
            };
            let diffs: Vec<Value> = dead.iter().filter_map(|n| table.remove_node(*n)).collect();
            if table.is_empty() {
                state.presence.remove(&topic);
            }
            for diff in diffs {
                send_presence_diff(self, &state, &topic, &diff);
            }
        }
        dead.len()
    }

    /// Sends `change` to the local subscribers it matches.
    pub(crate) fn deliver_change(&self, change: &RecordChanged) {
        self.deliver(change, change);
    }

    /// Strips the hidden columns `policies` declares from every change.
    pub(crate) fn with_policies(mut self, policies: Arc<PolicyRegistry>) -> Self {
        self.policies = Some(policies);
        self
    }

    /// Sends `shown` to the local subscribers `change` (the same change with
    /// whole rows, used for filters and access) matches.
    pub(crate) fn deliver(&self, change: &RecordChanged, shown: &RecordChanged) {
        let schema = normalize_schema(&change.schema);
        let hidden = self
            .policies
            .as_ref()
            .map(|p| p.hidden_columns(&change.table))
            .unwrap_or_default();
        let shown = visible_change(shown, &hidden);
        let state = self.read();
        let mut data: Option<String> = None;
        // Subscribers of one topic with the same bindings (binding ids are hashes of
        // the binding, equal across clients) and serializer share one frame.
        let mut frames: Vec<(Vsn, &str, Vec<u32>, bytestring::ByteString)> = Vec::new();
        let mut ids: Vec<u32> = Vec::new();
        let mut batch = Batch::default();
        for key in [change.table.as_str(), "*"] {
            let Some(set) = state.tables.get(key) else {
                continue;
            };
            for (conn, topic) in set {
                let Some(sub) = state.topics.get(topic).and_then(|t| t.get(*conn)) else {
                    continue;
                };
                ids.clear();
                ids.extend(
                    sub.changes
                        .iter()
                        .filter(|b| b.matches_visible(change, &hidden, schema))
                        .map(|b| b.id),
                );
                if ids.is_empty() {
                    continue;
                }
                ids.sort_unstable();
                ids.dedup();
                let cached = frames
                    .iter()
                    .find(|(vsn, t, i, _)| *vsn == sub.vsn && *t == topic.as_str() && *i == ids);
                let frame = match cached {
                    Some((.., frame)) => frame.clone(),
                    None => {
                        let data = data.get_or_insert_with(|| change_data(&shown, schema));
                        let payload =
                            format!("{{\"ids\":{},\"data\":{data}}}", Value::from(ids.clone()));
                        let frame: bytestring::ByteString =
                            encode_raw_push(sub.vsn, topic, "postgres_changes", &payload).into();
                        if frames.len() < MAX_SHARED_FRAMES {
                            frames.push((sub.vsn, topic.as_str(), ids.clone(), frame.clone()));
                        }
                        frame
                    }
                };
                batch.send(sub, Out::Text(frame));
            }
        }
        batch.flush(self);
    }

    /// Runs the fan-out until the bus shuts down; announces this node and
    /// sweeps dead nodes every third of `node_timeout`.
    pub(crate) async fn run(self: Arc<Self>, mut subscription: goforward_core::bus::Subscription) {
        let mut ticker = tokio::time::interval(self.node_timeout / 3);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Learn what the other nodes already track.
        if let Err(err) = self
            .bus
            .publish(Event::custom(SYNC_EVENT, Value::Null))
            .await
        {
            tracing::debug!(error = %err, "could not ask other nodes for their presence");
        }
        loop {
            tokio::select! {
                envelope = subscription.recv() => match envelope {
                    Some(envelope) => {
                        for answer in self.dispatch(envelope.origin, &envelope.event) {
                            if let Err(err) = self.publish_presence(&answer).await {
                                tracing::debug!(error = %err, "could not share presence with a new node");
                            }
                        }
                    }
                    None => return,
                },
                now = ticker.tick() => {
                    let alive = Event::custom(ALIVE_EVENT, Value::Null);
                    if let Err(err) = self.bus.publish(alive).await {
                        tracing::debug!(error = %err, "could not announce this realtime node");
                    }
                    self.sweep_dead_nodes(now);
                }
            }
        }
    }
}

/// Pushes a broadcast into the queues of `subs` (subscribers of its topic on node `node`).
fn broadcast_to(node: Uuid, subs: &HashMap<ConnId, Subscriber>, msg: &BroadcastMsg) {
    let raw_bytes = msg
        .binary
        .as_ref()
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
    let mut text: [Option<bytestring::ByteString>; 2] = [None, None];
    let mut bin: Option<Option<actix_web::web::Bytes>> = None;
    for (conn, sub) in subs {
        let own = msg.sender == Some(Owner { node, conn: *conn });
        if own && !sub.echo_self {
            continue;
        }
        let out = if sub.vsn == Vsn::V2 && (msg.from_binary || raw_bytes.is_some()) {
            let frame = bin.get_or_insert_with(|| {
                let (encoding, payload) = match &raw_bytes {
                    Some(bytes) => (Encoding::Binary, bytes.clone()),
                    None => (Encoding::Json, msg.payload.to_string().into_bytes()),
                };
                let meta = msg
                    .id
                    .as_ref()
                    .map(|id| serde_json::json!({ "id": id }).to_string())
                    .unwrap_or_default();
                binary::encode_broadcast(&msg.topic, &msg.event, &meta, encoding, &payload)
                    .map(actix_web::web::Bytes::from)
            });
            match frame {
                Some(bytes) => Out::Binary(bytes.clone()),
                None => continue,
            }
        } else if raw_bytes.is_some() {
            // A V1 socket cannot carry raw bytes.
            continue;
        } else {
            let slot = &mut text[usize::from(sub.vsn == Vsn::V2)];
            let frame = slot.get_or_insert_with(|| {
                let mut payload = serde_json::json!({
                    "type": "broadcast",
                    "event": msg.event,
                    "payload": msg.payload,
                });
                if let Some(id) = &msg.id {
                    payload["meta"] = serde_json::json!({ "id": id });
                }
                encode_raw_push(sub.vsn, &msg.topic, "broadcast", &payload.to_string()).into()
            });
            Out::Text(frame.clone())
        };
        sub.outbox.send(out);
    }
}

/// Sends a `presence_diff` to the local subscribers of `topic` with presence enabled.
fn send_presence_diff(hub: &Hub, state: &State, topic: &str, diff: &Value) {
    let Some(subs) = state.topics.get(topic) else {
        return;
    };
    let raw = diff.to_string();
    let mut text: [Option<bytestring::ByteString>; 2] = [None, None];
    let mut batch = Batch::default();
    for (_, sub) in subs.iter().filter(|(_, s)| s.presence) {
        let slot = &mut text[usize::from(sub.vsn == Vsn::V2)];
        let frame = slot
            .get_or_insert_with(|| encode_raw_push(sub.vsn, topic, "presence_diff", &raw).into());
        batch.send(sub, Out::Text(frame.clone()));
    }
    batch.flush(hub);
}

#[cfg(test)]
mod tests {
    use super::*;
    use goforward_core::bus::MemoryBus;
    use serde_json::json;

    #[tokio::test]
    async fn presence_of_a_silent_node_is_swept() {
        let hub = Hub::new(Arc::new(MemoryBus::new(16)), Duration::from_secs(3));
        let (outbox, inbox, _body) = Outbox::new(8, Duration::from_secs(10), None);
        let sub = Subscriber {
            outbox,
            vsn: Vsn::V2,
            echo_self: false,
            presence: true,
            changes: Vec::new(),
            session: None,
            shard: None,
        };
        assert_eq!(hub.subscribe("realtime:t", 1, sub), Some(json!({})));
        let dead = Uuid::new_v4();
        let msg = PresenceMsg {
            topic: "realtime:t".into(),
            owner: Some(Owner {
                node: dead,
                conn: 7,
            }),
            joins: HashMap::from([("k".into(), vec![json!({"phx_ref": "r"})])]),
            leaves: HashMap::new(),
        };
        let _ = hub.dispatch(
            dead,
            &Event::custom(PRESENCE_EVENT, serde_json::to_value(&msg).unwrap()),
        );
        assert!(matches!(inbox.recv().await, Out::Text(t) if t.contains("\"joins\":{\"k\"")));
        let now = tokio::time::Instant::now();
        assert_eq!(hub.sweep_dead_nodes(now), 0);
        assert_eq!(hub.sweep_dead_nodes(now + Duration::from_secs(4)), 1);
        let Out::Text(diff) = inbox.recv().await else {
            panic!("no leave diff")
        };
        assert!(diff.contains("\"leaves\":{\"k\""), "{diff}");
        let state = hub.subscribe(
            "realtime:t",
            2,
            Subscriber {
                outbox: Outbox::new(1, Duration::from_secs(10), None).0,
                vsn: Vsn::V1,
                echo_self: false,
                presence: true,
                changes: Vec::new(),
                session: None,
                shard: None,
            },
        );
        assert_eq!(state, Some(json!({})));
    }
}
