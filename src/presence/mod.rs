//! Presence: who is on each presence channel, for the whole deployment. One contract, two homes:
//! in process ([`local`], embedded) or in Redis ([`redis`], cluster-wide, with node leases).
//! Connections say "this socket joined / left as this user"; everything that says who is online
//! (the member list sent on subscription, `online` in the user lists, the admin view) asks here
//! and never knows which home answered.
//!
//! Guarantees:
//! - a user is a member while it has at least one socket on the channel, on any node; its first
//!   socket anywhere gives exactly one `pusher_internal:member_added`, its last exactly one
//!   `member_removed`, published on the bus to every node (at most once, as every broadcast);
//! - every change has a version; the member list a socket gets carries the version it is current
//!   at, and the socket drops announcements it already reflects (no user twice in a list);
//! - with Redis, each node renews a lease every [`HEARTBEAT`]; the nodes sweep the sockets of a
//!   node whose lease expired ([`redis::LEASE_TTL`]) through the same change that removes a
//!   leaving socket, so its members leave within 12 s of its last renewal; a node whose lease or
//!   data Redis lost (flush, restart, cut off) re-registers its own sockets at its next heartbeat;
//! - lists are repaired, not trusted: a member change that could not be announced, or a
//!   re-registration after Redis lost the node's lease, makes every node send its subscribers
//!   there a fresh member list ([`Target::MembersReset`]), as does a node that missed bus messages
//!   (the hub, after its subscription was cut);
//! - the per-address connection cap counts every node's connections ([`addresses`]).

pub mod addresses;
pub mod counts;
pub mod local;
pub mod redis;

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use self::{addresses::Addresses, local::Registry, redis::RedisPresence};
use crate::{
    broadcast::{
        Broadcast, Target,
        events::{MEMBER_ADDED, MEMBER_REMOVED},
    },
    bus::Bus,
    domain::ChannelName,
    protocol::{
        frames, socketio,
        wire::{self, PerWire, WireKind},
    },
};

/// How often a node renews its lease and looks for dead nodes to sweep.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Member lists are read and encoded at most this often per channel: everyone joining within
/// this time shares one list (each joiner waits for it at most this long).
const SNAPSHOT_EVERY: Duration = Duration::from_millis(50);
/// Most members one page of `GET /api/presence/{channel}/members` holds.
pub const MAX_PAGE: usize = 1000;
/// Most channels whose lost member changes wait for the next heartbeat's reset; past that, every
/// presence channel is reset.
const LOST_MAX: usize = 1024;

/// How current a member list must be.
#[derive(Debug, Clone, Copy)]
pub enum Fresh {
    /// Reflecting at least the change of this version (a socket that just joined).
    AtLeast(u64),
    /// Read after this moment (a reset: the versions may not be trusted).
    ReadAfter(Instant),
}

/// What presence is configured with.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `PRESENCE_MAX_MEMBERS`: past it, `subscription_succeeded` carries the count only.
    pub max_members: usize,
    /// `MAX_CONNECTIONS_PER_IP`.
    pub connections_per_ip: Option<u32>,
}

/// A present user as the member lists and the admin view show it.
#[derive(Debug, Clone)]
pub struct Present {
    pub user_id: String,
    pub info: Value,
    /// Its sockets on the channel, over all nodes.
    pub connections: usize,
    pub since: DateTime<Utc>,
}

/// One user's sockets on a channel, as a change lists them: `(user id, sockets, user_info)`.
pub type Held = (String, i64, Value);

/// What one change did: the users it made members or removed, and its version.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub version: u64,
    pub added: Vec<(String, Value)>,
    /// The users it removed, with the `user_info` they were present with (Socket.IO's
    /// `presence:leaving` names it; laravel-echo hands it to `leaving`).
    pub removed: Vec<(String, Value)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("presence (Redis) is unavailable")]
    Unavailable(#[from] ::redis::RedisError),
    #[error("presence (Redis) did not answer in time")]
    Timeout,
}

