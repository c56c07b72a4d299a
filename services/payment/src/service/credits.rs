//! The acquiring bank's credit notifications: matched, posted to the ledger and recorded
//! once per bank transaction.
//!
//! One transaction per credit: lock the intent the reference names (if any), decide
//! ([`crate::matching::decide`]), claim the bank transaction (the credit row, unique per
//! bank and transaction: a concurrent copy of the same notification waits here and then finds
//! it taken), post the ledger chain (ids derived from the transaction, so a retry after a
//! crash posts nothing twice), then the intent, the payment and its event, and commit. The
//! bank is answered after the commit; a failure anywhere before rolls everything back but the
//! ledger posting, which the bank's retry finds applied (EXISTS).

use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::edge::Violations;
use paymesh_platform::migrate::RowLock;
use paymesh_platform::time::{now_ns, ns_from_timestamp};
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::{CreditOutcome, EventKind};
use tonic::Request;

use super::input::{db, sql, vnd_field};
use super::{PaymentService, convert, watch};
use crate::matching::{AccountHolder, IntentState, decide};
use crate::posting::{chain, credit_id};
use crate::reference::{self, Finding};
use crate::store::{self, CreditRow, NewPayment, Resolution};

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
    if bin.len() != 6 || !bin.bytes().all(|b| b.is_ascii_digit()) {
        v.add("bank_bin", "must be a 6-digit BIN");
    } else {
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

impl PaymentService {
    pub(super) async fn notify(
        &self,
        request: Request<pb::NotifyCreditRequest>,
    ) -> Result<pb::NotifyCreditResponse, ApiError> {
        self.notify_from(principal(&request)?, request.get_ref())
            .await
    }

    /// A notification from `caller` (gRPC, or the banks' HTTP edge).
    pub(super) async fn notify_from(
        &self,
        caller: &Principal,
        req: &pb::NotifyCreditRequest,
    ) -> Result<pb::NotifyCreditResponse, ApiError> {
        let notice = parse(caller, req)?;
        let id = credit_id(&notice.bank_bin, &notice.bank_transaction_id);
        // A notification seen before is found by its claim below (the credits row's key), not
        // by a read first: the first notification of a transaction, the common case, costs one
        // statement less.
        let finding = reference::find(&notice.description);
        let holder = self
            .inner
            .directory
            .by_account(&notice.account_number)
            .await?
            .map(|m| AccountHolder {
                merchant_id: m.id,
                active: m.active,
            });
        let now_us = now_ns() / 1_000;
        let mut tx = self.pool().begin().await.map_err(sql)?;
        let intent_row = match &finding {
            Finding::Found(r) => {
                store::intent_by_reference(&mut tx, r.as_str(), RowLock::ForUpdate)
                    .await
                    .map_err(db)?
            }
            _ => None,
        };
        let state = intent_row.as_ref().map(|row| IntentState {
            id: row.id,
            merchant_id: row.merchant_id,
            status: convert::intent_status(row, now_us),
            amount: row.amount,
            received: row.amount_received,
        });
        let decision = decide(&finding, state, holder, notice.amount);
        let (fee, plan) = match decision.merchant_id {
            Some(m) => match self.inner.directory.merchant(m).await? {
                Some(info) => self.fee(&info, notice.amount),
                None => self.default_fee(notice.amount),
            },
            None => (0, String::new()),
        };
        let credit = CreditRow {
            id,
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
        if !store::claim_credit(&mut tx, &credit).await.map_err(db)? {
            // A concurrent copy of this notification committed first.
            drop(tx);
            let mut conn = self.pool().acquire().await.map_err(sql)?;
            let stored = store::credit(&mut conn, id, RowLock::None)
                .await
                .map_err(db)?
                .ok_or_else(|| ApiError::Unavailable("a concurrent notification of this transaction is still being applied; retry".into()))?;
            return repeat(&stored, &notice);
        }
        let legs = chain(
            id,
            &notice.bank_bin,
            decision.merchant_id,
            notice.amount,
            fee,
        )?;
        self.inner.poster.post(&notice.bank_bin, legs).await?;
        if let Some(merchant) = decision.merchant_id {
            let intent = match (decision.intent_change, intent_row) {
                (Some(change), Some(row)) => Some(
                    store::update_intent(
                        &mut tx,
                        row.id,
                        convert::stored_status(change.status),
                        change.received,
                    )
                    .await
                    .map_err(db)?,
                ),
                (None, row) => row,
                (Some(_), None) => None,
            };
            let mut payment = NewPayment {
                id,
                merchant_id: merchant,
                intent_id: decision.intent_id,
                outcome: &credit.outcome,
                amount: notice.amount,
                fee,
                fee_plan: &plan,
                seq: 0,
                // As late as the payment can be stamped: after the ledger posted, just before
                // the commit (what "notified within N ms of the commit" is measured from).
                create_us: now_ns() / 1_000,
            };
            let order_reference = intent
                .as_ref()
                .filter(|i| Some(i.id) == decision.intent_id)
                .map(|i| i.order_reference.clone());
            let row = payment.row(&credit, order_reference);
            payment.seq = watch::record(
                &mut tx,
                merchant,
                EventKind::PaymentReceived,
                watch::Event {
                    payment: Some(convert::payment(&row)),
                    intent: intent.as_ref().map(|i| convert::intent(i, now_us)),
                    refund: None,
                },
            )
            .await?;
            store::insert_payment(&mut tx, &payment).await.map_err(db)?;
        }
        tx.commit().await.map_err(sql)?;
        if let Some(merchant) = decision.merchant_id {
            self.committed(merchant);
        }
        if decision.outcome == CreditOutcome::Suspense {
            tracing::info!(credit = %id, detail = decision.detail, "credit held in suspense");
        }
        Ok(pb::NotifyCreditResponse {
            credit: Some(convert::credit(&credit)),
            duplicate: false,
        })
    }
}
