//! The Redis pub/sub bus (feature `redis`).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{MultiplexedConnection, PubSub};
use ::redis::{AsyncConnectionConfig, Client, Msg, RedisError};
use futures_util::StreamExt;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::Instrument;
use uuid::Uuid;

use super::{Envelope, Event, EventBus, LocalHub, Subscription, shut_down_error};

/// How long opening a connection (and confirming SUBSCRIBE) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a PUBLISH may wait for Redis' answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the listener checks that its connection is alive.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// How long the listener waits for a PONG before reconnecting.
const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// First delay before the listener reconnects; doubled per failure.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest delay between two reconnect attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How many envelope ids the listener remembers to drop duplicates.
const RECENT_IDS: usize = 4096;

/// Event bus spanning several nodes through Redis pub/sub (feature `redis`).
///
/// Every node connects to the same Redis and channel. [`publish`](EventBus::publish)
/// delivers to this node's subscribers directly and publishes the
/// [`Envelope`] as JSON on the channel; a background listener forwards the
/// envelopes of *other* nodes to local subscribers. So each subscriber on
/// each node receives every event exactly once.
///
/// The listener reconnects with exponential backoff (100 ms up to 10 s) when
/// Redis drops the connection, and pings Redis every 15 s to notice a dead
/// connection. Redis pub/sub keeps no history: events other nodes publish
/// while the listener is disconnected are not received (a warning is logged).
///
/// # Examples
///
/// ```no_run
/// use goforward_core::bus::{RedisBus, SharedBus};
/// # async fn run() -> goforward_core::Result<()> {
/// let bus: SharedBus = std::sync::Arc::new(
///     RedisBus::connect("redis://127.0.0.1:6379", "goforward:events", 1024).await?,
/// );
/// # Ok(())
/// # }
/// ```
pub struct RedisBus {
    node_id: Uuid,
    channel: String,
    /// The URL with userinfo and query removed, for messages.
    url: String,
    hub: Arc<LocalHub>,
    publisher: Publisher,
    stop: watch::Sender<bool>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl RedisBus {
    /// Connects to Redis at `url` and subscribes to `channel`; each local
    /// subscription buffers up to `capacity` events (0 is treated as 1).
    /// The node id is random.
    ///
    /// When this returns, Redis has confirmed the subscription: events that
    /// other nodes publish from then on are received.
    ///
    /// # Errors
    ///
    /// [`Error::Bus`](crate::Error::Bus) when the URL is invalid, the channel
    /// name is empty, or Redis cannot be reached, authenticated against or
    /// subscribed to within 5 seconds. Messages name the URL without its
    /// user, password and query.
    pub async fn connect(url: &str, channel: &str, capacity: usize) -> crate::Result<Self> {
        let redacted = redact_url(url);
        if channel.is_empty() {
            return Err(crate::Error::Bus(
                "the redis bus channel name must not be empty".to_owned(),
            ));
        }
        let client = Client::open(url)
            .map_err(|err| crate::Error::Bus(format!("invalid redis URL `{redacted}`: {err}")))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let publisher = Publisher::new(client.clone(), config);
        publisher.connection().await.map_err(|err| {
            crate::Error::Bus(format!("cannot connect to redis at `{redacted}`: {err}"))
        })?;
        let pubsub = open_pubsub(&client, channel).await.map_err(|err| {
            crate::Error::Bus(format!(
                "cannot subscribe to redis channel `{channel}` at `{redacted}`: {err}"
            ))
        })?;

        let node_id = Uuid::new_v4();
        let hub = Arc::new(LocalHub::new(capacity));
        let (stop, stop_rx) = watch::channel(false);
        let listener = Listener {
            client,
            channel: channel.to_owned(),
            node_id,
            hub: Arc::clone(&hub),
            recent: RecentIds::new(RECENT_IDS),
        };
        let span = tracing::info_span!("redis_bus", url = %redacted, channel, %node_id);
        let handle = tokio::spawn(listener.run(pubsub, stop_rx).instrument(span));
        tracing::debug!(url = %redacted, channel, %node_id, "redis event bus connected");

        Ok(Self {
            node_id,
            channel: channel.to_owned(),
            url: redacted,
            hub,
            publisher,
            stop,
            listener: Mutex::new(Some(handle)),
        })
    }
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("node_id", &self.node_id)
            .field("url", &self.url)
            .field("channel", &self.channel)
            .field("shut_down", &self.hub.is_closed())
            .finish()
    }
}

