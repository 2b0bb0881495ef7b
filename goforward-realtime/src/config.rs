//! The `[realtime]` config section.

use serde::{Deserialize, Serialize};

/// Realtime settings (`[realtime]` in `goforward.toml`, `GOFORWARD_REALTIME__*` in the environment).
///
/// Every limit is per connection unless its name says otherwise; each breach
/// is answered with the protocol's error (see `docs/realtime.md`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    /// Channels one connection may have joined at once.
    pub max_channels_per_connection: usize,
    /// Channel joins one connection may make per second.
    pub max_joins_per_second: u32,
    /// Broadcast, presence and token messages one connection may send per second.
    pub max_events_per_second: u32,
    /// Largest accepted WebSocket message (bytes); larger ones close the socket with 1009.
    pub max_message_bytes: usize,
    /// Messages queued for one connection before it counts as a slow consumer and is disconnected.
    pub send_queue: usize,
    /// Seconds without any message from the client (heartbeats included) before the socket is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a single write to the socket may take before the client counts as a slow consumer.
    pub write_timeout_secs: u64,
    /// Refuse public channels: every channel must be joined with `private: true`.
    pub private_only: bool,
    /// Messages accepted in one `POST /realtime/v1/api/broadcast`.
    pub max_batch_messages: usize,
    /// Open sockets per client IP on this node; more are refused with 429.
    pub max_connections_per_ip: usize,
    /// Connections of one user on this node: sockets holding at least one channel
    /// joined with the user's token. A join that would exceed it is refused
    /// (`ConnectionRateLimitReached`).
    pub max_connections_per_user: usize,
    /// Seconds after which a socket is closed (1000, "connection lifetime reached");
    /// realtime-js reconnects and rejoins. 0 keeps sockets open indefinitely.
    pub max_connection_secs: u64,
    /// Seconds after which the presence entries of a node that stopped announcing itself
    /// (a killed node) are removed; nodes announce themselves every third of it.
    pub node_timeout_secs: u64,
    /// Store broadcasts sent with `persist` on private channels, for `broadcast.replay` joins.
    pub broadcast_persistence: bool,
    /// Longest time (seconds) a persisted broadcast is kept; a requested `ttl` is capped by it.
    pub max_persist_ttl_secs: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            max_channels_per_connection: 100,
            max_joins_per_second: 50,
            max_events_per_second: 100,
            max_message_bytes: 256 * 1024,
            send_queue: 1024,
            idle_timeout_secs: 60,
            write_timeout_secs: 10,
            private_only: false,
            max_batch_messages: 100,
            max_connections_per_ip: 500,
            max_connections_per_user: 100,
            max_connection_secs: 1800,
            node_timeout_secs: 30,
            broadcast_persistence: false,
            max_persist_ttl_secs: 3 * 24 * 3600,
        }
    }
}

impl RealtimeConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`goforward_core::Error::Config`] naming the first key that is out of range.
    pub fn validate(&self) -> goforward_core::Result<()> {
        let checks: [(&str, u64, bool); 10] = [
            (
                "realtime.max_channels_per_connection",
                self.max_channels_per_connection as u64,
                self.max_channels_per_connection == 0,
            ),
            (
                "realtime.max_joins_per_second",
                u64::from(self.max_joins_per_second),
                self.max_joins_per_second == 0,
            ),
            (
                "realtime.max_events_per_second",
                u64::from(self.max_events_per_second),
                self.max_events_per_second == 0,
            ),
            (
                "realtime.max_message_bytes",
                self.max_message_bytes as u64,
                self.max_message_bytes < 1024,
            ),
            (
                "realtime.send_queue",
                self.send_queue as u64,
                self.send_queue == 0,
            ),
            (
                "realtime.idle_timeout_secs",
                self.idle_timeout_secs,
                self.idle_timeout_secs == 0,
            ),
            (
                "realtime.write_timeout_secs",
                self.write_timeout_secs,
                self.write_timeout_secs == 0,
            ),
            (
                "realtime.max_connections_per_ip",
                self.max_connections_per_ip as u64,
                self.max_connections_per_ip == 0,
            ),
            (
                "realtime.max_connections_per_user",
                self.max_connections_per_user as u64,
                self.max_connections_per_user == 0,
            ),
            (
                "realtime.node_timeout_secs",
                self.node_timeout_secs,
                self.node_timeout_secs < 3,
            ),
        ];
        for (key, value, bad) in checks {
            if bad {
                return Err(goforward_core::Error::config(
                    key,
                    value.to_string(),
                    "out of range",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_partial_sections_refuses_unknown_keys_and_validates() {
        let c: RealtimeConfig =
            serde_json::from_value(serde_json::json!({"send_queue": 8})).unwrap();
        assert_eq!(c.send_queue, 8);
        assert_eq!(c.max_channels_per_connection, 100);
        assert!(c.validate().is_ok());
        assert!(serde_json::from_value::<RealtimeConfig>(serde_json::json!({"nope": 1})).is_err());
        let bad = RealtimeConfig {
            max_message_bytes: 10,
            ..RealtimeConfig::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("realtime.max_message_bytes"), "{err}");
    }
}
