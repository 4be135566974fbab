//! The Redis home of presence: the cluster's view, changed only by Lua scripts (each change is
//! one atomic step on the server, never a read-modify-write from here).
//!
//! Keys, all under `{REDIS_PREFIX}presence:`:
//!
//! | key | type | holds |
//! |---|---|---|
//! | `nodes` | set | ids of the nodes that registered (alive or not yet swept) |
//! | `lease:{node}` | string, TTL [`LEASE_TTL`] | `{started_at, connections}` while the node renews it |
//! | `node:{node}:channels` | set | presence channels where the node holds sockets |
//! | `ch:{channel}:members` | hash | user id → `user_info` JSON |
//! | `ch:{channel}:sockets` | hash | user id → sockets over all nodes |
//! | `ch:{channel}:since` | hash | user id → when it joined (ms since the epoch) |
//! | `ch:{channel}:ids` | sorted set (all scores 0) | user ids in byte order, for paging |
//! | `ch:{channel}:node:{node}` | hash | user id → sockets on that node |
//! | `ch:{channel}:version` | string | the version of the last membership change |
//! | `addrs:{node}` | hash | client address → connections open on that node |
//!
//! Versions come from the Redis clock (microseconds, and always above the last one), so they keep
//! growing across a flush or a restart of Redis.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use redis::{AsyncCommands, aio::ConnectionManager};
use serde_json::Value;

use super::{Change, Held, PresenceError, Present};
use crate::domain::ChannelName;

/// How long a node's lease lives without renewal: a node silent this long is presumed dead and
/// swept. Three heartbeats ([`super::HEARTBEAT`]) may be missed (a loaded machine) first.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// Longest any presence call to Redis may take before it counts as failed. A failed change is
/// repaired at the next heartbeat but its announcement is lost, so this is generous: the Redis
/// client's own default (500 ms) was exceeded on a loaded machine with thousands of joins.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// The presence connection: replies may take up to [`CALL_TIMEOUT`].
pub fn connection_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new().set_response_timeout(Some(CALL_TIMEOUT))
}

/// Applies membership changes on one channel for one node and returns
/// `{version, added users, removed (user, user_info) pairs flat}`. Modes: `add` (ARGV triples are user, delta, info),
/// `set` (the node's sockets become exactly the listed ones: re-registration), `sweep` (as `set`
/// with nothing listed, only while the node's lease is gone: a dead node's sockets leave).
/// KEYS: members, sockets, since, node's sockets, version, node's channels, node's lease, ids.
const CHANGE: &str = r"
local mode = ARGV[2]
if mode == 'sweep' and redis.call('EXISTS', KEYS[7]) == 1 then return {0, {}, {}} end
local held = {}
if mode ~= 'add' then
  local flat = redis.call('HGETALL', KEYS[4])
  for i = 1, #flat, 2 do held[flat[i]] = tonumber(flat[i + 1]) end
end
local added, removed = {}, {}
local function change(user, delta, info)
  local before = tonumber(redis.call('HGET', KEYS[4], user) or '0')
  if before + delta < 0 then delta = -before end
  if delta == 0 then return end
  if before + delta == 0 then redis.call('HDEL', KEYS[4], user)
  else redis.call('HSET', KEYS[4], user, before + delta) end
  local total = redis.call('HINCRBY', KEYS[2], user, delta)
  if total <= 0 then
    local gone = redis.call('HGET', KEYS[1], user) or 'null'
    redis.call('HDEL', KEYS[2], user)
    redis.call('HDEL', KEYS[1], user)
    redis.call('HDEL', KEYS[3], user)
    redis.call('ZREM', KEYS[8], user)
    table.insert(removed, user)
    table.insert(removed, gone)
  elseif total == delta then
    redis.call('HSET', KEYS[1], user, info)
    redis.call('HSET', KEYS[3], user, ARGV[3])
    redis.call('ZADD', KEYS[8], 0, user)
    table.insert(added, user)
  end
end
local listed = {}
for i = 4, #ARGV, 3 do
  local user, n = ARGV[i], tonumber(ARGV[i + 1])
  if mode == 'add' then change(user, n, ARGV[i + 2])
  else
    listed[user] = true
    change(user, n - (held[user] or 0), ARGV[i + 2])
  end
end
if mode ~= 'add' then
  for user, n in pairs(held) do
    if not listed[user] then change(user, -n, '') end
  end
