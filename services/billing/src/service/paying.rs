//! Paying bills: a payer channel looks a customer's bills up and pays them quoting the lookup
//! reference; a bank credit that quoted a bill's reference (a paper bill's QR) pays it through
//! the payment service. Each bill is locked while it is paid, so two payers at the same moment
//! get one success and one refusal with the bill's own reason (`BILL_PAID`…), and the ledger
//! chain is posted before the payment commits, with ids derived from the payment: a retry
//! posts nothing twice.

use std::collections::HashSet;

use paymesh_ledger::client::chain::{derived_uuid, vnd};
use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, principal};
use paymesh_platform::edge::fields::{db, may_read, sql, text_field, uuid_field, vnd_field};
use paymesh_platform::edge::{PageLimits, Paging, Violations};
use paymesh_platform::migrate::RowLock;
use paymesh_platform::time::{Date, now_ns, timestamp_from_ns};
use paymesh_proto::billing::v1 as pb;
use paymesh_vn::reference::{Kind, Reference};
use tonic::Request;
use uuid::Uuid;

use super::group::Grouped;
use super::{BillingService, Leg, Payer, convert, events};
use crate::bills::{bill_number, mask_name};
use crate::lookup::{Lookup, LookupError};
use crate::policy::Refusal;
use crate::store::{self, PaymentRow};
use crate::store::{BillRow, PolicyRow};
use paymesh_merchant::directory::MerchantInfo;
use paymesh_platform::edge::Transactions;
use std::sync::Arc;

const CHANNEL_REFERENCE_CHARS_MAX: usize = 64;
const BANK_TRANSACTION_CHARS_MAX: usize = 64;
/// Bills one payment may name.
const BILLS_PER_PAYMENT_MAX: usize = 100;
const PAGE: PageLimits = PageLimits {
    size_default: 100,
    size_max: 1_000,
};

fn refused(number: &str, r: Refusal) -> ApiError {
    ApiError::FailedPrecondition {
        reason: r.reason,
        message: format!("bill {number}: {}", r.message),
    }
}

fn now_us() -> i64 {
    now_ns() / 1_000
}

/// A channel's payment, checked: what either way of making it needs.
#[derive(Clone)]
pub(super) struct Checked {
    pub payer: Payer,
    pub lookup: Lookup,
    /// The bills named, each with the amount named (none: what is due now); none named: every
    /// outstanding bill in full.
    pub wanted: Vec<(String, Option<i64>)>,
    pub reference: String,
    pub info: Arc<MerchantInfo>,
    pub policy: Arc<PolicyRow>,
}

impl Checked {
    pub fn biller(&self) -> Uuid {
        self.lookup.biller
    }

    /// Which bills, and how much of each: every outstanding bill in full (`rows`: the
    /// customer's outstanding bills in id order), or the bills named in the order named.
    pub fn choose<'a>(
        &self,
        rows: &'a [BillRow],
        today: Date,
    ) -> Result<Vec<(&'a BillRow, i64)>, ApiError> {
        let policy = &self.policy.policy;
        let mut chosen = Vec::new();
        if self.wanted.is_empty() {
            for r in rows {
                let q = policy.quote(&r.money(), today);
                if !q.expired {
                    chosen.push((r, q.due_now));
                }
            }
            if chosen.is_empty() {
                return Err(ApiError::FailedPrecondition {
                    reason: "NO_OUTSTANDING_BILLS",
                    message: format!("customer {} has no bill to pay", self.lookup.customer_code),
                });
            }
        } else {
            for (number, amount) in &self.wanted {
                let r = rows
                    .iter()
                    .find(|r| &r.bill_number == number)
                    .ok_or(ApiError::NotFound { resource: "bill" })?;
                let amount = amount.unwrap_or_else(|| policy.quote(&r.money(), today).due_now);
                chosen.push((r, amount));
            }
        }
        Ok(chosen)
    }

    pub fn reference_used(&self) -> ApiError {
        ApiError::FailedPrecondition {
            reason: "CHANNEL_REFERENCE_USED",
            message: format!(
                "channel reference {} already paid one of these bills",
                self.reference
            ),
        }
    }
}

