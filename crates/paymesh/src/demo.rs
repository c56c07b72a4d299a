//! The demo `paymesh dev --demo` runs against the services it just started, as their users
//! would reach them over gRPC: an operator onboards and approves a market vendor; the vendor
//! watches her payment stream and asks for 150,000 đồng (a dynamic VietQR with a payment
//! reference); the buyer's bank pays with a realistic transfer description and notifies
//! paymesh (and retries: applied once); the stream announces the payment; the vendor refunds
//! part of it and the bank reports the payout; the balances that result are printed. Then
//! the bill-payment story ([`crate::demo_bills`]).

use std::time::{Duration, Instant};

use anyhow::Context;
use paymesh_ledger::chart::{self, MerchantAccount, SystemAccount};
use paymesh_money::Id128;
use paymesh_platform::auth::{Minter, Principal};
use paymesh_platform::client::{CallContext, channel};
use paymesh_proto::common::v1 as cpb;
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub(crate) type Authed = InterceptedService<Channel, CallContext>;

/// The acquiring bank of the demo (the merchant service's collection bank).
pub(crate) const BANK_BIN: &str = "970436";
const TOKEN_TTL_SECONDS: u64 = 600;

/// Where the demo reaches the mesh, and who signs its callers' tokens.
pub struct Mesh<'a> {
    pub ledger: String,
    pub merchant: String,
    pub payment: String,
    pub billing: String,
    pub settlement: String,
    pub stall: String,
    /// Signs service tokens (the demo reads balances as `service:demo`).
    pub services: &'a Minter,
    /// Signs operator, merchant and bank tokens (the dev operator key).
    pub people: Minter,
}

impl Mesh<'_> {
    pub(crate) fn channel(&self, addr: &str, minter: &Minter, who: &str) -> anyhow::Result<Authed> {
        let principal = Principal::parse(who).map_err(|e| anyhow::anyhow!("{who}: {e}"))?;
        let token = minter.mint(&principal, TOKEN_TTL_SECONDS)?;
        Ok(InterceptedService::new(
            channel(addr)?,
            CallContext::with_token(&token)?,
        ))
    }

    pub(crate) fn payment(&self, who: &str) -> anyhow::Result<PaymentServiceClient<Authed>> {
        Ok(PaymentServiceClient::new(self.channel(
            &self.payment,
            &self.people,
            who,
        )?))
    }
}

/// A request with a fresh idempotency key (the verbs' helper, given the key: it prints none).
pub(crate) fn keyed<T>(message: T) -> anyhow::Result<tonic::Request<T>> {
    crate::verbs::keyed(message, Some(Id128::random().to_string()))
}

pub(crate) fn vnd(amount: i64) -> cpb::Money {
    cpb::Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    }
}

/// A tax code not used before (a dev database keeps earlier demos' vendors).
pub(crate) fn fresh_tax_code() -> String {
    loop {
        let n = u128::from_be_bytes(Id128::random().to_bytes()) % 10_000_000;
        let first_nine = format!("03{n:07}");
        if let Some(check) = paymesh_vn::tax_code::TaxCode::check_digit(&first_nine)
            && n != 0
        {
            return format!("{first_nine}{check}");
        }
    }
}

fn vendor_application() -> mpb::MerchantApplication {
    mpb::MerchantApplication {
        business_name: "Hộ kinh doanh Trần Thị Lan".into(),
        trading_name: "Hải sản Cô Lan".into(),
        tax_code: fresh_tax_code(),
        owner_citizen_id: "079187004321".into(),
        phone: "090 765 4321".into(),
        address: "Sạp 15, chợ Bến Thành, Q.1, TP. Hồ Chí Minh".into(),
        market_name: "Chợ Bến Thành".into(),
        stall_number: "15".into(),
        mcc: "5411".into(),
        biller_category: 0,
        settlement_bank_bin: BANK_BIN.into(),
        settlement_account_number: "0071000654321".into(),
    }
}

pub(crate) fn now() -> prost_types::Timestamp {
    let ns = paymesh_platform::time::now_ns();
    paymesh_platform::time::timestamp_from_ns(ns)
}

