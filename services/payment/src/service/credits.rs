//! The acquiring bank's credit notifications: matched, posted to the ledger and recorded
//! once per bank transaction.
//!
//! Group commit: a handler checks the notification, looks up the merchant whose account was
//! credited and its fee, and hands it to the service's one combiner, which applies whatever
//! notifications are waiting together, in arrival order, in one transaction: find which bank
//! transactions are stored already (those are answered with their first outcome), lock the
//! intents the references name (in id order), decide each credit
//! ([`crate::matching::decide`]) seeing the ones before it in the batch, claim the credits (the
//! row is unique per bank and transaction: a copy being applied by another process makes the
//! claim wait, then fail), post every ledger chain through the `TransferBatcher` (ids derived
//! from the transaction, so a retry after a crash posts nothing twice) and, while the ledger
//! posts, write the intents, event numbers, payments, events and webhook deliveries in a few
//! statements, and commit; then answer every bank. If anything in a batch fails, its
//! notifications are applied one by one instead, so one bad notification fails alone; a
//! failure before the commit rolls back all but the ledger postings, which a retry finds
//! applied (EXISTS).
//!
//! Traces: each notification has its span (`payment.notify_credit`); a batch's span
//! (`payment.credit_batch`) is the child of its first notification's and links the others'
//! (`paymesh_platform::telemetry::serve_batch`); each notification's posting
//! (`payment.credit_posting`) and its event's webhook delivery are children of the
//! notification's own span, whichever batch applied it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::edge::Violations;
use paymesh_platform::events::Handoff;
use paymesh_platform::group::{Queue, next_group};
use paymesh_platform::migrate::RowLock;
use paymesh_platform::time::{now_ns, ns_from_timestamp};
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::{CreditOutcome, EventKind};
use sqlx::PgConnection;
use tokio::sync::oneshot;
use tonic::Request;
use tracing::Instrument;
use uuid::Uuid;

use super::{PaymentService, convert, watch};
use crate::matching::{AccountHolder, Decision, IntentState, decide, suspense};
use crate::posting::{chain, credit_id};
use crate::store::{self, CreditRow, IntentRow, NewPayment, Resolution};
use paymesh_billing::client::Applied;
use paymesh_merchant::directory::MerchantInfo;
use paymesh_platform::edge::fields::{bin_field, db, sql, vnd_field};
use paymesh_vn::reference::{self, Finding, Kind, Reference};

/// Notifications applied together at most.
const BATCH_MAX: usize = 256;
/// Notifications waiting for the combiner at most (then handlers wait to hand theirs over).
pub const QUEUE_MAX: usize = 4096;

const TRANSACTION_ID_CHARS_MAX: usize = 64;
const ACCOUNT_CHARS_MAX: usize = 19;
const DESCRIPTION_CHARS_MAX: usize = 500;

/// The checked fields of a notification.
struct Notice {
    bank_bin: String,
    bank_transaction_id: String,
    account_number: String,
    amount: i64,
    description: String,
    value_us: i64,
}

fn parse(caller: &Principal, req: &pb::NotifyCreditRequest) -> Result<Notice, ApiError> {
    let mut v = Violations::default();
    let bin = req.bank_bin.as_str();
    if bin_field(&mut v, "bank_bin", bin).is_some() {
        match caller {
            Principal::Bank(own) if own != bin => {
                return Err(ApiError::PermissionDenied(format!(
                    "{caller} may notify credits of its own BIN only, not {bin}"
                )));
            }
            _ => {}
        }
    }
    let txn = req.bank_transaction_id.as_str();
    if txn.is_empty()
        || txn.len() > TRANSACTION_ID_CHARS_MAX
        || !txn
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:/-".contains(&b))
    {
        v.add(
            "bank_transaction_id",
            format!("must be 1-{TRANSACTION_ID_CHARS_MAX} characters of [A-Za-z0-9._:/-]"),
        );
    }
    let account = req.account_number.as_str();
    if account.is_empty()
        || account.len() > ACCOUNT_CHARS_MAX
        || !account.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        v.add(
            "account_number",
            format!("must be 1-{ACCOUNT_CHARS_MAX} ASCII letters and digits"),
        );
    }
    let amount = vnd_field(&mut v, "amount", req.amount.as_ref());
    if req.description.chars().count() > DESCRIPTION_CHARS_MAX {
        v.add(
            "description",
            format!("must be at most {DESCRIPTION_CHARS_MAX} characters"),
        );
    }
    // Bank text arrives with line breaks and tabs: kept as spaces.
    let description: String = req
        .description
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned();
    let value_us = match req.value_time.as_ref().map(ns_from_timestamp) {
        None => {
            v.add("value_time", "required");
            None
        }
        Some(Err(e)) => {
            v.add("value_time", e);
            None
        }
        Some(Ok(ns)) => Some(ns / 1_000),
    };
    v.into_result()?;
    let (Some(amount), Some(value_us)) = (amount, value_us) else {
        return Err(ApiError::invalid("amount", "required"));
    };
    Ok(Notice {
        bank_bin: bin.to_owned(),
        bank_transaction_id: txn.to_owned(),
        account_number: account.to_owned(),
        amount,
        description,
        value_us,
    })
}

