//! Rate limits shared by HTTP and WebSocket paths: fixed-window counters keyed by what is being
//! limited (an account, a client address, a user). With Redis they are counted in Redis, so every
//! node sees the same count; embedded, in this process.
//!
//! A hit is counted *before* the work it guards, in one atomic step (`INCR` in a Lua script, or a
//! mutex here), so N parallel requests cannot all pass a check made before any of them counted.
//! Successful logins give their count back ([`Limiter::forgive`]).
//!
//! Both homes are bounded: Redis keys expire with their window; the in-process map holds at most
//! [`MAX_LOCAL_KEYS`] keys, and once full (after dropping expired ones) a new key is refused
//! rather than grown — under such a flood, new callers wait for the window.
//!
//! When Redis does not answer, counting falls back to this node's own counts (logged), so an
//! outage of Redis neither locks every user out nor lifts the limits.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;

/// One kind of limit: at most `max` hits per key within `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Part of the counter's key: limits never share counts.
    pub name: &'static str,
    pub max: u32,
    pub window: Duration,
}

/// Failed logins per account: ten guesses per quarter hour, then 429 until the window ends.
pub const LOGIN_FAILURES_PER_ACCOUNT: Limit = Limit {
    name: "login-account",
    max: 10,
    window: Duration::from_secs(15 * 60),
};
/// Failed logins per client address: enough for a classroom behind one NAT mistyping, not for a
/// script trying passwords across many accounts.
pub const LOGIN_FAILURES_PER_ADDRESS: Limit = Limit {
    name: "login-address",
    max: 100,
    window: Duration::from_secs(15 * 60),
};
/// Registrations per client address: a class of 30 signing up at once from a school's address
/// passes; a script registering hundreds a minute does not.
pub const REGISTRATIONS_PER_ADDRESS: Limit = Limit {
    name: "register-address",
    max: 50,
    window: Duration::from_secs(10 * 60),
};
/// Sign-ins through the OpenID Connect provider started per client address: each one keeps a row
/// for 10 minutes, so this bounds what one address can make the server hold (600 rows); a class of
/// 30 behind one address, each trying a few times, passes.
pub const OIDC_LOGINS_PER_ADDRESS: Limit = Limit {
    name: "oidc-address",
    max: 600,
    window: Duration::from_secs(10 * 60),
};
/// Client events (whispers) per user per second, over all of its sockets (Pusher allows 10 per
/// connection; one account with many sockets gets no more than one connection would).
pub const CLIENT_EVENTS_PER_USER: Limit = Limit {
    name: "client-events",
    max: 10,
    window: Duration::from_secs(1),
};
/// Subscriptions to a user's own channels per minute, each of which reads that channel's backlog
/// from the store: a client subscribes to two on every (re)connection.
pub const OWN_CHANNEL_SUBSCRIBES_PER_USER: Limit = Limit {
    name: "own-subscribes",
    max: 30,
    window: Duration::from_secs(60),
};
/// "typing…" announcements per user: the UI sends one every few seconds while typing.
pub const TYPING_PER_USER: Limit = Limit {
    name: "typing",
    max: 4,
    window: Duration::from_secs(2),
};

/// Keys the in-process counter holds at most (about 100 bytes each: 10 MB).
pub const MAX_LOCAL_KEYS: usize = 100_000;

/// Over the limit: retry after this many seconds (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

impl RetryAfter {
    fn of(left: Duration) -> Self {
        Self(left.as_secs_f64().ceil().max(1.0) as u64)
    }
}

/// Counts one hit and returns `{count, milliseconds left in the window}`.
const HIT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
";
/// Gives one hit back, never below zero.
const FORGIVE_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 1 then redis.call('DECR', KEYS[1]) elseif n == 1 then redis.call('DEL', KEYS[1]) end
return 0
";

/// The rate limiter, chosen once at start-up: Redis when configured, else in-process.
pub struct Limiter {
    local: LocalCounts,
    redis: Option<RedisCounts>,
}

struct RedisCounts {
    conn: ConnectionManager,
    prefix: String,
    hit: redis::Script,
    forgive: redis::Script,
}

impl Limiter {
    /// Counts in this process only.
    pub fn local() -> Self {
        Self {
            local: LocalCounts::new(MAX_LOCAL_KEYS),
            redis: None,
        }
    }