/// A channel's member list as sent in `subscription_succeeded`, encoded once for every socket
/// that joins while it is current.
pub struct Snapshot {
    /// The version of the last change it reflects.
    pub version: u64,
    /// When its read began.
    read_at: Instant,
    /// Redis did not answer and this node's own view stood in.
    partial: bool,
    pub count: usize,
    /// The encoded `subscription_succeeded` and `presence:subscribed`; `None` over the member
    /// limit (count only).
    frames: Option<PerWire<Utf8Bytes>>,
}

impl Snapshot {
    /// The `subscription_succeeded` frame for a socket present as `me`: the whole list, or over
    /// [`Presence::max_members`] the count with only `me` listed (so clients still know themselves).
    /// Socket.IO has no count: over the limit, `presence:subscribed` lists the subscriber alone.
    pub fn frame(&self, kind: WireKind, channel: &ChannelName, me: &str, info: &Value) -> Utf8Bytes {
        match (&self.frames, kind) {
            (Some(f), _) => f.get(kind).clone(),
            (None, WireKind::Pusher) => frames::subscription_counted(channel.as_str(), me, info, self.count).into(),
            (None, WireKind::SocketIo) => wire::socketio_counted(channel.as_str(), me, info).into(),
        }
    }

    /// Whether the list was left out for its size.
    pub fn count_only(&self) -> bool {
        self.frames.is_none()
    }

    fn is(&self, fresh: Fresh) -> bool {
        match fresh {
            Fresh::AtLeast(v) => self.version >= v,
            Fresh::ReadAfter(t) => self.read_at >= t,
        }
    }
}

/// Channels whose member changes were not announced, reset at the next heartbeat: at most
/// [`LOST_MAX`], and past that "all".
#[derive(Debug, Default)]
struct Lost {
    channels: HashSet<ChannelName>,
    all: bool,
}

impl Lost {
    fn add(&mut self, channel: &ChannelName) {
        if self.all || self.channels.contains(channel) {
            return;
        }
        if self.channels.len() >= LOST_MAX {
            self.channels.clear();
            self.all = true;
        } else {
            self.channels.insert(channel.clone());
        }
    }

    /// The resets to publish: every channel (`None`) or each listed one.
    fn take(&mut self) -> Vec<Option<ChannelName>> {
        if std::mem::take(&mut self.all) {
            self.channels.clear();
            return vec![None];
        }
        self.channels.drain().map(Some).collect()
    }
}

/// The cached member list of one channel; `refresh` lets one reader at a time refresh it.
#[derive(Default)]
struct Cached {
    current: Mutex<Option<Arc<Snapshot>>>,
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

pub struct Presence {
    /// This node's sockets (embedded: everyone's).
    registry: Registry,
    redis: Option<RedisPresence>,
    bus: Bus,
    /// This node's open connections per client address.
    addresses: Addresses,
    /// `MAX_CONNECTIONS_PER_IP`.
    address_cap: Option<u32>,
    /// This process's node id, new on every start.
    node: String,
    started: DateTime<Utc>,
    max_members: usize,
    snapshots: Mutex<HashMap<ChannelName, Arc<Cached>>>,
    /// A change did not reach Redis: re-register this node's sockets at the next heartbeat.
    stale: AtomicBool,
    /// Single changes take it shared; re-registration alone, so it sees a still picture.
    resync: tokio::sync::RwLock<()>,
    /// Channels whose member changes were not announced (the bus failed).
    lost: Mutex<Lost>,
    /// This node's subscription counts in Redis (`None`: embedded, the hub's are the truth).
    counts: Option<counts::RedisCounts>,
}

impl Presence {
    /// Presence in this process.
    pub fn local(bus: Bus, limits: Limits) -> Self {
        Self::new(None, bus, limits)
    }

    /// Cluster-wide presence in Redis under `{prefix}presence:`, registered as a new node.
    ///
    /// # Errors
    /// Redis does not answer.
    pub async fn redis(
        conn: ::redis::aio::ConnectionManager,
        prefix: &str,
        bus: Bus,
        limits: Limits,
    ) -> Result<Self, PresenceError> {
        let mut p = Self::new(Some(RedisPresence::new(conn.clone(), prefix)), bus, limits);
        p.counts = Some(counts::RedisCounts::new(conn, prefix));
        p.renew().await?;
        tracing::info!(node = %p.node, "presence registered in Redis");
        Ok(p)
    }