#[async_trait::async_trait]
impl EventBus for RedisBus {
    async fn publish(&self, event: Event) -> crate::Result<()> {
        if self.hub.is_closed() {
            return Err(shut_down_error());
        }
        let envelope = Envelope::new(self.node_id, event);
        let payload = serde_json::to_string(&envelope).map_err(|err| {
            crate::Error::Bus(format!(
                "cannot serialize event `{}`: {err}",
                envelope.event.name()
            ))
        })?;
        let envelope = Arc::new(envelope);
        if !self.hub.deliver(Arc::clone(&envelope)) {
            return Err(shut_down_error());
        }
        self.publisher
            .publish(&self.channel, &payload)
            .await
            .map_err(|err| {
                crate::Error::Bus(format!(
                    "cannot publish event `{}` to redis channel `{}` at `{}` \
                     (local subscribers received it; other nodes did not): {err}",
                    envelope.event.name(),
                    self.channel,
                    self.url
                ))
            })
    }

    fn subscribe(&self) -> Subscription {
        self.hub.subscribe()
    }

    fn node_id(&self) -> Uuid {
        self.node_id
    }

    async fn shutdown(&self) {
        self.stop.send_replace(true);
        let handle = self.listener.lock().await.take();
        if let Some(handle) = handle
            && let Err(err) = handle.await
            && err.is_panic()
        {
            tracing::error!(channel = %self.channel, "redis event bus listener panicked");
        }
        self.hub.close();
        self.publisher.close().await;
    }
}

/// The publishing connection, reopened lazily after it broke.
struct Publisher {
    client: Client,
    config: AsyncConnectionConfig,
    state: Mutex<PublisherState>,
}

struct PublisherState {
    /// Bumped on every new connection, so that only one of several failing
    /// publishers discards it.
    generation: u64,
    connection: Option<MultiplexedConnection>,
}

impl Publisher {
    fn new(client: Client, config: AsyncConnectionConfig) -> Self {
        Self {
            client,
            config,
            state: Mutex::new(PublisherState {
                generation: 0,
                connection: None,
            }),
        }
    }

    /// The current connection, opened if there is none.
    async fn connection(&self) -> Result<(u64, MultiplexedConnection), RedisError> {
        let mut state = self.state.lock().await;
        if let Some(connection) = &state.connection {
            return Ok((state.generation, connection.clone()));
        }
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        state.generation += 1;
        state.connection = Some(connection.clone());
        Ok((state.generation, connection))
    }

    /// Forgets the connection of `generation` (if it is still the current one).
    async fn discard(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state.generation == generation {
            state.connection = None;
        }
    }

    /// PUBLISHes `payload`. When the connection turns out to be broken, it is
    /// replaced and the PUBLISH retried once; a duplicate this may cause is
    /// dropped by the listeners, which remember recent envelope ids.
    async fn publish(&self, channel: &str, payload: &str) -> Result<(), RedisError> {
        let mut retried = false;
        loop {
            let (generation, mut connection) = self.connection().await?;
            let result = ::redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(&mut connection)
                .await;
            let err = match result {
                Ok(receivers) => {
                    tracing::trace!(channel, receivers, "published event to redis");
                    return Ok(());
                }
                Err(err) => err,
            };
            let broken = err.is_unrecoverable_error()
                || err.is_connection_dropped()
                || err.is_io_error()
                || err.is_timeout();
            if !broken {
                return Err(err);
            }
            self.discard(generation).await;
            // A timeout means Redis is slow or gone: do not double the wait.
            if retried || err.is_timeout() {
                return Err(err);
            }
            tracing::warn!(channel, error = %err, "redis publish connection broke; reconnecting");
            retried = true;
        }
    }

    async fn close(&self) {
        self.state.lock().await.connection = None;
    }
}

/// Opens a pub/sub connection and waits until Redis confirms SUBSCRIBE.
async fn open_pubsub(client: &Client, channel: &str) -> Result<PubSub, String> {
    let open = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, RedisError>(pubsub)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, open).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("timed out after {CONNECT_TIMEOUT:?}")),
    }
}

/// Resolves once shutdown was requested or the bus was dropped.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender (the bus) is gone: stop as well.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Why [`Listener::pump`] returned.
enum Ended {
    Shutdown,
    ConnectionLost,
}

/// The background task forwarding other nodes' envelopes to local subscribers.
struct Listener {
    client: Client,
    channel: String,
    node_id: Uuid,
    hub: Arc<LocalHub>,
    recent: RecentIds,
}

impl Listener {
    async fn run(mut self, first: PubSub, mut stop: watch::Receiver<bool>) {
        let mut next = Some(first);
        loop {
            let pubsub = match next.take() {
                Some(pubsub) => pubsub,
                None => match self.reconnect(&mut stop).await {
                    Some(pubsub) => pubsub,
                    None => break,
                },
            };
            match self.pump(pubsub, &mut stop).await {
                Ended::Shutdown => break,
                Ended::ConnectionLost => {}
            }
        }
        tracing::debug!("redis event bus listener stopped");
    }

