//! Lookups read together: a `LookupBills` handler checks its request (biller, policy, customer
//! code: all from memory), then hands the read of the customer's outstanding bills to one of the
//! service's readers (`billing.lookup_groups`), which reads the bills of every customer waiting
//! in one statement (`store::outstanding_many`) and answers each handler its own.
//!
//! Why: a lookup is one indexed read, and at thousands a second most of its cost was not the
//! read but what surrounds it: a statement's planning and executor start-up in PostgreSQL, a
//! pooled connection's hand-out and sqlx's ping when it is given back, and the round trips' system
//! calls and wake-ups on both sides. Read together, those are paid once per group. A group
//! forms while the one before it is in flight, so no lookup waits for a timer: alone, a lookup
//! is a group of one.
//!
//! Each reader reads on a connection of its own, planned once (see [`READER_SETTINGS`]). The
//! read is a plain one (no lock, its own statement), as a lookup alone made it, so what a
//! lookup sees is the same either way. A group whose read fails answers each of its lookups
//! with the failure, and each then reads alone (so one bad request fails alone); a lookup whose
//! caller has gone before its group starts is not read.

use std::collections::HashMap;

use paymesh_platform::ApiError;
use paymesh_platform::edge::fields::{db, sql};
use paymesh_platform::group::{Queue, next_group};
use paymesh_platform::migrate::{RowLock, own_connection};
use sqlx::PgConnection;
use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

use super::BillingService;
use crate::metrics::metrics;
use crate::store::{self, BillRow};

/// Customers read together at most.
const GROUP_MAX: usize = 128;
/// Lookups waiting for a reader at most (then handlers wait to hand theirs over).
pub const QUEUE_MAX: usize = 4096;

/// A lookup's read, waiting for its group.
pub(super) struct Read {
    biller: Uuid,
    customer: String,
    span: tracing::Span,
    reply: oneshot::Sender<Result<Vec<BillRow>, ()>>,
}

/// A reader's server settings: one plan for the group read, made once per connection (by
/// default PostgreSQL plans it again at every execution: its array parameters make each custom
/// plan look cheaper than a generic one, and the planning cost more than the read); and a name
/// an operator sees in `pg_stat_activity`.
pub const READER_SETTINGS: &[(&str, &str)] = &[
    ("plan_cache_mode", "force_generic_plan"),
    ("application_name", "paymesh-billing-lookups"),
];

/// A reader: reads whatever lookups wait (up to [`GROUP_MAX`]) together, for the life of the
/// process, on a connection of its own.
pub(super) async fn read_groups(service: BillingService, queue: Queue<Read>) {
    let mut conn = None;
    while let Some(group) = next_group(&queue, GROUP_MAX).await {
        service.read_group(group, &mut conn).await;
    }
}

impl BillingService {
    /// The customer's outstanding bills (at most `store::OUTSTANDING_MAX`, by due date and
    /// number), read in a group when the service has readers.
    pub(super) async fn outstanding(
        &self,
        biller: Uuid,
        customer: &str,
    ) -> Result<Vec<BillRow>, ApiError> {
        if let Some(queue) = &self.inner.lookup_queue {
            let (reply, answer) = oneshot::channel();
            let read = Read {
                biller,
                customer: customer.to_string(),
                span: tracing::Span::current(),
                reply,
            };
            if queue.send(read).await.is_ok()
                && let Ok(Ok(bills)) = answer.await
            {
                return Ok(bills);
            }
        }
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        store::outstanding(&mut conn, biller, customer, RowLock::None)
            .await
            .map_err(db)
    }

    async fn read_group(&self, reads: Vec<Read>, conn: &mut Option<PgConnection>) {
        // A lookup whose caller has gone (deadline passed, cancelled) is not read.
        let reads: Vec<Read> = reads.into_iter().filter(|r| !r.reply.is_closed()).collect();
        if reads.is_empty() {
            return;
        }
        let span = tracing::info_span!("billing.lookup_group", lookups = reads.len());
        paymesh_platform::telemetry::serve_batch(&span, reads.iter().map(|r| &r.span));
        // Each customer once, however many of its lookups wait.
        let mut index: HashMap<(Uuid, &str), usize> = HashMap::new();
        let mut keys: Vec<(Uuid, String)> = Vec::new();
        let slots: Vec<usize> = reads
            .iter()
            .map(|r| {
                *index
                    .entry((r.biller, r.customer.as_str()))
                    .or_insert_with(|| {
                        keys.push((r.biller, r.customer.clone()));
                        keys.len() - 1
                    })
            })
            .collect();
        let started = std::time::Instant::now();
        let found = async {
            let conn = match conn {
                Some(conn) => conn,
                None => conn.insert(own_connection(self.pool(), READER_SETTINGS).await?),
            };
            store::outstanding_many(conn, &keys).await
        }
        .instrument(span)
        .await;
        if found.is_err() {
            // Perhaps broken: the next group connects again.
            *conn = None;
        }
        let m = metrics();
        m.lookup_group_seconds
            .observe(started.elapsed().as_secs_f64());
        m.lookup_group_size.observe(keys.len() as f64);
        match found {
            Ok(found) => {
                // Each customer's bills go to its last lookup as they are, copied for the
                // others (the same customer looked up twice at once).
                let mut waiting = vec![0usize; found.len()];
                for slot in &slots {
                    if let Some(n) = waiting.get_mut(*slot) {
                        *n += 1;
                    }
                }
                let mut found: Vec<Option<Vec<BillRow>>> = found.into_iter().map(Some).collect();
                for (read, slot) in reads.into_iter().zip(slots) {
                    let last = waiting.get_mut(slot).is_some_and(|n| {
                        *n -= 1;
                        *n == 0
                    });
                    let bills = match found.get_mut(slot) {
                        Some(bills) if last => bills.take(),
                        Some(bills) => bills.clone(),
                        None => None,
                    };
                    let _ = read.reply.send(Ok(bills.unwrap_or_default()));
                }
            }
            Err(e) => {
                m.lookup_group_fallbacks.inc();
                tracing::warn!(
                    error = %format!("{e:#}"),
                    lookups = reads.len(),
                    "a group of lookups failed; each reads alone"
                );
                for read in reads {
                    let _ = read.reply.send(Err(()));
                }
            }
        }
    }
}
