//! Group commit for channels' payments: a `PayBill` handler checks its request, then hands it
//! to one of the service's combiners (`billing.pay_groups`), which makes whatever payments are
//! waiting together, in arrival order, in one transaction of a few set-based statements:
//!
//! 1. claim every request's idempotency key (one statement); a key claimed before (a retry, a
//!    concurrent copy, a reuse) sends its request the one-at-a-time way, which replays, waits
//!    or refuses as it always did;
//! 2. lock the bills all of them may pay, in id order (one statement: every named bill, every
//!    outstanding bill of the customers paying "all outstanding");
//! 3. read the channel references already used on them (one statement);
//! 4. decide each payment in arrival order on the bills as the payments before it in the group
//!    left them (`Checked::choose`, `BillingService::decide`: the same decisions as alone), so
//!    two channels paying one bill in one group get one payment and one `BILL_PAID`;
//! 5. post every payment's ledger chain in one ledger call (ids derived from each request's key,
//!    so a retry posts nothing twice) while the bills, payments and events are written (three
//!    statements), store the answers and release the keys of the refused requests (a refusal is
//!    not kept), and commit; then answer every channel.
//!
//! If anything fails before the commit, nothing of the group is kept but the ledger postings,
//! and every request of the group is made the one-at-a-time way instead (same key, same ids:
//! the postings are found applied), so one bad request fails alone. A lock the group waits for
//! longer than `billing.pay_group_lock_wait_ms` fails it the same way, so one bill held
//! elsewhere does not hold up the others. A payment whose caller has gone before its group
//! starts is not made.

use std::collections::{BTreeMap, HashSet};

use paymesh_platform::ApiError;
use paymesh_platform::edge::fields::db;
use paymesh_platform::events::Handoff;
use paymesh_platform::group::{Queue, next_group};
use paymesh_platform::idempotency::IdempotencyContext;
use paymesh_platform::time::{Date, now_ns};
use paymesh_proto::billing::v1 as pb;
use tokio::sync::oneshot;
use tracing::Instrument;
use uuid::Uuid;

use super::paying::{Checked, Planned};
use super::{BillingService, events};
use crate::metrics::metrics;
use crate::store::{self, BillRow};

/// Payments made together at most.
const GROUP_MAX: usize = 128;
/// Payments waiting for a combiner at most (then handlers wait to hand theirs over).
pub const QUEUE_MAX: usize = 4096;

/// A checked payment waiting for its group.
pub(super) struct Job {
    key: IdempotencyContext,
    pay: Checked,
    span: tracing::Span,
    reply: oneshot::Sender<Grouped>,
}

/// What the group did with a payment.
pub(super) enum Grouped {
    /// Made or refused in the group: the channel's answer.
    Answered(Result<pb::PayBillResponse, ApiError>),
    /// Not made in the group (key used before, or the group failed): make it alone.
    Alone,
}

/// A combiner: makes whatever payments wait (up to [`GROUP_MAX`]) together, for the life of the
/// process.
pub(super) async fn combine(service: BillingService, queue: Queue<Job>) {
    while let Some(group) = next_group(&queue, GROUP_MAX).await {
        service.make_group(group).await;
    }
}

fn now_us() -> i64 {
    now_ns() / 1_000
}

impl BillingService {
    /// Hands a checked payment to the combiners and waits for what its group did.
    pub(super) async fn pay_in_group(&self, key: IdempotencyContext, pay: Checked) -> Grouped {
        let Some(queue) = &self.inner.pay_queue else {
            return Grouped::Alone;
        };
        let (reply, answer) = oneshot::channel();
        let job = Job {
            key,
            pay,
            span: tracing::Span::current(),
            reply,
        };
        if queue.send(job).await.is_err() {
            return Grouped::Alone;
        }
        answer.await.unwrap_or(Grouped::Alone)
    }