    /// Forwards messages until shutdown or until the connection is lost.
    async fn pump(&mut self, pubsub: PubSub, stop: &mut watch::Receiver<bool>) -> Ended {
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped(stop) => return Ended::Shutdown,
                message = stream.next() => match message {
                    Some(message) => self.forward(&message),
                    None => {
                        tracing::warn!("redis event bus listener lost its connection; reconnecting");
                        return Ended::ConnectionLost;
                    }
                },
                _ = ping.tick() => {
                    let pong = tokio::select! {
                        () = stopped(stop) => return Ended::Shutdown,
                        pong = tokio::time::timeout(PING_TIMEOUT, sink.ping::<::redis::Value>()) => pong,
                    };
                    match pong {
                        Ok(Ok(_)) => {}
                        Ok(Err(err)) => {
                            tracing::warn!(error = %err, "redis event bus listener ping failed; reconnecting");
                            return Ended::ConnectionLost;
                        }
                        Err(_) => {
                            tracing::warn!(timeout = ?PING_TIMEOUT, "redis event bus listener ping timed out; reconnecting");
                            return Ended::ConnectionLost;
                        }
                    }
                }
            }
        }
    }

    /// Reconnects with exponential backoff; `None` on shutdown.
    async fn reconnect(&self, stop: &mut watch::Receiver<bool>) -> Option<PubSub> {
        let mut delay = BACKOFF_MIN;
        let mut attempt: u32 = 0;
        loop {
            tokio::select! {
                () = stopped(stop) => return None,
                () = tokio::time::sleep(delay) => {}
            }
            attempt = attempt.saturating_add(1);
            let result = tokio::select! {
                () = stopped(stop) => return None,
                result = open_pubsub(&self.client, &self.channel) => result,
            };
            match result {
                Ok(pubsub) => {
                    tracing::warn!(
                        attempt,
                        "redis event bus listener reconnected; events other nodes published \
                         while it was disconnected were not received"
                    );
                    return Some(pubsub);
                }
                Err(err) => {
                    delay = (delay * 2).min(BACKOFF_MAX);
                    tracing::error!(
                        attempt,
                        error = %err,
                        retry_in = ?delay,
                        "redis event bus listener cannot reconnect"
                    );
                }
            }
        }
    }

    /// Delivers one message from Redis to local subscribers, unless this node
    /// published it (its subscribers already have it) or it was seen before.
    fn forward(&mut self, message: &Msg) {
        let envelope: Envelope = match serde_json::from_slice(message.get_payload_bytes()) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::warn!(error = %err, "ignoring a redis message that is not an event envelope");
                return;
            }
        };
        if envelope.origin == self.node_id {
            return;
        }
        if !self.recent.insert(envelope.id) {
            tracing::debug!(id = %envelope.id, "dropping a duplicate event");
            return;
        }
        self.hub.deliver(Arc::new(envelope));
    }
}

/// A bounded memory of recently forwarded envelope ids.
struct RecentIds {
    capacity: usize,
    set: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            set: HashSet::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
        }
    }

    /// Records `id`; `false` if it was already recorded.
    fn insert(&mut self, id: Uuid) -> bool {
        if !self.set.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        true
    }
}

/// `url` without userinfo, query and fragment (which may carry credentials).
///
/// Everything up to the last `@` is userinfo: a password may itself contain
/// `/` or `@`, while Redis URL paths (a database number, a socket path) do not
/// contain `@`.
fn redact_url(url: &str) -> String {
    let base = url.split(['?', '#']).next().unwrap_or_default();
    match (base.split_once("://"), base.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host_and_path))) => format!("{scheme}://***@{host_and_path}"),
        (None, Some(_)) => "<redacted>".to_owned(),
        (_, None) => base.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_removes_credentials() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(
            redact_url("redis://:s3cret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(
            redact_url("rediss://user:p@ss@host/1?x=1"),
            "rediss://***@host/1"
        );
        assert_eq!(
            redact_url("redis+unix:///tmp/r.sock?pass=s3cret"),
            "redis+unix:///tmp/r.sock"
        );
        assert_eq!(redact_url("redis://u:a/b@host:1/2"), "redis://***@host:1/2");
        assert_eq!(redact_url("user:s3cret@host"), "<redacted>");
    }

    #[test]
    fn recent_ids_forget_the_oldest() {
        let mut recent = RecentIds::new(2);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(recent.insert(a));
        assert!(!recent.insert(a));
        assert!(recent.insert(b));
        assert!(recent.insert(c));
        assert!(recent.insert(a), "a was evicted");
        assert!(!recent.insert(c));
    }
}