/// The answer to a notification of a transaction stored before: its first outcome, or a
/// conflict if the money fields differ.
fn repeat(stored: &CreditRow, notice: &Notice) -> Result<pb::NotifyCreditResponse, ApiError> {
    if stored.account_number != notice.account_number
        || stored.amount != notice.amount
        || stored.value_us != notice.value_us
    {
        return Err(ApiError::FailedPrecondition {
            reason: "BANK_TRANSACTION_CONFLICT",
            message: format!(
                "bank transaction {} of {} was notified before with another account, amount or value time",
                notice.bank_transaction_id, notice.bank_bin
            ),
        });
    }
    Ok(pb::NotifyCreditResponse {
        credit: Some(convert::credit(stored)),
        duplicate: true,
    })
}

/// A notification checked and looked up, waiting for its batch.
pub struct Item {
    notice: Notice,
    id: Uuid,
    finding: Finding,
    holder: Option<Arc<MerchantInfo>>,
    /// The fee and plan if it is credited to the holder (the only merchant it can be).
    fee: (i64, String),
    /// A bill's reference the billing service refused (why): the credit waits in suspense.
    bill_refused: Option<&'static str>,
    reply: oneshot::Sender<Result<pb::NotifyCreditResponse, ApiError>>,
    /// The notification's span (`payment.notify_credit`).
    span: tracing::Span,
}

/// Why a batch was not applied.
enum Refused {
    /// A credit of the batch was claimed by another process meanwhile.
    Claimed,
    Error(ApiError),
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Refused {
        Refused::Error(e)
    }
}

/// What a batch does with one of its notifications (a batch's steps live for one
/// transaction: the size of a repeat does not matter).
#[allow(clippy::large_enum_variant)]
enum Step {
    /// Stored before (or earlier in this batch): answered with the stored outcome.
    Repeat,
    New {
        credit: CreditRow,
        decision: Decision,
        /// The intent the reference named, as it is after this credit.
        intent: Option<IntentRow>,
    },
}

/// Runs a combiner until every handler is gone. Several may share one queue: each takes what
/// is waiting and applies it while the others take the next batch (their locks are taken in
/// one global order — intents, credits, event streams, each sorted — so they never deadlock).
pub async fn combine(service: PaymentService, queue: Queue<Item>) {
    while let Some(batch) = next_group(&queue, BATCH_MAX).await {
        service.apply(batch).await;
    }
}

impl PaymentService {
    pub(super) async fn notify(
        &self,
        request: Request<pb::NotifyCreditRequest>,
    ) -> Result<pb::NotifyCreditResponse, ApiError> {
        self.notify_from(principal(&request)?, request.get_ref())
            .await
    }

    /// A notification from `caller` (gRPC, or the banks' HTTP edge), in a span of its own.
    pub(super) async fn notify_from(
        &self,
        caller: &Principal,
        req: &pb::NotifyCreditRequest,
    ) -> Result<pb::NotifyCreditResponse, ApiError> {
        let span = tracing::info_span!(
            "payment.notify_credit",
            credit = tracing::field::Empty,
            outcome = tracing::field::Empty,
            duplicate = tracing::field::Empty,
        );
        let answer = self
            .notify_in(caller, req, &span)
            .instrument(span.clone())
            .await;
        if let Ok(answer) = &answer
            && let Some(credit) = &answer.credit
        {
            span.record("outcome", credit.outcome().as_str_name());
            span.record("duplicate", answer.duplicate);
        }
        answer
    }

