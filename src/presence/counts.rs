//! Subscription counts for the whole deployment, for the server-side HTTP APIs (how many sockets
//! listen on a channel, which channels are occupied). Embedded, the hub's own counts are the whole
//! truth. With Redis, each node writes its per-channel counts to a hash `{REDIS_PREFIX}counts:{node}`
//! at every presence heartbeat, only what changed since its last write and at most
//! [`MAX_WRITES_PER_BEAT`] fields per beat; the hash lives [`super::redis::LEASE_TTL`] unless
//! renewed, so a dead node's counts vanish with its lease. A reader adds this node's current counts
//! to the other live nodes' hashes: other nodes are at most one heartbeat old.

use std::collections::HashMap;

use redis::aio::ConnectionManager;

use super::{
    PresenceError,
    redis::{LEASE_TTL, RedisPresence, within},
};
use crate::domain::ChannelName;

/// Most count fields one node writes per heartbeat: a node with more changed channels catches up
/// over the next beats, so one beat is a bounded amount of Redis work however many channels change.
pub const MAX_WRITES_PER_BEAT: usize = 1000;

/// One node's counts in Redis: what it last wrote there, so each beat writes only the difference.
pub struct RedisCounts {
    conn: ConnectionManager,
    base: String,
    written: tokio::sync::Mutex<HashMap<String, usize>>,
}

/// What to write so Redis goes from `written` towards `now`: changed counts, and 0 (delete) for
/// channels that emptied; at most [`MAX_WRITES_PER_BEAT`] of them.
fn difference(now: &HashMap<String, usize>, written: &HashMap<String, usize>) -> Vec<(String, usize)> {
    let changed = now
        .iter()
        .filter(|(channel, n)| written.get(*channel) != Some(n))
        .map(|(channel, n)| (channel.clone(), *n));
    let gone = written
        .keys()
        .filter(|channel| !now.contains_key(*channel))
        .map(|channel| (channel.clone(), 0));
    changed.chain(gone).take(MAX_WRITES_PER_BEAT).collect()
}

impl RedisCounts {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            base: format!("{prefix}counts:"),
            written: tokio::sync::Mutex::default(),
        }
    }

    fn key(&self, node: &str) -> String {
        format!("{}{node}", self.base)
    }

    /// Writes what changed between `now` (this node's counts) and the last write, at most
    /// [`MAX_WRITES_PER_BEAT`] fields, and renews the hash's lifetime. A hash Redis lost (flush,
    /// restart) is written anew from the next beat on. Returns how many fields were written.
    ///
    /// # Errors
    /// Redis failed; the next beat writes the same difference again.
    pub async fn beat(&self, node: &str, now: &HashMap<String, usize>) -> Result<usize, PresenceError> {
        let key = self.key(node);
        let ttl = LEASE_TTL.as_millis() as u64;
        let mut conn = self.conn.clone();
        let mut written = self.written.lock().await;
        let kept: i64 = within(redis::cmd("PEXPIRE").arg(&key).arg(ttl).query_async(&mut conn)).await?;
        if kept == 0 {
            written.clear();
        }
        let diff = difference(now, &written);
        if diff.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for (channel, n) in &diff {
            if *n == 0 {
                pipe.hdel(&key, channel).ignore();
            } else {
                pipe.hset(&key, channel, *n).ignore();
            }
        }
        pipe.pexpire(&key, ttl as i64).ignore();
        within(pipe.query_async::<()>(&mut conn)).await?;
        for (channel, n) in &diff {
            if *n == 0 {
                written.remove(channel);
            } else {
                written.insert(channel.clone(), *n);
            }
        }
        Ok(diff.len())
    }

    /// Every channel's count summed over `nodes` (the other live nodes).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn all(&self, nodes: &[String]) -> Result<HashMap<String, usize>, PresenceError> {
        if nodes.is_empty() {
            return Ok(HashMap::new());
        }
        let mut pipe = redis::pipe();
        for node in nodes {
            pipe.hgetall(self.key(node));
        }
        let mut conn = self.conn.clone();
        let hashes: Vec<HashMap<String, usize>> = within(pipe.query_async(&mut conn)).await?;
        let mut sum = HashMap::new();
        for (channel, n) in hashes.into_iter().flatten() {
            *sum.entry(channel).or_default() += n;
        }
        Ok(sum)
    }

    /// One channel's count summed over `nodes`.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn one(&self, nodes: &[String], channel: &str) -> Result<usize, PresenceError> {
        if nodes.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for node in nodes {
            pipe.hget(self.key(node), channel);
        }
        let mut conn = self.conn.clone();
        let counts: Vec<Option<usize>> = within(pipe.query_async(&mut conn)).await?;
        Ok(counts.into_iter().flatten().sum())
    }

    /// Drops `node`'s counts (a clean shutdown).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn release(&self, node: &str) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        within(redis::cmd("DEL").arg(self.key(node)).query_async::<()>(&mut conn)).await
    }
}

/// Where a node's own subscription counts come from: its hub.
pub trait LocalCounts: Send + Sync {
    /// Sockets subscribed on this node to each channel with any.
    fn channel_counts(&self) -> HashMap<String, usize>;
}

/// The deployment-wide counts, as [`super::Presence`] answers them.
impl super::Presence {
    /// Writes this node's subscription counts to Redis (what changed since the last beat).
    pub(super) async fn write_counts(&self, local: &dyn LocalCounts) {
        let Some(c) = &self.counts else { return };
        if let Err(e) = c.beat(&self.node, &local.channel_counts()).await {
            tracing::warn!(error = %e, "subscription counts not written; retrying at the next heartbeat");
        }
    }

    /// The other live nodes (those whose lease is current).
    async fn other_nodes(&self, r: &RedisPresence) -> Result<Vec<String>, PresenceError> {
        Ok(r.nodes()
            .await?
            .into_iter()
            .filter(|(id, lease)| lease.is_some() && *id != self.node)
            .map(|(id, _)| id)
            .collect())
    }

    /// Sockets subscribed to each channel over the whole deployment (channels without any are
    /// left out): this node's now (`here`), the others' as of their last heartbeat.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn subscription_counts(
        &self,
        here: HashMap<String, usize>,
    ) -> Result<HashMap<String, usize>, PresenceError> {
        let mut all = here;
        if let (Some(r), Some(c)) = (&self.redis, &self.counts) {
            for (channel, n) in c.all(&self.other_nodes(r).await?).await? {
                *all.entry(channel).or_default() += n;
            }
        }
        all.retain(|_, n| *n > 0);
        Ok(all)
    }

    /// Sockets subscribed to `channel` over the whole deployment, `here` of them on this node.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn subscription_count(&self, channel: &ChannelName, here: usize) -> Result<usize, PresenceError> {
        match (&self.redis, &self.counts) {
            (Some(r), Some(c)) => Ok(here + c.one(&self.other_nodes(r).await?, channel.as_str()).await?),
            _ => Ok(here),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_writes_only_the_difference_and_at_most_the_bound() {
        let mut written = HashMap::new();
        let now: HashMap<String, usize> = (0..2500).map(|i| (format!("c{i}"), 1)).collect();
        // 2,500 new channels take three beats.
        for expected in [1000, 1000, 500, 0] {
            let diff = difference(&now, &written);
            assert_eq!(diff.len(), expected);
            written.extend(diff);
        }
        let mut later = now.clone();
        later.remove("c1");
        later.insert("c2".into(), 3);
        let mut diff = difference(&later, &written);
        diff.sort();
        assert_eq!(diff, vec![("c1".to_owned(), 0), ("c2".to_owned(), 3)]);
    }
}
