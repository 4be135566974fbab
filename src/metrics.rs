//! Live figures of this node for the admin page: messages accepted and their rate.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// The rate is measured over this window.
const WINDOW: Duration = Duration::from_secs(10);

pub struct Metrics {
    started: Instant,
    messages: AtomicU64,
    /// (when, messages so far) samples, oldest first, spanning about [`WINDOW`].
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            messages: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::from([(Instant::now(), 0)])),
        }
    }
}

impl Metrics {
    /// Counts one stored message.
    pub fn message_stored(&self) {
        self.messages.fetch_add(1, Ordering::Relaxed);
    }

    pub fn messages_total(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Messages per second over the last ten seconds or so.
    pub fn messages_per_second(&self) -> f64 {
        let now = Instant::now();
        let total = self.messages_total();
        let mut samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.push_back((now, total));
        while samples.len() > 2 && samples.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW) {
            samples.pop_front();
        }
        if samples.len() > 64 {
            samples.pop_front();
        }
        let (t0, n0) = samples.front().copied().unwrap_or((now, total));
        let secs = now.duration_since(t0).as_secs_f64();
        if secs < 0.5 {
            return 0.0;
        }
        ((total - n0) as f64 / secs * 10.0).round() / 10.0
    }
}