/// The wall-clock time in Vietnam (UTC+7 all year: no daylight saving), as `HH:MM`.
pub(crate) fn vietnam_clock(t: &prost_types::Timestamp) -> String {
    let seconds_of_day = (t.seconds + 7 * 3600).rem_euclid(86_400);
    format!(
        "{:02}:{:02}",
        seconds_of_day / 3600,
        seconds_of_day % 3600 / 60
    )
}

/// Posted and pending balances of an account, as one line.
pub(crate) async fn balance_line(
    ledger: &mut LedgerServiceClient<Authed>,
    name: &str,
    id: Id128,
) -> anyhow::Result<String> {
    let accounts = ledger
        .get_balances(lpb::GetBalancesRequest {
            account_ids: vec![id.to_bytes().to_vec()],
        })
        .await?
        .into_inner()
        .accounts;
    let a = accounts
        .first()
        .context("the ledger did not answer the account")?;
    let n = |m: &Option<cpb::Money>| m.as_ref().map_or("0".into(), |m| m.amount.clone());
    Ok(format!(
        "{name:28} debits {:>8}  credits {:>8}  (pending debits {}, credits {})",
        n(&a.debits_posted),
        n(&a.credits_posted),
        n(&a.debits_pending),
        n(&a.credits_pending)
    ))
}

