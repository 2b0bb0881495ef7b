//! What every worker shares: the hub, the context and the config.

use std::sync::Arc;

use goforward_core::Context;

use crate::config::RealtimeConfig;
use crate::hub::Hub;
use crate::metrics::RealtimeMetrics;
use crate::socket::{IpSlots, UserSlots};

/// The plugin's state, built once in `start`.
#[derive(Debug)]
pub(crate) struct RealtimeState {
    pub hub: Arc<Hub>,
    pub ctx: Context,
    pub config: RealtimeConfig,
    pub slots: Arc<IpSlots>,
    /// Connections per user.
    pub user_slots: Arc<UserSlots>,
    pub metrics: RealtimeMetrics,
    /// Broadcast persistence (when `broadcast_persistence` is on).
    pub store: Option<crate::persist::Store>,
    /// The PostgreSQL change source (PostgreSQL databases only).
    #[cfg(feature = "postgres")]
    pub pg: Option<Arc<crate::pg::PgSource>>,
}

/// The channel name of a topic (`realtime:room1` → `room1`).
pub(crate) fn channel_name(topic: &str) -> Option<&str> {
    topic.strip_prefix("realtime:")
}
