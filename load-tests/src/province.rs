//! `paymesh-load province`: a province's day under load — a mixed, open-loop scenario through
//! the whole mesh, with the day's settlement window closed early in the middle of it.
//!
//! Set-up (not measured): `--vendors` market vendors onboarded and approved through the
//! merchant service (virtual account and static QR each); `--billers` billers with a policy and
//! `--bills` bills loaded by `UpsertBills` (the bill-payment scenario's set-up, [`bills`]);
//! payer channels (`channel:{id}` tokens); `--watchers` streams (`WatchPayments` from the first
//! event) on the first vendors, counting every event.
//!
//! Then flows are started open loop at `--rate` per second for a 2-second warm-up and
//! `--seconds` measured, each at its due time whatever the others do (at most `--in-flight` at
//! once; a flow that waits for a slot counts the wait), chosen by `--mix` weights:
//!
//! - `qr`: a static-QR payment — the bank's `NotifyCredit` to a vendor's virtual account;
//! - `intent`: the vendor asks for an amount (`CreatePaymentIntent`, a dynamic QR), then the
//!   bank notifies the buyer's transfer quoting its payment reference;
//! - `bill`: a channel looks a customer's bills up (`LookupBills`), then pays the next unpaid one
//!   (`PayBill` quoting the lookup);
//! - `lookup`: a lookup alone (a customer checking what is due);
//! - `refund`: a recent payment refunded, in full or half (`RefundPayment`), then the bank pays
//!   it out a moment later (`SettleRefund`: COMPLETED, one in ten FAILED).
//!
//! Intents and refunds are asked for by an operator's token on the vendor's behalf (the vendor's
//! phone asks through the stall service). At the midpoint an operator closes the day's
//! settlement window with an early cut-off of now (`CloseWindow`, as `paymesh settlement close
//! --cutoff now` does) while the load goes on; closing again (at most twice more) finishes a
//! window left CLOSED or FAILED, as an operator would.
//!
//! A progress line every `--progress-seconds` (stderr); at the end a table per RPC and per flow
//! (throughput, p50/p95/p99/max latency, errors by gRPC code and reason) on stdout, also
//! written as JSON to `--json`. The run fails unless its checks hold: every acknowledged
//! payment's, bill payment's and refund's transfers are in the ledger exactly once with their
//! amounts; the ledger's audit finds nothing (debits = credits, balances = transfers, limits,
//! commit order); no bill paid twice (the database's payments agree with what the channels were
//! told); the watchers received every event of their vendors' acknowledged payments and
//! refunds, once; the window ended SETTLED; and no RPC failed other than with an expected
//! refusal (a refund the payable cannot cover after the close paid it out) or an overload code
//! (DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED, CANCELLED: speed, reported, not a
//! correctness failure).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use paymesh_money::Id128;
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::time::{Date, now_ns, ns_from_timestamp, timestamp_from_ns};
use paymesh_proto::billing::v1 as bpb;
use paymesh_proto::billing::v1::billing_service_client::BillingServiceClient;
use paymesh_proto::ledger::v1::TransferCode;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use paymesh_proto::settlement::v1 as spb;
use paymesh_proto::settlement::v1::settlement_service_client::SettlementServiceClient;
use tonic::transport::Channel;

use crate::bills::{self, Billing, Book, Rng};
use crate::payments::{self, Authed};
use crate::{DURATION_MAX, WARM_UP, check, histogram};

type Payments = PaymentServiceClient<Authed>;

/// Requests in flight while onboarding vendors.
const SETUP_IN_FLIGHT: usize = 32;
/// How long the run waits for the watchers to catch up after the load.
const DRAIN_MAX: Duration = Duration::from_secs(60);
/// Closing attempts at the midpoint: the first, and two to finish a CLOSED or FAILED window.
const CLOSE_ATTEMPTS: usize = 3;

#[derive(clap::Args)]
pub struct ProvinceRun {
    #[arg(long, default_value = "127.0.0.1:50052")]
    merchant_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:50053")]
    payment_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:50054")]
    billing_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:50055")]
    settlement_addr: SocketAddr,
    /// The operator's token (onboards, loads bills, asks for intents and refunds for vendors,
    /// watches, closes the window), the channels' tokens and the mesh's database (read after
    /// the run: ledger, bills).
    #[command(flatten)]
    access: bills::Access,
    /// The acquiring bank's token (`bank:970436`): credits and refunds' payouts.
    #[arg(long, env = "PAYMESH_LOAD_BANK_TOKEN", hide_env_values = true)]
    bank_token: String,
    #[arg(long, default_value_t = 2_000)]
    vendors: usize,
    #[arg(long, default_value_t = 2)]
    billers: usize,
    /// Bills loaded, spread over the billers; bill flows pay them in turn.
    #[arg(long, default_value_t = 200_000)]
    bills: usize,
    /// Customers per biller.
    #[arg(long, default_value_t = 50_000)]
    customers: usize,
    /// Vendors whose payment stream is watched (the first ones).
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Flows offered per second (open loop).
    #[arg(long, default_value_t = 500)]
    rate: usize,
    /// Seconds of measured load (after a 2-second warm-up); the window closes in the middle.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Weights of the flows.
    #[arg(long, default_value = "qr=45,intent=15,bill=20,lookup=15,refund=5")]
    mix: String,
    /// Most flows in flight; past it, the next ones wait (their latency counts the wait).
    #[arg(long, default_value_t = 4_096)]
    in_flight: usize,
    /// HTTP/2 connections to the payment and to the billing service each.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 5)]
    progress_seconds: u64,
    /// Where the final table is written as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The flows of the mix.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flow {
    Qr,
    Intent,
    Bill,
    Lookup,
    Refund,
}

const FLOWS: [Flow; 5] = [
    Flow::Qr,
    Flow::Intent,
    Flow::Bill,
    Flow::Lookup,
    Flow::Refund,
];

impl Flow {
    fn name(self) -> &'static str {
        match self {
            Flow::Qr => "qr",
            Flow::Intent => "intent",
            Flow::Bill => "bill",
            Flow::Lookup => "lookup",
            Flow::Refund => "refund",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Flow::Qr => "static-QR payment (NotifyCredit)",
            Flow::Intent => "dynamic QR (CreatePaymentIntent, then NotifyCredit)",
            Flow::Bill => "bill payment (LookupBills, then PayBill)",
            Flow::Lookup => "bill lookup alone (LookupBills)",
            Flow::Refund => "refund (RefundPayment; the bank settles it later)",
        }
    }
}

/// The RPCs the table reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rpc {
    NotifyCredit,
    CreatePaymentIntent,
    LookupBills,
    PayBill,
    RefundPayment,
    SettleRefund,
    CloseWindow,
}

const RPCS: [Rpc; 7] = [
    Rpc::NotifyCredit,
    Rpc::CreatePaymentIntent,
    Rpc::LookupBills,
    Rpc::PayBill,
    Rpc::RefundPayment,
    Rpc::SettleRefund,
    Rpc::CloseWindow,
];

impl Rpc {
    fn name(self) -> &'static str {
        match self {
            Rpc::NotifyCredit => "NotifyCredit",
            Rpc::CreatePaymentIntent => "CreatePaymentIntent",
            Rpc::LookupBills => "LookupBills",
            Rpc::PayBill => "PayBill",
            Rpc::RefundPayment => "RefundPayment",
            Rpc::SettleRefund => "SettleRefund",
            Rpc::CloseWindow => "CloseWindow",
        }
    }

    fn who(self) -> &'static str {
        match self {
            Rpc::NotifyCredit | Rpc::SettleRefund => "bank",
            Rpc::CreatePaymentIntent | Rpc::RefundPayment => "operator for the vendor",
            Rpc::LookupBills | Rpc::PayBill => "channels",
            Rpc::CloseWindow => "operator, early cut-off",
        }
    }
}

