//! A connection's bounded send queue, which is also the WebSocket's response body.
//!
//! The hub and the connection's task push frames; the HTTP dispatcher pulls
//! them through [`SocketBody`] whenever the socket can take more, encoding
//! everything queued into one write. There is no task hop per frame and no
//! per-connection channel allocated up front (actix-ws's `Session` holds a
//! 32-slot tokio channel): an empty queue owns no buffer.
//!
//! A full queue, or frames the socket has not taken for `write_timeout`, mark a
//! slow consumer: the connection is kicked and closed rather than the queue grown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_http::ws::{CloseReason, OpCode, Parser};
use actix_web::body::{BodySize, MessageBody};
use actix_web::web::{Bytes, BytesMut};
use prometheus::IntCounter;
use tokio::sync::Notify;
use tokio::time::Instant;

/// A frame queued for a connection, or an order for it.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    Text(bytestring::ByteString),
    Binary(Bytes),
    /// Answer to a client's ping (queued by the connection itself).
    Pong(Bytes),
    /// The close frame, last of all (queued by the connection itself).
    Close(Option<CloseReason>),
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

/// What the connection's task must act on.
#[derive(Debug)]
pub(crate) enum Order {
    /// Close the socket with this reason (slow consumer).
    Kick(&'static str),
    /// A revoked session.
    Revoke(Arc<Revoke>),
}

#[derive(Debug, Default)]
struct Inner {
    /// Frames for the socket, oldest first.
    frames: VecDeque<Out>,
    /// Orders for the connection's task, oldest first.
    orders: VecDeque<Arc<Revoke>>,
    /// The body's waker while it waits for frames.
    waker: Option<Waker>,
    /// While the connection handles a client message: how many queued frames the
    /// socket may take (those queued before); the connection's own frames go there,
    /// so a reply precedes what the hub queued meanwhile (its broadcast's echo, …).
    held: Option<usize>,
    /// Since when [`STALL_CHECK`] or more frames wait for the socket.
    stalled_since: Option<Instant>,
    /// No frame is queued any more; the body ends once the queue is drained.
    closed: bool,
}

#[derive(Debug)]
struct Queue {
    inner: Mutex<Inner>,
    capacity: usize,
    write_timeout: Duration,
    /// Wakes the connection's task (kick or order).
    task: Notify,
    kick: OnceLock<&'static str>,
    /// Counts the text and binary frames handed to the socket.
    written: Option<IntCounter>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn kick(&self, reason: &'static str) {
        if self.kick.set(reason).is_ok() {
            self.task.notify_one();
        }
    }
}

/// The hub's end of a connection's queue.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    queue: Arc<Queue>,
}

/// The connection task's end of its queue.
#[derive(Debug)]
pub(crate) struct Inbox {
    queue: Arc<Queue>,
}

/// The WebSocket response body: the queued frames, encoded.
#[derive(Debug)]
pub(crate) struct SocketBody {
    queue: Arc<Queue>,
    done: bool,
}

/// Reason given to a consumer whose queue overflowed or stalled.
pub(crate) const SLOW_CONSUMER: &str = "slow consumer: send queue full";

/// A queue that grew past this many slots is given back when it empties.
const KEEP_CAPACITY: usize = 16;

/// From this many waiting frames on, their age is checked against `write_timeout`
/// (an emptier queue never reads the clock).
const STALL_CHECK: usize = 8;

/// At most this many bytes are encoded per body chunk.
const MAX_CHUNK: usize = 64 * 1024;

impl Outbox {
    /// A queue of `capacity` frames whose frames must be taken within
    /// `write_timeout`; `written` counts the frames handed to the socket.
    /// Returns the hub's end, the task's end and the response body.
    pub(crate) fn new(
        capacity: usize,
        write_timeout: Duration,
        written: Option<IntCounter>,
    ) -> (Self, Inbox, SocketBody) {
        let queue = Arc::new(Queue {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            write_timeout,
            task: Notify::new(),
            kick: OnceLock::new(),
            written,
        });
        (
            Self {
                queue: Arc::clone(&queue),
            },
            Inbox {
                queue: Arc::clone(&queue),
            },
            SocketBody { queue, done: false },
        )
    }

    /// Queues `out` without waiting. A full queue, or one whose frames have
    /// waited for the socket longer than the write timeout, kicks the connection.
    pub(crate) fn send(&self, out: Out) {
        self.push(out, false);
    }

    /// Queues a frame of the connection itself: while it handles a client message,
    /// ahead of what the hub queued since the handling began.
    pub(crate) fn send_own(&self, out: Out) {
        self.push(out, true);
    }

