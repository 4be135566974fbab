//! The hub: which local sockets listen on which channel (and, to close them at sign-out, which
//! sockets are present as which user). It holds only each socket's [`Outbox`]; socket I/O and
//! per-connection state live in the connection task, who is present lives in
//! [`crate::presence`]. Delivery never blocks: a socket whose outbox is full is evicted (4100).
//!
//! Presence member changes are coalesced: they wait here up to [`MEMBER_BATCH`] and then go to
//! each subscriber of their channel as one shared batch, so a burst of joins costs each member one
//! wake-up and one write, not one per join.

use std::{
    collections::{HashMap, VecDeque, hash_map::Entry},
    sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

use super::waiters::Waiters;
use crate::protocol::wire::{ChannelFrames, LazyEvent, PerWire, WireKind};
use crate::{
    broadcast::{
        Broadcast, Deliver, Target,
        events::{ADDED_TO_GROUP, GROUP_EVENT, INDIVIDUAL_EVENT, MENTIONED},
    },
    domain::{ChannelKind, ChannelName, MessageId, UserChannel},
    protocol::{ProtocolError, SocketId},
};

/// What the hub queues for one socket.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A frame, with the message it announces (if any) so the connection can drop a message it
    /// already delivered.
    Frame {
        frame: Utf8Bytes,
        message: Option<MessageId>,
    },
    /// Live events may have been missed (the bus was cut): re-read the socket's own channels from
    /// the store, from after this message id.
    CatchUp { after: i64 },
    /// Member changes on a presence channel, shared by every subscriber of the channel here.
    Members {
        channel: ChannelName,
        frames: Arc<[MemberFrame]>,
    },
    /// Close the connection with this error (its user signed out).
    Close(ProtocolError),
    /// Member changes of this presence channel may have been lost: send the socket a member list
    /// read after `since` (every socket told in one pass shares one read).
    Resync {
        channel: ChannelName,
        since: std::time::Instant,
    },
}

/// One `member_added` / `member_removed`, encoded once per wire kind for every socket of the node.
#[derive(Debug, Clone)]
pub struct MemberFrame {
    pub frames: PerWire<Utf8Bytes>,
    /// The version of the change: a socket whose member list is at least that current skips it.
    pub version: u64,
    /// The user it is about: that user's own sockets are not told (they know).
    pub user: Arc<str>,
}

/// How long member changes wait to be written together. Clients see a join at most this much
/// later; a burst of N joins within it costs each member one write instead of N.
pub const MEMBER_BATCH: std::time::Duration = std::time::Duration::from_millis(50);

/// One socket's bounded outbox, shared by its senders ([`Outbox`]) and its connection task
/// ([`OutboxReader`]). The queue allocates only while frames wait: an idle connection costs no
/// buffer here (a channel would allocate a block of slots per connection up front).
#[derive(Debug)]
struct Queue {
    frames: Mutex<VecDeque<Outgoing>>,
    capacity: usize,
    /// The protocol its socket speaks: which encoding of a broadcast it takes.
    kind: WireKind,
    /// Something was queued.
    ready: Notify,
    /// The queue was full: the socket is too slow and is to be closed (4100).
    evict: Notify,
}

/// Queues left with more spare room than this are shrunk once drained.
const KEEP_SPARE: usize = 16;

/// The sending side of one socket's bounded outbox.
#[derive(Clone, Debug)]
pub struct Outbox(Arc<Queue>);

/// The connection task's side of its outbox.
#[derive(Debug)]
pub struct OutboxReader(Arc<Queue>);

impl Outbox {
    /// An outbox holding at most `capacity` items, for a socket speaking `kind`.
    pub fn new(capacity: usize, kind: WireKind) -> (Self, OutboxReader) {
        let queue = Arc::new(Queue {
            frames: Mutex::default(),
            capacity,
            kind,
            ready: Notify::new(),
            evict: Notify::new(),
        });
        (Self(queue.clone()), OutboxReader(queue))
    }