/// The weights of `--mix`, in `FLOWS` order.
fn parse_mix(text: &str) -> anyhow::Result<[u64; 5]> {
    let mut weights = [0u64; 5];
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part
            .split_once('=')
            .with_context(|| format!("--mix: {part:?} is not name=weight"))?;
        let i = FLOWS
            .iter()
            .position(|f| f.name() == name.trim())
            .with_context(|| {
                format!("--mix: no flow {name:?} (qr, intent, bill, lookup, refund)")
            })?;
        weights[i] = weight
            .trim()
            .parse()
            .with_context(|| format!("--mix: weight of {name} must be a whole number"))?;
        anyhow::ensure!(weights[i] <= 1_000, "--mix: weights must be 0..=1000");
    }
    anyhow::ensure!(weights.iter().sum::<u64>() > 0, "--mix: every weight is 0");
    Ok(weights)
}

/// The flow that `x` (below the sum of the weights) falls on.
fn flow_at(weights: &[u64; 5], mut x: u64) -> Flow {
    for (flow, w) in FLOWS.iter().zip(weights) {
        if x < *w {
            return *flow;
        }
        x -= w;
    }
    Flow::Qr
}

/// An answer's VND amount in whole đồng (0 when absent).
fn whole_dong(m: Option<&paymesh_proto::common::v1::Money>) -> i64 {
    m.and_then(|m| m.amount.parse().ok()).unwrap_or(0)
}

/// Why a call did not succeed.
enum Failure {
    Status(tonic::Status),
    /// The answer was not what the flow needs (a word for the table).
    Local(&'static str),
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Failure {
        Failure::Status(s)
    }
}

/// How a failure counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A refusal the scenario provokes and the service must give.
    Expected,
    /// The machine is too slow for the rate: reported, not a correctness failure.
    Overload,
    Unexpected,
}

/// `FailedPrecondition` → `FAILED_PRECONDITION`.
fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The table's key of a failure (the code, and the reason when the service gave one) and how
/// it counts.
fn classify(rpc: Rpc, failure: &Failure) -> (String, Class) {
    match failure {
        Failure::Local(word) => (format!("LOCAL/{word}"), Class::Unexpected),
        Failure::Status(s) => {
            let reason = bills::reason(s);
            let key = if reason.is_empty() {
                code_name(s.code())
            } else {
                format!("{}/{reason}", code_name(s.code()))
            };
            let class = match s.code() {
                tonic::Code::FailedPrecondition
                    if rpc == Rpc::RefundPayment && reason == "INSUFFICIENT_BALANCE" =>
                {
                    Class::Expected
                }
                tonic::Code::DeadlineExceeded
                | tonic::Code::Unavailable
                | tonic::Code::ResourceExhausted
                | tonic::Code::Cancelled => Class::Overload,
                _ => Class::Unexpected,
            };
            (key, class)
        }
    }
}

/// One row of the table: successes' latencies and counts while measuring, failures by key.
struct Stat {
    hist: Histogram<u64>,
    ok: u64,
    ok_all: u64,
    /// Failures of the whole run (warm-up and drain included), by key.
    errors: BTreeMap<String, u64>,
}

impl Stat {
    fn new() -> anyhow::Result<Stat> {
        Ok(Stat {
            hist: histogram()?,
            ok: 0,
            ok_all: 0,
            errors: BTreeMap::new(),
        })
    }
}

/// Everything the flows count.
struct Stats {
    rpcs: Vec<Mutex<Stat>>,
    flows: Vec<Mutex<Stat>>,
    expected: Mutex<BTreeMap<String, u64>>,
    overload: AtomicU64,
    unexpected: AtomicU64,
    printed: AtomicU64,
    offered: AtomicU64,
    done: AtomicU64,
    refunds_skipped: AtomicU64,
    /// When the last measured flow's own part ended (a refund's, before the bank settles it).
    last_done: Mutex<Option<tokio::time::Instant>>,
}

impl Stats {
    fn new() -> anyhow::Result<Stats> {
        Ok(Stats {
            rpcs: RPCS
                .iter()
                .map(|_| Stat::new().map(Mutex::new))
                .collect::<anyhow::Result<_>>()?,
            flows: FLOWS
                .iter()
                .map(|_| Stat::new().map(Mutex::new))
                .collect::<anyhow::Result<_>>()?,
            expected: Mutex::default(),
            overload: AtomicU64::new(0),
            unexpected: AtomicU64::new(0),
            printed: AtomicU64::new(0),
            offered: AtomicU64::new(0),
            done: AtomicU64::new(0),
            refunds_skipped: AtomicU64::new(0),
            last_done: Mutex::default(),
        })
    }

    fn rpc(&self, rpc: Rpc) -> &Mutex<Stat> {
        &self.rpcs[RPCS.iter().position(|r| *r == rpc).unwrap_or(0)]
    }

    fn flow(&self, flow: Flow) -> &Mutex<Stat> {
        &self.flows[FLOWS.iter().position(|f| *f == flow).unwrap_or(0)]
    }

    /// Counts one call of `rpc` that started at `started`, and answers its value if it
    /// succeeded.
    fn record<T>(
        &self,
        rpc: Rpc,
        measured: bool,
        started: Instant,
        result: Result<T, Failure>,
    ) -> Option<T> {
        let took = started.elapsed();
        let Ok(mut stat) = self.rpc(rpc).lock() else {
            return None;
        };
        match result {
            Ok(value) => {
                stat.ok_all += 1;
                if measured {
                    stat.ok += 1;
                    let _ = stat.hist.record((took.as_micros() as u64).max(1));
                }
                Some(value)
            }
            Err(failure) => {
                let (key, class) = classify(rpc, &failure);
                *stat.errors.entry(key.clone()).or_default() += 1;
                drop(stat);
                match class {
                    Class::Expected => {
                        if let Ok(mut e) = self.expected.lock() {
                            *e.entry(format!("{} {key}", rpc.name())).or_default() += 1;
                        }
                    }
                    Class::Overload => {
                        self.overload.fetch_add(1, Ordering::Relaxed);
                    }
                    Class::Unexpected => {
                        self.unexpected.fetch_add(1, Ordering::Relaxed);
                        let cause = match &failure {
                            Failure::Status(s) => anyhow::anyhow!("{s:?}"),
                            Failure::Local(word) => anyhow::anyhow!("{word}"),
                        };
                        bills::report_error(&self.printed, rpc.name(), &cause);
                    }
                }
                None
            }
        }
    }

    fn ok_all(&self, rpc: Rpc) -> u64 {
        self.rpc(rpc).lock().map(|s| s.ok_all).unwrap_or(0)
    }

    fn errors_all(&self, rpc: Rpc) -> u64 {
        self.rpc(rpc)
            .lock()
            .map(|s| s.errors.values().sum())
            .unwrap_or(0)
    }
}

/// A vendor of the run.
struct Vendor {
    id: String,
    account: String,
}

/// A payment the bank was told was credited, kept for the checks and for refunds.
#[derive(Clone)]
struct Paid {
    id: String,
    amount: i64,
    vendor: usize,
}

