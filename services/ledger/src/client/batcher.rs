//! The transfer batcher: many callers' transfers in few CreateTransfers calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use paymesh_platform::ApiError;
use paymesh_proto::ledger::v1 as pb;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::Instrument;

use super::LedgerClient;
use crate::validate::{self, BATCH_ITEMS_MAX};

/// Limits of a [`TransferBatcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Submissions waiting to be sent at most. Beyond it a submitter waits for room (within
    /// `wait_max`).
    pub queue_submissions_max: usize,
    /// Transfers per CreateTransfers call at most (1..=8,190); also the longest submission.
    pub batch_transfers_max: usize,
    /// CreateTransfers calls in flight at once at most (the ledger group-commits concurrent
    /// calls, so a few in flight keep it busy while the next batch fills).
    pub in_flight_batches_max: usize,
    /// How long a submitter waits at most, queue and call together, before it is answered
    /// UNAVAILABLE (its transfers may still be applied: retry with the same ids).
    pub wait_max: Duration,
}

impl Default for BatcherConfig {
    fn default() -> BatcherConfig {
        BatcherConfig {
            queue_submissions_max: 16_384,
            batch_transfers_max: BATCH_ITEMS_MAX,
            in_flight_batches_max: 4,
            wait_max: Duration::from_secs(10),
        }
    }
}

/// Counters of a [`TransferBatcher`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatcherStats {
    /// CreateTransfers calls sent.
    pub batches: u64,
    /// Transfers sent in them.
    pub transfers: u64,
}

type Reply = oneshot::Sender<Result<Vec<pb::CreateTransferResult>, ApiError>>;

struct Submission {
    transfers: Vec<pb::Transfer>,
    reply: Reply,
    /// The submitter's span: the call that carries these transfers is its child, or links it.
    span: tracing::Span,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    transfers: AtomicU64,
}

/// Groups the transfers of many concurrent callers into few CreateTransfers calls.
///
/// Callers [`submit`](Self::submit) one transfer, or [`submit_chain`](Self::submit_chain)
/// several that must travel together (a linked chain); a submission goes into a bounded queue,
/// and a task takes everything waiting, whole submissions up to `batch_transfers_max`
/// transfers, into one call. A submission is never split or interleaved: it stays contiguous
/// and in order, so a linked chain commits or fails together; and it must not end linked, so
/// it cannot chain into another caller's transfers. Each caller gets the results of its own
/// transfers; if the call fails, every caller in it gets the error.
///
/// Submissions are checked as the ledger checks them before they join a batch, so one bad
/// transfer fails only its own submitter, not everyone batched with it. A submission, once
/// queued, is sent even if its caller stops waiting.
///
/// Traces: each call is a span (`ledger.create_transfers`) that is the child of the first
/// submitter's span and links every other submitter's (`paymesh_platform::telemetry::serve_batch`);
/// the ledger's server span is its child.
///
/// Clones share the queue. The task ends when the last clone is dropped.
#[derive(Clone)]
pub struct TransferBatcher {
    queue: mpsc::Sender<Submission>,
    counters: Arc<Counters>,
    batch_transfers_max: usize,
    wait_max: Duration,
}

