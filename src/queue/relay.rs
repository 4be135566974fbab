//! The outbox relay: moves broadcast jobs from the database outbox (written in the message's own
//! transaction) onto the queue, off the request path.
//!
//! Fast path: the handler hands the committed job to [`Relay::hand_over`] and answers at once; the
//! relay task pushes jobs in batches and deletes their outbox rows. Safety net: [`sweep`] re-enqueues
//! rows older than [`SWEEP_AGE`] (the queue was down, the channel was full, the process crashed),
//! so a committed message is always announced, possibly twice (clients drop repeated ids).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Queue;
use crate::store::Store;

/// Jobs waiting for the relay task; beyond this the handler leaves them to the sweeper.
const HANDOVER_CAPACITY: usize = 4096;
/// Most jobs pushed in one round trip.
const BATCH: usize = 256;
/// Outbox rows this old are taken to have missed the fast path.
pub const SWEEP_AGE: Duration = Duration::from_secs(2);
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

/// Pushes handed-over jobs until shutdown.
pub async fn run(mut rx: mpsc::Receiver<(i64, String)>, queue: Queue, store: Store, shutdown: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
        }
        let (ids, raws): (Vec<i64>, Vec<String>) = batch.drain(..).unzip();
        enqueue(&queue, &store, &ids, &raws).await;
    }
}

async fn enqueue(queue: &Queue, store: &Store, ids: &[i64], raws: &[String]) {
    if let Err(e) = queue.push(raws).await {
        tracing::warn!(jobs = ids.len(), error = %e, "queue unavailable; jobs stay in the outbox");
        return;
    }
    if let Err(e) = store.delete_outbox(ids).await {
        tracing::warn!(error = %crate::telemetry::chain(&e), "outbox rows not deleted; they may be enqueued twice");
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
                enqueue(&queue, &store, &ids, &raws).await;
            }
            Err(e) => tracing::warn!(error = %crate::telemetry::chain(&e), "outbox sweep failed"),
        }
    }
}