end
local v
if #added > 0 or #removed > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  v = math.max(now, tonumber(redis.call('GET', KEYS[5]) or '0') + 1)
  redis.call('SET', KEYS[5], string.format('%.0f', v))
else
  v = tonumber(redis.call('GET', KEYS[5]) or '0')
end
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('SADD', KEYS[6], ARGV[1])
else redis.call('SREM', KEYS[6], ARGV[1]) end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('DEL', KEYS[5]) end
return {v, added, removed}
";

/// `{version, count, members (flat user, info pairs) unless over ARGV[1]}` of one channel.
/// KEYS: members, version.
const SNAPSHOT: &str = r"
local n = redis.call('HLEN', KEYS[1])
local v = tonumber(redis.call('GET', KEYS[2]) or '0')
if n > tonumber(ARGV[1]) then return {v, n, {}} end
return {v, n, redis.call('HGETALL', KEYS[1])}
";

/// Up to ARGV[2] members whose ids sort after ARGV[1] (empty: from the first), as flat
/// `user, info` pairs. KEYS: ids, members.
const PAGE: &str = r"
local from = '-'
if ARGV[1] ~= '' then from = '(' .. ARGV[1] end
local ids = redis.call('ZRANGE', KEYS[1], from, '+', 'BYLEX', 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then return {} end
local infos = redis.call('HMGET', KEYS[2], unpack(ids))
local out = {}
for i = 1, #ids do
  table.insert(out, ids[i])
  table.insert(out, infos[i] or 'null')
end
return out
";

/// Renews this node's lease and registration; 1 if the lease was still there, 0 if it had to be
/// created (first start, or Redis lost it: flushed, restarted empty, or the node was cut off for
/// longer than the lease). KEYS: lease, nodes. ARGV: ttl ms, lease value, node id.
const RENEW: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return existed
";

/// Forgets a node once it is swept: no lease and no channel left. KEYS: lease, node's channels,
/// nodes, node's addresses. ARGV: node id.
const FORGET: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[3], ARGV[1])
  redis.call('DEL', KEYS[4])
  return 1
end
return 0
";

/// Counts a connection from an address in on this node unless the live nodes (this one and
/// those whose lease is there) already hold `cap` from it: 1 admitted, 0 refused. One script, so
/// two nodes never both take the last place. The other nodes' keys are derived here from the
/// registry (one Redis instance). KEYS: nodes. ARGV: key base, node id, address, cap.
const ADMIT: &str = r"
local base, me, ip, cap = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local total = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if node == me or redis.call('EXISTS', base .. 'lease:' .. node) == 1 then
    total = total + tonumber(redis.call('HGET', base .. 'addrs:' .. node, ip) or '0')
  end
end
if total >= cap then return 0 end
redis.call('HINCRBY', base .. 'addrs:' .. me, ip, 1)
return 1
";

/// Counts a connection from an address out. KEYS: node's addresses. ARGV: address.
const RELEASE: &str = r"
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
";

/// How a change applies (see [`CHANGE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Add,
    Set,
    Sweep,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Set => "set",
            Self::Sweep => "sweep",
        }
    }
}

pub struct RedisPresence {
    conn: ConnectionManager,
    base: String,
    change: redis::Script,
    snapshot: redis::Script,
    page: redis::Script,
    renew: redis::Script,
    forget: redis::Script,
    admit: redis::Script,
    release: redis::Script,
}

/// Runs one Redis call within [`CALL_TIMEOUT`].
pub(super) async fn within<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, PresenceError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(PresenceError::Timeout),
    }
}

