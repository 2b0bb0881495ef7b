//! Open sockets per client IP, and per user.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts holders per key (client IP, user id), up to a maximum.
#[derive(Debug)]
pub(crate) struct Slots<K: Hash + Eq + Clone> {
    max: usize,
    counts: Mutex<HashMap<K, usize>>,
}

/// Open sockets per client IP.
pub(crate) type IpSlots = Slots<IpAddr>;
/// One open socket's slot of its client IP.
pub(crate) type IpSlot = Slot<IpAddr>;
/// Connections per user (those holding a channel joined with the user's token).
pub(crate) type UserSlots = Slots<String>;

/// One held slot; freed when dropped.
#[derive(Debug)]
pub(crate) struct Slot<K: Hash + Eq + Clone> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `key`; `None` when it already has the maximum.
    pub(crate) fn acquire(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: Arc::clone(self),
            key,
        })
    }
}

impl<K: Hash + Eq + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut counts = self
            .slots
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_freed() {
        let slots = IpSlots::new(2);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = slots.acquire(ip).unwrap();
        let _b = slots.acquire(ip).unwrap();
        assert!(slots.acquire(ip).is_none());
        assert!(slots.acquire("10.0.0.2".parse().unwrap()).is_some());
        drop(a);
        assert!(slots.acquire(ip).is_some());
        let users = UserSlots::new(1);
        let u = users.acquire("u1".to_owned()).unwrap();
        assert!(users.acquire("u1".to_owned()).is_none());
        drop(u);
        assert!(users.acquire("u1".to_owned()).is_some());
    }
}
