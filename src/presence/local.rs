//! The in-process home of presence: per presence channel, who is present with how many sockets
//! and since when. Embedded, it is the whole truth; with Redis, each node keeps its own share here
//! (the sockets it holds), from which it re-registers them after Redis lost them.
//!
//! Every change takes one short lock and costs O(log members); only [`Registry::members`] walks
//! a channel, and the presence snapshot cache calls it at most once per refresh, not per join.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Change, Held, Present};
use crate::domain::ChannelName;

/// A user on a presence channel, with how many sockets it has there and since when.
struct Member {
    info: Value,
    sockets: usize,
    since: DateTime<Utc>,
}

#[derive(Default)]
struct Inner {
    /// Presence channel → user id → member, in user-id order (pages follow that order).
    channels: HashMap<ChannelName, BTreeMap<String, Member>>,
    /// Bumped by every change of membership: orders changes against snapshots.
    version: u64,
}

#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One more socket of `user` on `channel`; `added` when it is the user's first there.
    pub fn add(&self, channel: &ChannelName, user: &str, info: &Value) -> Change {
        let mut inner = self.lock();
        let members = inner.channels.entry(channel.clone()).or_default();
        let first = match members.get_mut(user) {
            Some(m) => {
                m.sockets += 1;
                false
            }
            None => {
                members.insert(
                    user.to_owned(),
                    Member {
                        info: info.clone(),
                        sockets: 1,
                        since: Utc::now(),
                    },
                );
                true
            }
        };
        let mut change = Change::default();
        if first {
            inner.version += 1;
            change.added.push((user.to_owned(), info.clone()));
        }
        change.version = inner.version;
        change
    }

    /// The `user_info` of `user` on `channel`, if it is present here.
    pub fn info(&self, channel: &ChannelName, user: &str) -> Option<Value> {
        Some(self.lock().channels.get(channel)?.get(user)?.info.clone())
    }

    /// One socket of `user` fewer on `channel`; `removed` when it was the user's last there. A
    /// user that is not there changes nothing.
    pub fn remove(&self, channel: &ChannelName, user: &str) -> Change {
        let mut inner = self.lock();
        let mut change = Change::default();
        let Some(members) = inner.channels.get_mut(channel) else {
            return change;
        };
        let last = match members.get_mut(user) {
            Some(m) if m.sockets > 1 => {
                m.sockets -= 1;
                None
            }
            Some(_) => members.remove(user).map(|m| m.info),
            None => None,
        };
        if members.is_empty() {
            inner.channels.remove(channel);
        }
        if let Some(info) = last {
            inner.version += 1;
            change.removed.push((user.to_owned(), info));
        }
        change.version = inner.version;
        change
    }

    /// The members of `channel` (each user once) and the version they are current at.
    pub fn members(&self, channel: &ChannelName) -> (u64, Vec<Present>) {
        let inner = self.lock();
        let list = inner
            .channels
            .get(channel)
            .map(|m| {
                m.iter()
                    .map(|(id, m)| Present {
                        user_id: id.clone(),
                        info: m.info.clone(),
                        connections: m.sockets,
                        since: m.since,
                    })
                    .collect()
            })
            .unwrap_or_default();
        (inner.version, list)
    }

    /// `(version, count, members)` of `channel` under one lock; no members when there are more
    /// than `max` (the count is enough then).
    pub fn snapshot(&self, channel: &ChannelName, max: usize) -> (u64, usize, Vec<(String, Value)>) {
        let inner = self.lock();
        let Some(members) = inner.channels.get(channel) else {
            return (inner.version, 0, Vec::new());
        };
        let list = if members.len() > max {
            Vec::new()
        } else {
            members.iter().map(|(id, m)| (id.clone(), m.info.clone())).collect()
        };
        (inner.version, members.len(), list)
    }

    /// Up to `limit` members of `channel` whose ids sort after `after`, in id order.
    pub fn page(&self, channel: &ChannelName, after: Option<&str>, limit: usize) -> Vec<(String, Value)> {
        let inner = self.lock();
        let Some(members) = inner.channels.get(channel) else {
            return Vec::new();
        };
        let range = match after {
            Some(a) => members.range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => members.range::<str, _>(..),
        };
        range.take(limit).map(|(id, m)| (id.clone(), m.info.clone())).collect()
    }

    /// Every channel with its members: `(user, sockets, user_info)`, for re-registering this
    /// node's sockets in Redis.
    pub fn all(&self) -> Vec<(ChannelName, Vec<Held>)> {
        self.lock()
            .channels
            .iter()
            .map(|(c, m)| {
                (
                    c.clone(),
                    m.iter()
                        .map(|(u, m)| (u.clone(), m.sockets as i64, m.info.clone()))
                        .collect(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn first_socket_adds_last_socket_removes_and_versions_grow() {
        let r = Registry::default();
        let ch = ChannelName::parse("presence-online").unwrap();
        let a = r.add(&ch, "1", &json!({"name": "ann"}));
        assert_eq!(a.added.len(), 1);
        let again = r.add(&ch, "1", &json!({"name": "ann"}));
        assert!(again.added.is_empty(), "a second socket is no new member");
        assert_eq!(again.version, a.version, "no change, no new version");
        assert!(r.remove(&ch, "1").removed.is_empty(), "one socket stays");
        let gone = r.remove(&ch, "1");
        assert_eq!(gone.removed.len(), 1);
        assert_eq!(gone.removed[0].0, "1");
        assert!(gone.version > a.version);
        assert_eq!(r.snapshot(&ch, 10).1, 0);
        assert!(r.remove(&ch, "1").removed.is_empty(), "leaving twice changes nothing");
    }

    #[test]
    fn pages_follow_user_id_order() {
        let r = Registry::default();
        let ch = ChannelName::parse("presence-online").unwrap();
        for u in ["3", "1", "2"] {
            r.add(&ch, u, &json!({}));
        }
        let first: Vec<String> = r.page(&ch, None, 2).into_iter().map(|(u, _)| u).collect();
        assert_eq!(first, ["1", "2"]);
        let rest: Vec<String> = r.page(&ch, Some("2"), 2).into_iter().map(|(u, _)| u).collect();
        assert_eq!(rest, ["3"]);
    }
}
