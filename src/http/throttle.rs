//! Login throttling: after [`MAX_FAILURES`] wrong passwords for one e-mail within [`WINDOW`], that
//! e-mail answers 429 until the window has passed. Counted per node, in memory; the map is pruned
//! so it stays bounded whatever addresses an attacker tries.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Failed logins allowed per e-mail per window.
pub const MAX_FAILURES: u32 = 10;
/// Length of the counting window.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries kept before expired ones are pruned (about 100 bytes each).
const PRUNE_AT: usize = 100_000;

#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginThrottle {
    /// `Err(seconds to wait)` while `key` is locked out.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(key) {
            Some(&(count, since)) if count >= MAX_FAILURES && since.elapsed() < WINDOW => {
                Err((WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed attempt for `key`.
    pub fn failed(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= PRUNE_AT {
            map.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let entry = map.entry(key.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets the failures of `key` (after a successful login).
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures_and_success_resets() {
        let t = LoginThrottle::default();
        for _ in 0..MAX_FAILURES {
            assert!(t.check("a@b.c").is_ok());
            t.failed("a@b.c");
        }
        let wait = t.check("a@b.c").unwrap_err();
        assert!(wait > 0 && wait <= WINDOW.as_secs());
        assert!(t.check("other@b.c").is_ok(), "other accounts are not affected");
        t.succeeded("a@b.c");
        assert!(t.check("a@b.c").is_ok());
    }
}
