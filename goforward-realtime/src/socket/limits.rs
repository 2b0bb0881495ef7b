//! Per-connection rate windows.

use std::time::Duration;

use tokio::time::Instant;

/// At most `limit` events per one-second window.
#[derive(Debug)]
pub(crate) struct Window {
    limit: u32,
    start: Instant,
    count: u32,
}

impl Window {
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            limit,
            start: Instant::now(),
            count: 0,
        }
    }

    /// Counts one event; `false` when the window is already full.
    pub(crate) fn allow(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.start) >= Duration::from_secs(1) {
            self.start = now;
            self.count = 0;
        }
        if self.count >= self.limit {
            return false;
        }
        self.count += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn window_resets_each_second() {
        let mut w = Window::new(2);
        assert!(w.allow() && w.allow());
        assert!(!w.allow());
        tokio::time::sleep(Duration::from_millis(1010)).await;
        assert!(w.allow());
    }
}