    /// Counts in Redis under `{prefix}limit:`, shared by every node.
    pub fn redis(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            local: LocalCounts::new(MAX_LOCAL_KEYS),
            redis: Some(RedisCounts {
                conn,
                prefix: format!("{prefix}limit:"),
                hit: redis::Script::new(HIT_SCRIPT),
                forgive: redis::Script::new(FORGIVE_SCRIPT),
            }),
        }
    }

    /// Counts one hit of `key` under `limit`.
    ///
    /// # Errors
    /// [`RetryAfter`] when this hit is over the limit (it is still counted: hammering does not
    /// shorten the wait).
    pub async fn hit(&self, limit: &Limit, key: &str) -> Result<(), RetryAfter> {
        if let Some(r) = &self.redis {
            let mut conn = r.conn.clone();
            let answer: Result<(u64, i64), _> = r
                .hit
                .key(format!("{}{}:{key}", r.prefix, limit.name))
                .arg(limit.window.as_millis() as u64)
                .invoke_async(&mut conn)
                .await;
            match answer {
                Ok((n, ttl)) if n > u64::from(limit.max) => {
                    return Err(RetryAfter::of(Duration::from_millis(ttl.max(0) as u64)));
                }
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, limit = limit.name, "rate limit counted on this node: Redis did not answer")
                }
            }
        }
        self.local.hit(limit, key)
    }

    /// Forgets every hit of `key` (an account whose password was just given right).
    pub async fn reset(&self, limit: &Limit, key: &str) {
        if let Some(r) = &self.redis {
            let mut conn = r.conn.clone();
            let done: Result<(), _> = redis::cmd("DEL")
                .arg(format!("{}{}:{key}", r.prefix, limit.name))
                .query_async(&mut conn)
                .await;
            if let Err(e) = done {
                tracing::warn!(error = %e, limit = limit.name, "rate limit not reset: Redis did not answer");
            }
        }
        self.local.reset(limit, key);
    }

    /// Takes one hit of `key` back (a login that turned out right).
    pub async fn forgive(&self, limit: &Limit, key: &str) {
        if let Some(r) = &self.redis {
            let mut conn = r.conn.clone();
            let done: Result<i64, _> = r
                .forgive
                .key(format!("{}{}:{key}", r.prefix, limit.name))
                .invoke_async(&mut conn)
                .await;
            if let Err(e) = done {
                tracing::warn!(error = %e, limit = limit.name, "rate limit not given back: Redis did not answer");
            }
        }
        self.local.forgive(limit, key);
    }
}

/// One key's window: hits, when the window started, how long it lasts.
type Window = (u32, Instant, Duration);

/// Fixed windows counted in this process, at most `cap` keys.
struct LocalCounts {
    /// (limit name, key) → its window.
    counts: Mutex<HashMap<(&'static str, String), Window>>,
    cap: usize,
}

impl LocalCounts {
    fn new(cap: usize) -> Self {
        Self {
            counts: Mutex::default(),
            cap,
        }
    }

    fn hit(&self, limit: &Limit, key: &str) -> Result<(), RetryAfter> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let id = (limit.name, key.to_owned());
        if !counts.contains_key(&id) && counts.len() >= self.cap {
            counts.retain(|_, (_, start, window)| now.duration_since(*start) < *window);
            if counts.len() >= self.cap {
                return Err(RetryAfter::of(limit.window));
            }
        }
        let entry = counts.entry(id).or_insert((0, now, limit.window));
        if now.duration_since(entry.1) >= limit.window {
            *entry = (0, now, limit.window);
        }
        entry.0 += 1;
        if entry.0 > limit.max {
            return Err(RetryAfter::of(limit.window - now.duration_since(entry.1)));
        }
        Ok(())
    }

    fn reset(&self, limit: &Limit, key: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.remove(&(limit.name, key.to_owned()));
    }

    fn forgive(&self, limit: &Limit, key: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let id = (limit.name, key.to_owned());
        if let Some(entry) = counts.get_mut(&id) {
            entry.0 = entry.0.saturating_sub(1);
            if entry.0 == 0 {
                counts.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Limit = Limit {
        name: "test",
        max: 3,
        window: Duration::from_secs(60),
    };

    #[tokio::test]
    async fn counts_per_key_and_gives_back() {
        let l = Limiter::local();
        for _ in 0..3 {
            assert!(l.hit(&TEST, "a").await.is_ok());
        }
        let wait = l.hit(&TEST, "a").await.unwrap_err();
        assert!((1..=60).contains(&wait.0), "{wait:?}");
        assert!(l.hit(&TEST, "b").await.is_ok(), "other keys are not affected");
        l.forgive(&TEST, "a").await;
        l.forgive(&TEST, "a").await;
        assert!(l.hit(&TEST, "a").await.is_ok(), "two given back, one more passes");
    }

    #[test]
    fn a_full_map_refuses_new_keys_and_keeps_counting_old_ones() {
        let c = LocalCounts::new(2);
        assert!(c.hit(&TEST, "a").is_ok());
        assert!(c.hit(&TEST, "b").is_ok());
        assert_eq!(c.hit(&TEST, "c"), Err(RetryAfter(60)), "no room for a third key");
        assert!(c.hit(&TEST, "a").is_ok(), "known keys still count");
        assert_eq!(c.counts.lock().unwrap().len(), 2, "bounded");
    }
}