    fn new(redis: Option<RedisPresence>, bus: Bus, limits: Limits) -> Self {
        Self {
            registry: Registry::default(),
            redis,
            bus,
            addresses: Addresses::default(),
            address_cap: limits.connections_per_ip,
            node: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
            started: Utc::now(),
            max_members: limits.max_members,
            snapshots: Mutex::default(),
            stale: AtomicBool::new(false),
            resync: tokio::sync::RwLock::new(()),
            lost: Mutex::default(),
            counts: None,
        }
    }

    /// This node's id (new on every start).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Members past which `subscription_succeeded` carries the count only.
    pub fn max_members(&self) -> usize {
        self.max_members
    }

    /// Counts a connection from `ip` in, unless that address already holds
    /// `MAX_CONNECTIONS_PER_IP` (on this node, and with Redis over the cluster); pair every
    /// `true` with [`Presence::disconnected`]. When Redis fails the node's own count decides,
    /// and Redis is given this node's counts again at the next heartbeat.
    pub async fn admit(&self, ip: IpAddr) -> bool {
        if !self.addresses.admit(ip, self.address_cap) {
            return false;
        }
        let (Some(r), Some(cap)) = (&self.redis, self.address_cap) else {
            return true;
        };
        let _shared = self.resync.read().await;
        match r.admit_address(&self.node, ip, cap).await {
            Ok(true) => true,
            Ok(false) => {
                self.addresses.release(ip);
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "connection counted on this node only; Redis gets its counts at the next heartbeat");
                self.stale.store(true, Ordering::Relaxed);
                true
            }
        }
    }

    /// Counts a connection from `ip` out (see [`Presence::admit`]).
    pub async fn disconnected(&self, ip: IpAddr) {
        self.addresses.release(ip);
        let (Some(r), Some(_)) = (&self.redis, self.address_cap) else {
            return;
        };
        let _shared = self.resync.read().await;
        if let Err(e) = r.release_address(&self.node, ip).await {
            tracing::warn!(error = %e, "connection not counted out in Redis; its counts are rewritten at the next heartbeat");
            self.stale.store(true, Ordering::Relaxed);
        }
    }

    /// Open connections on this node.
    pub fn connections(&self) -> usize {
        self.addresses.total()
    }

    /// Counts a socket in on `channel` as `user`, announcing the user to every node when this is
    /// its first socket anywhere. Returns the change's version: the member
    /// list for this socket must be at least that current. When Redis fails the socket counts
    /// here and is registered at the next heartbeat.
    pub async fn join(&self, channel: &ChannelName, user: &str, info: &Value) -> u64 {
        let _shared = self.resync.read().await;
        let here = self.registry.add(channel, user, info);
        let change = match &self.redis {
            None => here,
            Some(r) => {
                let entry = [(user.to_owned(), 1, info.clone())];
                match r.change(&self.node, channel, redis::Mode::Add, &entry).await {
                    Ok(c) => c,
                    Err(e) => return self.failed(e),
                }
            }
        };
        self.announce(channel, &change).await;
        change.version
    }

