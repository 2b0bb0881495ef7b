//! [`RealtimeHandle`]: server-side broadcast for hosts and other plugins.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{RealtimeError, Result};
use crate::hub::{BroadcastMsg, Hub};

/// Sends broadcasts from Rust to every subscriber of a channel on every node.
///
/// Registered in the service registry by the realtime plugin's `start`:
///
/// ```no_run
/// # async fn f(ctx: &goforward_core::Context) -> goforward_realtime::Result<()> {
/// use goforward_realtime::RealtimeHandle;
/// let realtime = ctx.services().get::<RealtimeHandle>().expect("Realtime plugin added");
/// realtime.broadcast("room1", "new_message", serde_json::json!({"text": "hi"})).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RealtimeHandle {
    pub(crate) hub: Arc<Hub>,
}

impl RealtimeHandle {
    /// Broadcasts `event` with `payload` on channel `channel` (the name given to
    /// `supabase.channel(name)`, without the `realtime:` prefix). Subscribers
    /// receive `{type: "broadcast", event, payload}`.
    ///
    /// # Errors
    /// [`RealtimeError::Invalid`] for an empty or too long channel or event name;
    /// [`RealtimeError::Core`] when the bus could not hand the message to other
    /// nodes (this node's subscribers have still received it).
    pub async fn broadcast(&self, channel: &str, event: &str, payload: Value) -> Result<()> {
        for (what, value) in [("channel", channel), ("event", event)] {
            if value.is_empty() || value.len() > 255 {
                return Err(RealtimeError::Invalid(format!(
                    "`{what}` must be 1 to 255 bytes"
                )));
            }
        }
        let msg = BroadcastMsg {
            topic: format!("realtime:{channel}"),
            event: event.to_owned(),
            payload,
            binary: None,
            from_binary: false,
            sender: None,
            id: None,
        };
        Ok(self.hub.publish_broadcast(&msg).await?)
    }
}
