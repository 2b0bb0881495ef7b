//! Per-worker fan-out: the hub hands each HTTP worker one job per event, and a task
//! on that worker pushes the frames into its own connections' queues.
//!
//! A connection's queue is read by the HTTP dispatcher of the worker that accepted
//! it. When the hub's own task pushed into it, every delivery locked a queue last
//! touched by the other thread, bumped the shared frame's reference count against
//! the dispatcher's drops, and woke the dispatcher across threads (the worker's
//! shared run queue, and its driver when it slept). With one job per worker, the
//! pushes, the reference counts and the wakes of one event stay on the worker's
//! thread, and the dispatchers run in the order their frames were queued.
//!
//! Jobs of one worker run in the order the hub dispatched the events, so a
//! connection sees the hub's frames (broadcasts, presence diffs, changes) in bus
//! order, as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::ThreadId;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::{BroadcastMsg, Hub, Out, Outbox};

/// Index of a worker's shard in its hub.
pub(crate) type ShardId = u32;

/// Jobs a worker may have waiting before further ones are dropped (the worker is then
/// that many events behind; the bus itself skips events for a hub lagging behind).
const MAX_BACKLOG: usize = 4096;

/// What a shard's task does for one event.
pub(crate) enum Job {
    /// A broadcast to this shard's subscribers of its topic (looked up when the job
    /// runs: a join or leave made meanwhile on the worker counts).
    Broadcast(Arc<BroadcastMsg>),
    /// Frames (or revocations) the hub already addressed, pushed in order.
    Frames(Vec<(Outbox, Out)>),
}

/// The hub's end of a worker's shard.
pub(super) struct ShardHandle {
    thread: ThreadId,
    jobs: UnboundedSender<Job>,
    backlog: Arc<AtomicUsize>,
}

impl ShardHandle {
    /// Hands `job` to the worker (dropped if the worker is [`MAX_BACKLOG`] jobs behind
    /// or gone).
    pub(super) fn send(&self, job: Job) {
        if self.backlog.fetch_add(1, Ordering::Relaxed) >= MAX_BACKLOG {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!("realtime worker too far behind: dropped an event");
            return;
        }
        if self.jobs.send(job).is_err() {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Hub {
    /// The shard of the calling thread, an HTTP worker (its task is spawned on the
    /// worker's local runtime the first time).
    pub(crate) fn local_shard(self: &Arc<Self>) -> ShardId {
        let me = std::thread::current().id();
        let find = |shards: &[ShardHandle]| {
            shards
                .iter()
                .position(|s| s.thread == me)
                .and_then(|i| ShardId::try_from(i).ok())
        };
        if let Some(id) = find(&self.shards_read()) {
            return id;
        }
        let mut shards = self
            .shards
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(id) = find(&shards) {
            return id;
        }
        let id = ShardId::try_from(shards.len()).unwrap_or(ShardId::MAX);
        let (jobs, rx) = unbounded_channel();
        let backlog = Arc::new(AtomicUsize::new(0));
        shards.push(ShardHandle {
            thread: me,
            jobs,
            backlog: Arc::clone(&backlog),
        });
        drop(shards);
        actix_web::rt::spawn(run(Arc::downgrade(self), id, rx, backlog));
        id
    }

    /// Hands `job` to shard `id`.
    pub(super) fn send_job(&self, id: ShardId, job: Job) {
        if let Some(shard) = self.shards_read().get(id as usize) {
            shard.send(job);
        }
    }

    fn shards_read(&self) -> std::sync::RwLockReadGuard<'_, Vec<ShardHandle>> {
        self.shards
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A shard's task: runs the jobs of its worker, in order, until the hub is gone.
async fn run(
    hub: Weak<Hub>,
    id: ShardId,
    mut jobs: UnboundedReceiver<Job>,
    backlog: Arc<AtomicUsize>,
) {
    while let Some(job) = jobs.recv().await {
        backlog.fetch_sub(1, Ordering::Relaxed);
        let Some(hub) = hub.upgrade() else {
            return;
        };
        match job {
            Job::Broadcast(msg) => hub.broadcast_on(id, &msg),
            Job::Frames(frames) => {
                for (outbox, out) in frames {
                    outbox.send(out);
                }
            }
        }
    }
}

/// Frames the hub addresses while handling one event: pushed at once for subscribers
/// without a shard, otherwise collected and handed to each shard as one job.
#[derive(Default)]
pub(super) struct Batch {
    shards: Vec<(ShardId, Vec<(Outbox, Out)>)>,
}

impl Batch {
    /// Queues `out` for `sub`.
    pub(super) fn send(&mut self, sub: &super::Subscriber, out: Out) {
        let Some(id) = sub.shard else {
            sub.outbox.send(out);
            return;
        };
        let frames = match self.shards.iter().position(|(s, _)| *s == id) {
            Some(i) => &mut self.shards[i].1,
            None => {
                self.shards.push((id, Vec::new()));
                let last = self.shards.len() - 1;
                &mut self.shards[last].1
            }
        };
        frames.push((sub.outbox.clone(), out));
    }

    /// Hands the collected frames to their shards.
    pub(super) fn flush(self, hub: &Hub) {
        for (id, frames) in self.shards {
            hub.send_job(id, Job::Frames(frames));
        }
    }
}
