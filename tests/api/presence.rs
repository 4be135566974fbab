//! Presence as the whole deployment sees it: members counted per user over every node, one
//! `member_added` / `member_removed` per user for the cluster, a dead node's members removed, a
//! presence that heals after Redis lost its keys, and the member limit. The cluster tests run on
//! MySQL + Redis with two or three `chatbox serve` nodes (one of them a process to SIGKILL).

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    helpers::{Backend, TestApp, TestDb, TestUser, backend_tests, serve_process, serve_process_with, settings},
    pusher::PusherClient,
};

const ONLINE: &str = "presence-online";
/// How long a dead node's members may take to leave, and presence to heal (API.md).
const WITHIN: Duration = Duration::from_secs(15);

/// Connects to the node at `addr` and joins `presence-online` as `user`: the socket and the
/// `subscription_succeeded` data.
pub(crate) async fn join(addr: SocketAddr, user: &TestUser) -> (PusherClient, Value) {
    let mut c = PusherClient::try_connect(addr).await.expect("node accepts sockets");
    let signed = c.sign(addr, &user.token, ONLINE).await.expect("presence signed");
    c.send(json!({ "event": "pusher:subscribe", "data": {
        "channel": ONLINE, "auth": signed["auth"], "channel_data": signed["channel_data"] } }))
        .await;
    let ok = c.expect("pusher_internal:subscription_succeeded").await;
    (c, ok.data)
}

/// The member ids of a `subscription_succeeded`, checking each is listed once and `count`.
pub(crate) fn listed(data: &Value) -> BTreeSet<String> {
    let ids: Vec<String> = data["presence"]["ids"]
        .as_array()
        .expect("presence ids")
        .iter()
        .map(|v| v.as_str().expect("ids are strings").to_owned())
        .collect();
    let set: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "each user once: {data}");
    assert_eq!(data["presence"]["count"], ids.len(), "count matches: {data}");
    set
}

pub(crate) fn ids<'a>(users: impl IntoIterator<Item = &'a TestUser>) -> BTreeSet<String> {
    users.into_iter().map(|u| u.id.to_string()).collect()
}

/// The next member change on `c` within `wait`: `("added" | "removed", user id)`.
async fn next_change(c: &mut PusherClient, wait: Duration) -> Option<(&'static str, String)> {
    let deadline = Instant::now() + wait;
    loop {
        let f = c
            .next_within(deadline.saturating_duration_since(Instant::now()))
            .await?;
        let kind = match f.event.as_str() {
            "pusher_internal:member_added" => "added",
            "pusher_internal:member_removed" => "removed",
            _ => continue,
        };
        return Some((kind, f.data["user_id"].as_str().expect("user_id").to_owned()));
    }
}

async fn expect_change(c: &mut PusherClient, kind: &str, user: &TestUser) {
    let got = next_change(c, Duration::from_secs(10)).await;
    assert_eq!(got, Some((kind, user.id.to_string())), "expected {kind} {}", user.id);
}

async fn get(addr: SocketAddr, user: &TestUser, path: &str) -> Value {
    let res = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("request");
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.expect("JSON")
}

/// `/api/admin/presence` at `addr`: user id → connections, and the number of live nodes.
async fn admin_view(addr: SocketAddr, admin: &TestUser) -> (std::collections::BTreeMap<String, u64>, usize) {
    let v = get(addr, admin, "/api/admin/presence").await;
    let online = v["online"]
        .as_array()
        .expect("online")
        .iter()
        .map(|p| {
            (
                p["user_id"].to_string(),
                p["connections"].as_u64().expect("connections"),
            )
        })
        .collect();
    assert_eq!(v["count"], v["online"].as_array().unwrap().len());
    (online, v["nodes"].as_array().expect("nodes").len())
}