/// A refund the service acknowledged, and the bank's result when it was acknowledged too.
struct Refunded {
    id: String,
    amount: i64,
    vendor: usize,
    settled: Option<bool>,
}

/// What the services acknowledged: the checks' expectations.
#[derive(Default)]
struct Acks {
    payments: Mutex<Vec<Paid>>,
    bill_payments: Mutex<Vec<(String, i64)>>,
    refunds: Mutex<Vec<Refunded>>,
    /// Payments not refunded yet, newest last (refunds take the newest).
    refundable: Mutex<Vec<Paid>>,
    /// PayBill calls whose outcome the channel never learnt (an overload failure): the bill
    /// may be paid without an acknowledgement.
    pay_unknown: AtomicU64,
}

/// The watchers' view: each event they received, by kind and id, and how late.
struct Watched {
    seen: Mutex<HashMap<String, u32>>,
    latency: Mutex<Histogram<u64>>,
    events: AtomicU64,
}

/// The settlement window's state, for the progress line and the checks.
#[derive(Default)]
struct Closing {
    state: Mutex<String>,
    window: Mutex<Option<spb::Window>>,
    attempts: AtomicU64,
}

/// What every flow shares.
struct Province {
    vendors: Vec<Vendor>,
    book: Arc<Book>,
    weights: [u64; 5],
    bank: Vec<Payments>,
    operator: Vec<Payments>,
    channels: Vec<Billing>,
    stats: Stats,
    acks: Acks,
    next_bill: AtomicU64,
    txn: AtomicU64,
    tag: String,
}

impl Province {
    fn bank(&self, n: u64) -> Payments {
        self.bank[n as usize % self.bank.len()].clone()
    }

    fn operator(&self, n: u64) -> Payments {
        self.operator[n as usize % self.operator.len()].clone()
    }

    fn pick(&self, rng: &mut Rng) -> Flow {
        flow_at(&self.weights, rng.below(self.weights.iter().sum()))
    }

    /// The bank notifies a credit; the payment is acknowledged when its outcome is `want`.
    async fn notify(
        &self,
        measured: bool,
        vendor: usize,
        amount: u64,
        description: String,
        want: pb::CreditOutcome,
    ) -> Option<()> {
        let n = self.txn.fetch_add(1, Ordering::Relaxed);
        let v = &self.vendors[vendor];
        let request = payments::credit(
            format!("PV{}N{n}", self.tag),
            &v.account,
            amount,
            description,
        );
        let mut client = self.bank(n);
        let started = Instant::now();
        let result = match client.notify_credit(request).await {
            Ok(answer) => match answer.into_inner().credit {
                Some(c) if c.outcome() == want => Ok(c.payment_id),
                Some(_) => Err(Failure::Local("UNEXPECTED_OUTCOME")),
                None => Err(Failure::Local("NO_CREDIT")),
            },
            Err(s) => Err(s.into()),
        };
        let id = self
            .stats
            .record(Rpc::NotifyCredit, measured, started, result)?;
        let paid = Paid {
            id,
            amount: amount as i64,
            vendor,
        };
        if let Ok(mut p) = self.acks.payments.lock() {
            p.push(paid.clone());
        }
        if let Ok(mut r) = self.acks.refundable.lock() {
            r.push(paid);
        }
        Some(())
    }

    async fn qr(&self, measured: bool, rng: &mut Rng) -> Option<()> {
        let vendor = rng.below(self.vendors.len() as u64) as usize;
        let amount = 10_000 + rng.below(190) * 1_000;
        let description = format!("IBFT {} chuyen tien mua hang", rng.below(1_000_000));
        self.notify(
            measured,
            vendor,
            amount,
            description,
            pb::CreditOutcome::Static,
        )
        .await
    }

    async fn intent(&self, measured: bool, rng: &mut Rng) -> Option<()> {
        let vendor = rng.below(self.vendors.len() as u64) as usize;
        let amount = 20_000 + rng.below(480) * 1_000;
        let v = &self.vendors[vendor];
        let mut client = self.operator(rng.next());
        let started = Instant::now();
        let result = client
            .create_payment_intent(payments::keyed(pb::CreatePaymentIntentRequest {
                merchant_id: v.id.clone(),
                amount: payments::vnd(amount),
                expires_in_seconds: 900,
                ..Default::default()
            }))
            .await
            .map_err(Failure::from)
            .and_then(|a| a.into_inner().intent.ok_or(Failure::Local("NO_INTENT")));
        let intent = self
            .stats
            .record(Rpc::CreatePaymentIntent, measured, started, result)?;
        let memo = payments::intent_memo(rng.below(1_000_000), &intent.reference, &v.account);
        self.notify(measured, vendor, amount, memo, pb::CreditOutcome::Paid)
            .await
    }

    async fn bill(&self, measured: bool) -> Option<()> {
        let j = self.next_bill.fetch_add(1, Ordering::Relaxed);
        let mut client = self.channels[j as usize % self.channels.len()].clone();
        if j >= self.book.bills {
            let exhausted = Err::<(), _>(Failure::Local("BILLS_EXHAUSTED"));
            return self
                .stats
                .record(Rpc::LookupBills, measured, Instant::now(), exhausted);
        }
        let (b, w) = self.book.at(j);
        let bill = self.book.wanted(b, w);
        let biller = &self.book.billers[b].id;
        let started = Instant::now();
        let looked = bills::look_up(&mut client, biller, &bill)
            .await
            .map_err(|e| match e.downcast::<tonic::Status>() {
                Ok(s) => Failure::Status(s),
                Err(_) => Failure::Local("BILL_NOT_OUTSTANDING"),
            });
        let (lookup_reference, amount) =
            self.stats
                .record(Rpc::LookupBills, measured, started, looked)?;
        let started = Instant::now();
        let reference = format!("{}-{j}", self.tag);
        let paid = match bills::pay(
            &mut client,
            lookup_reference,
            &bill.number,
            amount,
            reference,
        )
        .await
        {
            Ok((answer, _)) => match bills::paid_in_full(&answer) {
                Ok(()) => Ok(answer),
                Err(_) => Err(Failure::Local("BILL_NOT_PAID")),
            },
            Err(s) => {
                if classify(Rpc::PayBill, &Failure::Status(s.clone())).1 == Class::Overload {
                    self.acks.pay_unknown.fetch_add(1, Ordering::Relaxed);
                }
                Err(s.into())
            }
        };
        let answer = self.stats.record(Rpc::PayBill, measured, started, paid)?;
        let p = answer.payments.first()?;
        let amount = whole_dong(p.amount.as_ref());
        if let Ok(mut acks) = self.acks.bill_payments.lock() {
            acks.push((p.id.clone(), amount));
        }
        Some(())
    }

    async fn lookup(&self, measured: bool, rng: &mut Rng) -> Option<()> {
        let b = rng.below(self.book.billers.len() as u64) as usize;
        let biller = &self.book.billers[b];
        let request = bpb::LookupBillsRequest {
            biller_id: biller.id.clone(),
            customer_code: Book::customer_code(rng.below(biller.customers)),
        };
        let mut client = self.channels[rng.below(self.channels.len() as u64) as usize].clone();
        let started = Instant::now();
        let result = client.lookup_bills(request).await.map_err(Failure::from);
        self.stats
            .record(Rpc::LookupBills, measured, started, result)
            .map(|_| ())
    }

