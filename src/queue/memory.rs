//! The embedded queue: a FIFO in memory, with the Redis queue's claim / ack / re-queue semantics
//! so the worker runs the same code on both.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::Claimed;

/// A claimed job not acknowledged within this time is handed out again.
pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Inner {
    ready: VecDeque<String>,
    claimed: HashMap<String, Instant>,
    dead: Vec<String>,
}

#[derive(Clone, Default)]
pub struct MemoryQueue {
    inner: Arc<Mutex<Inner>>,
    ready: Arc<Notify>,
}

impl MemoryQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, jobs: &[String]) {
        self.lock().ready.extend(jobs.iter().cloned());
        for _ in jobs {
            self.ready.notify_one();
        }
    }

    pub async fn claim(&self, wait: Duration) -> Option<Claimed> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a push in between is not missed.
            let notified = self.ready.notified();
            {
                let mut inner = self.lock();
                if let Some(raw) = inner.ready.pop_front() {
                    inner.claimed.insert(raw.clone(), Instant::now());
                    return Some(Claimed { raw });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    pub fn ack(&self, job: &Claimed) {
        self.lock().claimed.remove(&job.raw);
    }

    pub fn dead_letter(&self, job: &Claimed) {
        let mut inner = self.lock();
        inner.claimed.remove(&job.raw);
        inner.dead.push(job.raw.clone());
    }

    pub fn depth(&self) -> u64 {
        self.lock().ready.len() as u64
    }

    pub fn requeue_expired(&self) -> u64 {
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .claimed
            .iter()
            .filter(|(_, since)| since.elapsed() >= VISIBILITY_TIMEOUT)
            .map(|(raw, _)| raw.clone())
            .collect();
        for raw in &expired {
            inner.claimed.remove(raw);
            inner.ready.push_front(raw.clone());
        }
        drop(inner);
        if !expired.is_empty() {
            self.ready.notify_one();
        }
        expired.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fifo_claim_ack() {
        let q = MemoryQueue::default();
        q.push(&["a".into(), "b".into()]);
        assert_eq!(q.depth(), 2);
        let a = q.claim(Duration::from_millis(10)).await.unwrap();
        assert_eq!(a.raw, "a");
        q.ack(&a);
        assert_eq!(q.claim(Duration::from_millis(10)).await.unwrap().raw, "b");
        assert!(q.claim(Duration::from_millis(10)).await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_claim_wakes_on_push() {
        let q = MemoryQueue::default();
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.claim(Duration::from_secs(5)).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        q.push(&["x".into()]);
        assert_eq!(waiter.await.unwrap().unwrap().raw, "x");
    }

    #[tokio::test]
    async fn unacknowledged_jobs_come_back_after_the_visibility_timeout() {
        let q = MemoryQueue::default();
        q.push(&["x".into()]);
        let _lost = q.claim(Duration::from_millis(1)).await.unwrap();
        assert_eq!(q.requeue_expired(), 0);
        // Instant (std) is not paused by tokio: backdate the claim instead of sleeping.
        for t in q.lock().claimed.values_mut() {
            *t = t
                .checked_sub(VISIBILITY_TIMEOUT)
                .expect("the clock is past the timeout");
        }
        assert_eq!(q.requeue_expired(), 1);
        assert_eq!(q.claim(Duration::from_millis(1)).await.unwrap().raw, "x");
    }
}