    async fn notify_in(
        &self,
        caller: &Principal,
        req: &pb::NotifyCreditRequest,
        span: &tracing::Span,
    ) -> Result<pb::NotifyCreditResponse, ApiError> {
        let notice = parse(caller, req)?;
        let id = credit_id(&notice.bank_bin, &notice.bank_transaction_id);
        span.record("credit", tracing::field::display(id));
        let finding = reference::find(&notice.description);
        let mut bill_refused = None;
        if let Finding::Found(r) = &finding
            && r.kind() == Kind::Bill
        {
            match self.bill_credit(&notice, id, r).await? {
                Ok(answer) => return Ok(answer),
                Err(why) => bill_refused = Some(why),
            }
        }
        let holder = self
            .inner
            .directory
            .by_account(&notice.account_number)
            .await?;
        let fee = holder
            .as_ref()
            .map_or((0, String::new()), |h| self.fee(h, notice.amount));
        let (reply, answer) = oneshot::channel();
        self.inner
            .credits
            .send(Item {
                notice,
                id,
                finding,
                holder,
                fee,
                bill_refused,
                reply,
                span: span.clone(),
            })
            .await
            .map_err(|_| ApiError::Unavailable("the payment service is stopping; retry".into()))?;
        answer.await.map_err(|_| {
            ApiError::Internal(anyhow::anyhow!(
                "a notification's batch ended without an answer"
            ))
        })?
    }