    /// Refunds the newest payment not refunded yet (in full or half), and answers the refund
    /// for the bank to settle; None when there was nothing to refund or it failed.
    async fn refund(&self, measured: bool, rng: &mut Rng) -> Option<Refunded> {
        let Some(paid) = self.acks.refundable.lock().ok().and_then(|mut r| r.pop()) else {
            self.stats.refunds_skipped.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let amount = if rng.below(2) == 0 {
            None
        } else {
            payments::vnd((paid.amount / 2).max(1) as u64)
        };
        let mut client = self.operator(rng.next());
        let started = Instant::now();
        let result = client
            .refund_payment(payments::keyed(pb::RefundPaymentRequest {
                payment_id: paid.id.clone(),
                amount,
                reason: "khách trả lại hàng".into(),
            }))
            .await
            .map_err(Failure::from)
            .and_then(|a| a.into_inner().refund.ok_or(Failure::Local("NO_REFUND")));
        let refund = self
            .stats
            .record(Rpc::RefundPayment, measured, started, result)?;
        let amount = whole_dong(refund.amount.as_ref());
        Some(Refunded {
            id: refund.id,
            amount,
            vendor: paid.vendor,
            settled: None,
        })
    }

    /// The bank pays a refund out a moment later: COMPLETED, or one in ten FAILED.
    async fn settle(&self, measured: bool, rng: &mut Rng, mut refund: Refunded) {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(900))).await;
        let completed = rng.below(10) != 0;
        let status = if completed {
            pb::RefundStatus::Completed
        } else {
            pb::RefundStatus::Failed
        };
        let mut client = self.bank(rng.next());
        let started = Instant::now();
        let result = client
            .settle_refund(pb::SettleRefundRequest {
                refund_id: refund.id.clone(),
                status: status as i32,
                failure_reason: if completed {
                    String::new()
                } else {
                    "tai khoan nguoi nhan da dong".into()
                },
            })
            .await
            .map_err(Failure::from);
        if self
            .stats
            .record(Rpc::SettleRefund, measured, started, result)
            .is_some()
        {
            refund.settled = Some(completed);
        }
        if let Ok(mut r) = self.acks.refunds.lock() {
            r.push(refund);
        }
    }

    /// One flow, started at `due`; its latency counts from `due`.
    async fn run_flow(&self, flow: Flow, due: tokio::time::Instant, measured: bool) {
        let mut rng = Rng::seeded();
        let mut refunded = None;
        let done = match flow {
            Flow::Qr => self.qr(measured, &mut rng).await,
            Flow::Intent => self.intent(measured, &mut rng).await,
            Flow::Bill => self.bill(measured).await,
            Flow::Lookup => self.lookup(measured, &mut rng).await,
            Flow::Refund => {
                refunded = self.refund(measured, &mut rng).await;
                refunded.as_ref().map(|_| ())
            }
        };
        if done.is_some() {
            self.record_flow(flow, due, measured);
        }
        if measured && let Ok(mut last) = self.stats.last_done.lock() {
            let now = tokio::time::Instant::now();
            *last = Some(last.map_or(now, |l| l.max(now)));
        }
        if let Some(refund) = refunded {
            self.settle(measured, &mut rng, refund).await;
        }
    }

    fn record_flow(&self, flow: Flow, due: tokio::time::Instant, measured: bool) {
        if let Ok(mut stat) = self.stats.flow(flow).lock() {
            stat.ok_all += 1;
            if measured {
                stat.ok += 1;
                let _ = stat.hist.record((due.elapsed().as_micros() as u64).max(1));
            }
        }
    }
}

async fn onboard_vendors(run: &ProvinceRun, operator: &CallContext) -> anyhow::Result<Vec<Vendor>> {
    let merchants = MerchantServiceClient::with_interceptor(
        channel(&run.merchant_addr.to_string())?,
        operator.clone(),
    );
    let run_id = payments::run_id();
    let mut vendors: Vec<(usize, Vendor)> = futures::stream::iter(0..run.vendors)
        .map(|i| {
            let mut merchants = merchants.clone();
            async move {
                let m = payments::onboard_vendor(&mut merchants, run_id, i).await?;
                anyhow::Ok((
                    i,
                    Vendor {
                        id: m.id,
                        account: m.virtual_account_number,
                    },
                ))
            }
        })
        .buffer_unordered(SETUP_IN_FLIGHT)
        .try_collect()
        .await?;
    vendors.sort_by_key(|(i, _)| *i);
    Ok(vendors.into_iter().map(|(_, v)| v).collect())
}

/// Watches the first `count` vendors' streams, counting each event by kind and id:
/// `P:` a payment received, `C:` a refund created, `S:` a refund completed or failed.
fn spawn_watchers(
    client: &Payments,
    vendors: &[Vendor],
    count: usize,
) -> anyhow::Result<Arc<Watched>> {
    let watched = Arc::new(Watched {
        seen: Mutex::default(),
        latency: Mutex::new(histogram()?),
        events: AtomicU64::new(0),
    });
    for v in vendors.iter().take(count) {
        let watched = watched.clone();
        tokio::spawn(payments::watch_events(
            client.clone(),
            v.id.clone(),
            move |event| {
                let key = match event.kind() {
                    pb::EventKind::PaymentReceived => {
                        event.payment.as_ref().map(|p| format!("P:{}", p.id))
                    }
                    pb::EventKind::RefundCreated => {
                        event.refund.as_ref().map(|r| format!("C:{}", r.id))
                    }
                    pb::EventKind::RefundCompleted | pb::EventKind::RefundFailed => {
                        event.refund.as_ref().map(|r| format!("S:{}", r.id))
                    }
                    _ => None,
                };
                let committed = event.create_time.as_ref().map(ns_from_timestamp);
                if let Ok(mut h) = watched.latency.lock() {
                    let _ = h.record(payments::micros_since(
                        committed.and_then(Result::ok).unwrap_or(0),
                    ));
                }
                watched.events.fetch_add(1, Ordering::Relaxed);
                if let (Some(key), Ok(mut seen)) = (key, watched.seen.lock()) {
                    *seen.entry(key).or_default() += 1;
                }
            },
        ));
    }
    Ok(watched)
}

/// The business day whose window is open now: today until its configured cut-off, then
/// tomorrow (on a database where no window was closed yet).
async fn day_open(client: &mut SettlementServiceClient<Authed>) -> anyhow::Result<Date> {
    let today = Date::today_in_vietnam();
    let cutoff = client
        .get_window(spb::GetWindowRequest {
            business_date: today.to_string(),
        })
        .await?
        .into_inner()
        .window
        .and_then(|w| w.cutoff_time)
        .context("no cut-off for today")?;
    let passed = ns_from_timestamp(&cutoff).map_err(anyhow::Error::msg)? <= now_ns();
    Ok(if passed { today.plus_days(1) } else { today })
}

fn window_status(w: &spb::Window) -> &'static str {
    match w.status() {
        spb::WindowStatus::Open => "OPEN",
        spb::WindowStatus::Closed => "CLOSED",
        spb::WindowStatus::Settled => "SETTLED",
        spb::WindowStatus::Failed => "FAILED",
        spb::WindowStatus::Unspecified => "UNSPECIFIED",
    }
}

