//! The chaos run (production backend): 50 users and 10,000 messages over one-to-one, groups and
//! "All", while workers are killed with SIGKILL, Redis connections are cut and a server node is
//! restarted, at random moments. At the end every recipient must have exactly the stored set.
//! Run by `.ci/run`: `cargo test --test api chaos -- --ignored --nocapture` (a few minutes).

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

use crate::{
    helpers::{Backend, TestApp, TestDb, settings, worker_process},
    proxy::Proxy,
    pusher::PusherClient,
};

const USERS: usize = 50;
const GROUPS: usize = 5;
const MESSAGES: usize = 10_000;
const SENDERS: usize = 16;

/// What one recipient's client saw: ids in arrival order, per connection.
#[derive(Default)]
struct Seen {
    connections: Vec<Vec<i64>>,
}

/// A client that stays subscribed to the user's two channels, reconnecting whenever its node
/// goes away, and never acknowledges (so every reconnection replays the backlog).
fn keep_listening(
    addr: Arc<Mutex<SocketAddr>>,
    user: i64,
    token: String,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let at = *addr.lock().unwrap();
            let Some(mut c) = PusherClient::try_connect(at).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            // Sign both channels, then subscribe to both and record every frame from then on:
            // backlog and live events of the first channel arrive before the second is confirmed.
            let channels = [
                format!("private-individual.message.{user}"),
                format!("private-group.message.{user}"),
            ];
            let mut signed = Vec::new();
            for ch in &channels {
                match c.sign(at, &token, ch).await {
                    Some(s) => signed.push((ch.clone(), s["auth"].clone())),
                    None => break,
                }
            }
            if signed.len() < channels.len() {
                continue;
            }
            let index = {
                let mut s = seen.lock().unwrap();
                s.connections.push(Vec::new());
                s.connections.len() - 1
            };
            for (ch, auth) in signed {
                c.send(json!({"event": "pusher:subscribe", "data": {"channel": ch, "auth": auth}}))
                    .await;
            }
            // Connections are cut on purpose here: a closed socket ends this one's reading.
            while let Ok(Some(f)) = c.next_or_closed(Duration::from_secs(3600)).await {
                if f.event == "pusher:subscription_error" {
                    break;
                }
                if let Some(id) = f.data["message"]["id"].as_i64() {
                    seen.lock().unwrap().connections[index].push(id);
                }
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a few minutes; run by .ci/run"]
async fn chaos() {
    let Some(Backend::MySql(mysql, redis)) = Backend::mysql() else {
        return;
    };
    rlimit::increase_nofile_limit(u64::MAX).ok();
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("chaos: seed {seed} (CHAOS_SEED={seed} repeats the schedule)");
    let mut rng = StdRng::seed_from_u64(seed);
    let proxy = Proxy::start(redis.trim_start_matches("redis://").to_owned()).await;
    let proxied = format!("redis://{}", proxy.addr);
    let db = TestDb::new(&Backend::MySql(mysql, redis.clone()));
    let node_settings = |db: &TestDb, bind: &str| {
        let mut s = settings(db);
        s.redis_url = Some(proxied.clone());
        s.no_worker = true;
        s.bind = bind.to_owned();
        s
    };
    let node_a = TestApp::spawn_with(db.shared(), node_settings(&db, "127.0.0.1:0")).await;
    let mut node_b = TestApp::spawn_with(db.shared(), node_settings(&db, "127.0.0.1:0")).await;
    let b_addr = node_b.addr;
    let mut workers = vec![worker_process(&db, &proxied), worker_process(&db, &proxied)];

    // Users, tokens and groups straight through the store.
    let config = chatbox::config::Config::from_settings(settings(&db)).unwrap();
    let store = chatbox::store::Store::connect(&config).await.unwrap();
    let mut users = Vec::new();
    for i in 0..USERS {
        let name = chatbox::domain::UserName::parse(&format!("chaos{i}")).unwrap();
        let email = chatbox::domain::Email::parse(&format!("chaos{i}@example.com")).unwrap();
        let user = store.create_user(&name, &email, "not-a-real-hash").await.unwrap();
        let token = format!("{:064x}", 0xc4a0_0000 + i);
        store
            .insert_token(user.id, &chatbox::http::extract::token_hash(&token))
            .await
            .unwrap();
        users.push((user.id.0, token));
    }
    let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
    for g in 0..GROUPS {
        let members: Vec<usize> = (0..USERS).filter(|u| u % GROUPS == g || u % 7 == g).collect();
        let ids: Vec<chatbox::domain::UserId> = members[1..]
            .iter()
            .map(|u| chatbox::domain::UserId(users[*u].0))
            .collect();
        let name = chatbox::domain::GroupName::parse(&format!("chaos group {g}")).unwrap();
        let group = store
            .create_group(&name, chatbox::domain::UserId(users[members[0]].0), &ids)
            .await
            .unwrap();
        groups.push((group.id.0, members));
    }

    // Clients: half on each node.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr_a = Arc::new(Mutex::new(node_a.addr));
    let addr_b = Arc::new(Mutex::new(b_addr));
    let seen: Vec<Arc<Mutex<Seen>>> = (0..USERS).map(|_| Arc::default()).collect();
    for (i, (id, token)) in users.iter().enumerate() {
        let addr = if i % 2 == 0 { addr_a.clone() } else { addr_b.clone() };
        keep_listening(addr, *id, token.clone(), seen[i].clone(), stop.clone());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The plan: who sends what where, decided up front from the seed.
    let mut plan = Vec::new();
    for n in 0..MESSAGES {
        let from = rng.random_range(0..USERS);
        let roll: f64 = rng.random();
        let (path, recipients): (String, Vec<usize>) = if roll < 0.6 {
            let mut to = rng.random_range(0..USERS - 1);
            if to >= from {
                to += 1;
            }
            (format!("/api/users/{}/messages", users[to].0), vec![to])
        } else if roll < 0.95 {
            let mine: Vec<&(i64, Vec<usize>)> = groups.iter().filter(|(_, m)| m.contains(&from)).collect();
            match mine.get(rng.random_range(0..mine.len().max(1))) {
                Some((gid, members)) => (format!("/api/groups/{gid}/messages"), members.clone()),
                None => ("/api/groups/1/messages".to_owned(), (0..USERS).collect()),
            }
        } else {
            ("/api/groups/1/messages".to_owned(), (0..USERS).collect())
        };
        plan.push((n, from, path, recipients));
    }
    let plan = Arc::new(Mutex::new(plan.into_iter()));
    let expected: Arc<Mutex<Vec<HashSet<i64>>>> = Arc::new(Mutex::new(vec![HashSet::new(); USERS]));
    let conversations: Arc<Mutex<HashMap<i64, String>>> = Arc::default();
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (plan, expected, conversations, users) =
            (plan.clone(), expected.clone(), conversations.clone(), users.clone());
        let nodes = [addr_a.clone(), addr_b.clone()];
        senders.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            loop {
                let next = plan.lock().unwrap().next();
                let Some((n, from, path, recipients)) = next else {
                    return;
                };
                // Retried on the other node until stored: the client_id makes retries safe.
                let mut attempt = 0;
                let id = loop {
                    let node = *nodes[(n + attempt) % 2].lock().unwrap();
                    let res = http
                        .post(format!("http://{node}{path}"))
                        .bearer_auth(&users[from].1)
                        .json(&json!({"body": format!("chaos {n}"), "client_id": format!("chaos-{n}")}))
                        .send()
                        .await;
                    if let Ok(r) = res
                        && r.status().is_success()
                    {
                        break r.json::<serde_json::Value>().await.unwrap()["message"]["id"]
                            .as_i64()
                            .unwrap();
                    }
                    attempt += 1;
                    assert!(attempt < 200, "message {n} could not be stored");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                let mut e = expected.lock().unwrap();
                for r in recipients {
                    e[r].insert(id);
                }
                conversations.lock().unwrap().insert(id, path);
            }
        }));
    }

    // Faults at random moments while the senders run.
    let mut faults: HashMap<&str, usize> = HashMap::new();
    while senders.iter().any(|s| !s.is_finished()) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(1500..3500))).await;
        match rng.random_range(0..3) {
            0 => {
                let w = rng.random_range(0..workers.len());
                workers[w].kill();
                workers[w] = worker_process(&db, &proxied);
                *faults.entry("worker killed").or_default() += 1;
            }
            1 => {
                proxy.cut();
                tokio::time::sleep(Duration::from_millis(rng.random_range(300..3000))).await;
                proxy.restore();
                *faults.entry("redis cut").or_default() += 1;
            }
            _ => {
                let old = std::mem::replace(
                    &mut node_b,
                    TestApp::spawn_with(db.shared(), node_settings(&db, "127.0.0.1:0")).await,
                );
                old.stop().await;
                *addr_b.lock().unwrap() = node_b.addr;
                *faults.entry("node restarted").or_default() += 1;
            }
        }
    }
    for s in senders {
        s.await.unwrap();
    }
    let sending = started.elapsed();
    proxy.restore();

    // Everyone must end up with exactly the stored set.
    let expected = expected.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    let complete = |i: usize| -> bool {
        let s = seen[i].lock().unwrap();
        let got: HashSet<i64> = s.connections.iter().flatten().copied().collect();
        got == expected[i]
    };
    while !(0..USERS).all(complete) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let stored: i64 = {
        let mut conn = <sqlx::MySqlConnection as sqlx::Connection>::connect(&db.url)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM messages")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    };
    let conversations = conversations.lock().unwrap().clone();
    let (mut expected_total, mut delivered, mut lost, mut extra, mut dup_in_connection, mut replayed, mut inversions) =
        (0, 0, 0, 0, 0, 0, 0);
    for i in 0..USERS {
        let s = seen[i].lock().unwrap();
        let got: HashSet<i64> = s.connections.iter().flatten().copied().collect();
        expected_total += expected[i].len();
        delivered += got.len();
        lost += expected[i].difference(&got).count();
        extra += got.difference(&expected[i]).count();
        replayed += s.connections.iter().map(Vec::len).sum::<usize>() - got.len();
        for conn in &s.connections {
            let unique: HashSet<&i64> = conn.iter().collect();
            dup_in_connection += conn.len() - unique.len();
            let mut last: HashMap<&String, i64> = HashMap::new();
            for id in conn {
                let Some(c) = conversations.get(id) else { continue };
                if last.get(c).is_some_and(|prev| *prev > *id) {
                    inversions += 1;
                }
                let e = last.entry(c).or_insert(*id);
                *e = (*e).max(*id);
            }
        }
    }
    let connections: usize = seen.iter().map(|s| s.lock().unwrap().connections.len()).sum();
    println!(
        "chaos: {MESSAGES} sent in {:.1} s, {stored} stored; faults: {faults:?}\n\
         chaos: {USERS} recipients, {expected_total} deliveries expected, {delivered} delivered, {lost} lost, \
         {extra} unexpected; duplicates within a connection: {dup_in_connection}; \
         {connections} connections, {replayed} messages replayed by backlog after reconnections; \
         out-of-order arrivals within a conversation: {inversions}",
        sending.as_secs_f64()
    );
    assert_eq!(stored, MESSAGES as i64, "every message stored once");
    assert_eq!(lost, 0, "nothing lost");
    assert_eq!(extra, 0, "nobody got what was not theirs");
    assert_eq!(dup_in_connection, 0, "no message twice on one connection");
    drop(workers);
    drop(node_b);
    drop(node_a);
}
