//! The bound on picture work (thumbnails, avatars), like password hashing's
//! ([`super::passwords`]): decoding a photo holds up to 160 MB ([`crate::files::images`]) and a
//! core for tens of milliseconds, so at most one job per core runs at once and at most
//! [`QUEUED`] wait. Past that the caller is told at once: an upload is kept without a thumbnail,
//! an avatar is answered 503 with `Retry-After`. A slot is held while the picture is read into
//! memory too, so the bytes held for picture work are bounded as well (an avatar's body must
//! arrive within HTTP_BODY_TIMEOUT_SECS, so a slow client holds a slot for at most that long).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{error::ApiError, telemetry::spawn_blocking_in_span};

/// Picture jobs allowed to wait for a core: a class sharing photos at once (about 30 ms each on
/// one core) waits well under a second; more waiting would only hold memory.
pub const QUEUED: usize = 16;

/// The bounded pool picture work goes through.
pub struct Imaging {
    permits: Arc<Semaphore>,
    running: usize,
    /// Running plus waiting.
    admitted: Arc<AtomicUsize>,
}

impl Default for Imaging {
    fn default() -> Self {
        let running = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
        Self {
            permits: Arc::new(Semaphore::new(running)),
            running,
            admitted: Arc::default(),
        }
    }
}

/// A place in the pool, held while the caller reads the picture and runs its work; given back
/// when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    admitted: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Gives the place back if the request is dropped while waiting.
struct Waiting(Option<Arc<AtomicUsize>>);

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(a) = self.0.take() {
            a.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Imaging {
    /// Waits for a core; hold the slot while reading the picture into memory and working on it
    /// ([`Slot::run`]), so that memory is bounded too.
    ///
    /// # Errors
    /// [`ApiError::Busy`] at once when [`QUEUED`] jobs already wait.
    pub async fn slot(&self) -> Result<Slot, ApiError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.running + QUEUED {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Busy { retry_after: 1 });
        }
        let mut waiting = Waiting(Some(self.admitted.clone()));
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        Ok(Slot {
            _permit: permit,
            admitted: waiting.0.take().expect("set above"),
        })
    }
}

impl Slot {
    /// Runs `work` on the blocking pool, in the caller's span.
    ///
    /// # Errors
    /// [`ApiError::Internal`] if the work panicked.
    pub async fn run<R: Send + 'static>(&self, work: impl FnOnce() -> R + Send + 'static) -> Result<R, ApiError> {
        spawn_blocking_in_span(work)
            .await
            .map_err(|e| ApiError::Internal(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_pool_answers_busy_at_once_and_slots_come_back() {
        let pool = Imaging::default();
        let slot = pool.slot().await.unwrap();
        assert_eq!(slot.run(|| 2 + 2).await.unwrap(), 4);
        drop(slot);
        assert_eq!(pool.admitted.load(Ordering::Acquire), 0, "given back");
        pool.admitted.store(pool.running + QUEUED, Ordering::Release);
        let started = std::time::Instant::now();
        assert!(matches!(pool.slot().await, Err(ApiError::Busy { retry_after: 1 })));
        assert!(started.elapsed() < std::time::Duration::from_millis(50));
    }
}
