//! Long polls waiting for a user's next notification. A waiting poll holds one `Notify` handle,
//! no thread and no database connection; the hub wakes every poll of a user when a broadcast for
//! that user passes through it, on whichever node the broadcast was published.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::Notify;

use crate::domain::UserId;

#[derive(Default)]
pub struct Waiters {
    users: Mutex<HashMap<UserId, Arc<Notify>>>,
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Arc<Notify>>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle to wait on for `user`; pair with [`Waiters::release`].
    pub fn handle(&self, user: UserId) -> Arc<Notify> {
        self.lock().entry(user).or_default().clone()
    }

    /// Gives a handle back; the entry goes when its last poll is done.
    pub fn release(&self, user: UserId, handle: Arc<Notify>) {
        let mut users = self.lock();
        drop(handle);
        if users.get(&user).is_some_and(|n| Arc::strong_count(n) == 1) {
            users.remove(&user);
        }
    }

    /// Wakes the polls of these users.
    pub fn wake<'a>(&self, users: impl IntoIterator<Item = &'a UserId>) {
        let waiting = self.lock();
        if waiting.is_empty() {
            return;
        }
        for u in users {
            if let Some(n) = waiting.get(u) {
                n.notify_waiters();
            }
        }
    }

    /// Wakes every poll (a broadcast to everyone).
    pub fn wake_all(&self) {
        self.lock().values().for_each(|n| n.notify_waiters());
    }

    /// Polls waiting now (users with at least one).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_only_the_named_user_and_cleans_up() {
        let w = Waiters::default();
        let a = w.handle(UserId(1));
        let b = w.handle(UserId(2));
        {
            let wait_a = a.notified();
            let wait_b = b.notified();
            tokio::pin!(wait_a, wait_b);
            wait_a.as_mut().enable();
            wait_b.as_mut().enable();
            w.wake([&UserId(1)]);
            tokio::time::timeout(std::time::Duration::from_secs(1), wait_a)
                .await
                .expect("user 1 woken");
            assert!(
                tokio::time::timeout(std::time::Duration::from_millis(50), wait_b)
                    .await
                    .is_err(),
                "user 2 not woken"
            );
        }
        w.release(UserId(1), a);
        w.release(UserId(2), b);
        assert!(w.is_empty());
    }
}