    /// The protocol its socket speaks.
    pub fn kind(&self) -> WireKind {
        self.0.kind
    }

    /// Queues a frame without waiting; a full outbox evicts the socket instead.
    pub fn send(&self, frame: Utf8Bytes, message: Option<MessageId>) {
        self.queue(Outgoing::Frame { frame, message });
    }

    fn queue(&self, out: Outgoing) {
        let mut frames = self.0.frames.lock().unwrap_or_else(|p| p.into_inner());
        if frames.len() >= self.0.capacity {
            drop(frames);
            self.0.evict.notify_one();
            return;
        }
        frames.push_back(out);
        drop(frames);
        self.0.ready.notify_one();
    }
}

impl OutboxReader {
    /// The next queued item, waiting for one. Cancel-safe: an item is taken only when returned.
    pub async fn recv(&self) -> Outgoing {
        loop {
            if let Some(out) = self.try_recv() {
                return out;
            }
            self.0.ready.notified().await;
        }
    }

    /// The next queued item, if one is waiting.
    pub fn try_recv(&self) -> Option<Outgoing> {
        let mut frames = self.0.frames.lock().unwrap_or_else(|p| p.into_inner());
        let out = frames.pop_front()?;
        if frames.is_empty() && frames.capacity() > KEEP_SPARE {
            frames.shrink_to(0);
        }
        Some(out)
    }

    /// Resolves when a sender found the outbox full.
    pub async fn evicted(&self) {
        self.0.evict.notified().await;
    }
}

type Sockets = HashMap<SocketId, Outbox>;

#[derive(Default)]
struct Inner {
    /// Every channel except users' own private channels.
    channels: HashMap<ChannelName, Sockets>,
    /// `private-individual.message.N` / `private-group.message.N`, keyed by user.
    user_channels: HashMap<UserChannel, Sockets>,
    /// User id → the sockets present as that user on any presence channel (to close them when
    /// the user signs out).
    present_sockets: HashMap<String, Sockets>,
    /// Engine.IO 3 session id → the socket's id (socket.io-client 2.x names a socket by its
    /// Engine.IO session); one entry per open socket.io session of that version.
    engine_sids: HashMap<String, SocketId>,
}

/// How far below the highest message id seen a catch-up starts re-reading: messages committed
/// around the same moment may have been published out of id order. Repeats are dropped by the
/// connections.
const CATCH_UP_MARGIN: i64 = 1000;

#[derive(Default)]
pub struct Hub {
    inner: RwLock<Inner>,
    /// Highest message id dispatched here: where a catch-up after a bus outage starts.
    high_water: std::sync::atomic::AtomicI64,
    /// Long polls to wake when a broadcast that makes a notification names their user.
    pub waiters: Waiters,
    /// Member changes waiting for the next batch, per presence channel.
    members: Mutex<HashMap<ChannelName, Vec<MemberFrame>>>,
    /// Member changes are waiting.
    members_waiting: Notify,
}

impl Hub {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Channels with a subscriber on this node.
    pub fn channels(&self) -> usize {
        let inner = self.read();
        inner.channels.len() + inner.user_channels.len()
    }

    /// Adds a socket to a public or private channel.
    pub fn subscribe(&self, channel: &ChannelName, socket: SocketId, outbox: &Outbox) {
        let mut inner = self.write();
        match channel.user_channel() {
            Some(uc) => inner
                .user_channels
                .entry(uc)
                .or_default()
                .insert(socket, outbox.clone()),
            None => inner
                .channels
                .entry(channel.clone())
                .or_default()
                .insert(socket, outbox.clone()),
        };
    }

    /// Adds a socket to a presence channel as `user` (whose sockets [`Hub::dispatch`] closes at
    /// sign-out). Who is present is [`crate::presence`]'s business, not the hub's.
    pub fn subscribe_present(&self, channel: &ChannelName, socket: SocketId, outbox: &Outbox, user: &str) {
        let mut inner = self.write();
        inner
            .channels
            .entry(channel.clone())
            .or_default()
            .insert(socket, outbox.clone());
        inner
            .present_sockets
            .entry(user.to_owned())
            .or_default()
            .insert(socket, outbox.clone());
    }