/// The operator closes the open day now, while the load goes on; closing again finishes a
/// window left CLOSED or FAILED.
async fn close_window(
    mut client: SettlementServiceClient<Authed>,
    stats: &Stats,
    closing: &Closing,
) -> anyhow::Result<()> {
    let day = day_open(&mut client).await?;
    let cutoff = timestamp_from_ns(now_ns());
    set_state(closing, format!("closing {day}"));
    for attempt in 1..=CLOSE_ATTEMPTS {
        closing.attempts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = client
            .close_window(spb::CloseWindowRequest {
                business_date: day.to_string(),
                cutoff_time: Some(cutoff),
            })
            .await
            .map_err(Failure::from)
            .and_then(|a| a.into_inner().window.ok_or(Failure::Local("NO_WINDOW")));
        let took = started.elapsed();
        let window = stats.record(Rpc::CloseWindow, true, started, result);
        let status = window.as_ref().map(window_status).unwrap_or("ERROR");
        eprintln!(
            "settlement: CloseWindow {day} (cut-off now) attempt {attempt}: {status} in {:.2} s",
            took.as_secs_f64()
        );
        set_state(closing, format!("{day} {status}"));
        if let Some(w) = window {
            let settled = w.status() == spb::WindowStatus::Settled;
            if let Ok(mut slot) = closing.window.lock() {
                *slot = Some(w);
            }
            if settled {
                break;
            }
        }
    }
    Ok(())
}

fn set_state(closing: &Closing, state: String) {
    if let Ok(mut s) = closing.state.lock() {
        *s = state;
    }
}

/// What the checks found.
#[derive(Default)]
struct Checks {
    acknowledged: i64,
    missing: i64,
    repeated: i64,
    wrong_amount: i64,
    audit: Vec<String>,
    bills: Option<bills::Audit>,
    bill_payments: i64,
    bills_ok: bool,
    expected_events: u64,
    streamed: u64,
    stream_repeats: u64,
    window: String,
    unexpected: u64,
}

impl Checks {
    fn ledger_ok(&self) -> bool {
        self.missing == 0 && self.repeated == 0 && self.wrong_amount == 0
    }

    fn watch_ok(&self) -> bool {
        self.streamed == self.expected_events && self.stream_repeats == 0
    }

    /// The run's verdict: the first check that failed, with what it found.
    fn verdict(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.ledger_ok(),
            "ledger: of {} acknowledged legs, {} missing, {} with another amount, {} posted more than once",
            self.acknowledged,
            self.missing,
            self.wrong_amount,
            self.repeated
        );
        anyhow::ensure!(
            self.audit.is_empty(),
            "ledger audit: {}",
            self.audit.join("; ")
        );
        anyhow::ensure!(
            self.bills_ok,
            "bills: paid twice, sums off, or stored payments not what the channels were told"
        );
        anyhow::ensure!(
            self.watch_ok(),
            "watchers received {} of {} events within {DRAIN_MAX:?}, {} more than once",
            self.streamed,
            self.expected_events,
            self.stream_repeats
        );
        anyhow::ensure!(
            self.window == "SETTLED",
            "the window ended {}, not SETTLED",
            self.window
        );
        anyhow::ensure!(
            self.unexpected == 0,
            "{} calls failed unexpectedly",
            self.unexpected
        );
        Ok(())
    }

    /// The `CHECK` line.
    fn line(&self) -> String {
        let word = |ok: bool| if ok { "ok" } else { "VIOLATED" };
        let a = self.bills.as_ref();
        format!(
            "ledger_once={} acknowledged_legs={} missing={} repeated={} wrong_amount={} ledger_audit={} \
             bills_paid_twice={} bill_sum_mismatch={} bill_payments_stored={} bill_payments_acknowledged={} \
             no_double_pay={} streamed={}/{} stream_repeats={} window={} unexpected_errors={} passed={}",
            word(self.ledger_ok()),
            self.acknowledged,
            self.missing,
            self.repeated,
            self.wrong_amount,
            word(self.audit.is_empty()),
            a.map_or(-1, |a| a.double_paid),
            a.map_or(-1, |a| a.mismatched),
            a.map_or(-1, |a| a.payments),
            self.bill_payments,
            word(self.bills_ok),
            self.streamed,
            self.expected_events,
            self.stream_repeats,
            self.window,
            self.unexpected,
            self.verdict().is_ok(),
        )
    }
}

/// Every acknowledged movement's transfers in the ledger once, with its amount; and no
/// transfer carrying one of their references twice (the same code, kind and accounts: a
/// failed refund's fee given back and charged again are two, in opposite directions). A leg is
/// (reference, code, kind) where kind is the transfer's pending/post/void flags (0 a posted
/// transfer, 2 a reservation, 4 its posting, 8 its void); amount 0 is not checked.
async fn ledger_once(
    db: &sqlx::PgPool,
    legs: &[(String, i16, i16, i64)],
    checks: &mut Checks,
) -> anyhow::Result<()> {
    let references: Vec<&str> = legs.iter().map(|l| l.0.as_str()).collect();
    let codes: Vec<i16> = legs.iter().map(|l| l.1).collect();
    let kinds: Vec<i16> = legs.iter().map(|l| l.2).collect();
    let amounts: Vec<i64> = legs.iter().map(|l| l.3).collect();
    let (missing, wrong_amount, repeated): (i64, i64, i64) = sqlx::query_as(
        "WITH ack AS ( \
           SELECT * FROM unnest($1::text[], $2::int2[], $3::int2[], $4::int8[]) \
             AS a(reference, code, kind, amount)), \
         t AS ( \
           SELECT reference, code, (flags & 14)::int2 AS kind, debit_account_id, credit_account_id, \
                  count(*) AS n, sum(amount)::int8 AS s \
           FROM ledger.transfers WHERE reference = ANY($1::text[]) GROUP BY 1, 2, 3, 4, 5) \
         SELECT (SELECT count(*) FROM ack LEFT JOIN t USING (reference, code, kind) WHERE t.n IS NULL), \
                (SELECT count(*) FROM ack JOIN t USING (reference, code, kind) \
                   WHERE t.n = 1 AND ack.amount > 0 AND t.s <> ack.amount), \
                (SELECT count(*) FROM t WHERE n > 1)",
    )
    .bind(&references)
    .bind(&codes)
    .bind(&kinds)
    .bind(&amounts)
    .fetch_one(db)
    .await
    .context("reading the acknowledged movements' transfers")?;
    checks.acknowledged = legs.len() as i64;
    checks.missing = missing;
    checks.wrong_amount = wrong_amount;
    checks.repeated = repeated;
    Ok(())
}

