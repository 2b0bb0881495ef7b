//! The in-process bus.

use std::sync::Arc;

use uuid::Uuid;

use super::{Envelope, Event, EventBus, LocalHub, Subscription, shut_down_error};

/// In-process event bus on `tokio::sync::broadcast`: the default for a single
/// node, and the bus to use in tests.
///
/// Publishing never waits: each subscription buffers up to `capacity` events,
/// and a subscriber that falls further behind skips the oldest ones (see
/// [`Subscription`]).
///
/// # Examples
///
/// ```
/// use goforward_core::bus::{MemoryBus, SharedBus};
/// let bus: SharedBus = std::sync::Arc::new(MemoryBus::new(1024));
/// ```
pub struct MemoryBus {
    node_id: Uuid,
    hub: LocalHub,
}

impl MemoryBus {
    /// A bus whose subscriptions each buffer up to `capacity` events
    /// (a capacity of 0 is treated as 1). Its node id is random.
    pub fn new(capacity: usize) -> Self {
        Self {
            node_id: Uuid::new_v4(),
            hub: LocalHub::new(capacity),
        }
    }
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("node_id", &self.node_id)
            .field("shut_down", &self.hub.is_closed())
            .finish()
    }
}

#[async_trait::async_trait]
impl EventBus for MemoryBus {
    async fn publish(&self, event: Event) -> crate::Result<()> {
        let envelope = Arc::new(Envelope::new(self.node_id, event));
        if self.hub.deliver(envelope) {
            Ok(())
        } else {
            Err(shut_down_error())
        }
    }

    fn subscribe(&self) -> Subscription {
        self.hub.subscribe()
    }

    fn node_id(&self) -> Uuid {
        self.node_id
    }

    async fn shutdown(&self) {
        self.hub.close();
    }
}