    /// Removes a socket from a channel, and from its user's sockets when it was present as one.
    pub fn unsubscribe(&self, channel: &ChannelName, socket: SocketId, presence_user: Option<&str>) {
        let mut inner = self.write();
        match channel.user_channel() {
            Some(uc) => remove_socket(&mut inner.user_channels, uc, socket),
            None => remove_socket(&mut inner.channels, channel.clone(), socket),
        }
        if let Some(user) = presence_user {
            remove_socket(&mut inner.present_sockets, user.to_owned(), socket);
        }
    }

    /// Names a socket.io-client 2.x socket (whose id is its Engine.IO session id) until
    /// [`Hub::forget_engine_sid`].
    pub fn name_engine_sid(&self, sid: &str, socket: SocketId) {
        self.write().engine_sids.insert(sid.to_owned(), socket);
    }

    pub fn forget_engine_sid(&self, sid: &str) {
        self.write().engine_sids.remove(sid);
    }

    /// The socket a client knows as `raw`: a Pusher socket id or a socket.io 3/4 sid
    /// (`digits.digits`, the same on every node), or the Engine.IO session id of a socket.io 2.x
    /// socket on this node. `None` for anything else.
    pub fn resolve_socket(&self, raw: &str) -> Option<SocketId> {
        SocketId::parse(raw).or_else(|| self.read().engine_sids.get(raw).copied())
    }

    /// Delivers a broadcast to the local sockets it targets. The payload is encoded once per wire
    /// kind; each further channel costs one concatenation, each further socket one reference
    /// count.
    pub fn dispatch(&self, b: &Broadcast) {
        if let Some(id) = b.message_id {
            self.high_water.fetch_max(id.0, std::sync::atomic::Ordering::Relaxed);
        }
        match &b.target {
            Target::SignOut { user } => return self.close_user(&user.to_string()),
            Target::Terminate { user } => return self.close_user(user),
            Target::MembersReset { channel } => {
                let channel = channel.as_deref().map(ChannelName::parse);
                return match channel {
                    None => self.resync_members(None),
                    Some(Ok(c)) => self.resync_members(Some(&c)),
                    Some(Err(_)) => {}
                };
            }
            _ => {}
        }
        let mut event = LazyEvent::new(&b.event, &b.data, b.user_id.as_deref());
        match &b.target {
            Target::Members { channel, version, user } => {
                let frames = PerWire::new(|kind| Utf8Bytes::from(event.for_channel(kind, channel)));
                return self.queue_member_change(channel, frames, *version, user);
            }
            Target::Individual { users } | Target::Group { users } if makes_notification(&b.event) => {
                self.waiters.wake(users)
            }
            Target::EveryGroupChannel if makes_notification(&b.event) => self.waiters.wake_all(),
            _ => {}
        }
        let inner = self.read();
        let mut deliver = |channel: &str, sockets: &Sockets| {
            let mut frames = ChannelFrames::default();
            for (id, outbox) in sockets {
                if Some(*id) != b.except {
                    outbox.send(frames.get(&mut event, outbox.kind(), channel), b.message_id);
                }
            }
        };
        match &b.target {
            Target::Channel { channel } => {
                if let Ok(name) = ChannelName::parse(channel) {
                    match name.user_channel() {
                        Some(uc) => inner.user_channels.get(&uc).map(|s| deliver(channel, s)),
                        None => inner.channels.get(&name).map(|s| deliver(channel, s)),
                    };
                }
            }
            Target::Individual { users } => {
                for user in users {
                    let uc = UserChannel::Individual(*user);
                    if let Some(s) = inner.user_channels.get(&uc) {
                        deliver(&uc.name(), s);
                    }
                }
            }
            Target::Group { users } => {
                for user in users {
                    let uc = UserChannel::Group(*user);
                    if let Some(s) = inner.user_channels.get(&uc) {
                        deliver(&uc.name(), s);
                    }
                }
            }
            Target::EveryGroupChannel => {
                for (uc, s) in &inner.user_channels {
                    if matches!(uc, UserChannel::Group(_)) {
                        deliver(&uc.name(), s);
                    }
                }
            }
            Target::SignOut { .. }
            | Target::Terminate { .. }
            | Target::Members { .. }
            | Target::MembersReset { .. } => {}
        }
    }

