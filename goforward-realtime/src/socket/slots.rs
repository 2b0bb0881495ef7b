//! Open sockets per client IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Counts open sockets per IP, up to a maximum.
#[derive(Debug)]
pub(crate) struct IpSlots {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One open socket; frees its slot when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<IpSlots>,
    ip: IpAddr,
}

impl IpSlots {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a slot for `ip`; `None` when it already has the maximum.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self
            .slots
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.ip);
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
    }
}
