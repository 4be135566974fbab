//! Broadcast jobs in FIFO order (DESIGN.md step 3). Production: a Redis list, reliable — a claimed
//! job moves to the worker's processing list and leaves it only when acknowledged; jobs of a worker
//! that died are re-queued once its heartbeat expires (the visibility timeout). Embedded: an
//! in-process queue with the same claim / ack / re-queue behaviour.
//!
//! Delivery is at least once: a job can run twice after a crash between publish and ack, so every
//! event carries the message id and clients drop ids they have seen.

mod memory;
mod redis;
pub mod relay;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::{memory::MemoryQueue, redis::RedisQueue};
use crate::{domain::UserId, store::Message};

/// What a worker does, serialised as JSON on the queue. One job per message, also for groups and
/// "All" (never one per member).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Job {
    /// Announce a stored message to its recipient or to every member of its group.
    Message { message: Message },
    /// Send `event` with `data` to an audience: on their group channels
    /// (`private-group.message.{id}`: membership changes, new users, group messages changed or
    /// read) or their individual channels (one-to-one messages changed or read).
    Event {
        to: Audience,
        event: String,
        data: serde_json::Value,
    },
}

/// Who receives an [`Job::Event`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Audience {
    /// On these users' group channels.
    Users { users: Vec<UserId> },
    /// On every user's group channel ("All").
    Everyone,
    /// On these users' individual channels (`private-individual.message.{id}`).
    Individuals { users: Vec<UserId> },
}

impl Job {
    /// An event for some users; `None` when there is nobody to tell.
    pub fn event_for(users: Vec<UserId>, event: &str, data: serde_json::Value) -> Option<Self> {
        (!users.is_empty()).then(|| Self::Event {
            to: Audience::Users { users },
            event: event.to_owned(),
            data,
        })
    }

    /// An event on some users' individual channels; `None` when there is nobody to tell.
    pub fn individual_event(users: Vec<UserId>, event: &str, data: serde_json::Value) -> Option<Self> {
        (!users.is_empty()).then(|| Self::Event {
            to: Audience::Individuals { users },
            event: event.to_owned(),
            data,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("jobs always serialise")
    }
}

/// A job as it sits on the queue: the outbox row it came from (unique, so two queued jobs are
/// never the same text) and the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub outbox_id: i64,
    pub job: Job,
}

impl Envelope {
    /// The queue's representation of outbox row `outbox_id` holding `job` (JSON of a [`Job`]):
    /// the same text as serialising an `Envelope`, without decoding the job again.
    pub fn raw(outbox_id: i64, job: &str) -> String {
        format!("{{\"outbox_id\":{outbox_id},\"job\":{job}}}")
    }
}

/// A job taken off the queue by one worker; `raw` is what [`Queue::ack`] removes.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub raw: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue (Redis) is unavailable")]
    Unavailable(#[from] ::redis::RedisError),
}

/// The queue this process uses, chosen once at start-up.
#[derive(Clone)]
pub enum Queue {
    Memory(MemoryQueue),
    Redis(std::sync::Arc<RedisQueue>),
}

impl Queue {
    /// Appends jobs (already encoded) at the tail, in order.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`] when Redis does not take them; none of them is then queued
    /// (they stay in the outbox).
    pub async fn push(&self, jobs: &[String]) -> Result<(), QueueError> {
        match self {
            Self::Memory(q) => {
                q.push(jobs);
                Ok(())
            }
            Self::Redis(q) => q.push(jobs).await,
        }
    }

    /// Takes the oldest job, waiting up to `wait` for one (a blocking pop, no polling).
    ///
    /// # Errors
    /// [`QueueError::Unavailable`] when Redis cannot be reached.
    pub async fn claim(&self, wait: Duration) -> Result<Option<Claimed>, QueueError> {
        match self {
            Self::Memory(q) => Ok(q.claim(wait).await),
            Self::Redis(q) => q.claim(wait).await,
        }
    }

    /// Removes a claimed job for good (after its events were published).
    ///
    /// # Errors
    /// [`QueueError::Unavailable`]; the job then runs again after the visibility timeout.
    pub async fn ack(&self, job: &Claimed) -> Result<(), QueueError> {
        match self {
            Self::Memory(q) => {
                q.ack(job);
                Ok(())
            }
            Self::Redis(q) => q.ack(job).await,
        }
    }

    /// Parks a job that can never be processed in the dead-letter list, and acks it.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`].
    pub async fn dead_letter(&self, job: &Claimed) -> Result<(), QueueError> {
        match self {
            Self::Memory(q) => {
                q.dead_letter(job);
                Ok(())
            }
            Self::Redis(q) => q.dead_letter(job).await,
        }
    }

    /// Jobs waiting (not counting claimed ones).
    ///
    /// # Errors
    /// [`QueueError::Unavailable`].
    pub async fn depth(&self) -> Result<u64, QueueError> {
        match self {
            Self::Memory(q) => Ok(q.depth()),
            Self::Redis(q) => q.depth().await,
        }
    }

    /// How long a claimed job may go unacknowledged before it is handed out again.
    pub fn visibility(&self) -> Duration {
        match self {
            Self::Memory(_) => memory::VISIBILITY_TIMEOUT,
            Self::Redis(q) => q.visibility(),
        }
    }

    /// Re-queues jobs whose worker stopped acknowledging them (in Redis: whose heartbeat expired;
    /// in memory: claimed longer than the visibility timeout). Returns how many.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`].
    pub async fn requeue_abandoned(&self) -> Result<u64, QueueError> {
        match self {
            Self::Memory(q) => Ok(q.requeue_expired()),
            Self::Redis(q) => q.requeue_abandoned().await,
        }
    }
}