    /// Holds a member change for the next batch, unless nobody here listens on its channel.
    fn queue_member_change(&self, channel: &str, frames: PerWire<Utf8Bytes>, version: u64, user: &str) {
        let Ok(name) = ChannelName::parse(channel) else { return };
        if !self.read().channels.contains_key(&name) {
            return;
        }
        let change = MemberFrame {
            frames,
            version,
            user: user.into(),
        };
        let mut waiting = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let first = waiting.is_empty();
        waiting.entry(name).or_default().push(change);
        drop(waiting);
        if first {
            self.members_waiting.notify_one();
        }
    }

    /// Hands every waiting member change to its channel's sockets: one shared batch per channel
    /// and socket. The lock is held for one pass over the subscribers, not per change.
    pub fn flush_member_changes(&self) {
        let waiting = std::mem::take(&mut *self.members.lock().unwrap_or_else(|p| p.into_inner()));
        let inner = self.read();
        for (channel, changes) in waiting {
            let Some(sockets) = inner.channels.get(&channel) else {
                continue;
            };
            let frames: Arc<[MemberFrame]> = changes.into();
            for outbox in sockets.values() {
                outbox.queue(Outgoing::Members {
                    channel: channel.clone(),
                    frames: frames.clone(),
                });
            }
        }
    }

    /// Writes member changes out in batches ([`MEMBER_BATCH`]) until shutdown.
    pub async fn batch_member_changes(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.members_waiting.notified() => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(MEMBER_BATCH) => self.flush_member_changes(),
            }
        }
    }

    /// Closes every local socket of `user` with 4009: those present as it on presence channels
    /// and, when it is a chatbox user id, those on its own channels. Each is told once; it leaves
    /// its channels as it closes.
    pub fn close_user(&self, user: &str) {
        let inner = self.read();
        let own: Vec<&Sockets> = match user.parse::<i64>() {
            Ok(id) if id.to_string() == user => {
                let id = crate::domain::UserId(id);
                [UserChannel::Individual(id), UserChannel::Group(id)]
                    .into_iter()
                    .filter_map(|uc| inner.user_channels.get(&uc))
                    .collect()
            }
            _ => Vec::new(),
        };
        let present = inner.present_sockets.get(user);
        let mut told = std::collections::HashSet::new();
        for sockets in own.into_iter().chain(present) {
            for (id, outbox) in sockets {
                if told.insert(*id) {
                    outbox.queue(Outgoing::Close(ProtocolError::SignedOut));
                }
            }
        }
        if !told.is_empty() {
            tracing::info!(user_id = %user, sockets = told.len(), "user's sockets closed");
        }
    }

    /// Sockets subscribed here, per channel name (presence and chatbox's own channels included).
    pub fn channel_counts(&self) -> HashMap<String, usize> {
        let inner = self.read();
        let named = inner.channels.iter().map(|(c, s)| (c.as_str().to_owned(), s.len()));
        let own = inner.user_channels.iter().map(|(uc, s)| (uc.name(), s.len()));
        named.chain(own).collect()
    }

    /// Sockets subscribed here to `channel`.
    pub fn channel_count(&self, channel: &ChannelName) -> usize {
        let inner = self.read();
        match channel.user_channel() {
            Some(uc) => inner.user_channels.get(&uc).map_or(0, HashMap::len),
            None => inner.channels.get(channel).map_or(0, HashMap::len),
        }
    }
}