    async fn make_group(&self, jobs: Vec<Job>) {
        let span = tracing::info_span!("billing.pay_group", payments = jobs.len());
        paymesh_platform::telemetry::serve_batch(&span, jobs.iter().map(|j| &j.span));
        // A key twice in one group (a client's concurrent copies): the second goes alone, and
        // finds the first's answer.
        let mut keys = HashSet::new();
        let (jobs, copies): (Vec<Job>, Vec<Job>) = jobs
            .into_iter()
            // A payment whose caller has gone (deadline passed, cancelled) is not made: as
            // alone, where its transaction would have been dropped with the call.
            .filter(|j| !j.reply.is_closed())
            .partition(|j| keys.insert(j.key.scope_key.clone()));
        if jobs.is_empty() {
            return;
        }
        for copy in copies {
            let _ = copy.reply.send(Grouped::Alone);
        }
        let started = std::time::Instant::now();
        let outcome = self.group(&jobs).instrument(span).await;
        let m = &metrics().pay;
        m.seconds.observe(started.elapsed().as_secs_f64());
        m.size.observe(jobs.len() as f64);
        let billers: HashSet<Uuid> = jobs.iter().map(|j| j.pay.biller()).collect();
        match outcome {
            Ok((outcomes, handoff)) => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
                self.committed_with(billers, handoff);
            }
            Err(e) => {
                m.fallbacks.inc();
                tracing::warn!(
                    error = %e,
                    payments = jobs.len(),
                    "a group of bill payments failed; each is made alone"
                );
                for job in jobs {
                    let _ = job.reply.send(Grouped::Alone);
                }
            }
        }
    }

    /// Makes the group's payments in one transaction; what each job gets, in order.
    /// With the webhook deliveries of its events, for [`BillingService::committed_with`].
    async fn group(&self, jobs: &[Job]) -> Result<(Vec<Grouped>, Handoff), ApiError> {
        let txs = &self.inner.tx;
        // A lock held long elsewhere (a biller's load amending bills being paid, a slow
        // payment) would hold up every payment of the group: past this wait the group fails and
        // each payment is made alone, where only the one that needs the lock waits for it.
        let mut tx = txs
            .begin_group(self.inner.settings.pay_group_lock_wait)
            .await?;
        let keys: Vec<&IdempotencyContext> = jobs.iter().map(|j| &j.key).collect();
        let claimed = txs.claim_group(&mut tx, &keys).await?;
        let mine = |j: &Job| claimed.contains(&j.key.scope_key);

        // The bills they may pay, locked in id order, and the references used on them.
        let mut customers = Vec::new();
        let mut named = Vec::new();
        for j in jobs.iter().filter(|j| mine(j)) {
            if j.pay.wanted.is_empty() {
                customers.push((j.pay.biller(), j.pay.lookup.customer_code.clone()));
            } else {
                named.extend(
                    j.pay
                        .wanted
                        .iter()
                        .map(|(n, _)| (j.pay.biller(), n.clone())),
                );
            }
        }
        let mut bills: BTreeMap<i64, BillRow> = store::bills_to_pay(&mut tx, &customers, &named)
            .await
            .map_err(db)?
            .into_iter()
            .map(|b| (b.id, b))
            .collect();
        let ids: Vec<i64> = bills.keys().copied().collect();
        let mut used: HashSet<(String, String, i64)> =
            store::references_of(&mut tx, &ids).await.map_err(db)?;

        // Each payment decided on the bills as the ones before it left them.
        let today = Date::today_in_vietnam();
        let created = now_us();
        let mut decided: Vec<Option<Result<Planned, ApiError>>> = Vec::with_capacity(jobs.len());
        for j in jobs {
            if !mine(j) {
                decided.push(None);
                continue;
            }
            let c = &j.pay;
            let rows: Vec<BillRow> = bills
                .values()
                .filter(|b| b.biller_id == c.biller() && b.customer_code == c.lookup.customer_code)
                .filter(|b| {
                    if c.wanted.is_empty() {
                        b.status.outstanding()
                    } else {
                        c.wanted.iter().any(|(n, _)| n == &b.bill_number)
                    }
                })
                .take(if c.wanted.is_empty() {
                    usize::try_from(store::OUTSTANDING_MAX).unwrap_or(100)
                } else {
                    usize::MAX
                })
                .cloned()
                .collect();
            let planned = c.choose(&rows, today).and_then(|chosen| {
                let payer = c.payer.name();
                if chosen
                    .iter()
                    .any(|(r, _)| used.contains(&(payer.clone(), c.reference.clone(), r.id)))
                {
                    return Err(c.reference_used());
                }
                self.decide(c, &chosen, &j.key.scope_key, today, created)
            });
            if let Ok(p) = &planned {
                for (bill, payment) in p.after.iter().zip(&p.payments) {
                    used.insert((payment.payer.clone(), c.reference.clone(), bill.id));
                    bills.insert(bill.id, bill.clone());
                }
            }
            decided.push(Some(planned));
        }

        // The ledger, then the rows, then the answers with the commit.
        let made: Vec<(&Job, &Planned)> = jobs
            .iter()
            .zip(&decided)
            .filter_map(|(j, d)| match d {
                Some(Ok(p)) => Some((j, p)),
                _ => None,
            })
            .collect();
        let chains: Vec<(&super::Payer, Uuid, &[super::Leg])> = made
            .iter()
            .map(|(j, p)| (&j.pay.payer, j.pay.biller(), p.legs.as_slice()))
            .collect();
        let mut paid_bills: BTreeMap<i64, &BillRow> = BTreeMap::new();
        let mut payments = Vec::new();
        let mut happened: BTreeMap<Uuid, Vec<events::Happened>> = BTreeMap::new();
        let mut answers = Vec::with_capacity(made.len());
        for (j, p) in &made {
            for bill in &p.after {
                paid_bills.insert(bill.id, bills.get(&bill.id).unwrap_or(bill));
            }
            payments.extend(p.payments.iter().cloned());
            let (answer, events) = p.answer(&j.pay.policy.policy, today);
            happened.entry(j.pay.biller()).or_default().extend(events);
            answers.push((&j.key, answer));
        }
        let paid_bills: Vec<&BillRow> = paid_bills.into_values().collect();
        // The ledger posts while the rows are written: both before the commit, neither needs
        // the other.
        let posting = async {
            let started = std::time::Instant::now();
            let posted = self.post_group(&chains).await;
            metrics()
                .pay
                .ledger_seconds
                .observe(started.elapsed().as_secs_f64());
            posted
        };
        let writing = async {
            store::update_paid_many(&mut tx, &paid_bills)
                .await
                .map_err(db)?;
            store::insert_payments(&mut tx, &payments)
                .await
                .map_err(db)?;
            self.record_claimed(&mut tx, happened).await
        };
        let (posted, written) = tokio::join!(posting, writing);
        posted?;
        let handoff = written?;
        let refused: Vec<&IdempotencyContext> = jobs
            .iter()
            .zip(&decided)
            .filter(|(_, d)| matches!(d, Some(Err(_))))
            .map(|(j, _)| &j.key)
            .collect();
        let stored: Vec<(&IdempotencyContext, &pb::PayBillResponse)> =
            answers.iter().map(|(k, a)| (*k, a)).collect();
        txs.commit_group(tx, &stored, &refused).await?;

        let mut answers = answers.into_iter().map(|(_, a)| a);
        let outcomes = decided
            .into_iter()
            .map(|d| match d {
                None => Grouped::Alone,
                Some(Err(e)) => Grouped::Answered(Err(e)),
                Some(Ok(_)) => Grouped::Answered(
                    answers
                        .next()
                        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("an answer missing"))),
                ),
            })
            .collect();
        Ok((outcomes, handoff))
    }
}
