//! Realtime's Prometheus families, registered in core's registry (`/metrics`).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Gauges and counters of the realtime plugin (names prefixed `goforward_realtime_`).
#[derive(Debug, Clone)]
pub(crate) struct RealtimeMetrics {
    /// Open WebSocket connections on this node.
    pub connections: IntGauge,
    /// Channels joined on this node (one per connection and topic).
    pub channels: IntGauge,
    /// Messages received from clients.
    pub messages_in: IntCounter,
    /// Frames written to clients.
    pub messages_out: IntCounter,
    /// Connections dropped as slow consumers (send queue full or write timeout).
    pub slow_consumers: IntCounter,
    /// Refused connections, joins and messages, by reason.
    pub refused: IntCounterVec,
}

impl RealtimeMetrics {
    /// The families, registered on `registry`. A family that cannot be registered
    /// (already there: the plugin started twice on one app) still counts, unexported.
    ///
    /// # Errors
    /// [`goforward_core::Error::Internal`] if a family cannot be built (a bug).
    pub(crate) fn new(registry: &Registry) -> goforward_core::Result<Self> {
        let fail = |e: prometheus::Error| goforward_core::Error::Internal(format!("metrics: {e}"));
        let gauge =
            |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help)).map_err(fail);
        let counter =
            |name: &str, help: &str| IntCounter::with_opts(Opts::new(name, help)).map_err(fail);
        let metrics = Self {
            connections: gauge(
                "realtime_connections",
                "Open realtime WebSocket connections",
            )?,
            channels: gauge("realtime_channels", "Joined realtime channels")?,
            messages_in: counter(
                "realtime_messages_in_total",
                "Realtime messages received from clients",
            )?,
            messages_out: counter(
                "realtime_messages_out_total",
                "Realtime frames written to clients",
            )?,
            slow_consumers: counter(
                "realtime_slow_consumers_total",
                "Realtime connections dropped as slow consumers",
            )?,
            refused: IntCounterVec::new(
                Opts::new(
                    "realtime_refused_total",
                    "Realtime connections, joins and messages refused, by reason",
                ),
                &["reason"],
            )
            .map_err(fail)?,
        };
        let families: [Box<dyn prometheus::core::Collector>; 6] = [
            Box::new(metrics.connections.clone()),
            Box::new(metrics.channels.clone()),
            Box::new(metrics.messages_in.clone()),
            Box::new(metrics.messages_out.clone()),
            Box::new(metrics.slow_consumers.clone()),
            Box::new(metrics.refused.clone()),
        ];
        for family in families {
            if let Err(err) = registry.register(family) {
                tracing::warn!(error = %err, "realtime metric not registered");
            }
        }
        Ok(metrics)
    }

    /// Counts one refusal.
    pub(crate) fn refuse(&self, reason: &str) {
        self.refused.with_label_values(&[reason]).inc();
    }
}