    fn push(&self, out: Out, own: bool) {
        let queue = &self.queue;
        let mut inner = queue.lock();
        if inner.closed {
            return;
        }
        if let Out::Revoke(revoke) = out {
            inner.orders.push_back(revoke);
            drop(inner);
            queue.task.notify_one();
            return;
        }
        let len = inner.frames.len();
        let mut stalled = len >= queue.capacity;
        if !stalled && len >= STALL_CHECK {
            let now = Instant::now();
            let since = *inner.stalled_since.get_or_insert(now);
            stalled = now.saturating_duration_since(since) >= queue.write_timeout;
        }
        if stalled {
            drop(inner);
            queue.kick(SLOW_CONSUMER);
            return;
        }
        match inner.held {
            Some(at) if own => {
                inner.frames.insert(at, out);
                inner.held = Some(at + 1);
            }
            _ => inner.frames.push_back(out),
        }
        let waker = inner.waker.take();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Inbox {
    /// The next order (cancel-safe: nothing is taken until it is returned). A kick
    /// comes before any revocation.
    pub(crate) async fn order(&self) -> Order {
        loop {
            if let Some(reason) = self.queue.kick.get() {
                return Order::Kick(reason);
            }
            if let Some(revoke) = self.queue.lock().orders.pop_front() {
                return Order::Revoke(revoke);
            }
            self.queue.task.notified().await;
        }
    }

    /// The connection starts handling a client message: frames queued from now on
    /// by others wait until [`Inbox::release`].
    pub(crate) fn hold(&self) {
        let mut inner = self.queue.lock();
        inner.held = Some(inner.frames.len());
    }

    /// The handling is over: every queued frame may go.
    pub(crate) fn release(&self) {
        let mut inner = self.queue.lock();
        inner.held = None;
        let waker = if inner.frames.is_empty() {
            None
        } else {
            inner.waker.take()
        };
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ends the socket: drops what is still queued, then sends the close frame
    /// (`Some`) or nothing (`None`: the client is gone).
    pub(crate) fn close(&self, frame: Option<Option<CloseReason>>) {
        let mut inner = self.queue.lock();
        inner.frames = VecDeque::new();
        inner.orders = VecDeque::new();
        inner.held = None;
        if let Some(reason) = frame {
            inner.frames.push_back(Out::Close(reason));
        }
        inner.closed = true;
        let waker = inner.waker.take();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// The next frame queued for the socket, if any (tests read the queue instead
    /// of a socket).
    #[cfg(test)]
    pub(crate) async fn recv(&self) -> Out {
        loop {
            if let Some(out) = self.queue.lock().frames.pop_front() {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl SocketBody {
    /// Encodes the queued frames (up to [`MAX_CHUNK`] bytes) into one chunk.
    fn encode(&self, inner: &mut Inner, available: usize) -> Bytes {
        // Sized for what will be taken (payloads plus at most 10 header bytes each), so
        // the chunk is allocated once instead of grown frame by frame.
        let mut size = 0usize;
        for out in inner.frames.iter().take(available) {
            size += 10
                + match out {
                    Out::Text(text) => text.len(),
                    Out::Binary(bytes) | Out::Pong(bytes) => bytes.len(),
                    Out::Close(reason) => reason
                        .as_ref()
                        .map_or(0, |r| 2 + r.description.as_ref().map_or(0, String::len)),
                    Out::Revoke(_) => 0,
                };
            if size >= MAX_CHUNK {
                break;
            }
        }
        let mut buf = BytesMut::with_capacity(size);
        let mut written = 0u64;
        let mut taken = 0;
        while buf.len() < MAX_CHUNK && taken < available {
            let Some(out) = inner.frames.pop_front() else {
                break;
            };
            taken += 1;
            match out {
                Out::Text(text) => {
                    Parser::write_message(&mut buf, text.as_bytes(), OpCode::Text, true, false);
                    written += 1;
                }
                Out::Binary(bytes) => {
                    Parser::write_message(&mut buf, bytes, OpCode::Binary, true, false);
                    written += 1;
                }
                Out::Pong(bytes) => {
                    Parser::write_message(&mut buf, bytes, OpCode::Pong, true, false);
                }
                Out::Close(reason) => Parser::write_close(&mut buf, reason, false),
                Out::Revoke(_) => {}
            }
        }
        inner.held = inner.held.map(|held| held.saturating_sub(taken));
        inner.stalled_since = None;
        if inner.frames.is_empty() && inner.frames.capacity() > KEEP_CAPACITY {
            inner.frames = VecDeque::new();
        }
        if let Some(counter) = &self.queue.written {
            counter.inc_by(written);
        }
        buf.freeze()
    }
}

impl MessageBody for SocketBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let queue = Arc::clone(&this.queue);
        let mut inner = queue.lock();
        let available = inner.held.unwrap_or(inner.frames.len());
        if available == 0 {
            if inner.closed && inner.frames.is_empty() {
                this.done = true;
                return Poll::Ready(None);
            }
            if !inner
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                inner.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        Poll::Ready(Some(Ok(this.encode(&mut inner, available))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next_chunk(body: &mut SocketBody) -> Poll<Option<Bytes>> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        Pin::new(body)
            .poll_next(&mut cx)
            .map(|c| c.map(|r| r.unwrap_or_else(|never| match never {})))
    }

    #[tokio::test]
    async fn queue_is_bounded_ordered_and_kicks_when_full() {
        let (outbox, inbox, mut body) = Outbox::new(2, Duration::from_secs(10), None);
        assert!(next_chunk(&mut body).is_pending());
        outbox.send(Out::Text("a".into()));
        outbox.send(Out::Text("b".into()));
        // Both frames in one chunk, in order: text frames (0x81), unmasked, lengths 1.
        let Poll::Ready(Some(chunk)) = next_chunk(&mut body) else {
            panic!("no chunk")
        };
        assert_eq!(&chunk[..], b"\x81\x01a\x81\x01b");
        outbox.send(Out::Text("c".into()));
        outbox.send(Out::Text("d".into()));
        outbox.send(Out::Text("e".into()));
        let kicked = tokio::time::timeout(Duration::from_millis(100), inbox.order());
        assert!(matches!(kicked.await, Ok(Order::Kick(SLOW_CONSUMER))));
        let Poll::Ready(Some(chunk)) = next_chunk(&mut body) else {
            panic!("no chunk")
        };
        assert_eq!(
            &chunk[..],
            b"\x81\x01c\x81\x01d",
            "the overflowing frame was not queued"
        );
        inbox.close(Some(None));
        let Poll::Ready(Some(chunk)) = next_chunk(&mut body) else {
            panic!("no close frame")
        };
        assert_eq!(&chunk[..], b"\x88\x00");
        assert!(matches!(next_chunk(&mut body), Poll::Ready(None)));
        outbox.send(Out::Text("late".into()));
        assert!(matches!(next_chunk(&mut body), Poll::Ready(None)));
    }

    #[tokio::test]
    async fn frames_waiting_past_the_write_timeout_kick() {
        let (outbox, inbox, mut body) = Outbox::new(100, Duration::from_millis(50), None);
        for _ in 0..=STALL_CHECK {
            outbox.send(Out::Text("x".into()));
        }
        tokio::time::sleep(Duration::from_millis(80)).await;
        outbox.send(Out::Text("y".into()));
        let kicked = tokio::time::timeout(Duration::from_millis(100), inbox.order());
        assert!(matches!(kicked.await, Ok(Order::Kick(SLOW_CONSUMER))));
        // A socket that keeps taking its frames is never kicked.
        let (outbox, inbox, mut fast) = Outbox::new(100, Duration::from_millis(50), None);
        for _ in 0..20 {
            for _ in 0..=STALL_CHECK {
                outbox.send(Out::Text("x".into()));
            }
            assert!(next_chunk(&mut fast).is_ready());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let kicked = tokio::time::timeout(Duration::from_millis(50), inbox.order());
        assert!(kicked.await.is_err());
        assert!(next_chunk(&mut body).is_ready());
    }

    #[test]
    fn replies_precede_what_the_hub_queued_while_handling() {
        let (outbox, inbox, mut body) = Outbox::new(8, Duration::from_secs(10), None);
        outbox.send(Out::Text("a".into()));
        inbox.hold();
        outbox.send(Out::Text("h".into()));
        outbox.send_own(Out::Text("r".into()));
        let Poll::Ready(Some(chunk)) = next_chunk(&mut body) else {
            panic!("no chunk")
        };
        assert_eq!(&chunk[..], b"\x81\x01a\x81\x01r", "the hub's frame waits");
        assert!(next_chunk(&mut body).is_pending());
        outbox.send_own(Out::Text("s".into()));
        inbox.release();
        let Poll::Ready(Some(chunk)) = next_chunk(&mut body) else {
            panic!("no chunk")
        };
        assert_eq!(&chunk[..], b"\x81\x01s\x81\x01h");
    }

    #[tokio::test]
    async fn revocations_go_to_the_task_not_the_socket() {
        let (outbox, inbox, mut body) = Outbox::new(4, Duration::from_secs(10), None);
        let reader = tokio::spawn(async move { inbox.order().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        outbox.send(Out::Revoke(Arc::new(Revoke {
            topic: "realtime:t".into(),
            event: goforward_core::bus::SessionsRevoked {
                user_id: "u".into(),
                session_ids: None,
                reason: "signed_out".into(),
            },
        })));
        let order = reader.await.unwrap();
        assert!(matches!(order, Order::Revoke(r) if r.topic == "realtime:t"));
        assert!(next_chunk(&mut body).is_pending());
    }
}