    /// Counts a socket of `user` out of `channel`, announcing the user's departure to every node
    /// when it was its last socket anywhere.
    pub async fn leave(&self, channel: &ChannelName, user: &str) {
        let _shared = self.resync.read().await;
        let here = self.registry.remove(channel, user);
        let change = match &self.redis {
            None => here,
            Some(r) => {
                let entry = [(user.to_owned(), -1, Value::Null)];
                match r.change(&self.node, channel, redis::Mode::Add, &entry).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.failed(e);
                        return;
                    }
                }
            }
        };
        self.announce(channel, &change).await;
    }

    fn failed(&self, e: PresenceError) -> u64 {
        tracing::warn!(error = %e, "presence change not written to Redis; re-registering at the next heartbeat");
        self.stale.store(true, Ordering::Relaxed);
        0
    }

    /// Publishes the member changes of `change` on the bus.
    async fn announce(&self, channel: &ChannelName, change: &Change) {
        let added = change
            .added
            .iter()
            .map(|(u, info)| (u, MEMBER_ADDED, json!({ "user_id": u, "user_info": info })));
        let removed = change
            .removed
            .iter()
            .map(|(u, info)| (u, MEMBER_REMOVED, json!({ "user_id": u, "user_info": info })));
        for (user, event, data) in added.chain(removed) {
            let b = Broadcast {
                target: Target::Members {
                    channel: channel.as_str().to_owned(),
                    version: change.version,
                    user: user.clone(),
                },
                event: event.to_owned(),
                data: data.to_string(),
                user_id: None,
                except: None,
                message_id: None,
            };
            if let Err(e) = self.bus.publish(&b).await {
                tracing::warn!(error = %e, channel = %channel.as_str(), "member change not announced; the channel's lists are reset at the next heartbeat");
                self.lost.lock().unwrap_or_else(|p| p.into_inner()).add(channel);
            }
        }
    }

    /// Asks every node to send fresh member lists on the channels whose changes were not
    /// announced; those whose reset fails too wait for the next heartbeat.
    async fn reset_lost(&self) {
        let resets = self.lost.lock().unwrap_or_else(|p| p.into_inner()).take();
        for channel in resets {
            if let Err(e) = self.publish_reset(channel.as_ref()).await {
                tracing::warn!(error = %e, "member lists not reset; retrying at the next heartbeat");
                let mut lost = self.lost.lock().unwrap_or_else(|p| p.into_inner());
                match &channel {
                    Some(c) => lost.add(c),
                    None => lost.all = true,
                }
            }
        }
    }

    async fn publish_reset(&self, channel: Option<&ChannelName>) -> Result<(), crate::bus::BusError> {
        let b = Broadcast {
            target: Target::MembersReset {
                channel: channel.map(|c| c.as_str().to_owned()),
            },
            event: String::new(),
            data: String::new(),
            user_id: None,
            except: None,
            message_id: None,
        };
        self.bus.publish(&b).await
    }

    /// The member list of `channel` as `fresh` as asked: the cached one if it is, else a new
    /// read shared with everyone waiting for it.
    pub async fn snapshot(&self, channel: &ChannelName, fresh: Fresh) -> Arc<Snapshot> {
        let cached = self
            .snapshots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(channel.clone())
            .or_default()
            .clone();
        let current = || cached.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(s) = current().filter(|s| s.is(fresh)) {
            return s;
        }
        let mut last = cached.refresh.lock().await;
        if let Some(s) = current().filter(|s| s.is(fresh)) {
            return s;
        }
        if let Some(at) = *last {
            tokio::time::sleep_until((at + SNAPSHOT_EVERY).into()).await;
        }
        let fresh = Arc::new(self.read_snapshot(channel).await);
        *last = Some(Instant::now());
        *cached.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh.clone());
        if fresh.count == 0 {
            self.snapshots.lock().unwrap_or_else(|p| p.into_inner()).remove(channel);
        }
        fresh
    }

    /// For a reset of the list of a socket present as `me`: the `subscription_succeeded` frame
    /// read after `since`, with its version; `None` when Redis did not answer (a reset from this
    /// node's own view would drop the other nodes' members: the channel is reset again at the
    /// next heartbeat instead) or `me` is no longer present here.
    pub async fn reset_frame(
        &self,
        kind: WireKind,
        channel: &ChannelName,
        me: &str,
        since: Instant,
    ) -> Option<(u64, Utf8Bytes)> {
        let s = self.snapshot(channel, Fresh::ReadAfter(since)).await;
        if s.partial {
            self.lost.lock().unwrap_or_else(|p| p.into_inner()).add(channel);
            return None;
        }
        let info = self.registry.info(channel, me)?;
        Some((s.version, s.frame(kind, channel, me, &info)))
    }

    async fn read_snapshot(&self, channel: &ChannelName) -> Snapshot {
        let read_at = Instant::now();
        let mut partial = false;
        let (version, count, members) = match &self.redis {
            Some(r) => match r.snapshot(channel, self.max_members).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "member list from this node only: Redis unavailable");
                    partial = true;
                    self.local_snapshot(channel)
                }
            },
            None => self.local_snapshot(channel),
        };
        let frames = (count <= self.max_members).then(|| {
            PerWire::new(|kind| match kind {
                WireKind::Pusher => frames::subscription_succeeded(channel.as_str(), Some(&members)).into(),
                WireKind::SocketIo => socketio::presence_subscribed(channel.as_str(), &members).into(),
            })
        });
        Snapshot {
            version,
            read_at,
            partial,
            count,
            frames,
        }
    }

    /// This node's own view: the whole truth embedded, a fallback with Redis (version 0 then:
    /// the Redis versions are not comparable with this node's own).
    fn local_snapshot(&self, channel: &ChannelName) -> (u64, usize, Vec<(String, Value)>) {
        let (version, count, members) = self.registry.snapshot(channel, self.max_members);
        let version = if self.redis.is_some() { 0 } else { version };
        (version, count, members)
    }

    /// Everyone on `channel` with its connections summed over the nodes.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn members(&self, channel: &ChannelName) -> Result<Vec<Present>, PresenceError> {
        match &self.redis {
            Some(r) => r.members(channel).await,
            None => Ok(self.registry.members(channel).1),
        }
    }

    /// The ids of everyone on `channel`; this node's own view if Redis is unavailable (logged).
    pub async fn user_ids(&self, channel: &ChannelName) -> HashSet<String> {
        let members = match self.members(channel).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "online state from this node only: Redis unavailable");
                self.registry.members(channel).1
            }
        };
        members.into_iter().map(|p| p.user_id).collect()
    }

    /// One page of at most `limit` members in user-id order from `cursor` (`None` starts; the
    /// cursor is the last id of the previous page), and the cursor of the next page (`None`: that
    /// was the last). A member present throughout a walk appears in it exactly once.
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn page(
        &self,
        channel: &ChannelName,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<(String, Value)>, Option<String>), PresenceError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let members = match &self.redis {
            Some(r) => r.page(channel, cursor, limit).await?,
            None => self.registry.page(channel, cursor, limit),
        };
        let next = (members.len() == limit).then(|| members[limit - 1].0.clone());
        Ok((members, next))
    }

    /// The live nodes: `{id, started_at, connections}` each (this one's connections are current,
    /// the others' as of their last heartbeat).
    ///
    /// # Errors
    /// Redis is unavailable.
    pub async fn nodes(&self) -> Result<Vec<Value>, PresenceError> {
        let me = json!({ "id": self.node, "started_at": crate::domain::rfc3339_string(&self.started), "connections": self.connections() });
        let Some(r) = &self.redis else { return Ok(vec![me]) };
        Ok(r.nodes()
            .await?
            .into_iter()
            .filter_map(|(id, lease)| {
                if id == self.node {
                    return Some(me.clone());
                }
                let mut lease = lease?;
                lease["id"] = Value::from(id);
                Some(lease)
            })
            .collect())
    }

    async fn renew(&self) -> Result<bool, PresenceError> {
        let Some(r) = &self.redis else { return Ok(true) };
        let lease =
            json!({ "started_at": crate::domain::rfc3339_string(&self.started), "connections": self.connections() });
        r.renew(&self.node, &lease).await
    }

    /// The heartbeat (Redis only): renews the lease, re-registers this node's sockets when Redis
    /// lost them, sweeps dead nodes; on shutdown gives the lease up.
    pub async fn run(self: Arc<Self>, local: Arc<dyn counts::LocalCounts>, shutdown: CancellationToken) {
        let Some(r) = &self.redis else { return };
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = beat.tick() => {}
            }
            match self.renew().await {
                Ok(kept) => {
                    if !kept {
                        tracing::warn!(node = %self.node, "presence lease was lost (Redis flushed, restarted or unreachable): re-registering");
                    }
                    if !kept || self.stale.swap(false, Ordering::Relaxed) {
                        self.reregister(r).await;
                    }
                    if !kept {
                        // Members Redis lost with its keys (a node that died meanwhile) have
                        // nobody left to announce their leaving: every list is sent afresh.
                        self.lost.lock().unwrap_or_else(|p| p.into_inner()).all = true;
                    }
                    self.sweep(r).await;
                    self.reset_lost().await;
                    self.write_counts(&*local).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "presence lease not renewed");
                    self.stale.store(true, Ordering::Relaxed);
                }
            }
        }
        if let Err(e) = r.release(&self.node).await {
            tracing::debug!(error = %e, "presence lease not released; it expires");
        }
        if let Some(c) = &self.counts
            && let Err(e) = c.release(&self.node).await
        {
            tracing::debug!(error = %e, "subscription counts not released; they expire");
        }
    }

    /// Makes Redis hold exactly this node's sockets and connection counts, announcing what that
    /// changes.
    async fn reregister(&self, r: &RedisPresence) {
        let _alone = self.resync.write().await;
        if self.address_cap.is_some()
            && let Err(e) = r.set_addresses(&self.node, &self.addresses.all()).await
        {
            return self.retry_later(e);
        }
        let mine = self.registry.all();
        let mut channels: HashSet<ChannelName> = match r.node_channels(&self.node).await {
            Ok(c) => c.into_iter().collect(),
            Err(e) => return self.retry_later(e),
        };
        for (channel, members) in mine {
            channels.remove(&channel);
            match r.change(&self.node, &channel, redis::Mode::Set, &members).await {
                Ok(change) => self.announce(&channel, &change).await,
                Err(e) => return self.retry_later(e),
            }
        }
        // Channels Redis still lists for this node but where it holds no socket any more.
        for channel in channels {
            match r.change(&self.node, &channel, redis::Mode::Set, &[]).await {
                Ok(change) => self.announce(&channel, &change).await,
                Err(e) => return self.retry_later(e),
            }
        }
    }

    fn retry_later(&self, e: PresenceError) {
        tracing::warn!(error = %e, "presence re-registration failed; retrying at the next heartbeat");
        self.stale.store(true, Ordering::Relaxed);
    }

    /// Removes the sockets of every node whose lease is gone, as their leaving would have.
    async fn sweep(&self, r: &RedisPresence) {
        let dead = match r.nodes().await {
            Ok(nodes) => nodes
                .into_iter()
                .filter(|(id, lease)| lease.is_none() && *id != self.node),
            Err(e) => return tracing::warn!(error = %e, "presence sweep skipped"),
        };
        for (node, _) in dead {
            let channels = match r.node_channels(&node).await {
                Ok(c) => c,
                Err(e) => return tracing::warn!(error = %e, "presence sweep interrupted"),
            };
            for channel in channels {
                match r.change(&node, &channel, redis::Mode::Sweep, &[]).await {
                    Ok(change) => {
                        if !change.removed.is_empty() {
                            tracing::info!(node = %node, channel = %channel.as_str(), removed = change.removed.len(), "swept a dead node's members");
                        }
                        self.announce(&channel, &change).await;
                    }
                    Err(e) => return tracing::warn!(error = %e, "presence sweep interrupted"),
                }
            }
            if let Err(e) = r.forget(&node).await {
                tracing::warn!(error = %e, "swept node not forgotten");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(n: usize) -> ChannelName {
        ChannelName::parse(&format!("presence-room.{n}")).unwrap()
    }

    #[test]
    fn lost_channels_are_bounded_and_then_all_are_reset() {
        let mut lost = Lost::default();
        lost.add(&channel(1));
        lost.add(&channel(1));
        assert_eq!(lost.take(), vec![Some(channel(1))], "each channel once");
        assert!(lost.take().is_empty(), "taken");

        for n in 0..LOST_MAX {
            lost.add(&channel(n));
        }
        assert_eq!(lost.channels.len(), LOST_MAX);
        assert!(!lost.all);
        lost.add(&channel(LOST_MAX));
        assert!(
            lost.all && lost.channels.is_empty(),
            "past the bound the set gives way to one reset of all"
        );
        lost.add(&channel(LOST_MAX + 1));
        assert_eq!(lost.take(), vec![None]);
        assert!(lost.take().is_empty());
    }
}
