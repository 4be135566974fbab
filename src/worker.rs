//! The queue worker (DESIGN.md step 4): turns each broadcast job into events on the private
//! per-user channels and publishes them on the bus, then acknowledges the job.
//!
//! [`Worker::process_one`] handles one job and says whether there was one, so tests can drain the
//! queue step by step; [`Worker::run`] loops until shutdown. A job is acknowledged only after its
//! events were published: a worker that dies mid-job leaves it to be re-queued (at least once).

use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::{
    bus::{Broadcast, Bus, Target},
    domain::GroupId,
    queue::{Audience, Claimed, Envelope, Job, Queue},
    store::{Destination, Message, Store},
};

pub use crate::broadcast::events::{
    ADDED_TO_GROUP, GROUP_EVENT, GROUP_UPDATED, INDIVIDUAL_EVENT, MENTIONED, MESSAGE_DELETED, MESSAGE_UPDATED,
    MESSAGES_READ, REMOVED_FROM_GROUP, TYPING_EVENT, USER_REGISTERED, USER_UPDATED,
};

/// Longest a blocking claim waits before the loop checks for shutdown again.
const CLAIM_WAIT: Duration = Duration::from_secs(2);
/// Longest a stopping worker tries to hand its claimed jobs back; past it, they come back after
/// the visibility timeout anyway.
const RETIRE_WITHIN: Duration = Duration::from_secs(3);
/// Pause after a failure before trying again (the queue, bus or store is down).
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A job was processed (or parked as dead).
    Done,
    /// No job arrived within the wait.
    Empty,
}

#[derive(Clone)]
pub struct Worker {
    pub queue: Queue,
    pub store: Store,
    pub bus: Bus,
}

impl Worker {
    /// Claims one job (waiting up to `wait`), publishes its events and acknowledges it.
    ///
    /// # Errors
    /// The queue, the store or the bus failed; the claimed job stays unacknowledged and is
    /// re-queued after the visibility timeout.
    pub async fn process_one(&self, wait: Duration) -> anyhow::Result<Outcome> {
        let Some(claimed) = self.queue.claim(wait).await? else {
            return Ok(Outcome::Empty);
        };
        self.process(&claimed).await?;
        Ok(Outcome::Done)
    }

    async fn process(&self, claimed: &Claimed) -> anyhow::Result<()> {
        let started = Instant::now();
        let envelope: Envelope = match serde_json::from_str(&claimed.raw) {
            Ok(e) => e,
            Err(e) => {
                // The job holds message bodies: log where it broke, never what it says.
                tracing::error!(
                    category = ?e.classify(),
                    line = e.line(),
                    column = e.column(),
                    bytes = claimed.raw.len(),
                    "undecodable job moved to the dead-letter list"
                );
                self.queue.dead_letter(claimed).await?;
                return Ok(());
            }
        };
        let broadcasts = match envelope.job {
            Job::Message { message } => self.message_broadcasts(&message).await?,
            Job::Event { to, event, data } => vec![Broadcast {
                target: match to {
                    Audience::Users { users } => Target::Group { users },
                    Audience::Everyone => Target::EveryGroupChannel,
                    Audience::Individuals { users } => Target::Individual { users },
                },
                event,
                data: data.to_string(),
                user_id: None,
                except: None,
                // Not a message announcement: a change of a message already delivered must
                // still reach the socket, which drops repeated message ids.
                message_id: None,
            }],
        };
        for b in &broadcasts {
            self.bus.publish(b).await?;
        }
        self.queue.ack(claimed).await?;
        tracing::debug!(
            outbox_id = envelope.outbox_id,
            elapsed_us = started.elapsed().as_micros() as u64,
            "job processed"
        );
        Ok(())
    }

    /// The broadcasts announcing `message` (none for a group that no longer exists): the message
    /// itself, then [`MENTIONED`] to the members it names.
    async fn message_broadcasts(&self, message: &Message) -> anyhow::Result<Vec<Broadcast>> {
        let data = json!({ "message": message }).to_string();
        let (target, event) = match message.destination() {
            Destination::User(recipient) => (Target::Individual { users: vec![recipient] }, INDIVIDUAL_EVENT),
            Destination::Group(GroupId::ALL) => (Target::EveryGroupChannel, GROUP_EVENT),
            Destination::Group(group) => {
                let users = self.store.member_ids(group).await?;
                if users.is_empty() {
                    return Ok(Vec::new());
                }
                (Target::Group { users }, GROUP_EVENT)
            }
        };
        let mut out = vec![Broadcast {
            target,
            event: event.to_owned(),
            data,
            user_id: None,
            except: None,
            message_id: Some(message.id),
        }];
        if let (Some(group), false) = (message.group_id, message.mentions.is_empty()) {
            let names = self.store.group_names(&[group]).await?;
            let mut data = json!({ "type": "mention", "from": message.sender,
                                   "group": { "id": group, "name": names.get(&group) }, "message_id": message.id });
            if let Some(p) = &message.pseudonym {
                data["pseudonym"] = json!(p);
            }
            out.push(Broadcast {
                target: Target::Group {
                    users: message.mentions.iter().map(|m| m.id).collect(),
                },
                event: MENTIONED.to_owned(),
                data: data.to_string(),
                user_id: None,
                except: None,
                message_id: None,
            });
        }
        Ok(out)
    }

    /// Processes jobs until `shutdown`. A job that fails (store or bus down) is retried in place,
    /// keeping the order; at shutdown, claimed jobs go back to the queue.
    ///
    /// A claim in flight is never cancelled: a blocking pop abandoned midway could still move a job
    /// into this worker's processing list with nobody to process it. Shutdown is therefore checked
    /// between claims (at most [`CLAIM_WAIT`] late), and housekeeping runs in a task of its own.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("worker started");
        let housekeeping = tokio::spawn({
            let worker = self.clone();
            let shutdown = shutdown.clone();
            async move {
                // Heartbeat at a third of the visibility timeout: two can be missed.
                let mut every = tokio::time::interval(worker.queue.visibility() / 3);
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = every.tick() => {}
                    }
                    // Raced against shutdown too: with Redis unreachable these calls can take long.
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = worker.housekeeping() => {}
                    }
                }
            }
        });
        'jobs: while !shutdown.is_cancelled() {
            let job = match self.queue.claim(CLAIM_WAIT).await {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a job failed; retrying");
                    if pause(&shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            while let Err(e) = self.process(&job).await {
                tracing::warn!(error = %format!("{e:#}"), "job failed; retrying it");
                if pause(&shutdown).await {
                    break 'jobs;
                }
            }
        }
        let _ = housekeeping.await;
        if let Queue::Redis(q) = &self.queue {
            match tokio::time::timeout(RETIRE_WITHIN, q.retire()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not hand back claimed jobs; they return after the visibility timeout")
                }
                Err(_) => tracing::warn!("Redis did not answer; claimed jobs return after the visibility timeout"),
            }
        }
        tracing::info!("worker stopped");
    }

    async fn housekeeping(&self) {
        if let Queue::Redis(q) = &self.queue
            && let Err(e) = q.heartbeat().await
        {
            tracing::warn!(error = %e, "worker heartbeat failed");
        }
        match self.queue.requeue_abandoned().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "re-queued abandoned jobs"),
            Err(e) => tracing::warn!(error = %e, "looking for abandoned jobs failed"),
        }
    }
}

/// Waits [`RETRY_PAUSE`]; true if shutdown came first.
async fn pause(shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(RETRY_PAUSE) => false,
    }
}