    /// A credit quoting a bill's reference (a paper bill's QR): handed to the billing service,
    /// which posts it to the biller and marks the bill; recorded here with outcome BILL (no
    /// posting of this service's own). `Err`: why the bill cannot take it (the credit then
    /// waits in suspense like any unmatched credit).
    async fn bill_credit(
        &self,
        notice: &Notice,
        id: Uuid,
        bill: &Reference,
    ) -> Result<Result<pb::NotifyCreditResponse, &'static str>, ApiError> {
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        if let Some(stored) = store::credit(&mut conn, id, RowLock::None)
            .await
            .map_err(db)?
        {
            return repeat(&stored, notice).map(Ok);
        }
        drop(conn);
        let applied = self
            .inner
            .billing
            .apply_bank_credit(
                bill.as_str(),
                &notice.bank_bin,
                &notice.bank_transaction_id,
                paymesh_ledger::client::chain::vnd(notice.amount),
            )
            .await?;
        let payment = match applied {
            Applied::Paid(p) => p,
            Applied::Refused { reason, message } => {
                tracing::info!(credit = %id, %reason, %message, "a bill's credit was refused: suspense");
                return Ok(Err(bill_refusal(&reason)));
            }
        };
        let biller = Uuid::try_parse(&payment.biller_id).map_err(|e| {
            ApiError::Internal(anyhow::anyhow!(
                "billing sent biller {:?}: {e}",
                payment.biller_id
            ))
        })?;
        let credit = CreditRow {
            id,
            bank_bin: notice.bank_bin.clone(),
            bank_transaction_id: notice.bank_transaction_id.clone(),
            account_number: notice.account_number.clone(),
            amount: notice.amount,
            description: notice.description.clone(),
            value_us: notice.value_us,
            receive_us: now_ns() / 1_000,
            outcome: convert::outcome_name(CreditOutcome::Bill).to_owned(),
            detail: "BILL_MATCHED".to_owned(),
            merchant_id: Some(biller),
            intent_id: None,
            resolution: Resolution::none(),
        };
        let mut tx = self.pool().begin().await.map_err(sql)?;
        if store::claim_credits(&mut tx, std::slice::from_ref(&credit))
            .await
            .map_err(db)?
            != 1
        {
            // A copy (the webhook and gRPC at once) recorded it first.
            drop(tx);
            return self.repeat_stored(id, notice).await.map(Ok);
        }
        tx.commit().await.map_err(sql)?;
        Ok(Ok(pb::NotifyCreditResponse {
            credit: Some(convert::credit(&credit)),
            duplicate: false,
        }))
    }

    /// Applies a batch and answers each of its notifications.
    async fn apply(&self, batch: Vec<Item>) {
        if batch.len() == 1 {
            for item in batch {
                let answer = match self.traced_batch(std::slice::from_ref(&item)).await {
                    Ok(mut answers) => answers.pop().unwrap_or_else(|| {
                        Err(ApiError::Internal(anyhow::anyhow!(
                            "a batch of one had no answer"
                        )))
                    }),
                    Err(Refused::Claimed) => self.repeat_stored(item.id, &item.notice).await,
                    Err(Refused::Error(e)) => Err(e),
                };
                let _ = item.reply.send(answer);
            }
            return;
        }
        match self.traced_batch(&batch).await {
            Ok(answers) => {
                for (item, answer) in batch.into_iter().zip(answers) {
                    let _ = item.reply.send(answer);
                }
            }
            Err(why) => {
                crate::metrics::metrics().fallbacks.inc();
                if let Refused::Error(e) = &why {
                    tracing::warn!(error = %e, size = batch.len(), "a batch of credits failed; applying them one by one");
                }
                for item in batch {
                    Box::pin(self.apply(vec![item])).await;
                }
            }
        }
    }

    /// The answer to a notification whose transaction was stored by someone else.
    async fn repeat_stored(
        &self,
        id: Uuid,
        notice: &Notice,
    ) -> Result<pb::NotifyCreditResponse, ApiError> {
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let stored = store::credit(&mut conn, id, RowLock::None)
            .await
            .map_err(db)?
            .ok_or_else(|| {
                ApiError::Unavailable(
                    "a concurrent notification of this transaction is still being applied; retry"
                        .into(),
                )
            })?;
        repeat(&stored, notice)
    }

    /// [`Self::try_batch`] in its span: the child of the first notification's span, linking
    /// the others'.
    async fn traced_batch(
        &self,
        items: &[Item],
    ) -> Result<Vec<Result<pb::NotifyCreditResponse, ApiError>>, Refused> {
        let span = tracing::info_span!("payment.credit_batch", credits = items.len());
        paymesh_platform::telemetry::serve_batch(&span, items.iter().map(|i| &i.span));
        self.try_batch(items).instrument(span).await
    }

    /// One transaction for `items`; their answers in order, or why nothing was applied.
    async fn try_batch(
        &self,
        items: &[Item],
    ) -> Result<Vec<Result<pb::NotifyCreditResponse, ApiError>>, Refused> {
        let started = std::time::Instant::now();
        let now_us = now_ns() / 1_000;
        let mut tx = self.pool().begin().await.map_err(sql)?;
        let ids: Vec<Uuid> = items.iter().map(|i| i.id).collect();
        let stored = store::stored_credits(&mut tx, &ids).await.map_err(db)?;
        let mut references: Vec<String> = items
            .iter()
            .filter(|i| !stored.contains(&i.id))
            .filter_map(|i| match &i.finding {
                Finding::Found(r) => Some(r.to_string()),
                _ => None,
            })
            .collect();
        references.sort();
        references.dedup();
        let mut intents: HashMap<String, IntentRow> = if references.is_empty() {
            HashMap::new()
        } else {
            store::intents_by_references_locked(&mut tx, &references)
                .await
                .map_err(db)?
                .into_iter()
                .map(|row| (row.reference.clone(), row))
                .collect()
        };

        // Decide each in arrival order, each seeing the intents as the ones before left them.
        let mut seen = HashSet::new();
        let mut changed = BTreeMap::new();
        let steps: Vec<Step> = items
            .iter()
            .map(|item| {
                if stored.contains(&item.id) || !seen.insert(item.id) {
                    return Step::Repeat;
                }
                let notice = &item.notice;
                let row = match &item.finding {
                    Finding::Found(r) => intents.get_mut(r.as_str()),
                    _ => None,
                };
                let state = row.as_ref().map(|row| IntentState {
                    id: row.id,
                    merchant_id: row.merchant_id,
                    status: convert::intent_status(row, now_us),
                    amount: row.amount,
                    received: row.amount_received,
                });
                let holder = item.holder.as_ref().map(|m| AccountHolder {
                    merchant_id: m.id,
                    active: m.active,
                });
                let decision = match item.bill_refused {
                    Some(why) => suspense(why),
                    None => decide(&item.finding, state, holder, notice.amount),
                };
                let intent = row.map(|row| {
                    if let Some(change) = decision.intent_change {
                        row.status = convert::stored_status(change.status).to_owned();
                        row.amount_received = change.received;
                        row.update_us = now_us;
                        changed.insert(row.id, (row.status.clone(), row.amount_received));
                    }
                    row.clone()
                });
                let credit = CreditRow {
                    id: item.id,
                    bank_bin: notice.bank_bin.clone(),
                    bank_transaction_id: notice.bank_transaction_id.clone(),
                    account_number: notice.account_number.clone(),
                    amount: notice.amount,
                    description: notice.description.clone(),
                    value_us: notice.value_us,
                    receive_us: now_us,
                    outcome: convert::outcome_name(decision.outcome).to_owned(),
                    detail: decision.detail.to_owned(),
                    merchant_id: decision.merchant_id,
                    intent_id: decision.intent_id,
                    resolution: Resolution::none(),
                };
                Step::New {
                    credit,
                    decision,
                    intent,
                }
            })
            .collect();

        let claims: Vec<CreditRow> = steps
            .iter()
            .filter_map(|s| match s {
                Step::New { credit, .. } => Some(credit.clone()),
                Step::Repeat => None,
            })
            .collect();
        if !claims.is_empty()
            && store::claim_credits(&mut tx, &claims).await.map_err(db)? != claims.len() as u64
        {
            return Err(Refused::Claimed);
        }

        // Every chain at once: the batcher sends them to the ledger together. The ledger posts
        // while this transaction writes the rest (neither needs the other's result; both come
        // before the commit), so a batch waits for the longer of the two, not their sum.
        let postings = items
            .iter()
            .zip(&steps)
            .filter_map(|(item, step)| match step {
                Step::New {
                    credit, decision, ..
                } => Some((item, credit, decision)),
                Step::Repeat => None,
            });
        let posting = async {
            let ledger_started = std::time::Instant::now();
            let posted = futures::future::join_all(postings.map(|(item, credit, decision)| {
                // In the notification's own trace, whichever batch posts it.
                let span = tracing::info_span!(parent: &item.span, "payment.credit_posting");
                async move {
                    let fee = decision.merchant_id.map_or(0, |_| item.fee.0);
                    let legs = chain(
                        credit.id,
                        &credit.bank_bin,
                        decision.merchant_id,
                        credit.amount,
                        fee,
                    )?;
                    self.post(&credit.bank_bin, legs).await
                }
                .instrument(span)
            }))
            .await;
            crate::metrics::metrics()
                .ledger_seconds
                .observe(ledger_started.elapsed().as_secs_f64());
            posted.into_iter().collect::<Result<Vec<()>, ApiError>>()
        };
        let writing = self.write_batch(&mut tx, items, &steps, &changed, now_us);
        let (posted, written) = tokio::join!(posting, writing);
        posted?;
        let (counts, handoff) = written?;
        tx.commit().await.map_err(sql)?;
        let m = crate::metrics::metrics();
        m.size.observe(items.len() as f64);
        m.seconds.observe(started.elapsed().as_secs_f64());
        self.inner
            .events
            .committed_with(counts.keys().copied(), handoff);

        let mut answers = Vec::with_capacity(items.len());
        for (item, step) in items.iter().zip(&steps) {
            answers.push(match step {
                Step::New {
                    credit, decision, ..
                } => {
                    if decision.outcome == CreditOutcome::Suspense {
                        tracing::info!(credit = %credit.id, detail = decision.detail, "credit held in suspense");
                    }
                    Ok(pb::NotifyCreditResponse {
                        credit: Some(convert::credit(credit)),
                        duplicate: false,
                    })
                }
                Step::Repeat => self.repeat_stored(item.id, &item.notice).await,
            });
        }
        Ok(answers)
    }

    /// The rows of a batch besides its credits: the intents it changed, its events' numbers,
    /// its payments, its events and their webhook deliveries (claimed for their first attempt
    /// by this process). Answers the events' owners and the deliveries to hand to the worker
    /// after the commit.
    async fn write_batch(
        &self,
        tx: &mut PgConnection,
        items: &[Item],
        steps: &[Step],
        changed: &BTreeMap<Uuid, (String, i64)>,
        now_us: i64,
    ) -> Result<(BTreeMap<Uuid, i64>, Handoff), ApiError> {
        if !changed.is_empty() {
            let changes: Vec<(Uuid, &str, i64)> = changed
                .iter()
                .map(|(id, (status, received))| (*id, status.as_str(), *received))
                .collect();
            store::update_intents(&mut *tx, &changes)
                .await
                .map_err(db)?;
        }

        // Event numbers, payments, events and deliveries of the credited ones.
        let mut counts: BTreeMap<Uuid, i64> = BTreeMap::new();
        for step in steps {
            if let Step::New {
                decision:
                    Decision {
                        merchant_id: Some(m),
                        ..
                    },
                ..
            } = step
            {
                *counts.entry(*m).or_default() += 1;
            }
        }
        let mut payments = Vec::new();
        let mut events = Vec::new();
        let mut handoff = Handoff::none();
        if !counts.is_empty() {
            let mut next = paymesh_platform::events::take_seqs(&mut *tx, store::SCHEMA, &counts)
                .await
                .map_err(db)?;
            let create_us = now_ns() / 1_000;
            for (item, step) in items.iter().zip(steps) {
                let Step::New {
                    credit,
                    decision,
                    intent,
                } = step
                else {
                    continue;
                };
                let Some(merchant) = decision.merchant_id else {
                    continue;
                };
                let seq = next.get(&merchant).copied().ok_or_else(|| {
                    ApiError::Internal(anyhow::anyhow!("no event number for {merchant}"))
                })?;
                next.insert(merchant, seq + 1);
                let payment = NewPayment {
                    id: credit.id,
                    merchant_id: merchant,
                    intent_id: decision.intent_id,
                    outcome: &credit.outcome,
                    amount: credit.amount,
                    fee: item.fee.0,
                    fee_plan: &item.fee.1,
                    seq,
                    // As late as the payment can be written: while the ledger posts, before
                    // the commit (what "notified within N ms of the commit" is measured from,
                    // so the ledger's remaining time counts in it).
                    create_us,
                };
                let order_reference = intent
                    .as_ref()
                    .filter(|i| Some(i.id) == decision.intent_id)
                    .map(|i| i.order_reference.clone());
                let row = payment.row(credit, order_reference);
                let mut event = watch::stored(
                    merchant,
                    seq,
                    EventKind::PaymentReceived,
                    watch::Event {
                        payment: Some(convert::payment(&row)),
                        intent: intent.as_ref().map(|i| convert::intent(i, now_us)),
                        refund: None,
                    },
                )?;
                // Its webhook continues the notification's trace, not the batch's.
                event.traceparent = paymesh_platform::telemetry::traceparent(&item.span);
                events.push(event);
                payments.push(payment);
            }
            store::insert_payments(&mut *tx, &payments)
                .await
                .map_err(db)?;
            // Its webhooks claimed for their first attempt by this process: after the commit
            // the worker sends them without claiming them from the outbox.
            handoff = self
                .inner
                .events
                .insert_claimed(&mut *tx, &events)
                .await
                .map_err(db)?;
        }
        Ok((counts, handoff))
    }
}

/// The detail a suspended bill credit records: the billing service's reason, when it is one
/// of its known ones.
fn bill_refusal(reason: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "BILL_PAID",
        "BILL_CANCELLED",
        "BILL_EXPIRED",
        "AMOUNT_NOT_EXACT",
        "AMOUNT_ABOVE_DUE",
        "AMOUNT_BELOW_MINIMUM",
        "AMOUNT_BELOW_DUE",
        "BILLER_NOT_ACTIVE",
        "BILLER_POLICY_MISSING",
        "BANK_TRANSACTION_CONFLICT",
    ];
    KNOWN
        .iter()
        .find(|k| **k == reason)
        .copied()
        .unwrap_or("BILL_UNKNOWN")
}
