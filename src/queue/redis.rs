//! The production queue on Redis lists.
//!
//! Keys (all built in [`Keys`]): `{p}queue:jobs` (LPUSH at the head, claimed from the tail: FIFO),
//! `{p}queue:processing:{worker}` (jobs a worker holds), `{p}queue:workers` (set of worker ids),
//! `{p}queue:alive:{worker}` (heartbeat, expires after the visibility timeout) and
//! `{p}queue:dead` (jobs that can never be processed). A claim is one `BLMOVE` from the jobs list to
//! the worker's processing list, so a job is never in neither; an ack is `LREM` from it. When a
//! worker's heartbeat has expired, any live process moves its processing list back to the tail of
//! the jobs list, where it is claimed next.

use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager, aio::MultiplexedConnection};
use tokio::sync::Mutex;

use super::{Claimed, QueueError};

/// Every Redis key the queue uses, from one prefix.
#[derive(Clone, Debug)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn jobs(&self) -> String {
        format!("{}queue:jobs", self.prefix)
    }
    fn processing(&self, worker: &str) -> String {
        format!("{}queue:processing:{worker}", self.prefix)
    }
    fn workers(&self) -> String {
        format!("{}queue:workers", self.prefix)
    }
    fn alive(&self, worker: &str) -> String {
        format!("{}queue:alive:{worker}", self.prefix)
    }
    fn dead(&self) -> String {
        format!("{}queue:dead", self.prefix)
    }
}

#[derive(Clone)]
pub struct RedisQueue {
    client: redis::Client,
    conn: ConnectionManager,
    keys: Keys,
    worker_id: String,
    /// A worker silent for this long is presumed dead and its claimed jobs are re-queued.
    visibility: Duration,
    /// Dedicated connection for the blocking claim (a blocked command holds its connection);
    /// `None` after an error, when this worker's processing list may hold a job whose reply was
    /// lost: the next claim hands such jobs back to the queue first.
    blocking: std::sync::Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl RedisQueue {
    /// Connects; `worker_id` names this process's processing list.
    ///
    /// # Errors
    /// Redis cannot be reached.
    pub async fn connect(
        client: redis::Client,
        prefix: &str,
        worker_id: String,
        visibility: Duration,
    ) -> redis::RedisResult<Self> {
        let conn = ConnectionManager::new(client.clone()).await?;
        Ok(Self {
            client,
            conn,
            keys: Keys {
                prefix: prefix.to_owned(),
            },
            worker_id,
            visibility,
            blocking: Default::default(),
        })
    }

    pub async fn push(&self, jobs: &[String]) -> Result<(), QueueError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: usize = conn.lpush(self.keys.jobs(), jobs).await?;
        Ok(())
    }

    pub async fn claim(&self, wait: Duration) -> Result<Option<Claimed>, QueueError> {
        let mut slot = self.blocking.lock().await;
        if slot.is_none() {
            let orphans = self.requeue_worker(&self.worker_id).await?;
            if orphans > 0 {
                tracing::warn!(jobs = orphans, "handed back jobs claimed by a failed pop");
            }
            let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(wait + Duration::from_secs(5)));
            *slot = Some(
                self.client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?,
            );
        }
        let conn = slot.as_mut().expect("set above");
        let claimed: redis::RedisResult<Option<String>> = redis::cmd("BLMOVE")
            .arg(self.keys.jobs())
            .arg(self.keys.processing(&self.worker_id))
            .arg("RIGHT")
            .arg("LEFT")
            .arg(wait.as_secs_f64())
            .query_async(conn)
            .await;
        match claimed {
            Ok(raw) => Ok(raw.map(|raw| Claimed { raw })),
            Err(e) => {
                // Reconnect next time.
                *slot = None;
                Err(e.into())
            }
        }
    }

    pub async fn ack(&self, job: &Claimed) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: usize = conn.lrem(self.keys.processing(&self.worker_id), 1, &job.raw).await?;
        Ok(())
    }

    pub async fn dead_letter(&self, job: &Claimed) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .lpush(self.keys.dead(), &job.raw)
            .lrem(self.keys.processing(&self.worker_id), 1, &job.raw)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub async fn depth(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        Ok(conn.llen(self.keys.jobs()).await?)
    }

    /// Marks this worker alive for another visibility timeout; call at a third of it.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`].
    pub async fn heartbeat(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .sadd(self.keys.workers(), &self.worker_id)
            .set_ex(self.keys.alive(&self.worker_id), 1, self.visibility.as_secs())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Forgets this worker (clean shutdown): re-queues what it still holds.
    ///
    /// # Errors
    /// [`QueueError::Unavailable`].
    pub async fn retire(&self) -> Result<(), QueueError> {
        self.requeue_worker(&self.worker_id).await?;
        let mut conn = self.conn.clone();
        redis::pipe()
            .srem(self.keys.workers(), &self.worker_id)
            .del(self.keys.alive(&self.worker_id))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    pub fn visibility(&self) -> Duration {
        self.visibility
    }

    pub async fn requeue_abandoned(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let workers: Vec<String> = conn.smembers(self.keys.workers()).await?;
        let mut moved = 0;
        for worker in workers {
            let alive: bool = conn.exists(self.keys.alive(&worker)).await?;
            if alive {
                continue;
            }
            moved += self.requeue_worker(&worker).await?;
            let _: usize = conn.srem(self.keys.workers(), &worker).await?;
            tracing::warn!(worker, jobs = moved, "re-queued the jobs of a worker that stopped");
        }
        Ok(moved)
    }

    /// Moves a worker's claimed jobs back to the tail of the jobs list, keeping their order.
    async fn requeue_worker(&self, worker: &str) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let mut moved = 0;
        loop {
            let job: Option<String> = conn
                .lmove(
                    self.keys.processing(worker),
                    self.keys.jobs(),
                    // Newest claimed first onto the tail, so the oldest ends up claimed first.
                    redis::Direction::Left,
                    redis::Direction::Right,
                )
                .await?;
            match job {
                Some(_) => moved += 1,
                None => return Ok(moved),
            }
        }
    }
}
