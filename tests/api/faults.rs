//! Faults against the real MariaDB and Redis (production backend only): each service cut off
//! through a proxy, a worker process killed with SIGKILL, a node restarted. A message that got a
//! 2xx reaches its recipient, once; the service recovers by itself.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    chat::send,
    helpers::{Backend, TestApp, TestDb, TestUser, settings, worker_process},
    proxy::Proxy,
    pusher::PusherClient,
};

/// The production backend, or `None` (the embedded backend has no service to lose).
fn production() -> Option<(String, String)> {
    match Backend::mysql()? {
        Backend::MySql(mysql, redis) => Some((mysql, redis)),
        Backend::Sqlite => None,
    }
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap().to_owned()
}

/// A server whose MySQL and/or Redis connections go through proxies.
async fn app_behind(db_proxy: Option<&Proxy>, redis_proxy: Option<&Proxy>, mysql: &str, redis: &str) -> TestApp {
    let db = TestDb::new(&Backend::MySql(mysql.to_owned(), redis.to_owned()));
    let mut s = settings(&db);
    if let Some(p) = db_proxy {
        s.database_url = s.database_url.replace(&host_port(mysql), &p.addr.to_string());
    }
    if let Some(p) = redis_proxy {
        s.redis_url = Some(format!("redis://{}", p.addr));
    }
    TestApp::spawn_with(db, s).await
}

/// Reads events until every id in `expected` arrived; panics on a repeat or after `within`.
async fn receive_all(socket: &mut PusherClient, expected: &[i64], within: Duration) {
    let mut got = HashSet::new();
    let deadline = Instant::now() + within;
    while got.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(f) = socket.next_within(left).await else {
            let missing: Vec<_> = expected.iter().filter(|id| !got.contains(*id)).collect();
            panic!("missing after {within:?}: {missing:?}");
        };
        if let Some(id) = f.data["message"]["id"].as_i64() {
            assert!(got.insert(id), "message {id} delivered twice");
        }
    }
    let expected: HashSet<i64> = expected.iter().copied().collect();
    assert_eq!(got, expected);
}