impl Hub {
    /// After this node missed bus messages (its subscription was cut): every socket listening on
    /// a user's own channel re-reads it from the store, so nothing published meanwhile is lost.
    pub fn catch_up(&self) {
        let after = (self.high_water.load(std::sync::atomic::Ordering::Relaxed) - CATCH_UP_MARGIN).max(0);
        let inner = self.read();
        let mut told = std::collections::HashSet::new();
        for sockets in inner.user_channels.values() {
            for (id, outbox) in sockets {
                if told.insert(*id) {
                    outbox.queue(Outgoing::CatchUp { after });
                }
            }
        }
        drop(inner);
        self.waiters.wake_all();
        tracing::info!(
            sockets = told.len(),
            after,
            "catching up from the store after a bus outage"
        );
        // Member changes published meanwhile are lost too: lists are sent afresh.
        self.resync_members(None);
    }

    /// Tells every local subscriber of the presence channel `only` (of every presence channel:
    /// `None`) to send its client a fresh member list.
    pub fn resync_members(&self, only: Option<&ChannelName>) {
        let since = std::time::Instant::now();
        let inner = self.read();
        let mut told = 0usize;
        let channels = inner
            .channels
            .iter()
            .filter(|(c, _)| c.kind() == ChannelKind::Presence && only.is_none_or(|o| o == *c));
        for (channel, sockets) in channels {
            for outbox in sockets.values() {
                outbox.queue(Outgoing::Resync {
                    channel: channel.clone(),
                    since,
                });
                told += 1;
            }
        }
        if told > 0 {
            tracing::info!(
                channel = only.map(ChannelName::as_str),
                sockets = told,
                "member lists sent afresh"
            );
        }
    }
}

impl crate::presence::counts::LocalCounts for Hub {
    fn channel_counts(&self) -> HashMap<String, usize> {
        Hub::channel_counts(self)
    }
}

impl Deliver for Hub {
    fn dispatch(&self, b: &Broadcast) {
        Hub::dispatch(self, b);
    }

    fn catch_up(&self) {
        Hub::catch_up(self);
    }

    fn resolve_socket(&self, raw: &str) -> Option<SocketId> {
        Hub::resolve_socket(self, raw)
    }
}

/// Whether an event on a user's own channels stands for something the notification centre
/// returns (`fetch` in `http::notifications`: messages, and the group rows written with
/// "added to group"), so the user's waiting polls are worth waking. Everything else (new users,
/// group updates and removals, typing) would only make every woken poll query and find nothing.
fn makes_notification(event: &str) -> bool {
    [INDIVIDUAL_EVENT, GROUP_EVENT, ADDED_TO_GROUP, MENTIONED].contains(&event)
}