/// Runs the demo; with `buyer`, a demo buyer keeps paying the vendor's stall afterwards.
pub async fn run(mesh: &Mesh<'_>, buyer: bool) -> anyhow::Result<()> {
    println!("\n== demo: a VietQR payment at a market stall ==");
    let mut merchants =
        MerchantServiceClient::new(mesh.channel(&mesh.merchant, &mesh.people, "operator:demo")?);
    let applied = merchants
        .onboard_merchant(keyed(mpb::OnboardMerchantRequest {
            kind: mpb::MerchantKind::Vendor as i32,
            application: Some(vendor_application()),
            ..Default::default()
        })?)
        .await?
        .into_inner();
    let vendor = merchants
        .approve_merchant(keyed(mpb::ApproveMerchantRequest {
            merchant_id: applied.id.clone(),
            reason: "CCCD and household business licence checked".into(),
            etag: applied.etag,
        })?)
        .await?
        .into_inner();
    println!(
        "operator approved vendor {} (Hải sản Cô Lan, chợ Bến Thành sạp 15), virtual account {} at bank {}",
        vendor.id, vendor.virtual_account_number, vendor.collection_bank_bin
    );

    // The vendor's phone watches her payments.
    let as_vendor = format!("merchant:{}", vendor.id);
    let mut stream = mesh
        .payment(&as_vendor)?
        .watch_payments(pb::WatchPaymentsRequest {
            merchant_id: vendor.id.clone(),
            after_cursor: String::new(),
        })
        .await?
        .into_inner();

    let intent = mesh
        .payment(&as_vendor)?
        .create_payment_intent(keyed(pb::CreatePaymentIntentRequest {
            merchant_id: vendor.id.clone(),
            amount: Some(vnd(150_000)),
            order_reference: "2 kg tôm sú".into(),
            ..Default::default()
        })?)
        .await?
        .into_inner()
        .intent
        .context("no intent in the answer")?;
    let expires = intent.expire_time.unwrap_or_default();
    println!(
        "vendor asks for 150000 đồng: reference {}, expires {expires} ({} in Asia/Ho_Chi_Minh)",
        intent.reference,
        vietnam_clock(&expires)
    );
    println!("  dynamic VietQR: {}", intent.qr_payload);

    // The buyer's bank app pays; the acquiring bank notifies with its own wording around the
    // reference, then retries the same notification.
    let description = format!(
        "MBVCB.8812034471.{}.CT tu 0071000123456 NGUYEN VAN AN toi {} thanh toan",
        intent.reference, vendor.virtual_account_number
    );
    let notice = pb::NotifyCreditRequest {
        bank_bin: BANK_BIN.into(),
        bank_transaction_id: format!("FT{}", &Id128::random().to_string()[..12]).to_uppercase(),
        account_number: vendor.virtual_account_number.clone(),
        amount: Some(vnd(150_000)),
        description: description.clone(),
        value_time: Some(now()),
    };
    let mut bank = mesh.payment(&format!("bank:{BANK_BIN}"))?;
    let sent = Instant::now();
    let first = bank.notify_credit(notice.clone()).await?.into_inner();
    let credit = first.credit.clone().context("no credit in the answer")?;
    println!("bank notifies {description:?}");
    println!(
        "  outcome {} (payment {})",
        credit
            .outcome()
            .as_str_name()
            .trim_start_matches("CREDIT_OUTCOME_"),
        credit.payment_id
    );
    let again = bank.notify_credit(notice).await?.into_inner();
    println!(
        "bank retries the same notification: duplicate={} (applied once)",
        again.duplicate
    );

    let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .context("the stream announced nothing within 5 s")??
        .and_then(|m| m.event)
        .context("the stream ended")?;
    let paid = event.payment.clone().unwrap_or_default();
    println!(
        "vendor's stream: {} {} đồng (fee {} under {}), {} ms after the bank's call",
        event.kind().as_str_name().trim_start_matches("EVENT_KIND_"),
        paid.amount.map(|m| m.amount).unwrap_or_default(),
        paid.fee
            .as_ref()
            .and_then(|f| f.fee.as_ref())
            .map(|m| m.amount.clone())
            .unwrap_or_default(),
        paid.fee.map(|f| f.plan).unwrap_or_default(),
        sent.elapsed().as_millis()
    );

    // A partial refund: reserved, queued for the bank, paid out.
    let refund = mesh
        .payment(&as_vendor)?
        .refund_payment(keyed(pb::RefundPaymentRequest {
            payment_id: credit.payment_id.clone(),
            amount: Some(vnd(50_000)),
            reason: "1 kg returned".into(),
        })?)
        .await?
        .into_inner()
        .refund
        .context("no refund in the answer")?;
    println!(
        "vendor refunds 50000 đồng: {} (fee given back {})",
        refund
            .status()
            .as_str_name()
            .trim_start_matches("REFUND_STATUS_"),
        refund.fee_returned.map(|m| m.amount).unwrap_or_default()
    );
    let settled = bank
        .settle_refund(pb::SettleRefundRequest {
            refund_id: refund.id.clone(),
            status: pb::RefundStatus::Completed as i32,
            failure_reason: String::new(),
        })
        .await?
        .into_inner()
        .refund
        .context("no refund in the answer")?;
    println!(
        "bank pays it back to the buyer: {}",
        settled
            .status()
            .as_str_name()
            .trim_start_matches("REFUND_STATUS_")
    );

    let mut ledger = LedgerServiceClient::new(mesh.channel(
        &mesh.ledger,
        mesh.services,
        "service:settlement",
    )?);
    let vendor_id = uuid::Uuid::parse_str(&vendor.id)?;
    println!("balances:");
    let chart_id = |a: SystemAccount<'_>| a.id().map_err(|e| anyhow::anyhow!("{e}"));
    for (name, id) in [
        (
            "vendor payable",
            chart::merchant_account(MerchantAccount::Payable, vendor_id),
        ),
        (
            "bank 970436 clearing",
            chart_id(SystemAccount::BankClearing { bin: BANK_BIN })?,
        ),
        (
            "bank 970436 payout",
            chart_id(SystemAccount::BankPayout { bin: BANK_BIN })?,
        ),
    ] {
        println!("  {}", balance_line(&mut ledger, name, id).await?);
    }
    crate::demo_bills::run(mesh).await?;
    crate::demo_settlement::run(mesh, &vendor.virtual_account_number).await?;
    crate::demo_stall::link(mesh, &vendor).await?;
    if buyer {
        crate::demo_stall::start_buyer(mesh, &vendor)?;
    }
    println!("== demo done ==");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn vietnam_is_seven_hours_ahead() {
        let t = prost_types::Timestamp {
            seconds: 1_796_092_200, // 2026-12-01T02:30:00Z
            nanos: 0,
        };
        assert_eq!(super::vietnam_clock(&t), "09:30");
        let late = prost_types::Timestamp {
            seconds: 1_796_092_200 + 20 * 3600, // 22:30Z: the next morning in Vietnam
            nanos: 0,
        };
        assert_eq!(super::vietnam_clock(&late), "05:30");
    }
}