impl TransferBatcher {
    /// Starts the batching task (on the current tokio runtime) sending through `client`.
    pub fn start(client: LedgerClient, cfg: BatcherConfig) -> anyhow::Result<TransferBatcher> {
        anyhow::ensure!(
            (1..=BATCH_ITEMS_MAX).contains(&cfg.batch_transfers_max),
            "batch_transfers_max must be 1..={BATCH_ITEMS_MAX}, got {}",
            cfg.batch_transfers_max
        );
        anyhow::ensure!(
            cfg.queue_submissions_max >= 1,
            "queue_submissions_max must be at least 1"
        );
        anyhow::ensure!(
            (1..=Semaphore::MAX_PERMITS).contains(&cfg.in_flight_batches_max),
            "in_flight_batches_max must be at least 1"
        );
        anyhow::ensure!(!cfg.wait_max.is_zero(), "wait_max must be more than zero");
        let (queue, rx) = mpsc::channel(cfg.queue_submissions_max);
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(
            client,
            rx,
            cfg.batch_transfers_max,
            cfg.in_flight_batches_max,
            counters.clone(),
        ));
        Ok(TransferBatcher {
            queue,
            counters,
            batch_transfers_max: cfg.batch_transfers_max,
            wait_max: cfg.wait_max,
        })
    }

    pub fn stats(&self) -> BatcherStats {
        BatcherStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            transfers: self.counters.transfers.load(Ordering::Relaxed),
        }
    }

    /// Posts one transfer (not linked) and answers its result.
    pub async fn submit(
        &self,
        transfer: pb::Transfer,
    ) -> Result<pb::CreateTransferResult, ApiError> {
        let results = self.submit_chain(vec![transfer]).await?;
        results.into_iter().next().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "the ledger answered no result for a transfer"
            ))
        })
    }

    /// Posts transfers that travel together: they go into one CreateTransfers call,
    /// contiguous and in this order, so a linked chain (linked on all but the last) commits
    /// or fails together. The last must not be linked. One result per transfer, in order.
    ///
    /// Transfers the ledger would refuse (a field out of bounds, a chain left open, more than
    /// `batch_transfers_max`) are refused here, INTERNAL naming the field, as the ledger's own
    /// refusal would be.
    pub async fn submit_chain(
        &self,
        transfers: Vec<pb::Transfer>,
    ) -> Result<Vec<pb::CreateTransferResult>, ApiError> {
        self.check(&transfers)?;
        let (reply, answer) = oneshot::channel();
        let submission = Submission {
            transfers,
            reply,
            span: tracing::Span::current(),
        };
        let deadline = tokio::time::Instant::now() + self.wait_max;
        match tokio::time::timeout_at(deadline, self.queue.send(submission)).await {
            Err(_) => {
                return Err(ApiError::Unavailable(
                    "the ledger batcher's queue stayed full; nothing was sent, retry".into(),
                ));
            }
            Ok(Err(_)) => {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "the ledger batcher has stopped"
                )));
            }
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(ApiError::Unavailable(
                "the ledger did not answer in time; retry with the same ids".into(),
            )),
            Ok(Err(_)) => Err(ApiError::Internal(anyhow::anyhow!(
                "the ledger batcher dropped a submission unanswered"
            ))),
            Ok(Ok(result)) => result,
        }
    }

    fn check(&self, transfers: &[pb::Transfer]) -> Result<(), ApiError> {
        let refuse = |why: String| {
            Err(ApiError::Internal(anyhow::anyhow!(
                "the ledger would refuse these transfers: {why}"
            )))
        };
        if transfers.len() > self.batch_transfers_max {
            return refuse(format!(
                "transfers: at most {} per submission, got {}",
                self.batch_transfers_max,
                transfers.len()
            ));
        }
        if let Some(last) = transfers.last()
            && last.flags.is_some_and(|f| f.linked)
        {
            return refuse(format!(
                "transfers[{}].flags.linked: the last transfer of a submission must not be \
                 linked (it would chain into another caller's transfers)",
                transfers.len() - 1
            ));
        }
        // The ledger's own checks (empty list, ids, amounts, codes, flags, references).
        match validate::transfer_list(transfers) {
            Ok(_) => Ok(()),
            Err(e) => refuse(e.to_string()),
        }
    }
}

/// The batching task: wait for a submission, then for a free call slot, then take everything
/// waiting (whole submissions, up to `batch_max` transfers) into one call.
async fn run(
    client: LedgerClient,
    mut queue: mpsc::Receiver<Submission>,
    batch_max: usize,
    in_flight_max: usize,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(in_flight_max));
    // A submission taken from the queue that did not fit in the last batch: first in the next.
    let mut held: Option<Submission> = None;
    loop {
        let first = match held.take() {
            Some(s) => s,
            None => match queue.recv().await {
                Some(s) => s,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut size = first.transfers.len();
        let mut batch = vec![first];
        while size < batch_max {
            match queue.try_recv() {
                Ok(s) if size + s.transfers.len() <= batch_max => {
                    size += s.transfers.len();
                    batch.push(s);
                }
                Ok(s) => {
                    held = Some(s);
                    break;
                }
                Err(_) => break,
            }
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.transfers.fetch_add(size as u64, Ordering::Relaxed);
        let client = client.clone();
        tokio::spawn(async move {
            send(&client, batch, size).await;
            drop(slot);
        });
    }
}

/// Sends one batch and answers each submitter with its own results.
async fn send(client: &LedgerClient, batch: Vec<Submission>, size: usize) {
    let span = tracing::info_span!(
        "ledger.create_transfers",
        otel.kind = "client",
        submissions = batch.len(),
        transfers = size,
    );
    paymesh_platform::telemetry::serve_batch(&span, batch.iter().map(|s| &s.span));
    let mut transfers = Vec::with_capacity(size);
    let mut waiting = Vec::with_capacity(batch.len());
    for s in batch {
        waiting.push((s.transfers.len(), s.reply));
        transfers.extend(s.transfers);
    }
    match client
        .create_transfers(transfers)
        .instrument(span.clone())
        .await
    {
        Ok(results) => {
            let mut results = results.into_iter();
            for (len, reply) in waiting {
                let mine: Vec<pb::CreateTransferResult> = results.by_ref().take(len).collect();
                // The submitter may have stopped waiting; its transfers stand either way.
                let _ = reply.send(Ok(mine));
            }
        }
        Err(e) => {
            span.in_scope(|| tracing::warn!(error = %e, transfers = size, "ledger batch failed"));
            for (_, reply) in waiting {
                let _ = reply.send(Err(e.for_another_caller()));
            }
        }
    }
}