/// Removes `socket` from `key`'s set, dropping the set when it empties.
fn remove_socket<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Sockets>, key: K, socket: SocketId) {
    if let Entry::Occupied(mut e) = map.entry(key) {
        e.get_mut().remove(&socket);
        if e.get().is_empty() {
            e.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(n: i64) -> (Utf8Bytes, Option<MessageId>) {
        (Utf8Bytes::from(n.to_string()), Some(MessageId(n)))
    }

    fn broadcast(event: &str, target: Target) -> Broadcast {
        Broadcast {
            target,
            event: event.to_owned(),
            data: "{}".to_owned(),
            user_id: None,
            except: None,
            message_id: None,
        }
    }

    #[test]
    fn only_events_that_make_notifications_wake_polls() {
        let hub = Hub::default();
        let poll = hub.waiters.enter(crate::domain::UserId(7)).unwrap();
        let seven = || vec![crate::domain::UserId(7)];
        hub.dispatch(&broadcast(
            crate::broadcast::events::USER_REGISTERED,
            Target::EveryGroupChannel,
        ));
        hub.dispatch(&broadcast(
            crate::broadcast::events::GROUP_UPDATED,
            Target::Group { users: seven() },
        ));
        hub.dispatch(&broadcast(
            crate::broadcast::events::REMOVED_FROM_GROUP,
            Target::Group { users: seven() },
        ));
        hub.dispatch(&broadcast(
            crate::broadcast::events::TYPING_EVENT,
            Target::Individual { users: seven() },
        ));
        hub.dispatch(&broadcast(
            "client-typing",
            Target::Channel {
                channel: "presence-online".into(),
            },
        ));
        assert_eq!(hub.waiters.wakeups(), 0);
        hub.dispatch(&broadcast(INDIVIDUAL_EVENT, Target::Individual { users: seven() }));
        hub.dispatch(&broadcast(GROUP_EVENT, Target::EveryGroupChannel));
        hub.dispatch(&broadcast(ADDED_TO_GROUP, Target::Group { users: seven() }));
        assert_eq!(hub.waiters.wakeups(), 3);
        drop(poll);
    }

    #[test]
    fn a_members_reset_reaches_the_subscribers_of_its_presence_channel_only() {
        let hub = Hub::default();
        let room = ChannelName::parse("presence-room").unwrap();
        let other = ChannelName::parse("presence-other").unwrap();
        let public = ChannelName::parse("news").unwrap();
        let (in_room, room_reader) = Outbox::new(8, WireKind::Pusher);
        let (in_other, other_reader) = Outbox::new(8, WireKind::Pusher);
        let (in_public, public_reader) = Outbox::new(8, WireKind::Pusher);
        hub.subscribe_present(&room, SocketId::random(), &in_room, "1");
        hub.subscribe_present(&other, SocketId::random(), &in_other, "2");
        hub.subscribe(&public, SocketId::random(), &in_public);
        let resyncs = |r: &OutboxReader| {
            std::iter::from_fn(|| r.try_recv())
                .filter_map(|o| match o {
                    Outgoing::Resync { channel, .. } => Some(channel),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };

        hub.dispatch(&broadcast(
            "",
            Target::MembersReset {
                channel: Some("presence-room".into()),
            },
        ));
        assert_eq!(resyncs(&room_reader), vec![room.clone()]);
        assert!(resyncs(&other_reader).is_empty());

        hub.dispatch(&broadcast("", Target::MembersReset { channel: None }));
        assert_eq!(resyncs(&room_reader), vec![room]);
        assert_eq!(resyncs(&other_reader), vec![other]);
        assert!(resyncs(&public_reader).is_empty(), "not a presence channel");
    }

    #[test]
    fn sockets_resolve_by_pusher_id_or_named_engine_sid() {
        let hub = Hub::default();
        let id = SocketId::random();
        assert_eq!(
            hub.resolve_socket(&id.to_string()),
            Some(id),
            "Pusher and socket.io 3/4 ids"
        );
        assert_eq!(hub.resolve_socket("AbCdEf0123456789"), None);
        hub.name_engine_sid("AbCdEf0123456789", id);
        assert_eq!(
            hub.resolve_socket("AbCdEf0123456789"),
            Some(id),
            "socket.io 2.x sessions"
        );
        hub.forget_engine_sid("AbCdEf0123456789");
        assert_eq!(hub.resolve_socket("AbCdEf0123456789"), None);
        assert_eq!(hub.resolve_socket("not an id"), None);
    }

    #[tokio::test]
    async fn outbox_keeps_order_and_evicts_when_full() {
        let (outbox, reader) = Outbox::new(3, WireKind::Pusher);
        for n in 1..=3 {
            let (f, m) = frame(n);
            outbox.send(f, m);
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(20), reader.evicted())
                .await
                .is_err(),
            "not full yet"
        );
        let (f, m) = frame(4);
        outbox.send(f, m);
        tokio::time::timeout(Duration::from_secs(1), reader.evicted())
            .await
            .expect("a full outbox evicts");
        for n in 1..=3 {
            match reader.recv().await {
                Outgoing::Frame { message, .. } => assert_eq!(message, Some(MessageId(n)), "first in, first out"),
                other => panic!("unexpected {other:?}"),
            }
        }
        // A waiting reader wakes on the next frame.
        let waiting = tokio::spawn(async move { reader.recv().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (f, m) = frame(5);
        outbox.send(f, m);
        let next = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            next,
            Outgoing::Frame {
                message: Some(MessageId(5)),
                ..
            }
        ));
    }
}