/// Who `/api/users` at `addr` says is online.
async fn users_online(addr: SocketAddr, user: &TestUser) -> BTreeSet<String> {
    get(addr, user, "/api/users").await["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["online"] == true)
        .map(|u| u["id"].to_string())
        .collect()
}

/// Waits until `/api/admin/presence` at `addr` shows exactly `want` (user → connections) and
/// `nodes` live nodes, up to `wait`.
async fn until_admin_shows(
    addr: SocketAddr,
    admin: &TestUser,
    want: &[(&TestUser, u64)],
    nodes: usize,
    wait: Duration,
) {
    let want: std::collections::BTreeMap<String, u64> = want.iter().map(|(u, n)| (u.id.to_string(), *n)).collect();
    let deadline = Instant::now() + wait;
    loop {
        let seen = admin_view(addr, admin).await;
        if seen == (want.clone(), nodes) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: admin view {seen:?}, want {want:?} on {nodes} nodes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The production backend's servers, or `None` (embedded presence is one process).
fn production() -> Option<Backend> {
    Backend::mysql()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn a_user_on_two_nodes_is_one_member_until_its_last_socket_closes() {
    let Some(backend) = production() else { return };
    let n1 = TestApp::spawn(backend).await;
    let (n2, n3) = (n1.second_node().await, n1.second_node().await);
    let root = n1.admin("root").await;
    let (ann, ben, cat, dan) = (
        n1.user("ann").await,
        n1.user("ben").await,
        n1.user("cat").await,
        n1.user("dan").await,
    );
    let (mut a, list) = join(n1.addr, &ann).await;
    assert_eq!(listed(&list), ids([&ann]));
    let (b2, list) = join(n2.addr, &ben).await;
    assert_eq!(listed(&list), ids([&ann, &ben]), "node 2 lists node 1's member");
    let (b3, list) = join(n3.addr, &ben).await;
    assert_eq!(
        listed(&list),
        ids([&ann, &ben]),
        "ben's second socket is no second member"
    );
    expect_change(&mut a, "added", &ben).await;
    let (_c, list) = join(n1.addr, &cat).await;
    assert_eq!(listed(&list), ids([&ann, &ben, &cat]));
    // The change after ben's arrival is cat's: ben's second socket was not announced.
    expect_change(&mut a, "added", &cat).await;

    // Every node says the same: ben has two connections, three nodes are alive.
    for node in [&n1, &n2, &n3] {
        until_admin_shows(node.addr, &root, &[(&ann, 1), (&ben, 2), (&cat, 1)], 3, WITHIN).await;
        assert_eq!(
            users_online(node.addr, &dan).await,
            ids([&ann, &ben, &cat]),
            "{}",
            node.addr
        );
    }

    // One of ben's sockets closes: once every node counts it gone, dan's arrival is the next
    // change ann sees, so no member_removed came for ben.
    drop(b2);
    until_admin_shows(n3.addr, &root, &[(&ann, 1), (&ben, 1), (&cat, 1)], 3, WITHIN).await;
    let (d, _) = join(n2.addr, &dan).await;
    expect_change(&mut a, "added", &dan).await;
    // His last socket closes: exactly one member_removed (dan's departure comes next, not a
    // second one for ben).
    drop(b3);
    expect_change(&mut a, "removed", &ben).await;
    drop(d);
    expect_change(&mut a, "removed", &dan).await;
    for node in [&n1, &n2, &n3] {
        until_admin_shows(node.addr, &root, &[(&ann, 1), (&cat, 1)], 3, WITHIN).await;
        assert_eq!(users_online(node.addr, &dan).await, ids([&ann, &cat]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn a_killed_node_s_members_leave_within_15_s() {
    let Some(backend) = production() else { return };
    let n1 = TestApp::spawn(backend).await;
    let (mut doomed, n2) = serve_process(n1.db()).await;
    let root = n1.admin("root").await;
    let (ann, ben, cat, dan) = (
        n1.user("ann").await,
        n1.user("ben").await,
        n1.user("cat").await,
        n1.user("dan").await,
    );
    let (mut a, _) = join(n1.addr, &ann).await;
    let (_b, list) = join(n2, &ben).await;
    assert_eq!(listed(&list), ids([&ann, &ben]));
    let (_c2, _) = join(n2, &cat).await;
    let (_c1, _) = join(n1.addr, &cat).await;
    expect_change(&mut a, "added", &ben).await;
    expect_change(&mut a, "added", &cat).await;
    until_admin_shows(n1.addr, &root, &[(&ann, 1), (&ben, 1), (&cat, 2)], 2, WITHIN).await;

    doomed.kill();
    let killed = Instant::now();
    let gone = next_change(&mut a, WITHIN).await;
    assert_eq!(
        gone,
        Some(("removed", ben.id.to_string())),
        "ben, only on the dead node, leaves"
    );
    assert!(killed.elapsed() < WITHIN, "within 15 s: {:?}", killed.elapsed());
    // Cat is still connected to node 1: the next change is dan's arrival, not cat leaving.
    let (_d, list) = join(n1.addr, &dan).await;
    assert_eq!(listed(&list), ids([&ann, &cat, &dan]));
    expect_change(&mut a, "added", &dan).await;
    until_admin_shows(n1.addr, &root, &[(&ann, 1), (&cat, 1), (&dan, 1)], 1, WITHIN).await;
    assert_eq!(users_online(n1.addr, &dan).await, ids([&ann, &cat, &dan]));
}

/// Deletes every Redis key under `prefix` (this test's keys only, never the whole Redis).
async fn delete_keys(redis: &str, prefix: &str) -> usize {
    let client = redis::Client::open(redis).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    for k in &keys {
        let _: i64 = redis::cmd("DEL").arg(k).query_async(&mut conn).await.unwrap();
    }
    keys.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn presence_heals_within_15_s_after_redis_lost_its_keys() {
    let Some(backend) = production() else { return };
    let n1 = TestApp::spawn(backend).await;
    let n2 = n1.second_node().await;
    let root = n1.admin("root").await;
    let (ann, ben, cat) = (n1.user("ann").await, n1.user("ben").await, n1.user("cat").await);
    let (mut a, _) = join(n1.addr, &ann).await;
    let (b, _) = join(n2.addr, &ben).await;
    expect_change(&mut a, "added", &ben).await;
    until_admin_shows(n2.addr, &root, &[(&ann, 1), (&ben, 1)], 2, WITHIN).await;

    let db = n1.db();
    let deleted = delete_keys(db.redis_url.as_deref().unwrap(), &db.redis_prefix).await;
    assert!(deleted > 0, "the test's presence keys were there");
    let lost = Instant::now();
    for node in [&n1, &n2] {
        until_admin_shows(node.addr, &root, &[(&ann, 1), (&ben, 1)], 2, WITHIN).await;
        assert_eq!(users_online(node.addr, &cat).await, ids([&ann, &ben]));
    }
    assert!(lost.elapsed() < WITHIN, "healed in {:?}", lost.elapsed());
    // The healed counts are right: a newcomer sees both, and ben's leaving is announced.
    let (_c, list) = join(n2.addr, &cat).await;
    assert_eq!(listed(&list), ids([&ann, &ben, &cat]));
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let change = next_change(&mut a, deadline.saturating_duration_since(Instant::now())).await;
        match change {
            // Re-registration may announce the members again; ben's departure must come.
            Some(("added", _)) => continue,
            other => {
                assert_eq!(other, Some(("removed", ben.id.to_string())));
                break;
            }
        }
    }
    until_admin_shows(n1.addr, &root, &[(&ann, 1), (&cat, 1)], 2, WITHIN).await;
}

/// Reads `c` until its member list holds `user`: told by a `member_added` or listed by a fresh
/// `subscription_succeeded` (a reset), within `wait`.
pub(crate) async fn until_listed(c: &mut PusherClient, user: &TestUser, wait: Duration) {
    let want = user.id.to_string();
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = c
            .next_within(left)
            .await
            .unwrap_or_else(|| panic!("user {want} never reached this member list within {wait:?}"));
        match f.event.as_str() {
            "pusher_internal:member_added" if f.data["user_id"] == want.as_str() => return,
            "pusher_internal:subscription_succeeded" if listed(&f.data).contains(&want) => return,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
/// When Redis loses its keys while a node dies, nobody is left to announce that node's members
/// leaving: the survivors send their sockets a fresh member list once they re-registered, and
/// the dead node's members are gone from it.
async fn a_member_lost_with_redis_s_keys_leaves_the_lists() {
    let Some(backend) = production() else { return };
    let n1 = TestApp::spawn(backend).await;
    let (mut doomed, n2) = serve_process(n1.db()).await;
    let (ann, ben) = (n1.user("ann").await, n1.user("ben").await);
    let (mut a, _) = join(n1.addr, &ann).await;
    let (_b, _) = join(n2, &ben).await;
    until_listed(&mut a, &ben, Duration::from_secs(10)).await;

    doomed.kill();
    let db = n1.db();
    assert!(delete_keys(db.redis_url.as_deref().unwrap(), &db.redis_prefix).await > 0);
    let lost = Instant::now();
    loop {
        let left = WITHIN.saturating_sub(lost.elapsed());
        let f = a.next_within(left).await.expect("a fresh member list within 15 s");
        if f.event == "pusher_internal:subscription_succeeded" && listed(&f.data) == ids([&ann]) {
            break;
        }
    }
}

/// Whether the node at `addr` accepts one more socket from this address within `wait`.
async fn accepts_within(addr: SocketAddr, wait: Duration) -> Option<PusherClient> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(c) = PusherClient::try_connect(addr).await {
            return Some(c);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
/// `MAX_CONNECTIONS_PER_IP` counts an address's sockets on every node; a place is given back
/// when a socket closes anywhere, and a killed node's places once its lease has expired.
async fn the_per_address_cap_counts_every_node() {
    let Some(backend) = production() else { return };
    let db = TestDb::new(&backend);
    let mut s = settings(&db);
    s.max_connections_per_ip = 3;
    let n1 = TestApp::spawn_with(db, s).await;
    let (mut doomed, n2) = serve_process_with(n1.db(), &[("MAX_CONNECTIONS_PER_IP", "3")]).await;
    let on_n2 = [
        PusherClient::try_connect(n2).await.expect("first on node 2"),
        PusherClient::try_connect(n2).await.expect("second on node 2"),
    ];
    let on_n1 = PusherClient::try_connect(n1.addr).await.expect("third, on node 1");
    assert!(
        PusherClient::try_connect(n1.addr).await.is_none(),
        "node 1 holds one socket of this address, the cluster three: refused"
    );
    assert!(PusherClient::try_connect(n2).await.is_none(), "refused on node 2 too");

    drop(on_n1);
    let back = accepts_within(n1.addr, Duration::from_secs(5)).await;
    assert!(back.is_some(), "the place given back on node 1 is taken again");
    assert!(
        PusherClient::try_connect(n1.addr).await.is_none(),
        "and the cap holds again"
    );

    doomed.kill();
    drop(on_n2);
    let killed = Instant::now();
    let freed = accepts_within(n1.addr, WITHIN).await;
    assert!(freed.is_some(), "the killed node's places come back within 15 s");
    assert!(killed.elapsed() < WITHIN);
    let _third = PusherClient::try_connect(n1.addr).await.expect("both of its places");
    assert!(PusherClient::try_connect(n1.addr).await.is_none());
}

/// Users joining at the same moment: every socket's list plus the arrivals it is told of name
/// every user exactly once, never itself as an arrival.
async fn simultaneous_joins_list_everyone_once(backend: Backend) {
    const USERS: usize = 12;
    let n1 = TestApp::spawn(backend.clone()).await;
    let n2 = match backend {
        Backend::MySql(..) => Some(n1.second_node().await),
        Backend::Sqlite => None,
    };
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(n1.user(&format!("joiner{i}")).await);
    }
    let everyone = ids(&users);
    let joins = users.iter().enumerate().map(|(i, u)| {
        let addr = match &n2 {
            Some(n2) if i % 2 == 1 => n2.addr,
            _ => n1.addr,
        };
        join(addr, u)
    });
    let joined = futures_util::future::join_all(joins).await;
    let mut sockets = Vec::new();
    for ((mut c, list), me) in joined.into_iter().zip(&users) {
        let mut known = listed(&list);
        assert!(known.contains(&me.id.to_string()), "a member list holds its own member");
        while known != everyone {
            let change = next_change(&mut c, Duration::from_secs(10)).await;
            let Some(("added", user)) = change else {
                panic!("{}: expected arrivals, got {change:?} knowing {known:?}", me.id)
            };
            assert!(known.insert(user.clone()), "{}: told again of {user}", me.id);
        }
        sockets.push(c);
    }
    // Nothing more is pending: the next change each socket sees is a late arrival.
    let late = n1.user("late").await;
    let (_l, list) = join(n1.addr, &late).await;
    assert_eq!(listed(&list).len(), USERS + 1);
    for c in &mut sockets {
        expect_change(c, "added", &late).await;
    }
}

/// Past `PRESENCE_MAX_MEMBERS`, a joiner gets the count and itself only, arrivals are still
/// announced, and the whole list comes page by page over HTTP.
async fn past_the_member_limit_the_list_is_counted_and_paged(backend: Backend) {
    let db = TestDb::new(&backend);
    let mut s = settings(&db);
    s.presence_max_members = 2;
    let app = TestApp::spawn_with(db, s).await;
    let (ann, ben, cat) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    let (mut a, _) = join(app.addr, &ann).await;
    let (_b, list) = join(app.addr, &ben).await;
    assert_eq!(listed(&list), ids([&ann, &ben]), "at the limit: the whole list");
    let (_c, list) = join(app.addr, &cat).await;
    assert_eq!(list["presence"]["count"], 3, "over the limit: the true count");
    assert_eq!(list["presence"]["ids"], json!([cat.id.to_string()]), "and only itself");
    assert_eq!(list["presence"]["hash"][cat.id.to_string()]["name"], "cat");
    expect_change(&mut a, "added", &ben).await;
    expect_change(&mut a, "added", &cat).await;

    let mut seen = Vec::new();
    let mut path = "/api/presence/members?limit=2".to_owned();
    loop {
        let page = get(app.addr, &cat, &path).await;
        let members = page["members"].as_array().expect("members");
        assert!(members.len() <= 2, "a page holds at most limit: {page}");
        for m in members {
            assert_eq!(
                m["user_info"]["id"],
                m["user_id"].as_str().unwrap().parse::<i64>().unwrap()
            );
            seen.push(m["user_id"].as_str().unwrap().to_owned());
        }
        match page["cursor"].as_str() {
            Some(cursor) => path = format!("/api/presence/members?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort();
    let mut want: Vec<String> = ids([&ann, &ben, &cat]).into_iter().collect();
    want.sort();
    assert_eq!(seen, want, "every member once over the pages");
    let res = reqwest::Client::new()
        .get(app.url("/api/presence/members?limit=1001"))
        .bearer_auth(&cat.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
}

backend_tests!(
    simultaneous_joins_list_everyone_once,
    past_the_member_limit_the_list_is_counted_and_paged,
);
