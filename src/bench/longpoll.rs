//! `longpoll`: N long polls (`GET /api/notifications`) spread over U users wait; then one message
//! to "All" wakes every one of them. Measures the wake-up latency from the POST being sent to each
//! poll's answer, and (with `--pid`) the server's threads while all of them wait.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use super::{Report, client::Server, connect::proc_status, stats::Summary};

#[derive(Debug, Args)]
pub struct LongpollArgs {
    /// Base URL of the server under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Long polls held at once.
    #[arg(long, default_value_t = 1000)]
    pub polls: usize,
    /// Users the polls are spread over (each signs up: password hashing is deliberately slow).
    /// The server holds at most 4 polls per user, so at least a quarter of `--polls`.
    #[arg(long, default_value_t = 250)]
    pub users: usize,
    /// Process id of the server, to read its thread count while the polls wait.
    #[arg(long)]
    pub pid: Option<u32>,
}

pub async fn run(args: LongpollArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.polls > 0 && args.users > 0, "--polls and --users must be positive");
    let per_user = crate::ws::waiters::MAX_POLLS_PER_USER;
    anyhow::ensure!(
        args.polls <= args.users * per_user,
        "the server holds at most {per_user} polls per user: give --users {} or more",
        args.polls.div_ceil(per_user)
    );
    let server = Server::new(&args.url);
    let mut users = Vec::with_capacity(args.users);
    for chunk in 0..args.users.div_ceil(8) {
        let batch = (chunk * 8..((chunk + 1) * 8).min(args.users)).map(|_| server.sign_up("bench-poll"));
        for u in futures_util::future::join_all(batch).await {
            users.push(u?);
        }
    }
    let sender = server.sign_up("bench-poll-sender").await?;
    eprintln!(
        "longpoll: {} users signed up; opening {} polls",
        users.len(),
        args.polls
    );
    // Each poll on its own connection, as separate clients would hold them.
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel::<(Instant, bool)>();
    for i in 0..args.polls {
        let token = users[i % users.len()].token.clone();
        let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
        let url = format!("{}/api/notifications?timeout=60", server.base);
        let done = done_tx.clone();
        tokio::spawn(async move {
            let answer = async {
                let v: Value = http
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await?
                    .error_for_status()?
                    .json()
                    .await?;
                anyhow::Ok(v["notifications"].as_array().is_some_and(|n| !n.is_empty()))
            }
            .await;
            let _ = done.send((Instant::now(), answer.unwrap_or(false)));
        });
    }
    drop(done_tx);
    // Let every poll reach the server and start waiting.
    tokio::time::sleep(Duration::from_secs(2 + (args.polls / 2000) as u64)).await;
    let waiting_threads = args.pid.and_then(|pid| proc_status(pid, "Threads:").ok());
    let sent = Instant::now();
    server
        .http
        .post(format!("{}/api/groups/1/messages", server.base))
        .bearer_auth(&sender.token)
        .json(&json!({ "body": "wake up" }))
        .send()
        .await?
        .error_for_status()
        .context("POST to \"All\"")?;
    let mut latencies = Vec::with_capacity(args.polls);
    let (mut empty, mut early) = (0usize, 0usize);
    while let Some((at, with_news)) = done.recv().await {
        match (at < sent, with_news) {
            (true, _) => early += 1,
            (false, true) => latencies.push(at - sent),
            (false, false) => empty += 1,
        }
    }
    let woken = latencies.len();
    let latency = Summary::of(&mut latencies);
    let table = format!(
        "longpoll: {} polls over {} users; {woken} woken by one message to \"All\", {empty} answered empty or failed, \
         {early} answered before it{}\n{:<28} {:>9} {:>9} {:>9} {:>9}\n{}",
        args.polls,
        users.len(),
        waiting_threads.map_or(String::new(), |t| format!("; server threads while all waited: {t}")),
        "latency (ms)",
        "p50",
        "p90",
        "p99",
        "max",
        Summary::row("POST sent → poll answered", latency),
    );
    Ok(Report {
        table,
        json: json!({
            "workload": "longpoll",
            "polls": args.polls,
            "users": users.len(),
            "woken": woken,
            "empty_or_failed": empty,
            "early": early,
            "server_threads_waiting": waiting_threads,
            "latency": latency,
        }),
    })
}
