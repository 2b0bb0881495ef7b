//! A connection's bounded send queue; a full queue marks a slow consumer.

use std::sync::{Arc, OnceLock};

use tokio::sync::{Notify, mpsc};

/// A frame queued for a connection.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    Text(bytestring::ByteString),
    Binary(actix_web::web::Bytes),
}

/// Why and when a connection must be dropped.
#[derive(Debug, Default)]
pub(crate) struct Kick {
    notify: Notify,
    reason: OnceLock<&'static str>,
}

impl Kick {
    /// Asks the connection to close with `reason` (the first reason wins).
    pub(crate) fn kick(&self, reason: &'static str) {
        if self.reason.set(reason).is_ok() {
            self.notify.notify_one();
        }
    }

    /// Waits until kicked; returns the reason.
    pub(crate) async fn kicked(&self) -> &'static str {
        loop {
            if let Some(reason) = self.reason.get() {
                return reason;
            }
            self.notify.notified().await;
        }
    }
}

/// The hub's end of a connection's queue.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Out>,
    kick: Arc<Kick>,
}

/// Reason given to a consumer whose queue overflowed.
pub(crate) const SLOW_CONSUMER: &str = "slow consumer: send queue full";

impl Outbox {
    /// A queue of `capacity` frames: the outbox, its receiver, and the kick signal.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Out>, Arc<Kick>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let kick = Arc::new(Kick::default());
        (
            Self {
                tx,
                kick: kick.clone(),
            },
            rx,
            kick,
        )
    }

    /// Queues `out` without waiting; a full queue kicks the connection.
    pub(crate) fn send(&self, out: Out) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(out) {
            self.kick.kick(SLOW_CONSUMER);
        }
    }
}
