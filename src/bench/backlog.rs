//! `backlog`: a user is offline while M one-to-one messages are sent to it; then it signs in
//! (connects and subscribes its channel through the auth endpoint). Measures the time from the
//! subscription until the last backlog message has arrived, and counts messages missing or repeated.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Args;
use serde_json::json;
use tokio::sync::Semaphore;

use super::{
    Report,
    client::{Server, listen},
};

#[derive(Debug, Args)]
pub struct BacklogArgs {
    /// Base URL of the server under test (chatbox: the backlog is its own feature).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Messages sent while the recipient is away.
    #[arg(long, default_value_t = 10_000)]
    pub messages: usize,
    /// Sends in flight while filling the backlog.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Longest wait for the backlog, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

pub async fn run(args: BacklogArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.messages > 0 && args.concurrency > 0,
        "--messages and --concurrency must be positive"
    );
    let server = Server::new(&args.url);
    let sender = server.sign_up("bench-backlog-sender").await?;
    let recipient = server.sign_up("bench-backlog-recipient").await?;
    let url = format!("{}/api/users/{}/messages", server.base, recipient.id);
    let limit = Arc::new(Semaphore::new(args.concurrency));
    let sent = Arc::new(AtomicUsize::new(0));
    let filling = Instant::now();
    let mut sends = Vec::with_capacity(args.messages);
    let mut last_progress = Instant::now();
    for i in 0..args.messages {
        let permit = limit.clone().acquire_owned().await?;
        let (http, url, token, stored) = (server.http.clone(), url.clone(), sender.token.clone(), sent.clone());
        sends.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "body": format!("backlog {i}") }))
                .send()
                .await;
            drop(permit);
            let ok = res.is_ok_and(|r| r.status().is_success());
            if ok {
                stored.fetch_add(1, Ordering::Relaxed);
            }
            ok
        }));
        if last_progress.elapsed() >= Duration::from_secs(1) {
            eprintln!(
                "backlog: {} of {} messages stored",
                sent.load(Ordering::Relaxed),
                args.messages
            );
            last_progress = Instant::now();
        }
    }
    let mut stored = 0;
    for s in sends {
        stored += usize::from(s.await?);
    }
    anyhow::ensure!(stored > 0, "no message was accepted");
    let fill_secs = filling.elapsed().as_secs_f64();
    eprintln!("backlog: {stored} messages stored in {fill_secs:.1} s; the recipient signs in");

    let channel = format!("private-individual.message.{}", recipient.id);
    let signing_in = Instant::now();
    let mut arrivals = listen(&server, &recipient, &[channel]).await?;
    let mut seen = HashSet::with_capacity(stored);
    let (mut repeated, mut last) = (0usize, signing_in);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.timeout_secs);
    while seen.len() < stored {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some(a)) => {
                if let Some(id) = a.message_id
                    && !seen.insert(id)
                {
                    repeated += 1;
                }
                last = a.at;
            }
            _ => break,
        }
    }
    let received = seen.len();
    let missing = stored - received;
    let took = last.saturating_duration_since(signing_in).as_secs_f64();
    let table = format!(
        "backlog: {stored} messages waiting (stored in {fill_secs:.1} s); after sign-in (connect, auth, subscribe) \
         {received} arrived in {took:.3} s ({:.0} messages/s), {missing} missing, {repeated} repeated",
        received as f64 / took.max(1e-6)
    );
    Ok(Report {
        table,
        json: json!({
            "workload": "backlog",
            "messages": stored,
            "received": received,
            "missing": missing,
            "repeated": repeated,
            "seconds_to_last": took,
        }),
    })
}
