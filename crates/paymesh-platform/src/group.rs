//! Group commit's shared parts: a service whose handlers hand checked requests to a combiner,
//! which makes whatever is waiting in one transaction, takes its groups from a [`Queue`] with
//! [`next_group`] and counts them with [`GroupMetrics`]. (The payment service's credit
//! notifications and the billing service's channel payments are made so.)

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::mpsc;

use crate::metrics::{latency_buckets, register};

/// Where handlers leave requests for the combiners (several combiners share one).
pub type Queue<T> = Arc<tokio::sync::Mutex<mpsc::Receiver<T>>>;

/// A queue of at most `capacity` waiting requests: the sender handlers hand theirs to, and the
/// [`Queue`] the combiners take their groups from (see [`spawn_combiners`]).
pub fn queue<T>(capacity: usize) -> (mpsc::Sender<T>, Queue<T>) {
    let (sender, receiver) = mpsc::channel(capacity);
    (sender, Arc::new(tokio::sync::Mutex::new(receiver)))
}

/// Starts `count` combiners on `queue`, each `combiner(queue)`, for the life of the process.
pub fn spawn_combiners<T, F, Fut>(queue: &Queue<T>, count: usize, combiner: F)
where
    F: Fn(Queue<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    for _ in 0..count {
        tokio::spawn(combiner(queue.clone()));
    }
}

/// The next group: waits for one request, then takes whatever else waits, up to `max` in all,
/// in arrival order. `None` once every sender is gone.
pub async fn next_group<T>(queue: &Queue<T>, max: usize) -> Option<Vec<T>> {
    let mut queue = queue.lock().await;
    let first = queue.recv().await?;
    let mut group = vec![first];
    while group.len() < max {
        match queue.try_recv() {
            Ok(item) => group.push(item),
            Err(_) => break,
        }
    }
    Some(group)
}

/// A combiner's metrics: how many requests each group makes, how long a group takes and how
/// much of it is the ledger's round trip, how many groups failed and were made one at a time.
pub struct GroupMetrics {
    pub size: Histogram,
    pub seconds: Histogram,
    pub ledger_seconds: Histogram,
    pub fallbacks: Counter,
}

impl GroupMetrics {
    /// Registers `paymesh_{prefix}_{unit}`, `…_duration_seconds`, `…_ledger_seconds` and
    /// `…_fallbacks`; `what` names the requests in the help texts ("credit notifications").
    /// Call once per process (from a `OnceLock`).
    pub fn register(prefix: &str, unit: &str, what: &str) -> GroupMetrics {
        let m = GroupMetrics {
            // 1 … 512 requests
            size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            seconds: latency_buckets(),
            ledger_seconds: latency_buckets(),
            fallbacks: Counter::default(),
        };
        register(
            &format!("{prefix}_{unit}"),
            &format!("{what} per group-commit transaction"),
            m.size.clone(),
        );
        register(
            &format!("{prefix}_duration_seconds"),
            &format!("time of one group of {what}, commit included"),
            m.seconds.clone(),
        );
        register(
            &format!("{prefix}_ledger_seconds"),
            &format!("time a group of {what} waits for the ledger to post its chains"),
            m.ledger_seconds.clone(),
        );
        register(
            &format!("{prefix}_fallbacks"),
            &format!("groups of {what} that failed and were made one at a time"),
            m.fallbacks.clone(),
        );
        m
    }
}
