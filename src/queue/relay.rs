//! The outbox relay: moves broadcast jobs from the database outbox (written in the message's own
//! transaction) onto the queue, off the request path.
//!
//! Fast path: the handler hands the committed job to [`Relay::hand_over`] and answers at once; the
//! relay task pushes jobs in batches, and a second task deletes their outbox rows in batches, so a
//! push never waits for a database commit. Safety net: [`sweep`] re-enqueues rows older than
//! [`SWEEP_AGE`] (the queue was down, the channel was full, the process crashed), so a committed
//! message is always announced, possibly twice (clients drop repeated ids).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Queue;
use crate::store::Store;

/// Jobs waiting for the relay task; beyond this the handler leaves them to the sweeper.
const HANDOVER_CAPACITY: usize = 4096;
/// Most jobs pushed in one round trip.
const BATCH: usize = 256;
/// Outbox rows this old are taken to have missed the fast path (longer than a push plus a
/// batched delete take, or rows still being deleted would be enqueued again).
pub const SWEEP_AGE: Duration = Duration::from_secs(5);
/// How often the sweeper looks.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Sending side, held by the HTTP state.
#[derive(Clone)]
pub struct Relay {
    tx: mpsc::Sender<(i64, String)>,
}

impl Relay {
    pub fn new() -> (Self, mpsc::Receiver<(i64, String)>) {
        let (tx, rx) = mpsc::channel(HANDOVER_CAPACITY);
        (Self { tx }, rx)
    }

    /// Hands a committed job (outbox id, encoded envelope) to the relay task; never waits.
    pub fn hand_over(&self, outbox_id: i64, raw: String) {
        if self.tx.try_send((outbox_id, raw)).is_err() {
            tracing::debug!(outbox_id, "relay busy; the sweeper will enqueue this job");
        }
    }
}

/// Pushes handed-over jobs until shutdown; their outbox rows are deleted by a companion task.
pub async fn run(mut rx: mpsc::Receiver<(i64, String)>, queue: Queue, store: Store, shutdown: CancellationToken) {
    let (pushed, to_delete) = mpsc::channel(HANDOVER_CAPACITY);
    let deleter = tokio::spawn(delete_pushed(to_delete, store));
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { break },
        }
        let (ids, raws): (Vec<i64>, Vec<String>) = batch.drain(..).unzip();
        if push(&queue, &ids, &raws).await && pushed.try_send(ids).is_err() {
            tracing::debug!("outbox deletions lagging; the sweeper may enqueue some jobs twice");
        }
    }
    drop(pushed);
    let _ = deleter.await;
}

/// Deletes the outbox rows of pushed jobs, many per statement.
async fn delete_pushed(mut rx: mpsc::Receiver<Vec<i64>>, store: Store) {
    let mut batches = Vec::new();
    while rx.recv_many(&mut batches, BATCH).await > 0 {
        let ids: Vec<i64> = batches.drain(..).flatten().collect();
        for chunk in ids.chunks(BATCH * 4) {
            if let Err(e) = store.delete_outbox(chunk).await {
                tracing::warn!(error = %crate::telemetry::chain(&e), "outbox rows not deleted; they may be enqueued twice");
            }
        }
    }
}

/// Pushes jobs; false (and logged) when the queue did not take them: they stay in the outbox.
async fn push(queue: &Queue, ids: &[i64], raws: &[String]) -> bool {
    match queue.push(raws).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(jobs = ids.len(), error = %e, "queue unavailable; jobs stay in the outbox");
            false
        }
    }
}

/// Re-enqueues outbox rows that missed the fast path, every second until shutdown.
pub async fn sweep(queue: Queue, store: Store, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        match store.stale_outbox(SWEEP_AGE, BATCH).await {
            Ok(rows) if rows.is_empty() => {}
            Ok(rows) => {
                tracing::info!(jobs = rows.len(), "enqueueing outbox rows that missed the fast path");
                let (ids, raws): (Vec<i64>, Vec<String>) = rows
                    .into_iter()
                    .map(|(id, job)| (id, super::Envelope::raw(id, &job)))
                    .unzip();
                if push(&queue, &ids, &raws).await
                    && let Err(e) = store.delete_outbox(&ids).await
                {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "outbox rows not deleted; they may be enqueued twice");
                }
            }
            Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "outbox sweep failed"),
        }
    }
}
