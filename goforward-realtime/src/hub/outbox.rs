//! A connection's bounded send queue; a full queue marks a slow consumer.
//!
//! A `Mutex<VecDeque>` + `Notify` rather than a tokio `mpsc` channel: an empty
//! queue owns no buffer (tokio's channel allocates a 32-slot block and a
//! cache-padded header up front), which keeps idle connections small.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

/// A frame queued for a connection, or an order for it.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    Text(bytestring::ByteString),
    Binary(actix_web::web::Bytes),
    /// Close the channel `topic` if its principal's session was revoked
    /// (checked again by the connection, whose principal may have changed since).
    Revoke(Arc<Revoke>),
}

/// Sessions revoked while a connection holds a channel of them.
#[derive(Debug)]
pub(crate) struct Revoke {
    /// Full topic of the channel, `realtime:<name>`.
    pub topic: String,
    /// What was revoked.
    pub event: goforward_core::bus::SessionsRevoked,
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

#[derive(Debug)]
struct Queue {
    items: Mutex<VecDeque<Out>>,
    capacity: usize,
    ready: Notify,
    kick: Kick,
}

/// The hub's end of a connection's queue.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    queue: Arc<Queue>,
}

/// The connection's end of its queue.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: Arc<Queue>,
}

/// Reason given to a consumer whose queue overflowed.
pub(crate) const SLOW_CONSUMER: &str = "slow consumer: send queue full";

/// A queue that grew past this many slots is given back when it empties.
const KEEP_CAPACITY: usize = 16;

impl Outbox {
    /// A queue of `capacity` frames: the outbox and its receiving end.
    pub(crate) fn new(capacity: usize) -> (Self, Inbox) {
        let queue = Arc::new(Queue {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
            kick: Kick::default(),
        });
        (
            Self {
                queue: Arc::clone(&queue),
            },
            Inbox { queue },
        )
    }

    /// Queues `out` without waiting; a full queue kicks the connection.
    pub(crate) fn send(&self, out: Out) {
        let queued = {
            let mut items = self
                .queue
                .items
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if items.len() >= self.queue.capacity {
                false
            } else {
                items.push_back(out);
                true
            }
        };
        if queued {
            self.queue.ready.notify_one();
        } else {
            self.queue.kick.kick(SLOW_CONSUMER);
        }
    }

    /// Queues a revocation; a full queue kicks the connection (which closes
    /// every channel, so the revoked session keeps nothing either way).
    pub(crate) fn revoke(&self, revoke: Revoke) {
        self.send(Out::Revoke(Arc::new(revoke)));
    }
}

impl Inbox {
    fn pop(&self) -> Option<Out> {
        let mut items = self
            .queue
            .items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let out = items.pop_front();
        if items.is_empty() && items.capacity() > KEEP_CAPACITY {
            *items = VecDeque::new();
        }
        out
    }

    /// The next queued frame (cancel-safe: nothing is taken until it is returned).
    pub(crate) async fn recv(&self) -> Out {
        loop {
            if let Some(out) = self.pop() {
                return out;
            }
            self.queue.ready.notified().await;
        }
    }

    /// Waits until the connection is kicked; returns the reason.
    pub(crate) async fn kicked(&self) -> &'static str {
        self.queue.kick.kicked().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_is_bounded_ordered_and_kicks_when_full() {
        let (outbox, inbox) = Outbox::new(2);
        outbox.send(Out::Text("a".into()));
        outbox.send(Out::Text("b".into()));
        assert!(matches!(inbox.recv().await, Out::Text(t) if t == "a"));
        outbox.send(Out::Text("c".into()));
        outbox.send(Out::Text("d".into()));
        let kicked = tokio::time::timeout(std::time::Duration::from_millis(100), inbox.kicked());
        assert_eq!(kicked.await.ok(), Some(SLOW_CONSUMER));
        assert!(matches!(inbox.recv().await, Out::Text(t) if t == "b"));
        assert!(matches!(inbox.recv().await, Out::Text(t) if t == "c"));
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), inbox.recv());
        assert!(
            waiting.await.is_err(),
            "the overflowing frame was not queued"
        );
        let clone = outbox.clone();
        let reader = tokio::spawn(async move { inbox.recv().await });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        clone.send(Out::Text("e".into()));
        assert!(matches!(reader.await.unwrap(), Out::Text(t) if t == "e"));
    }
}
