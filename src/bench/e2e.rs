//! `e2e`: one sender POSTs one-to-one messages at a steady rate; one listener subscribed to the
//! recipient's channel records when each arrives. Measures HTTP answer time, POST → event, and
//! 201 → event, and counts messages that never arrived.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use tokio::sync::{Mutex, Semaphore};

use super::{
    Report,
    client::{Server, listen},
    stats::Summary,
};

#[derive(Debug, Args)]
pub struct E2eArgs {
    /// Base URL of the server under test.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Messages per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// How many messages in all.
    #[arg(long, default_value_t = 2000)]
    pub messages: u32,
    /// How long to wait for stragglers after the last send.
    #[arg(long, default_value_t = 5)]
    pub drain_secs: u64,
}

/// Sends in flight at most (the rate is kept by the schedule, this only bounds memory).
const IN_FLIGHT: usize = 256;

struct Sent {
    started: Instant,
    answered: Instant,
}

pub async fn run(args: E2eArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.rate > 0 && args.messages > 0,
        "--rate and --messages must be positive"
    );
    let server = Server::new(&args.url);
    let sender = server.sign_up("bench-sender").await?;
    let recipient = server.sign_up("bench-recipient").await?;
    let mut arrivals = listen(
        &server,
        &recipient,
        &[format!("private-individual.message.{}", recipient.id)],
    )
    .await?;
    let sent: Arc<Mutex<HashMap<i64, Sent>>> = Arc::default();
    let failures = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let limit = Arc::new(Semaphore::new(IN_FLIGHT));
    let url = format!("{}/api/users/{}/messages", server.base, recipient.id);
    let mut schedule = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    schedule.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let began = Instant::now();
    let mut last_progress = Instant::now();
    for i in 0..args.messages {
        schedule.tick().await;
        let permit = limit.clone().acquire_owned().await?;
        let (http, url, token, sent, failures) = (
            server.http.clone(),
            url.clone(),
            sender.token.clone(),
            sent.clone(),
            failures.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let res = http
                .post(&url)
                .bearer_auth(&token)
                .json(&json!({ "body": format!("bench {i}") }))
                .send()
                .await;
            let answered = Instant::now();
            let id = match res {
                Ok(r) if r.status().as_u16() == 201 => r
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["message"]["id"].as_i64()),
                _ => None,
            };
            match id {
                Some(id) => {
                    sent.lock().await.insert(id, Sent { started, answered });
                }
                None => {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            drop(permit);
        });
        if last_progress.elapsed() >= Duration::from_secs(1) {
            eprintln!("e2e: {}/{} sent", i + 1, args.messages);
            last_progress = Instant::now();
        }
    }
    let sending = began.elapsed();
    let _ = limit
        .acquire_many(IN_FLIGHT as u32)
        .await
        .context("waiting for the last sends")?;
    let mut received: HashMap<i64, Instant> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.drain_secs);
    let expected = sent.lock().await.len();
    while received.len() < expected {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some(a)) => {
                if let Some(id) = a.message_id {
                    received.entry(id).or_insert(a.at);
                }
            }
            _ => break,
        }
    }
    let sent = sent.lock().await;
    let (mut http, mut post_to_event, mut answer_to_event) = (Vec::new(), Vec::new(), Vec::new());
    let mut event_before_answer = 0usize;
    for (id, s) in sent.iter() {
        http.push(s.answered - s.started);
        if let Some(at) = received.get(id) {
            post_to_event.push(*at - s.started);
            match at.checked_duration_since(s.answered) {
                Some(d) => answer_to_event.push(d),
                None => {
                    event_before_answer += 1;
                    answer_to_event.push(Duration::ZERO);
                }
            }
        }
    }
    let lost = sent.len() - post_to_event.len();
    let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
    let (http, post_to_event, answer_to_event) = (
        Summary::of(&mut http),
        Summary::of(&mut post_to_event),
        Summary::of(&mut answer_to_event),
    );
    let achieved = sent.len() as f64 / sending.as_secs_f64();
    let table = format!(
        "e2e: {} messages at {} /s requested ({achieved:.0} /s achieved), {lost} lost, {failed} failed sends\n\
         {:<28} {:>9} {:>9} {:>9} {:>9}\n{}\n{}\n{}\n\
         (201 → event counts an event that beat the HTTP answer as 0 ms: {event_before_answer} did)",
        sent.len(),
        args.rate,
        "latency (ms)",
        "p50",
        "p90",
        "p99",
        "max",
        Summary::row("HTTP POST → 201", http),
        Summary::row("POST sent → event", post_to_event),
        Summary::row("201 → event", answer_to_event),
    );
    Ok(Report {
        table,
        json: json!({
            "workload": "e2e",
            "messages": sent.len(),
            "rate_requested": args.rate,
            "rate_achieved": achieved,
            "lost": lost,
            "failed_sends": failed,
            "http": http,
            "post_to_event": post_to_event,
            "answer_to_event": answer_to_event,
            "events_before_answer": event_before_answer,
        }),
    })
}