async fn listener(app: &TestApp, user: &TestUser) -> PusherClient {
    let mut c = PusherClient::connect(app).await;
    c.subscribe(app, &user.token, &format!("private-individual.message.{}", user.id))
        .await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn mariadb_down_answers_503_quickly_and_recovers() {
    let Some((mysql, redis)) = production() else { return };
    let db = Proxy::start(host_port(&mysql)).await;
    let app = app_behind(Some(&db), None, &mysql, &redis).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    db.cut();
    for (method, path) in [
        (reqwest::Method::POST, format!("/api/users/{}/messages", b.id)),
        (reqwest::Method::GET, "/api/me".to_owned()),
        (reqwest::Method::GET, "/healthz".to_owned()),
    ] {
        let started = Instant::now();
        let res = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&a.token)
            .json(&json!({"body": "while the database is down"}))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "store_unavailable");
        assert!(took < Duration::from_secs(5), "{path} answered in {took:?}, not a hang");
    }
    db.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = app
            .client
            .post(app.url(&format!("/api/users/{}/messages", b.id)))
            .bearer_auth(&a.token)
            .json(&json!({"body": "back"}))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: still {}", res.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn redis_down_for_ten_seconds_loses_nothing() {
    let Some((mysql, redis)) = production() else { return };
    let r = Proxy::start(host_port(&redis)).await;
    let app = app_behind(None, Some(&r), &mysql, &redis).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let mut socket = listener(&app, &b).await;
    let before = send(&app, &a, &format!("/api/users/{}/messages", b.id), "before").await;
    receive_all(&mut socket, &[before], Duration::from_secs(10)).await;
    r.cut();
    let mut during = Vec::new();
    for i in 0..10 {
        during.push(
            send(
                &app,
                &a,
                &format!("/api/users/{}/messages", b.id),
                &format!("during {i}"),
            )
            .await,
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    r.restore();
    receive_all(&mut socket, &during, Duration::from_secs(30)).await;
    let after = send(&app, &a, &format!("/api/users/{}/messages", b.id), "after").await;
    receive_all(&mut socket, &[after], Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn redis_restarts_during_traffic_lose_nothing() {
    let Some((mysql, redis)) = production() else { return };
    let r = Proxy::start(host_port(&redis)).await;
    let app = app_behind(None, Some(&r), &mysql, &redis).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let mut socket = listener(&app, &b).await;
    let mut sent = Vec::new();
    for i in 0..90 {
        if i % 30 == 10 {
            r.cut(); // every connection to Redis drops, as in a restart
        }
        if i % 30 == 15 {
            r.restore();
        }
        sent.push(send(&app, &a, &format!("/api/users/{}/messages", b.id), &format!("m{i}")).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receive_all(&mut socket, &sent, Duration::from_secs(30)).await;
}

/// Jobs held in processing lists (claimed, not acknowledged).
async fn claimed_jobs(redis: &str, prefix: &str) -> usize {
    let client = redis::Client::open(redis).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}queue:processing:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut n = 0;
    for k in keys {
        n += redis::cmd("LLEN").arg(k).query_async::<usize>(&mut conn).await.unwrap();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn a_worker_killed_mid_burst_has_its_jobs_redelivered() {
    let Some((mysql, redis)) = production() else { return };
    let db = TestDb::new(&Backend::MySql(mysql, redis.clone()));
    let mut s = settings(&db);
    s.no_worker = true; // workers run as separate processes here
    let app = TestApp::spawn_with(db, s).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    let mut socket = listener(&app, &b).await;
    // A second connection of the same user shows when a worker is in the middle of the burst.
    let mut probe = listener(&app, &b).await;
    let mut sent = Vec::new();
    for i in 0..300 {
        sent.push(
            send(
                &app,
                &a,
                &format!("/api/users/{}/messages", b.id),
                &format!("burst {i}"),
            )
            .await,
        );
    }
    // SIGKILL a worker as soon as its first events arrive, until one dies holding a job.
    let mut held = 0;
    for _ in 0..10 {
        // Events of an earlier worker must not be taken for this one's.
        while probe.next_within(Duration::from_millis(200)).await.is_some() {}
        let mut worker = worker_process(app.db(), &redis);
        probe
            .next_within(Duration::from_secs(20))
            .await
            .expect("the worker delivers");
        worker.kill(); // SIGKILL
        held = claimed_jobs(&redis, &app.db().redis_prefix).await;
        if held > 0 {
            break;
        }
    }
    assert!(held > 0, "no worker died holding a job");
    let _survivor = worker_process(app.db(), &redis);
    receive_all(&mut socket, &sent, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn a_restarted_node_gives_its_clients_what_they_missed_once() {
    let Some((mysql, redis)) = production() else { return };
    let node1 = TestApp::spawn(Backend::MySql(mysql, redis)).await;
    let node2 = node1.second_node().await;
    let (a, b) = (node1.user("ann").await, node1.user("ben").await);
    let mut socket = listener(&node2, &b).await;
    let first = send(&node1, &a, &format!("/api/users/{}/messages", b.id), "first").await;
    receive_all(&mut socket, &[first], Duration::from_secs(10)).await;
    let db = node2.stop().await;
    assert_eq!(socket.close_code().await, Some(4200), "told to reconnect");
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(
            send(
                &node1,
                &a,
                &format!("/api/users/{}/messages", b.id),
                &format!("missed {i}"),
            )
            .await,
        );
    }
    let s = settings(&db);
    let node2 = TestApp::spawn_with(db, s).await;
    let mut socket = listener(&node2, &b).await;
    // Ben never acknowledged: "first" comes again after a reconnect, then what he missed, each once.
    let mut expected = vec![first];
    expected.extend(&missed);
    receive_all(&mut socket, &expected, Duration::from_secs(10)).await;
    socket.expect_no_event(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn a_client_cut_off_for_thirty_seconds_gets_everything_once() {
    let Some((mysql, redis)) = production() else { return };
    let app = TestApp::spawn(Backend::MySql(mysql, redis)).await;
    let (a, b) = (app.user("ann").await, app.user("ben").await);
    // Ben's network: a proxy between his client and the server.
    let network = Proxy::start(app.addr.to_string()).await;
    let channel = format!("private-individual.message.{}", b.id);
    let connect = || async {
        let mut c = PusherClient::try_connect(network.addr).await.expect("connects");
        let signed = c.sign(app.addr, &b.token, &channel).await.expect("signed");
        c.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": signed["auth"]}}))
            .await;
        c.expect("pusher_internal:subscription_succeeded").await;
        c
    };
    let mut socket = connect().await;
    let seen = send(&app, &a, &format!("/api/users/{}/messages", b.id), "seen").await;
    receive_all(&mut socket, &[seen], Duration::from_secs(10)).await;
    // Like the UI, the client acknowledges what it has shown.
    let res = app
        .client
        .post(app.url("/api/delivery/ack"))
        .bearer_auth(&b.token)
        .json(&json!({"individual": seen}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    network.cut();
    let mut missed = Vec::new();
    for i in 0..6 {
        missed.push(
            send(
                &app,
                &a,
                &format!("/api/users/{}/messages", b.id),
                &format!("missed {i}"),
            )
            .await,
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    network.restore();
    let mut socket = connect().await;
    receive_all(&mut socket, &missed, Duration::from_secs(10)).await;
    socket.expect_no_event(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
async fn a_worker_stops_promptly_even_when_redis_is_gone() {
    let Some((mysql, redis)) = production() else { return };
    let r = Proxy::start(host_port(&redis)).await;
    let db = TestDb::new(&Backend::MySql(mysql, redis));
    // The database must exist for the worker (the server creates it).
    let app = TestApp::spawn_with(db.shared(), settings(&db)).await;
    let mut worker = worker_process(&db, &format!("redis://{}", r.addr));
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.cut(); // Redis unreachable from now on
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    assert!(
        worker.terminate_and_wait(Duration::from_secs(20)),
        "the worker did not exit after SIGTERM"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "SIGTERM to exit took {took:?}");
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    chatbox_without_mysql_redis,
    ignore = "SKIPPED: needs MySQL + Redis (CHATBOX_TEST_MYSQL_URL, CHATBOX_TEST_REDIS_URL)"
)]
/// A node cut off from Redis misses the member changes published meanwhile (the bus delivers at
/// most once): once back, it sends its sockets their member list afresh, with whoever joined.
async fn member_lists_are_sent_afresh_after_a_bus_outage() {
    use crate::presence::{ids, join, listed};
    let Some((mysql, redis)) = production() else { return };
    let r = Proxy::start(host_port(&redis)).await;
    let n1 = app_behind(None, Some(&r), &mysql, &redis).await;
    let n2 = n1.second_node().await;
    let (ann, ben, cat) = (n1.user("ann").await, n1.user("ben").await, n1.user("cat").await);
    let (mut a, _) = join(n1.addr, &ann).await;
    let (_b, _) = join(n2.addr, &ben).await;
    crate::presence::until_listed(&mut a, &ben, Duration::from_secs(10)).await;

    r.cut();
    let (_c, _) = join(n2.addr, &cat).await; // announced while n1 hears nothing
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = a.next_within(left).await.expect("a fresh member list within 15 s");
        if f.event == "pusher_internal:subscription_succeeded" {
            assert_eq!(listed(&f.data), ids([&ann, &ben, &cat]));
            break;
        }
        assert_ne!(
            f.event, "pusher_internal:member_added",
            "the change was published while this node was cut off: {f:?}"
        );
    }
}