async fn check_all(
    run: &ProvinceRun,
    province: &Province,
    watched: &Watched,
    closing: &Closing,
    settlement: &mut SettlementServiceClient<Authed>,
) -> anyhow::Result<Checks> {
    let mut checks = Checks::default();
    let acks = &province.acks;
    let payments = acks.payments.lock().map(|p| p.clone()).unwrap_or_default();
    let bill_payments = acks
        .bill_payments
        .lock()
        .map(|b| b.clone())
        .unwrap_or_default();
    let refunds: Vec<(String, i64, usize, Option<bool>)> = acks
        .refunds
        .lock()
        .map(|r| {
            r.iter()
                .map(|r| (r.id.clone(), r.amount, r.vendor, r.settled))
                .collect()
        })
        .unwrap_or_default();

    // The watchers: every event of their vendors' acknowledged payments and refunds.
    let watchers = run.watchers.min(province.vendors.len());
    let mut expected: Vec<String> = payments
        .iter()
        .filter(|p| p.vendor < watchers)
        .map(|p| format!("P:{}", p.id))
        .collect();
    for (id, _, vendor, settled) in &refunds {
        if *vendor < watchers {
            expected.push(format!("C:{id}"));
            if settled.is_some() {
                expected.push(format!("S:{id}"));
            }
        }
    }
    let drained = Instant::now();
    loop {
        let streamed = watched
            .seen
            .lock()
            .map(|s| expected.iter().filter(|k| s.contains_key(*k)).count())
            .unwrap_or(0);
        if streamed == expected.len() || drained.elapsed() > DRAIN_MAX {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Ok(seen) = watched.seen.lock() {
        checks.expected_events = expected.len() as u64;
        checks.streamed = expected.iter().filter(|k| seen.contains_key(*k)).count() as u64;
        checks.stream_repeats = seen.values().filter(|n| **n > 1).count() as u64;
    }

    // The ledger: each acknowledged movement once, and the whole ledger's audit.
    let code = |c: TransferCode| c as i16;
    let mut legs: Vec<(String, i16, i16, i64)> = Vec::new();
    legs.extend(
        payments
            .iter()
            .map(|p| (p.id.clone(), code(TransferCode::QrPayment), 0, p.amount)),
    );
    legs.extend(
        bill_payments
            .iter()
            .map(|(id, amount)| (id.clone(), code(TransferCode::BillPayment), 0, *amount)),
    );
    for (id, amount, _, settled) in &refunds {
        legs.push((id.clone(), code(TransferCode::Refund), 2, *amount));
        if let Some(completed) = settled {
            legs.push((
                id.clone(),
                code(TransferCode::Refund),
                if *completed { 4 } else { 8 },
                0,
            ));
        }
    }
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&run.access.database_url)
        .await
        .context("connecting to the mesh's database (--database-url)")?;
    ledger_once(&db, &legs, &mut checks).await?;
    checks.audit = paymesh_ledger::store::audit(&db)
        .await
        .context("auditing the ledger")?;
    db.close().await;

    // No bill paid twice; as many payments as the channels were told of (and at most those
    // whose answer was lost to an overload failure more).
    let a = bills::audit(&run.access.database_url, &province.book).await?;
    let told = bill_payments.len() as i64;
    let unknown = acks.pay_unknown.load(Ordering::Relaxed) as i64;
    checks.bill_payments = told;
    checks.bills_ok = a.double_paid == 0
        && a.mismatched == 0
        && (told..=told + unknown).contains(&a.payments)
        && a.paid_bills == a.payments
        && a.bills == province.book.bills as i64;
    checks.bills = Some(a);

    // The window, as the service has it now.
    let day = closing
        .window
        .lock()
        .ok()
        .and_then(|w| w.as_ref().map(|w| w.business_date.clone()));
    checks.window = match day {
        Some(day) => settlement
            .get_window(spb::GetWindowRequest { business_date: day })
            .await
            .ok()
            .and_then(|w| w.into_inner().window)
            .map(|w| {
                let status = window_status(&w);
                if let Ok(mut slot) = closing.window.lock() {
                    *slot = Some(w);
                }
                status.to_owned()
            })
            .unwrap_or_else(|| "UNREAD".into()),
        None => "NOT_CLOSED".into(),
    };
    checks.unexpected = province.stats.unexpected.load(Ordering::Relaxed);
    Ok(checks)
}

/// One row of the final table.
struct Row {
    name: String,
    who: String,
    ok: u64,
    ok_all: u64,
    per_s: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    errors: BTreeMap<String, u64>,
}

fn row(name: &str, who: &str, stat: &Stat, elapsed: Duration) -> Row {
    let ms = |q: f64| stat.hist.value_at_quantile(q) as f64 / 1000.0;
    Row {
        name: name.into(),
        who: who.into(),
        ok: stat.ok,
        ok_all: stat.ok_all,
        per_s: stat.ok as f64 / elapsed.as_secs_f64(),
        p50: ms(0.5),
        p95: ms(0.95),
        p99: ms(0.99),
        max: stat.hist.max() as f64 / 1000.0,
        errors: stat.errors.clone(),
    }
}

fn errors_text(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "–".into();
    }
    errors
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn table(rpcs: &[Row], flows: &[Row], events: &Row) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| RPC or flow | caller | ok (measured) | per s | p50 ms | p95 ms | p99 ms | max ms | errors by code (whole run) |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|");
    for r in rpcs.iter().chain(std::iter::once(events)).chain(flows) {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.name,
            r.who,
            r.ok,
            if r.per_s.is_finite() {
                format!("{:.1}", r.per_s)
            } else {
                "–".into()
            },
            r.p50,
            r.p95,
            r.p99,
            r.max,
            errors_text(&r.errors)
        );
    }
    t
}

