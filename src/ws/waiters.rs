//! Long polls waiting for a user's next notification. A waiting poll holds one [`Poll`] (a
//! `Notify` handle and its place in the count), no thread and no database connection; the hub
//! wakes the polls of a user when a broadcast that makes a notification for that user passes
//! through it, on whichever node the broadcast was published.
//!
//! Each user may hold at most [`MAX_POLLS_PER_USER`] polls on one node: a poll beyond it is
//! refused at once, so one account cannot park an unbounded number of requests.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::sync::Notify;

use crate::domain::UserId;

/// Long polls one user may have waiting on one node at a time: one per open tab or device, and a
/// few to spare. A well-behaved client holds one poll per tab; a script holding more gains
/// nothing but load on the server (each woken poll runs its queries).
pub const MAX_POLLS_PER_USER: usize = 4;

/// A user's waiting polls: the handle they wait on and how many hold it.
struct Waiting {
    notify: Arc<Notify>,
    polls: usize,
}

#[derive(Default)]
pub struct Waiters {
    users: Mutex<HashMap<UserId, Waiting>>,
    /// Polls woken so far (each poll of each woken user counts once per wake-up).
    woken: AtomicU64,
}

/// One waiting poll's place. Dropping it gives the place back, however the poll ends (answered,
/// failed, or abandoned by a client that went away).
pub struct Poll<'a> {
    waiters: &'a Waiters,
    user: UserId,
    notify: Arc<Notify>,
}

impl Poll<'_> {
    /// The handle this poll waits on.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for Poll<'_> {
    fn drop(&mut self) {
        let mut users = self.waiters.lock();
        if let Some(w) = users.get_mut(&self.user) {
            w.polls -= 1;
            if w.polls == 0 {
                users.remove(&self.user);
            }
        }
    }
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Waiting>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for one more poll of `user`; `None` when that user already has
    /// [`MAX_POLLS_PER_USER`] waiting on this node.
    pub fn enter(&self, user: UserId) -> Option<Poll<'_>> {
        let mut users = self.lock();
        let w = users.entry(user).or_insert_with(|| Waiting {
            notify: Arc::default(),
            polls: 0,
        });
        if w.polls >= MAX_POLLS_PER_USER {
            return None;
        }
        w.polls += 1;
        Some(Poll {
            waiters: self,
            user,
            notify: w.notify.clone(),
        })
    }

    /// Wakes the polls of these users.
    pub fn wake<'a>(&self, users: impl IntoIterator<Item = &'a UserId>) {
        let waiting = self.lock();
        if waiting.is_empty() {
            return;
        }
        let mut woken = 0;
        for u in users {
            if let Some(w) = waiting.get(u) {
                w.notify.notify_waiters();
                woken += w.polls as u64;
            }
        }
        drop(waiting);
        self.woken.fetch_add(woken, Ordering::Relaxed);
    }

    /// Wakes every poll (a message to everyone, or a catch-up after a bus outage).
    pub fn wake_all(&self) {
        let waiting = self.lock();
        let woken: usize = waiting
            .values()
            .map(|w| {
                w.notify.notify_waiters();
                w.polls
            })
            .sum();
        drop(waiting);
        self.woken.fetch_add(woken as u64, Ordering::Relaxed);
    }

    /// Polls woken since start: how much work broadcasts caused here.
    pub fn wakeups(&self) -> u64 {
        self.woken.load(Ordering::Relaxed)
    }

    /// Polls waiting now, all users together.
    pub fn len(&self) -> usize {
        self.lock().values().map(|w| w.polls).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wakes_only_the_named_user_and_cleans_up() {
        let w = Waiters::default();
        let a = w.enter(UserId(1)).unwrap();
        let b = w.enter(UserId(2)).unwrap();
        {
            let wait_a = a.notify().notified();
            let wait_b = b.notify().notified();
            tokio::pin!(wait_a, wait_b);
            wait_a.as_mut().enable();
            wait_b.as_mut().enable();
            w.wake([&UserId(1)]);
            tokio::time::timeout(Duration::from_secs(1), wait_a)
                .await
                .expect("user 1 woken");
            assert!(
                tokio::time::timeout(Duration::from_millis(50), wait_b).await.is_err(),
                "user 2 not woken"
            );
        }
        assert_eq!(w.wakeups(), 1);
        drop(a);
        drop(b);
        assert!(w.is_empty());
    }

    #[test]
    fn caps_the_polls_of_one_user_and_gives_places_back() {
        let w = Waiters::default();
        let held: Vec<_> = (0..MAX_POLLS_PER_USER).map(|_| w.enter(UserId(1)).unwrap()).collect();
        assert!(w.enter(UserId(1)).is_none(), "one over the cap is refused");
        let other = w.enter(UserId(2)).expect("another user is not affected");
        w.wake_all();
        assert_eq!(w.wakeups(), MAX_POLLS_PER_USER as u64 + 1, "every waiting poll counted");
        drop(held);
        let again = w.enter(UserId(1)).expect("places come back when polls end");
        drop(again);
        drop(other);
        assert!(w.is_empty());
    }
}