impl RedisPresence {
    pub fn new(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            base: format!("{prefix}presence:"),
            change: redis::Script::new(CHANGE),
            snapshot: redis::Script::new(SNAPSHOT),
            page: redis::Script::new(PAGE),
            renew: redis::Script::new(RENEW),
            forget: redis::Script::new(FORGET),
            admit: redis::Script::new(ADMIT),
            release: redis::Script::new(RELEASE),
        }
    }

    fn nodes_key(&self) -> String {
        format!("{}nodes", self.base)
    }
    fn lease_key(&self, node: &str) -> String {
        format!("{}lease:{node}", self.base)
    }
    fn node_channels_key(&self, node: &str) -> String {
        format!("{}node:{node}:channels", self.base)
    }
    fn channel_key(&self, channel: &ChannelName, what: &str) -> String {
        format!("{}ch:{}:{what}", self.base, channel.as_str())
    }
    fn addresses_key(&self, node: &str) -> String {
        format!("{}addrs:{node}", self.base)
    }

    /// Counts a connection from `ip` in on `node` unless the cluster holds `cap` from it.
    ///
    /// # Errors
    /// Redis failed or did not answer in time; nothing was counted.
    pub async fn admit_address(&self, node: &str, ip: IpAddr, cap: u32) -> Result<bool, PresenceError> {
        let mut conn = self.conn.clone();
        let admitted: i64 = within(
            self.admit
                .key(self.nodes_key())
                .arg(&self.base)
                .arg(node)
                .arg(ip.to_string())
                .arg(cap)
                .invoke_async(&mut conn),
        )
        .await?;
        Ok(admitted == 1)
    }

    /// Counts a connection from `ip` out on `node`.
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn release_address(&self, node: &str, ip: IpAddr) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let _: i64 = within(
            self.release
                .key(self.addresses_key(node))
                .arg(ip.to_string())
                .invoke_async(&mut conn),
        )
        .await?;
        Ok(())
    }

    /// Makes `node`'s counts in Redis exactly `counts` (re-registration), in one transaction.
    ///
    /// # Errors
    /// Redis failed or did not answer in time; nothing was changed.
    pub async fn set_addresses(&self, node: &str, counts: &[(IpAddr, u32)]) -> Result<(), PresenceError> {
        let key = self.addresses_key(node);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key).ignore();
        if !counts.is_empty() {
            let fields: Vec<(String, u32)> = counts.iter().map(|(ip, n)| (ip.to_string(), *n)).collect();
            pipe.hset_multiple(&key, &fields).ignore();
        }
        let mut conn = self.conn.clone();
        within(pipe.query_async::<()>(&mut conn)).await
    }

    /// Applies `entries` (user, sockets, user_info) on `channel` for `node` as `mode` says.
    ///
    /// # Errors
    /// Redis failed or did not answer in time; nothing or everything was applied.
    pub async fn change(
        &self,
        node: &str,
        channel: &ChannelName,
        mode: Mode,
        entries: &[Held],
    ) -> Result<Change, PresenceError> {
        let mut call = self.change.prepare_invoke();
        for what in ["members", "sockets", "since"] {
            call.key(self.channel_key(channel, what));
        }
        call.key(self.channel_key(channel, &format!("node:{node}")))
            .key(self.channel_key(channel, "version"))
            .key(self.node_channels_key(node))
            .key(self.lease_key(node))
            .key(self.channel_key(channel, "ids"));
        call.arg(channel.as_str())
            .arg(mode.arg())
            .arg(chrono::Utc::now().timestamp_millis());
        for (user, n, info) in entries {
            call.arg(user).arg(*n).arg(info.to_string());
        }
        let mut conn = self.conn.clone();
        // `removed` is flat: user, its user_info (JSON text), user, …
        let (version, added, removed): (u64, Vec<String>, Vec<String>) = within(call.invoke_async(&mut conn)).await?;
        let removed = removed
            .chunks(2)
            .map(|pair| {
                let info = pair
                    .get(1)
                    .and_then(|i| serde_json::from_str(i).ok())
                    .unwrap_or(Value::Null);
                (pair[0].clone(), info)
            })
            .collect();
        let infos: HashMap<&str, &Value> = entries.iter().map(|(u, _, i)| (u.as_str(), i)).collect();
        Ok(Change {
            version,
            added: added
                .into_iter()
                .map(|u| {
                    let info = infos.get(u.as_str()).map_or(Value::Null, |i| (*i).clone());
                    (u, info)
                })
                .collect(),
            removed,
        })
    }

    /// `(version, count, members)` of `channel`; no members when there are more than `max`.
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn snapshot(
        &self,
        channel: &ChannelName,
        max: usize,
    ) -> Result<(u64, usize, Vec<(String, Value)>), PresenceError> {
        let mut conn = self.conn.clone();
        let (version, count, flat): (u64, usize, Vec<String>) = within(
            self.snapshot
                .key(self.channel_key(channel, "members"))
                .key(self.channel_key(channel, "version"))
                .arg(max)
                .invoke_async(&mut conn),
        )
        .await?;
        Ok((version, count, pairs(flat)))
    }

    /// Every member of `channel` with its sockets over all nodes and since when.
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn members(&self, channel: &ChannelName) -> Result<Vec<Present>, PresenceError> {
        let mut conn = self.conn.clone();
        let (infos, sockets, since): (HashMap<String, String>, HashMap<String, usize>, HashMap<String, i64>) = within(
            redis::pipe()
                .atomic()
                .hgetall(self.channel_key(channel, "members"))
                .hgetall(self.channel_key(channel, "sockets"))
                .hgetall(self.channel_key(channel, "since"))
                .query_async(&mut conn),
        )
        .await?;
        Ok(infos
            .into_iter()
            .map(|(user_id, info)| Present {
                connections: sockets.get(&user_id).copied().unwrap_or(0),
                since: since
                    .get(&user_id)
                    .and_then(|ms| chrono::DateTime::from_timestamp_millis(*ms))
                    .unwrap_or_default(),
                info: serde_json::from_str(&info).unwrap_or(Value::Null),
                user_id,
            })
            .collect())
    }

    /// Up to `limit` members of `channel` whose ids sort after `after`, in id (byte) order.
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn page(
        &self,
        channel: &ChannelName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Value)>, PresenceError> {
        let mut conn = self.conn.clone();
        let flat: Vec<String> = within(
            self.page
                .key(self.channel_key(channel, "ids"))
                .key(self.channel_key(channel, "members"))
                .arg(after.unwrap_or(""))
                .arg(limit)
                .invoke_async(&mut conn),
        )
        .await?;
        Ok(pairs(flat))
    }

    /// Renews `node`'s lease with `value`; false when the lease had to be created anew.
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn renew(&self, node: &str, value: &Value) -> Result<bool, PresenceError> {
        let mut conn = self.conn.clone();
        let existed: i64 = within(
            self.renew
                .key(self.lease_key(node))
                .key(self.nodes_key())
                .arg(LEASE_TTL.as_millis() as u64)
                .arg(value.to_string())
                .arg(node)
                .invoke_async(&mut conn),
        )
        .await?;
        Ok(existed == 1)
    }

    /// Registered nodes with their lease (`None`: the lease is gone, the node is dead).
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn nodes(&self) -> Result<Vec<(String, Option<Value>)>, PresenceError> {
        let mut conn = self.conn.clone();
        let mut nodes: Vec<String> = within(conn.smembers(self.nodes_key())).await?;
        nodes.sort();
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = nodes.iter().map(|n| self.lease_key(n)).collect();
        let leases: Vec<Option<String>> = within(redis::cmd("MGET").arg(keys).query_async(&mut conn)).await?;
        Ok(nodes
            .into_iter()
            .zip(leases)
            .map(|(n, l)| (n, l.and_then(|l| serde_json::from_str(&l).ok())))
            .collect())
    }

    /// Presence channels where `node` holds sockets, as Redis has it.
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn node_channels(&self, node: &str) -> Result<Vec<ChannelName>, PresenceError> {
        let mut conn = self.conn.clone();
        let names: Vec<String> = within(conn.smembers(self.node_channels_key(node))).await?;
        Ok(names.iter().filter_map(|n| ChannelName::parse(n).ok()).collect())
    }

    /// Drops a swept node from the registry (only if its lease and channels are gone).
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn forget(&self, node: &str) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let _: i64 = within(
            self.forget
                .key(self.lease_key(node))
                .key(self.node_channels_key(node))
                .key(self.nodes_key())
                .key(self.addresses_key(node))
                .arg(node)
                .invoke_async(&mut conn),
        )
        .await?;
        Ok(())
    }

    /// Gives up `node`'s lease (a clean shutdown, after its sockets left).
    ///
    /// # Errors
    /// Redis failed or did not answer in time.
    pub async fn release(&self, node: &str) -> Result<(), PresenceError> {
        let mut conn = self.conn.clone();
        let _: i64 = within(conn.del(self.lease_key(node))).await?;
        self.forget(node).await
    }
}

/// `[k1, v1, k2, v2, …]` with JSON values → pairs.
fn pairs(flat: Vec<String>) -> Vec<(String, Value)> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, serde_json::from_str(&v).unwrap_or(Value::Null)));
    }
    out
}