/// A JSON string literal.
fn js(text: &str) -> String {
    let mut out = String::from('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A finite JSON number.
fn jn(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
}

fn row_json(r: &Row) -> String {
    let errors: Vec<String> = r
        .errors
        .iter()
        .map(|(k, n)| format!("{}: {n}", js(k)))
        .collect();
    format!(
        "{{\"name\": {}, \"caller\": {}, \"ok_measured\": {}, \"ok_whole_run\": {}, \"per_s\": {}, \
         \"p50_ms\": {}, \"p95_ms\": {}, \"p99_ms\": {}, \"max_ms\": {}, \"errors\": {{{}}}}}",
        js(&r.name),
        js(&r.who),
        r.ok,
        r.ok_all,
        jn(r.per_s),
        jn(r.p50),
        jn(r.p95),
        jn(r.p99),
        jn(r.max),
        errors.join(", ")
    )
}

fn pairs_json(pairs: &[(&str, String)]) -> String {
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}: {v}", js(k)))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// Refuses a run that is not bounded and on loopback; answers the mix's weights.
fn validate(run: &ProvinceRun) -> anyhow::Result<[u64; 5]> {
    for addr in [
        run.merchant_addr,
        run.payment_addr,
        run.billing_addr,
        run.settlement_addr,
    ] {
        check(
            addr,
            &[
                ("--vendors", run.vendors, 100_000),
                ("--billers", run.billers, 100),
                ("--bills", run.bills, 10_000_000),
                ("--customers", run.customers, 10_000_000),
                ("--watchers", run.watchers.max(1), 1_000),
                ("--rate", run.rate, 20_000),
                ("--in-flight", run.in_flight, 65_536),
                ("--connections", run.connections, 64),
                ("--progress-seconds", run.progress_seconds as usize, 60),
                ("channel tokens", run.access.channel_tokens.len(), 1024),
            ],
        )?;
    }
    anyhow::ensure!(
        run.bills >= run.billers,
        "--bills must be at least --billers"
    );
    anyhow::ensure!(
        run.seconds >= 2 && Duration::from_secs(run.seconds) <= DURATION_MAX,
        "--seconds must be 2..={}",
        DURATION_MAX.as_secs()
    );
    parse_mix(&run.mix)
}

/// The run's clients over shared connections: the bank, the operator, the payer channels.
struct Clients {
    operator: CallContext,
    bank: Vec<Payments>,
    for_vendors: Vec<Payments>,
    channels: Vec<Billing>,
    billing_operator: Vec<Billing>,
    settlement: SettlementServiceClient<Authed>,
}

fn connect(run: &ProvinceRun) -> anyhow::Result<Clients> {
    let (operator, channel_contexts) = run.access.contexts()?;
    let bank = CallContext::with_token(&run.bank_token)?;
    let connections = |addr: SocketAddr| -> anyhow::Result<Vec<Channel>> {
        (0..run.connections)
            .map(|_| channel(&addr.to_string()))
            .collect()
    };
    let payment = connections(run.payment_addr)?;
    let billing = connections(run.billing_addr)?;
    let payments_as = |ctx: &CallContext| -> Vec<Payments> {
        payment
            .iter()
            .map(|c| PaymentServiceClient::with_interceptor(c.clone(), ctx.clone()))
            .collect()
    };
    Ok(Clients {
        bank: payments_as(&bank),
        for_vendors: payments_as(&operator),
        channels: bills::channel_clients(&billing, &channel_contexts),
        billing_operator: billing
            .iter()
            .map(|c| BillingServiceClient::with_interceptor(c.clone(), operator.clone()))
            .collect(),
        settlement: SettlementServiceClient::with_interceptor(
            channel(&run.settlement_addr.to_string())?,
            operator.clone(),
        ),
        operator,
    })
}

/// Vendors onboarded and approved; billers with a policy and their bills loaded.
async fn set_up(run: &ProvinceRun, clients: &Clients) -> anyhow::Result<(Vec<Vendor>, Arc<Book>)> {
    let started = Instant::now();
    let vendors = onboard_vendors(run, &clients.operator).await?;
    eprintln!(
        "set-up: {} vendors onboarded and approved in {:.1} s",
        vendors.len(),
        started.elapsed().as_secs_f64()
    );
    let billers = bills::set_up(
        run.merchant_addr,
        run.billing_addr,
        run.billers,
        &clients.operator,
    )
    .await?;
    let book = Arc::new(Book::new(billers, run.bills as u64, run.customers as u64)?);
    let loading = bills::Loading {
        per_stream: 50_000,
        per_message: 1_000,
        streams: 4,
    };
    let loaded = bills::load(loading, &book, &clients.billing_operator).await?;
    eprintln!(
        "set-up: {} bills loaded for {} billers in {:.1} s",
        loaded.loaded,
        book.billers.len(),
        loaded.elapsed.as_secs_f64()
    );
    Ok((vendors, book))
}

/// A progress line every `every` until `stop`.
fn spawn_progress(
    province: Arc<Province>,
    closing: Arc<Closing>,
    watched: Arc<Watched>,
    stop: Arc<AtomicBool>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let start = tokio::time::Instant::now();
    tokio::spawn(async move {
        let mut last_done = 0;
        let mut next = start + every;
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep_until(next).await;
            next += every;
            let s = &province.stats;
            let offered = s.offered.load(Ordering::Relaxed);
            let done = s.done.load(Ordering::Relaxed);
            let (qr, bills) = (s.ok_all(Rpc::NotifyCredit), s.ok_all(Rpc::PayBill));
            let errors: u64 = RPCS.iter().map(|r| s.errors_all(*r)).sum();
            eprintln!(
                "[{:>4.0}s] offered {offered} done {done} ({:.0}/s) in flight {} | payments {} (QR {qr}, \
                 bills {bills}) refunds {} lookups {} | errors {errors} (unexpected {}) | streamed {} | window {}",
                start.elapsed().as_secs_f64(),
                (done - last_done) as f64 / every.as_secs_f64(),
                offered - done,
                qr + bills,
                s.ok_all(Rpc::RefundPayment),
                s.ok_all(Rpc::LookupBills),
                s.unexpected.load(Ordering::Relaxed),
                watched.events.load(Ordering::Relaxed),
                closing.state.lock().map(|s| s.clone()).unwrap_or_default(),
            );
            last_done = done;
        }
    })
}

/// Offers the flows at their due times (`--rate` a second for the warm-up and `--seconds`),
/// closes the window at the midpoint, and answers the measured time: `--seconds`, or until the
/// last measured flow ended when that was later.
async fn offer(
    run: &ProvinceRun,
    province: &Arc<Province>,
    closing: &Arc<Closing>,
    watched: &Arc<Watched>,
    settlement: SettlementServiceClient<Authed>,
) -> anyhow::Result<Duration> {
    let rate = run.rate as f64;
    let measured = Duration::from_secs(run.seconds);
    let total = (rate * (WARM_UP + measured).as_secs_f64()) as u64;
    eprintln!(
        "== province: {} flows/s offered for {}s after a {}s warm-up (mix {}), the window closed at {}s ==",
        run.rate,
        run.seconds,
        WARM_UP.as_secs(),
        run.mix,
        run.seconds / 2
    );
    let start = tokio::time::Instant::now();
    let measure_from = start + WARM_UP;
    let measure_to = measure_from + measured;
    let close = {
        let (province, closing) = (province.clone(), closing.clone());
        let at = measure_from + measured / 2;
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            close_window(settlement, &province.stats, &closing).await
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let progress = spawn_progress(
        province.clone(),
        closing.clone(),
        watched.clone(),
        stop.clone(),
        Duration::from_secs(run.progress_seconds),
    );
    let in_flight = u32::try_from(run.in_flight)?;
    let slots = Arc::new(tokio::sync::Semaphore::new(run.in_flight));
    let mut rng = Rng::seeded();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let slot = slots.clone().acquire_owned().await?;
        let flow = province.pick(&mut rng);
        let measured = due >= measure_from && due < measure_to;
        province.stats.offered.fetch_add(1, Ordering::Relaxed);
        let province = province.clone();
        tokio::spawn(async move {
            province.run_flow(flow, due, measured).await;
            province.stats.done.fetch_add(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    // Every flow ended: all the slots back.
    let _all = slots.acquire_many(in_flight).await?;
    close.await??;
    stop.store(true, Ordering::Relaxed);
    progress.abort();
    let last_done = province.stats.last_done.lock().ok().and_then(|l| *l);
    Ok(last_done
        .map(|l| l.saturating_duration_since(measure_from))
        .unwrap_or(measured)
        .max(measured))
}

/// The final table's parts.
struct Report {
    conditions: String,
    result: String,
    checks: String,
    rpcs: Vec<Row>,
    events: Row,
    flows: Vec<Row>,
    refusals: BTreeMap<String, u64>,
}

fn report(
    run: &ProvinceRun,
    province: &Province,
    watched: &Watched,
    closing: &Closing,
    checks: &Checks,
    elapsed: Duration,
) -> anyhow::Result<Report> {
    let stats = &province.stats;
    let rpcs: Vec<Row> = RPCS
        .iter()
        .filter_map(|r| {
            let stat = stats.rpc(*r).lock().ok()?;
            let mut row = row(r.name(), r.who(), &stat, elapsed);
            if *r == Rpc::CloseWindow {
                row.per_s = f64::NAN; // once or a few times: a rate says nothing
            }
            Some(row)
        })
        .collect();
    let flows: Vec<Row> = FLOWS
        .iter()
        .filter_map(|f| {
            let stat = stats.flow(*f).lock().ok()?;
            let name = format!("flow: {}, from its due time", f.what());
            Some(row(&name, "open loop", &stat, elapsed))
        })
        .collect();
    let watchers = run.watchers.min(province.vendors.len());
    let n = watched.events.load(Ordering::Relaxed);
    let stat = Stat {
        ok: n,
        ok_all: n,
        hist: watched
            .latency
            .lock()
            .map(|h| h.clone())
            .unwrap_or(histogram()?),
        errors: BTreeMap::new(),
    };
    let mut events = row(
        "WatchPayments events, commit → watcher (whole run)",
        &format!("{watchers} vendors' streams"),
        &stat,
        elapsed,
    );
    events.per_s = f64::NAN;
    let ok = |r: Rpc| stats.rpc(r).lock().map(|s| s.ok).unwrap_or(0);
    let seconds = elapsed.as_secs_f64();
    let payments_per_s = (ok(Rpc::NotifyCredit) + ok(Rpc::PayBill)) as f64 / seconds;
    let flows_per_s = flows.iter().map(|r| r.ok).sum::<u64>() as f64 / seconds;
    let window = closing.window.lock().ok().and_then(|w| w.clone());
    let close_ms = stats
        .rpc(Rpc::CloseWindow)
        .lock()
        .map(|s| s.hist.max())
        .unwrap_or(0);
    let refusals = stats.expected.lock().map(|e| e.clone()).unwrap_or_default();
    let book = &province.book;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let conditions = format!(
        "vendors={} billers={} bills={} customers_per_biller={} watchers={watchers} rate_offered={} mix={} \
         in_flight_max={} connections={} channels={} seconds={} warm_up_s={} close_at_s={} cores={cores}",
        province.vendors.len(),
        book.billers.len(),
        book.bills,
        book.billers.iter().map(|b| b.customers).max().unwrap_or(0),
        run.rate,
        run.mix,
        run.in_flight,
        run.connections,
        run.access.channel_tokens.len(),
        run.seconds,
        WARM_UP.as_secs(),
        run.seconds / 2,
    );
    let result = format!(
        "payments_per_s={payments_per_s:.0} flows_per_s={flows_per_s:.0} offered={} elapsed_s={:.1} \
         refunds_skipped={} overload_errors={} expected_refusals={} close_s={:.2} close_attempts={} \
         window_gross={} window_payouts={} window_lines={}",
        stats.offered.load(Ordering::Relaxed),
        seconds,
        stats.refunds_skipped.load(Ordering::Relaxed),
        stats.overload.load(Ordering::Relaxed),
        refusals.values().sum::<u64>(),
        close_ms as f64 / 1_000_000.0,
        closing.attempts.load(Ordering::Relaxed),
        window
            .as_ref()
            .and_then(|w| w.gross.as_ref())
            .map(|m| m.amount.clone())
            .unwrap_or_default(),
        window.as_ref().map_or(0, |w| w.payout_count),
        window.as_ref().map_or(0, |w| w.line_count),
    );
    Ok(Report {
        conditions,
        result,
        checks: checks.line(),
        rpcs,
        events,
        flows,
        refusals,
    })
}

impl Report {
    fn print(&self) {
        println!("CONDITIONS {}", self.conditions);
        println!("RESULT label=province {}", self.result);
        println!();
        print!("{}", table(&self.rpcs, &self.flows, &self.events));
        println!();
        println!("CHECK {}", self.checks);
    }

    fn json(&self) -> String {
        // A `key=value …` line as an object: numbers and booleans as they are, the rest quoted.
        let object = |line: &str| {
            let pairs: Vec<(&str, String)> = line
                .split_whitespace()
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| {
                    let bare =
                        v.parse::<f64>().is_ok_and(f64::is_finite) || v == "true" || v == "false";
                    (k, if bare { v.to_owned() } else { js(v) })
                })
                .collect();
            pairs_json(&pairs)
        };
        let rows = |rows: &[Row]| {
            rows.iter()
                .map(row_json)
                .collect::<Vec<_>>()
                .join(",\n    ")
        };
        let refusals: Vec<(&str, String)> = self
            .refusals
            .iter()
            .map(|(k, n)| (k.as_str(), n.to_string()))
            .collect();
        format!(
            "{{\n  \"scenario\": \"province\",\n  \"conditions\": {},\n  \"result\": {},\n  \"rpcs\": [\n    {}\n  ],\n  \
             \"events\": {},\n  \"flows\": [\n    {}\n  ],\n  \"expected_refusals\": {},\n  \"checks\": {}\n}}\n",
            object(&self.conditions),
            object(&self.result),
            rows(&self.rpcs),
            row_json(&self.events),
            rows(&self.flows),
            pairs_json(&refusals),
            object(&self.checks),
        )
    }
}

pub async fn province(run: ProvinceRun) -> anyhow::Result<()> {
    let weights = validate(&run)?;
    let clients = connect(&run)?;
    let (vendors, book) = set_up(&run, &clients).await?;
    let watched = spawn_watchers(&clients.for_vendors[0], &vendors, run.watchers)?;
    let Clients {
        bank,
        for_vendors,
        channels,
        mut settlement,
        ..
    } = clients;
    let province = Arc::new(Province {
        vendors,
        book,
        weights,
        bank,
        operator: for_vendors,
        channels,
        stats: Stats::new()?,
        acks: Acks::default(),
        next_bill: AtomicU64::new(0),
        txn: AtomicU64::new(0),
        tag: Id128::random().to_string()[..8].to_uppercase(),
    });
    let closing = Arc::new(Closing::default());
    set_state(&closing, "OPEN".into());
    let elapsed = offer(&run, &province, &closing, &watched, settlement.clone()).await?;

    let checks = check_all(&run, &province, &watched, &closing, &mut settlement).await?;
    let report = report(&run, &province, &watched, &closing, &checks, elapsed)?;
    report.print();
    for problem in &checks.audit {
        eprintln!("ledger audit: {problem}");
    }
    if let Some(path) = &run.json {
        std::fs::write(path, report.json())
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("table written as JSON to {}", path.display());
    }
    checks.verdict()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_weights_in_flow_order() {
        assert_eq!(
            parse_mix("qr=45,intent=15,bill=20,lookup=15,refund=5").unwrap(),
            [45, 15, 20, 15, 5]
        );
        assert_eq!(parse_mix(" bill = 3 ").unwrap(), [0, 0, 3, 0, 0]);
        assert!(parse_mix("qr=0").is_err());
        assert!(parse_mix("coffee=1").is_err());
        assert!(parse_mix("qr").is_err());
        assert!(parse_mix("qr=1001").is_err());
    }

    #[test]
    fn flows_are_picked_in_proportion_to_their_weights() {
        let weights = [2, 0, 1, 0, 3];
        let picked: Vec<Flow> = (0..6).map(|x| flow_at(&weights, x)).collect();
        assert_eq!(
            picked,
            [
                Flow::Qr,
                Flow::Qr,
                Flow::Bill,
                Flow::Refund,
                Flow::Refund,
                Flow::Refund
            ]
        );
    }

    #[test]
    fn failures_are_keyed_by_code_and_reason_and_classed() {
        assert_eq!(
            code_name(tonic::Code::FailedPrecondition),
            "FAILED_PRECONDITION"
        );
        assert_eq!(code_name(tonic::Code::Internal), "INTERNAL");
        let (key, class) = classify(
            Rpc::NotifyCredit,
            &Failure::Status(tonic::Status::deadline_exceeded("slow")),
        );
        assert_eq!(key, "DEADLINE_EXCEEDED");
        assert!(class == Class::Overload);
        let (key, class) = classify(Rpc::PayBill, &Failure::Local("BILL_NOT_PAID"));
        assert_eq!(key, "LOCAL/BILL_NOT_PAID");
        assert!(class == Class::Unexpected);
        let (_, class) = classify(
            Rpc::PayBill,
            &Failure::Status(tonic::Status::internal("boom")),
        );
        assert!(class == Class::Unexpected);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(js("a\"b\\c\nd"), "\"a\\\"b\\\\c\\u000ad\"");
        assert_eq!(jn(f64::NAN), "null");
        assert_eq!(jn(1.5), "1.500");
    }
}
