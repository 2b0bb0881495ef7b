//! Event bus: publish/subscribe of typed [`Event`]s between plugins and nodes.
//!
//! Two implementations share one trait, [`EventBus`]:
//!
//! - [`MemoryBus`] (default): in-process, built on `tokio::sync::broadcast`.
//! - [`RedisBus`] (feature `redis`): the same local fan-out, plus Redis
//!   pub/sub so that every subscriber on every node receives each event
//!   exactly once.
//!
//! Plugins receive the bus as a [`SharedBus`] and never care which one it is.

mod events;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

pub use self::events::{
    ChangeKind, Envelope, Event, ObjectEvent, RecordChanged, SessionsRevoked, UserEvent,
};
pub use self::memory::MemoryBus;
#[cfg(feature = "redis")]
pub use self::redis::RedisBus;

/// The bus as plugins hold it: one instance shared by the whole application.
pub type SharedBus = Arc<dyn EventBus>;

/// Publish/subscribe of [`Event`]s, on this node or across nodes.
///
/// Every subscription receives every event published after it was created,
/// on any node sharing the bus, exactly once. Events that one task publishes
/// one after another arrive in that order.
///
/// # Examples
///
/// ```
/// use goforward_core::bus::{Event, EventBus, MemoryBus, SharedBus};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> goforward_core::Result<()> {
/// let bus: SharedBus = Arc::new(MemoryBus::new(1024));
/// let mut subscription = bus.subscribe();
///
/// bus.publish(Event::custom("greeting", serde_json::json!({ "hello": "world" }))).await?;
///
/// let envelope = subscription.recv().await.expect("bus is running");
/// assert_eq!(envelope.event.name(), "greeting");
/// assert_eq!(envelope.origin, bus.node_id());
///
/// bus.shutdown().await;
/// assert!(subscription.recv().await.is_none());
/// # Ok(())
/// # }
/// ```
#[async_trait::async_trait]
pub trait EventBus: Send + Sync + 'static {
    /// Publish to every subscriber on every node (exactly once per subscriber).
    ///
    /// Having no subscriber is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::Bus`](crate::Error::Bus) when the bus is shut down, or when
    /// the event could not be handed to other nodes (Redis unreachable). In
    /// the latter case this node's subscribers have still received it.
    async fn publish(&self, event: Event) -> crate::Result<()>;

    /// A new subscription receiving events published after this call.
    ///
    /// After [`shutdown`](EventBus::shutdown) the subscription ends at once.
    fn subscribe(&self) -> Subscription;

    /// This node's id (events carry their origin in [`Envelope::origin`]).
    fn node_id(&self) -> uuid::Uuid;

    /// Stops background tasks (Redis listener) and ends every subscription;
    /// idempotent.
    async fn shutdown(&self);
}

/// A stream of [`Envelope`]s from one bus, created by [`EventBus::subscribe`].
///
/// Each subscription buffers up to the bus capacity; a subscriber that falls
/// further behind skips the oldest events (a warning with the count is
/// logged) and continues with the oldest one still buffered.
#[derive(Debug)]
pub struct Subscription {
    receiver: broadcast::Receiver<Arc<Envelope>>,
}

impl Subscription {
    /// Waits for the next event.
    ///
    /// Returns `None` once the bus is shut down (after the events already
    /// buffered for this subscription have been received).
    pub async fn recv(&mut self) -> Option<Arc<Envelope>> {
        loop {
            match self.receiver.recv().await {
                Ok(envelope) => return Some(envelope),
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::warn!(
                        skipped,
                        "event bus subscriber lagged behind; skipped the oldest events"
                    );
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// The local fan-out shared by every bus implementation: a broadcast channel
/// whose sender is dropped on shutdown, which ends every subscription.
pub(crate) struct LocalHub {
    sender: RwLock<Option<broadcast::Sender<Arc<Envelope>>>>,
}

impl LocalHub {
    /// A hub buffering `capacity` events per subscriber (clamped to what
    /// `tokio::sync::broadcast` accepts: at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, usize::MAX >> 2);
        let (sender, _) = broadcast::channel(capacity);
        Self {
            sender: RwLock::new(Some(sender)),
        }
    }

    /// A new subscription; already ended if the hub is closed.
    pub(crate) fn subscribe(&self) -> Subscription {
        let guard = self
            .sender
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let receiver = match guard.as_ref() {
            Some(sender) => sender.subscribe(),
            // A receiver whose only sender is gone: its first recv is `Closed`.
            None => broadcast::channel(1).1,
        };
        Subscription { receiver }
    }

    /// Delivers to every local subscriber; `false` when the hub is closed.
    pub(crate) fn deliver(&self, envelope: Arc<Envelope>) -> bool {
        let guard = self
            .sender
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match guard.as_ref() {
            Some(sender) => {
                // An error only means there is no subscriber right now.
                let _ = sender.send(envelope);
                true
            }
            None => false,
        }
    }

    /// Whether [`close`](Self::close) has been called.
    pub(crate) fn is_closed(&self) -> bool {
        self.sender
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_none()
    }

    /// Drops the sender, ending every subscription; idempotent.
    pub(crate) fn close(&self) {
        self.sender
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// The error returned by `publish` after `shutdown`.
pub(crate) fn shut_down_error() -> crate::Error {
    crate::Error::Bus("the event bus is shut down".to_owned())
}