/// A payment decided: its rows, its ledger legs, and the bills as it leaves them.
pub(super) struct Planned {
    pub payments: Vec<PaymentRow>,
    pub legs: Vec<Leg>,
    pub after: Vec<BillRow>,
}

impl Planned {
    /// The channel's answer, and the biller's events (one per bill paid).
    pub fn answer(
        &self,
        policy: &crate::policy::Policy,
        today: Date,
    ) -> (pb::PayBillResponse, Vec<events::Happened>) {
        let paid: Vec<pb::BillPayment> = self.payments.iter().map(convert::payment).collect();
        let happened = self
            .after
            .iter()
            .zip(&paid)
            .map(|(bill, payment)| {
                (
                    pb::BillEventKind::PaymentReceived,
                    Some(payment.clone()),
                    Some(convert::bill(bill, Some(policy), today)),
                )
            })
            .collect();
        let total: i64 = self.payments.iter().map(|p| p.amount).sum();
        (
            pb::PayBillResponse {
                payments: paid,
                total: Some(vnd(total)),
            },
            happened,
        )
    }
}

impl BillingService {
    pub(super) async fn lookup(
        &self,
        request: Request<pb::LookupBillsRequest>,
    ) -> Result<pb::LookupBillsResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let biller = uuid_field(&mut v, "biller_id", &req.biller_id);
        if req.customer_code.trim().is_empty() {
            v.add("customer_code", "required");
        }
        v.into_result()?;
        let biller = biller.ok_or_else(|| ApiError::invalid("biller_id", "required"))?;
        let info = self.active_biller(biller).await?;
        let row = self.policy_of(biller).await?;
        let policy = &row.policy;
        let customer = policy
            .customer_code(&req.customer_code)
            .map_err(|why| ApiError::invalid("customer_code", why))?;
        let rows = self.outstanding(biller, &customer).await?;
        let today = Date::today_in_vietnam();
        let bills = rows
            .iter()
            .filter_map(|r| {
                let q = policy.quote(&r.money(), today);
                (!q.expired).then(|| pb::OutstandingBill {
                    bill_number: r.bill_number.clone(),
                    period: r.period.clone(),
                    customer_name_masked: mask_name(&r.customer_name),
                    description: r.description.clone(),
                    due_date: r.due_date.to_string(),
                    status: convert::stored_status(r.status) as i32,
                    amount_due: Some(vnd(r.amount_due)),
                    amount_paid: Some(vnd(r.amount_paid)),
                    late_fee: Some(vnd(q.late_fee)),
                    discount: Some(vnd(q.discount)),
                    amount_due_now: Some(vnd(q.due_now)),
                    amount_rule: policy.rule.to_pb() as i32,
                    minimum_now: Some(vnd(q.minimum_now)),
                })
            })
            .collect();
        let ttl = self.inner.settings.lookup_ttl;
        let expires_ns = now_ns().saturating_add(i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX));
        let lookup = Lookup {
            channel: caller.to_string(),
            biller,
            customer_code: customer.clone(),
            expires: expires_ns / 1_000_000_000,
        };
        Ok(pb::LookupBillsResponse {
            biller_name: info.business_name.clone(),
            category: info.biller_category.clone(),
            customer_code: customer,
            bills,
            lookup_reference: self.inner.lookup_key.sign(&lookup),
            lookup_expire_time: Some(timestamp_from_ns(lookup.expires * 1_000_000_000)),
        })
    }

    pub(super) async fn pay(
        &self,
        request: Request<pb::PayBillRequest>,
    ) -> Result<pb::PayBillResponse, ApiError> {
        let caller = principal(&request)?.clone();
        let Principal::Channel(channel) = &caller else {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} is not a payer channel"
            )));
        };
        let checked = match self.check(&caller, channel, request.get_ref()).await {
            Ok(checked) => checked,
            // A payment answered before is answered again, whatever its checks say now (its
            // lookup reference expired since or signed with a key a restart replaced, its
            // biller suspended since). Looked for only then: a payment whose checks pass finds
            // its stored answer when it claims its key, alone or in a group, so a fresh payment
            // does not pay for this read.
            Err(refusal) => {
                return match self.inner.tx.answered(&request).await? {
                    Some(answer) => Ok(answer),
                    None => Err(refusal),
                };
            }
        };
        if self.inner.settings.pay_groups > 0 {
            let key = Transactions::key(&request)?;
            if let Grouped::Answered(answer) = self.pay_in_group(key, checked.clone()).await {
                return answer;
            }
        }
        self.pay_alone(&request, checked).await
    }

    /// A payment's checks: its lookup reference (this channel's, not expired), its bills and
    /// amounts, its channel reference, an ACTIVE biller with a policy.
    async fn check(
        &self,
        caller: &Principal,
        channel: &str,
        req: &pb::PayBillRequest,
    ) -> Result<Checked, ApiError> {
        let mut v = Violations::default();
        let lookup = match self
            .inner
            .lookup_key
            .open(&req.lookup_reference, now_ns() / 1_000_000_000)
        {
            Ok(l) => Some(l),
            Err(LookupError::Expired) => {
                return Err(ApiError::FailedPrecondition {
                    reason: "LOOKUP_EXPIRED",
                    message: "the lookup reference has expired: look the bills up again".into(),
                });
            }
            Err(e) => {
                v.add("lookup_reference", e.to_string());
                None
            }
        };
        if lookup
            .as_ref()
            .is_some_and(|l| l.channel != caller.to_string())
        {
            return Err(ApiError::PermissionDenied(
                "the lookup reference was made for another channel".into(),
            ));
        }
        if req.bills.len() > BILLS_PER_PAYMENT_MAX {
            v.add(
                "bills",
                format!("at most {BILLS_PER_PAYMENT_MAX} bills per payment"),
            );
        }
        let mut wanted = Vec::with_capacity(req.bills.len());
        let mut seen = HashSet::new();
        for (i, b) in req.bills.iter().enumerate() {
            let number = v.parse(
                &format!("bills[{i}].bill_number"),
                bill_number(&b.bill_number),
            );
            let amount = match &b.amount {
                None => None,
                Some(_) => vnd_field(&mut v, &format!("bills[{i}].amount"), b.amount.as_ref()),
            };
            if let Some(n) = number {
                if !seen.insert(n.clone()) {
                    v.add(format!("bills[{i}].bill_number"), "named twice");
                }
                wanted.push((n, amount));
            }
        }
        let reference = text_field(
            &mut v,
            "channel_reference",
            &req.channel_reference,
            CHANNEL_REFERENCE_CHARS_MAX,
        );
        if reference.as_deref().is_some_and(str::is_empty) {
            v.add("channel_reference", "required");
        }
        v.into_result()?;
        let (Some(lookup), Some(reference)) = (lookup, reference) else {
            return Err(ApiError::invalid("lookup_reference", "required"));
        };
        let biller = lookup.biller;
        Ok(Checked {
            info: self.active_biller(biller).await?,
            policy: self.policy_of(biller).await?,
            payer: Payer::Channel(channel.to_owned()),
            lookup,
            wanted,
            reference,
        })
    }

    /// A payment in a transaction of its own (no group commit, or a request whose key was
    /// used before, or whose group failed).
    async fn pay_alone(
        &self,
        request: &Request<pb::PayBillRequest>,
        c: Checked,
    ) -> Result<pb::PayBillResponse, ApiError> {
        let biller = c.biller();
        let paid = self
            .inner
            .tx
            .once(request, |mut work| async move {
                let customer = &c.lookup.customer_code;
                let rows = if c.wanted.is_empty() {
                    store::outstanding(&mut work.tx, biller, customer, RowLock::ForUpdate).await
                } else {
                    let numbers: Vec<String> = c.wanted.iter().map(|(n, _)| n.clone()).collect();
                    store::customer_bills(&mut work.tx, biller, customer, &numbers).await
                }
                .map_err(db)?;
                let today = Date::today_in_vietnam();
                let chosen = c.choose(&rows, today)?;
                let ids: Vec<i64> = chosen.iter().map(|(r, _)| r.id).collect();
                if store::reference_used(&mut work.tx, &c.payer.name(), &c.reference, &ids)
                    .await
                    .map_err(db)?
                {
                    return Err(c.reference_used());
                }
                let planned = self.decide(&c, &chosen, work.key_scope(), today, now_us())?;
                self.post(&c.payer, biller, &planned.legs).await?;
                for bill in &planned.after {
                    store::update_paid(&mut work.tx, bill.id, &bill.money())
                        .await
                        .map_err(db)?;
                }
                store::insert_payments(&mut work.tx, &planned.payments)
                    .await
                    .map_err(db)?;
                let (answer, happened) = planned.answer(&c.policy.policy, today);
                events::record(&mut work.tx, biller, happened).await?;
                Ok((work, answer))
            })
            .await?;
        self.committed(biller);
        Ok(paid)
    }

    /// The payment of the bills `chosen` (with the amounts chosen): its rows, legs and the
    /// bills as it leaves them, or the refusal of the first bill that cannot take its amount.
    pub(super) fn decide(
        &self,
        c: &Checked,
        chosen: &[(&BillRow, i64)],
        key_scope: &str,
        today: Date,
        created: i64,
    ) -> Result<Planned, ApiError> {
        let policy = &c.policy.policy;
        let mut planned = Planned {
            payments: Vec::with_capacity(chosen.len()),
            legs: Vec::with_capacity(chosen.len()),
            after: Vec::with_capacity(chosen.len()),
        };
        for (r, amount) in chosen {
            let amount = *amount;
            let applied = policy
                .pay(&r.money(), amount, today)
                .map_err(|e| refused(&r.bill_number, e))?;
            let (fee, fee_plan) = self.fee(&c.info, amount);
            let id = derived_uuid("paymesh.billing.payment.v1", &[key_scope, &r.bill_number]);
            planned.legs.push(Leg {
                payment: id,
                amount,
                fee,
            });
            planned.after.push(r.with_money(&applied.bill));
            planned.payments.push(PaymentRow {
                id,
                bill_id: r.id,
                biller_id: c.biller(),
                bill_number: r.bill_number.clone(),
                customer_code: r.customer_code.clone(),
                payer: c.payer.name(),
                channel_reference: c.reference.clone(),
                amount,
                late_fee: applied.late_fee,
                discount: applied.discount,
                fee,
                fee_plan,
                bill_status: applied.bill.status,
                business_date: Date::in_vietnam_at(created / 1_000_000),
                create_us: created,
            });
        }
        Ok(planned)
    }

    pub(super) async fn apply_bank_credit(
        &self,
        request: Request<pb::ApplyBankCreditRequest>,
    ) -> Result<pb::ApplyBankCreditResponse, ApiError> {
        let req = request.get_ref();
        let mut v = Violations::default();
        let reference = Reference::parse(&req.bill_reference).filter(|r| r.kind() == Kind::Bill);
        if reference.is_none() {
            v.add("bill_reference", "must be a bill's reference (PB…)");
        }
        let bin = req.bank_bin.trim();
        if bin.len() != 6 || !bin.bytes().all(|b| b.is_ascii_digit()) {
            v.add("bank_bin", "must be 6 digits");
        }
        let txn = text_field(
            &mut v,
            "bank_transaction_id",
            &req.bank_transaction_id,
            BANK_TRANSACTION_CHARS_MAX,
        );
        if txn.as_deref().is_some_and(str::is_empty) {
            v.add("bank_transaction_id", "required");
        }
        let amount = vnd_field(&mut v, "amount", req.amount.as_ref());
        v.into_result()?;
        let (Some(reference), Some(txn), Some(amount)) = (reference, txn, amount) else {
            return Err(ApiError::invalid("bill_reference", "required"));
        };
        let bin = bin.to_owned();
        let id = crate::client::bank_credit_payment_id(&bin, &txn);
        let bill_id = i64::try_from(reference.bits()).unwrap_or(0);
        let same = |p: &PaymentRow| -> Result<pb::ApplyBankCreditResponse, ApiError> {
            if p.amount != amount || p.bill_id != bill_id {
                return Err(ApiError::FailedPrecondition {
                    reason: "BANK_TRANSACTION_CONFLICT",
                    message: format!(
                        "bank transaction {txn} of {bin} was applied with another bill or amount"
                    ),
                });
            }
            Ok(pb::ApplyBankCreditResponse {
                payment: Some(convert::payment(p)),
                duplicate: true,
            })
        };
        let mut tx = self.pool().begin().await.map_err(sql)?;
        if let Some(p) = store::payment(&mut tx, id).await.map_err(db)? {
            return same(&p);
        }
        let bill = store::bill_by_id(&mut tx, bill_id, RowLock::ForUpdate)
            .await
            .map_err(db)?
            .ok_or(ApiError::NotFound { resource: "bill" })?;
        // A copy of this notification that committed while this one waited for the bill.
        if let Some(p) = store::payment(&mut tx, id).await.map_err(db)? {
            return same(&p);
        }
        let info = self.active_biller(bill.biller_id).await?;
        let row = self.policy_of(bill.biller_id).await?;
        let policy = &row.policy;
        let created = now_us();
        let today = Date::in_vietnam_at(created / 1_000_000);
        let applied = policy
            .pay(&bill.money(), amount, today)
            .map_err(|e| refused(&bill.bill_number, e))?;
        let (fee, fee_plan) = self.fee(&info, amount);
        let payer = Payer::Bank(bin);
        self.post(
            &payer,
            bill.biller_id,
            &[Leg {
                payment: id,
                amount,
                fee,
            }],
        )
        .await?;
        let row = PaymentRow {
            id,
            bill_id,
            biller_id: bill.biller_id,
            bill_number: bill.bill_number.clone(),
            customer_code: bill.customer_code.clone(),
            payer: payer.name(),
            channel_reference: txn,
            amount,
            late_fee: applied.late_fee,
            discount: applied.discount,
            fee,
            fee_plan,
            bill_status: applied.bill.status,
            business_date: today,
            create_us: created,
        };
        store::update_paid(&mut tx, bill_id, &applied.bill)
            .await
            .map_err(db)?;
        store::insert_payments(&mut tx, std::slice::from_ref(&row))
            .await
            .map_err(db)?;
        let payment = convert::payment(&row);
        events::record(
            &mut tx,
            bill.biller_id,
            vec![(
                pb::BillEventKind::PaymentReceived,
                Some(payment.clone()),
                Some(convert::bill(
                    &bill.with_money(&applied.bill),
                    Some(policy),
                    today,
                )),
            )],
        )
        .await?;
        tx.commit().await.map_err(sql)?;
        self.committed(bill.biller_id);
        Ok(pb::ApplyBankCreditResponse {
            payment: Some(payment),
            duplicate: false,
        })
    }

    pub(super) async fn list_payments(
        &self,
        request: Request<pb::ListBillPaymentsRequest>,
    ) -> Result<pb::ListBillPaymentsResponse, ApiError> {
        let caller = principal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let biller = uuid_field(&mut v, "biller_id", &req.biller_id);
        let number = match req.bill_number.trim() {
            "" => None,
            n => v.parse("bill_number", bill_number(n)),
        };
        let filter = format!("{}|{}", req.biller_id, req.bill_number.trim());
        let paging = Paging::parse(
            &mut v,
            "billing.ListBillPayments",
            &[filter.as_bytes()],
            req.page_size,
            &req.page_token,
            PAGE,
        );
        if let Some(b) = biller
            && !may_read(caller, b)
        {
            return Err(ApiError::PermissionDenied(format!(
                "{caller} may not read the payments of biller {b}"
            )));
        }
        v.into_result()?;
        let biller = biller.ok_or_else(|| ApiError::invalid("biller_id", "required"))?;
        let mut conn = self.pool().acquire().await.map_err(sql)?;
        let bill_id = match &number {
            None => None,
            Some(n) => Some(
                store::bill(&mut conn, biller, n, RowLock::None)
                    .await
                    .map_err(db)?
                    .ok_or(ApiError::NotFound { resource: "bill" })?
                    .id,
            ),
        };
        let after = paging.after().and_then(|c| {
            let (us, id) = c.split_at_checked(8)?;
            Some((
                i64::from_be_bytes(us.try_into().ok()?),
                Uuid::from_slice(id).ok()?,
            ))
        });
        let rows = store::list_payments(&mut conn, biller, bill_id, after, paging.fetch_limit())
            .await
            .map_err(db)?;
        let (rows, next_page_token) = paging.finish(rows, |r| {
            let mut c = r.create_us.to_be_bytes().to_vec();
            c.extend_from_slice(r.id.as_bytes());
            c
        });
        Ok(pb::ListBillPaymentsResponse {
            payments: rows.iter().map(convert::payment).collect(),
            next_page_token,
        })
    }
}
