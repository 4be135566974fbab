//! Password hashing (Argon2id, OWASP parameters: 19 MiB, 2 passes, 1 lane) behind a bound: each
//! hash holds 19 MiB for tens of milliseconds, so unbounded parallel logins grow the process by
//! gigabytes (300 of them grew a server by 5.7 GiB). At most [`Hashing::running`] hashes run at
//! once (one per core) and at most [`QUEUED`] wait; beyond that a login or registration is
//! answered 503 with `Retry-After` at once, holding nothing.
//!
//! A login for an unknown e-mail verifies against a dummy hash, so timing does not tell which
//! accounts exist; it passes through the same bound.

use std::sync::{
    Arc, LazyLock,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::{error::ApiError, telemetry::spawn_blocking_in_span};

/// Hashes allowed to wait for a core: a class of 30 signing up at the same moment waits (about
/// 30 × 25 ms over 2 cores: under half a second) instead of being refused; past 64, waiting would
/// only build up latency, so callers are told to come back.
pub const QUEUED: usize = 64;

/// Most hashes running at once: one per core, at most 16 (memory: 19 MiB each).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 16))
}

/// The bounded hashing pool every login and registration goes through.
pub struct Hashing {
    permits: Arc<Semaphore>,
    running: usize,
    /// Running plus waiting.
    admitted: AtomicUsize,
}

impl Default for Hashing {
    fn default() -> Self {
        let running = cores();
        Self {
            permits: Arc::new(Semaphore::new(running)),
            running,
            admitted: AtomicUsize::new(0),
        }
    }
}

/// Gives the place back however the hash ends (also when the request is dropped while waiting).
struct Admitted<'a>(&'a AtomicUsize);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The password hash of an account that has no password (created or linked by OpenID Connect
/// sign-in): not a PHC string, so it never verifies, whatever is typed.
pub const NO_PASSWORD: &str = "!no-password";

/// A hash to verify against when the e-mail is unknown, so both paths cost the same.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    Argon2::default()
        .hash_password(b"not the password of anyone")
        .map(|h| h.to_string())
        .unwrap_or_default()
});

impl Hashing {
    /// Most hashes running at once.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Runs `work` on the blocking pool once a core is free.
    ///
    /// # Errors
    /// [`ApiError::Busy`] at once when [`QUEUED`] hashes already wait.
    async fn run<R: Send + 'static>(&self, work: impl FnOnce() -> R + Send + 'static) -> Result<R, ApiError> {
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.running + QUEUED {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Busy { retry_after: 1 });
        }
        let _place = Admitted(&self.admitted);
        let _permit = self.permits.acquire().await.map_err(|e| ApiError::Internal(e.into()))?;
        spawn_blocking_in_span(work)
            .await
            .map_err(|e| ApiError::Internal(e.into()))
    }

    /// The PHC string of `password`.
    ///
    /// # Errors
    /// [`ApiError::Busy`] when the pool is full; [`ApiError::Internal`] if hashing fails.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|h| h.to_string())
        })
        .await?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing failed: {e}")))
    }

    /// Whether `password` matches `hash`; `None`, or an account without a password
    /// ([`NO_PASSWORD`]), checks against a dummy hash (always false), so neither answers sooner.
    ///
    /// # Errors
    /// [`ApiError::Busy`] when the pool is full.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        self.run(move || {
            let hash = hash.filter(|h| h != NO_PASSWORD);
            let known = hash.is_some();
            let hash = hash.unwrap_or_else(|| DUMMY_HASH.clone());
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok();
            known && matches
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_a_full_pool_answers_busy_at_once() {
        let h = Hashing::default();
        let hash = h.hash("correct horse".into()).await.unwrap();
        assert!(h.verify("correct horse".into(), Some(hash.clone())).await.unwrap());
        assert!(!h.verify("wrong".into(), Some(hash)).await.unwrap());
        assert!(
            !h.verify("anything".into(), None).await.unwrap(),
            "unknown accounts never match"
        );
        assert!(
            !h.verify(NO_PASSWORD.into(), Some(NO_PASSWORD.into())).await.unwrap(),
            "an account without a password never matches"
        );
        h.admitted.store(h.running() + QUEUED, Ordering::Release);
        let started = std::time::Instant::now();
        assert!(matches!(
            h.hash("x".into()).await,
            Err(ApiError::Busy { retry_after: 1 })
        ));
        assert!(
            started.elapsed() < std::time::Duration::from_millis(50),
            "answered at once"
        );
    }
}
