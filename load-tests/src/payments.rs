//! `paymesh-load payments`: the acquiring bank's credit notifications at full speed, through
//! the payment service's whole path — matching (reference or virtual account), the merchant
//! directory, the ledger chain (one hot bank clearing account), the event stream and the
//! webhook outbox — with watchers on a sample of merchants and a webhook receiver for all.
//!
//! Set-up (not measured): `--merchants` vendors onboarded and approved through the merchant
//! service, each with a webhook endpoint on this process's receiver and one open intent. Then
//! `--clients` clients notify credits for `--seconds`: a merchant's first credit pays its
//! intent by reference (PAID), later ones are static-QR payments by virtual account (STATIC).
//! Afterwards the run checks, and fails unless: the clearing account moved by exactly the sum
//! notified; every watched merchant's stream delivered each of its payments exactly once; the
//! webhook receiver got every payment's event (duplicates counted: at least once).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use paymesh_money::Id128;
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::time::ns_from_timestamp;
use paymesh_proto::common::v1::Money;
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::{DURATION_MAX, Shared, check, drive, histogram, measure};

pub(crate) type Authed = InterceptedService<Channel, CallContext>;

/// The acquiring bank of the run (the merchant service's collection bank).
pub(crate) const BANK_BIN: &str = "970436";
/// Requests in flight while setting up.
const SETUP_IN_FLIGHT: usize = 32;
/// How long the run waits for streams and webhooks to catch up after the load.
const DRAIN_MAX: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct PaymentsRun {
    #[arg(long, default_value = "127.0.0.1:50053")]
    payment_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:50052")]
    merchant_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:50051")]
    ledger_addr: SocketAddr,
    /// An operator's token (onboards merchants, sets endpoints, reads balances, watches).
    #[arg(long, env = "PAYMESH_LOAD_OPERATOR_TOKEN")]
    operator_token: String,
    /// The acquiring bank's token (`bank:970436`).
    #[arg(long, env = "PAYMESH_LOAD_BANK_TOKEN")]
    bank_token: String,
    #[arg(long, default_value_t = 10_000)]
    merchants: usize,
    /// Concurrent clients notifying, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Merchants whose payment stream is watched (the first ones).
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Seconds of measured load (after a 2-second warm-up).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

pub(crate) fn keyed<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Ok(key) = Id128::random().to_string().parse() {
        r.metadata_mut().insert("idempotency-key", key);
    }
    r
}

pub(crate) fn vnd(amount: u64) -> Option<Money> {
    Some(Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    })
}

pub(crate) fn application(run: u64, i: usize) -> mpb::MerchantApplication {
    mpb::MerchantApplication {
        business_name: format!("Hộ kinh doanh Sạp {i}"),
        trading_name: format!("Sạp {i}"),
        tax_code: crate::tax_code("04", run, i),
        owner_citizen_id: "079187001234".into(),
        phone: "090 123 4567".into(),
        address: format!("Sạp {i}, chợ Bình Tây, Q.6, TP. Hồ Chí Minh"),
        market_name: "Chợ Bình Tây".into(),
        stall_number: i.to_string(),
        mcc: "5411".into(),
        biller_category: 0,
        settlement_bank_bin: BANK_BIN.into(),
        settlement_account_number: "0011012345678".into(),
    }
}

/// One merchant of the run.
struct Stall {
    id: String,
    account: String,
    reference: String,
    intent_amount: u64,
    intent_used: AtomicBool,
    /// Payments notified to it during the run (watched merchants only are checked).
    notified: AtomicU64,
}

/// The webhook receiver: every event id it was sent, and how often.
#[derive(Default)]
struct Deliveries {
    ids: Mutex<HashMap<String, u32>>,
}

async fn receiver(
    deliveries: Arc<Deliveries>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(paymesh_platform::http::serve(
        listener,
        move |req| {
            let deliveries = deliveries.clone();
            async move {
                let id = req
                    .headers()
                    .get("paymesh-event-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let _ = paymesh_platform::http::body(req, 1 << 20).await;
                if let Ok(mut ids) = deliveries.ids.lock() {
                    *ids.entry(id).or_default() += 1;
                }
                paymesh_platform::http::respond(http::StatusCode::NO_CONTENT, "text/plain", "")
            }
        },
        async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        },
    ));
    Ok(addr)
}

/// The acquiring bank's notification of a credit of `amount` to `account`, valued now.
pub(crate) fn credit(
    txn: String,
    account: &str,
    amount: u64,
    description: String,
) -> pb::NotifyCreditRequest {
    pb::NotifyCreditRequest {
        bank_bin: BANK_BIN.into(),
        bank_transaction_id: txn,
        account_number: account.into(),
        amount: vnd(amount),
        description,
        value_time: Some(paymesh_platform::time::timestamp_from_ns(
            paymesh_platform::time::now_ns(),
        )),
    }
}

/// The description a buyer's bank app writes for a dynamic QR: the payment reference among
/// the bank's own words.
pub(crate) fn intent_memo(n: u64, reference: &str, account: &str) -> String {
    format!("MBVCB.{n}.{reference}.CT tu 0071000123456 NGUYEN VAN AN toi {account}")
}

/// A number that tells this run's merchants from earlier runs' (their tax codes).
pub(crate) fn run_id() -> u64 {
    u64::from_le_bytes(Id128::random().to_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// Vendor `i` of run `run_id`, onboarded and approved through the merchant service (ledger
/// accounts opened, virtual account and static QR issued).
pub(crate) async fn onboard_vendor(
    merchants: &mut MerchantServiceClient<Authed>,
    run_id: u64,
    i: usize,
) -> anyhow::Result<mpb::Merchant> {
    let m = merchants
        .onboard_merchant(keyed(mpb::OnboardMerchantRequest {
            kind: mpb::MerchantKind::Vendor as i32,
            application: Some(application(run_id, i)),
            ..Default::default()
        }))
        .await
        .context("onboarding")?
        .into_inner();
    Ok(merchants
        .approve_merchant(keyed(mpb::ApproveMerchantRequest {
            merchant_id: m.id.clone(),
            reason: "load test".into(),
            etag: m.etag,
        }))
        .await
        .context("approving")?
        .into_inner())
}

async fn set_up(
    run: &PaymentsRun,
    ctx: &CallContext,
    webhook: SocketAddr,
) -> anyhow::Result<Vec<Arc<Stall>>> {
    let merchants = MerchantServiceClient::with_interceptor(
        channel(&run.merchant_addr.to_string())?,
        ctx.clone(),
    );
    let payments = PaymentServiceClient::with_interceptor(
        channel(&run.payment_addr.to_string())?,
        ctx.clone(),
    );
    let run_id = run_id();
    let started = Instant::now();
    let stalls: Vec<Arc<Stall>> = futures::stream::iter(0..run.merchants)
        .map(|i| {
            let (mut merchants, mut payments) = (merchants.clone(), payments.clone());
            async move {
                let m = onboard_vendor(&mut merchants, run_id, i).await?;
                payments
                    .update_webhook_endpoint(keyed(pb::UpdateWebhookEndpointRequest {
                        merchant_id: m.id.clone(),
                        url: format!("http://{webhook}/hooks"),
                    }))
                    .await
                    .context("setting the webhook endpoint")?;
                let amount = 20_000 + (i as u64 % 50) * 1_000;
                let intent = payments
                    .create_payment_intent(keyed(pb::CreatePaymentIntentRequest {
                        merchant_id: m.id.clone(),
                        amount: vnd(amount),
                        expires_in_seconds: 86_400,
                        ..Default::default()
                    }))
                    .await
                    .context("creating an intent")?
                    .into_inner()
                    .intent
                    .context("no intent")?;
                anyhow::Ok(Arc::new(Stall {
                    id: m.id,
                    account: m.virtual_account_number,
                    reference: intent.reference,
                    intent_amount: amount,
                    intent_used: AtomicBool::new(false),
                    notified: AtomicU64::new(0),
                }))
            }
        })
        .buffer_unordered(SETUP_IN_FLIGHT)
        .try_collect()
        .await?;
    eprintln!(
        "set-up: {} merchants onboarded, approved, with a webhook endpoint and an open intent in {:.1} s",
        stalls.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(stalls)
}

/// A watched merchant's stream: the latency of each event after its payment's commit, and
/// every payment id it delivered (a repeat is a failure).
struct Watch {
    seen: Mutex<HashMap<String, u32>>,
    latency: Mutex<Histogram<u64>>,
}

fn spawn_watchers(
    run: &PaymentsRun,
    ctx: &CallContext,
    stalls: &[Arc<Stall>],
) -> anyhow::Result<Arc<Watch>> {
    let watch = Arc::new(Watch {
        seen: Mutex::default(),
        latency: Mutex::new(histogram()?),
    });
    let client = PaymentServiceClient::with_interceptor(
        channel(&run.payment_addr.to_string())?,
        ctx.clone(),
    );
    for stall in stalls.iter().take(run.watchers) {
        let watch = watch.clone();
        tokio::spawn(watch_events(
            client.clone(),
            stall.id.clone(),
            move |event| {
                let Some(payment) = event.payment else {
                    return;
                };
                if let Ok(mut h) = watch.latency.lock() {
                    let committed = payment.create_time.as_ref().map(ns_from_timestamp);
                    let _ = h.record(micros_since(committed.and_then(Result::ok).unwrap_or(0)));
                }
                if let Ok(mut seen) = watch.seen.lock() {
                    *seen.entry(payment.id).or_default() += 1;
                }
            },
        ));
    }
    Ok(watch)
}

/// Microseconds from `commit_ns` (a commit time the service stamped) to now, at least 1.
pub(crate) fn micros_since(commit_ns: i64) -> u64 {
    let now = paymesh_platform::time::now_ns();
    u64::try_from(now.saturating_sub(commit_ns) / 1_000)
        .unwrap_or(1)
        .max(1)
}

/// Watches `merchant`'s payment stream from its first event (nothing is missed however late
/// the stream opens), handing each event to `on_event` until the stream ends.
pub(crate) async fn watch_events(
    mut client: PaymentServiceClient<Authed>,
    merchant: String,
    mut on_event: impl FnMut(pb::PaymentEvent),
) {
    let Ok(stream) = client
        .watch_payments(pb::WatchPaymentsRequest {
            merchant_id: merchant.clone(),
            after_cursor: "0".into(),
        })
        .await
    else {
        eprintln!("watching {merchant} failed");
        return;
    };
    let mut stream = stream.into_inner();
    while let Ok(Some(m)) = stream.message().await {
        if let Some(event) = m.event {
            on_event(event);
        }
    }
}

async fn clearing_debits(run: &PaymentsRun, ctx: &CallContext) -> anyhow::Result<u64> {
    let mut ledger =
        LedgerServiceClient::with_interceptor(channel(&run.ledger_addr.to_string())?, ctx.clone());
    let id = paymesh_ledger_clearing_id();
    let accounts = ledger
        .get_balances(lpb::GetBalancesRequest {
            account_ids: vec![id.to_vec()],
        })
        .await?
        .into_inner()
        .accounts;
    Ok(accounts
        .first()
        .and_then(|a| a.debits_posted.as_ref())
        .and_then(|m| m.amount.parse().ok())
        .unwrap_or(0))
}

/// The id of bank 970436's clearing account, as the chart derives it (SHA-256 of the label
/// and the BIN; see `paymesh_ledger::chart`).
fn paymesh_ledger_clearing_id() -> [u8; 16] {
    paymesh_ledger::chart::SystemAccount::BankClearing { bin: BANK_BIN }
        .id()
        .map(|id| id.to_bytes())
        .unwrap_or([0; 16])
}

pub async fn payments(run: PaymentsRun) -> anyhow::Result<()> {
    for addr in [run.payment_addr, run.merchant_addr, run.ledger_addr] {
        check(
            addr,
            &[
                ("--clients", run.clients, 1024),
                ("--connections", run.connections, 64),
                ("--merchants", run.merchants, 20_000),
                ("--watchers", run.watchers.max(1), 1_000),
            ],
        )?;
    }
    let operator = CallContext::with_token(&run.operator_token)?;
    let bank = CallContext::with_token(&run.bank_token)?;
    let deliveries = Arc::new(Deliveries::default());
    let stop_receiver = Arc::new(AtomicBool::new(false));
    let webhook = receiver(deliveries.clone(), stop_receiver.clone()).await?;
    let stalls = Arc::new(set_up(&run, &operator, webhook).await?);
    let watch = spawn_watchers(&run, &operator, &stalls)?;
    let debits_before = clearing_debits(&run, &operator).await?;

    let clients: Vec<PaymentServiceClient<Authed>> = (0..run.connections)
        .map(|_| {
            Ok(PaymentServiceClient::with_interceptor(
                channel(&run.payment_addr.to_string())?,
                bank.clone(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let shared = Arc::new(Shared::default());
    let notified_sum = Arc::new(AtomicU64::new(0));
    let run_tag = Id128::random().to_string()[..8].to_uppercase();
    let tasks = (0..run.clients)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let (stalls, sum, tag) = (stalls.clone(), notified_sum.clone(), run_tag.clone());
            let mut n = i as u64;
            let call = move || {
                let mut client = client.clone();
                n = n.wrapping_add(7919);
                let stall = stalls[(n as usize) % stalls.len()].clone();
                let (sum, txn) = (sum.clone(), format!("LD{tag}{i}N{n}"));
                async move {
                    let by_reference = !stall.intent_used.swap(true, Ordering::Relaxed);
                    let (amount, description) = if by_reference {
                        (
                            stall.intent_amount,
                            intent_memo(n, &stall.reference, &stall.account),
                        )
                    } else {
                        (
                            10_000 + n % 190_000,
                            format!("IBFT {n} chuyen tien mua hang"),
                        )
                    };
                    let request = credit(txn, &stall.account, amount, description);
                    let answer = client.notify_credit(request).await.ok()?.into_inner();
                    let outcome = answer.credit.as_ref()?.outcome();
                    if !matches!(outcome, pb::CreditOutcome::Paid | pb::CreditOutcome::Static) {
                        return None;
                    }
                    sum.fetch_add(amount, Ordering::Relaxed);
                    stall.notified.fetch_add(1, Ordering::Relaxed);
                    Some(1)
                }
            };
            Ok(tokio::spawn(drive(shared.clone(), histogram()?, 1, call)))
        })
        .collect::<anyhow::Result<_>>()?;
    let duration = Duration::from_secs(run.seconds).min(DURATION_MAX);
    let (hist, elapsed) = measure(&shared, tasks, duration).await?;
    // Every payment of the run, warm-up included, is checked below.
    let payments_total: u64 = stalls
        .iter()
        .map(|s| s.notified.load(Ordering::Relaxed))
        .sum();

    // Let the streams and the webhook worker catch up, then check.
    let drained = Instant::now();
    let watched: Vec<&Arc<Stall>> = stalls.iter().take(run.watchers).collect();
    let watched_total: u64 = watched
        .iter()
        .map(|s| s.notified.load(Ordering::Relaxed))
        .sum();
    loop {
        let streamed = watch.seen.lock().map(|s| s.len() as u64).unwrap_or(0);
        let delivered = deliveries.ids.lock().map(|d| d.len() as u64).unwrap_or(0);
        if (streamed >= watched_total && delivered >= payments_total)
            || drained.elapsed() > DRAIN_MAX
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_receiver.store(true, Ordering::Relaxed);
    let debits_after = clearing_debits(&run, &operator).await?;
    let sum = notified_sum.load(Ordering::Relaxed);
    let (streamed, stream_repeats) = watch
        .seen
        .lock()
        .map(|s| (s.len() as u64, s.values().filter(|n| **n > 1).count()))
        .unwrap_or_default();
    let (delivered, delivery_repeats) = deliveries
        .ids
        .lock()
        .map(|d| (d.len() as u64, d.values().filter(|n| **n > 1).count()))
        .unwrap_or_default();
    let notify = watch
        .latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or(histogram()?);

    let ok = shared.ok.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "RESULT label=payments payments_per_s={:.0} ok={ok} failed={failed} rpc_p50_ms={:.2} rpc_p99_ms={:.2} \
         rpc_max_ms={:.2} notify_p50_ms={:.1} notify_p99_ms={:.1} merchants={} clients={} connections={} \
         watchers={} webhooks=all hot_accounts=1 seconds={:.1} cores={cores}",
        ok as f64 / elapsed.as_secs_f64(),
        ms(&hist, 0.5),
        ms(&hist, 0.99),
        hist.max() as f64 / 1000.0,
        ms(&notify, 0.5),
        ms(&notify, 0.99),
        run.merchants,
        run.clients,
        run.connections,
        watched.len(),
        elapsed.as_secs_f64(),
    );
    println!(
        "CHECK payments={payments_total} clearing_moved={} notified_sum={sum} streamed={streamed}/{watched_total} \
         stream_repeats={stream_repeats} webhooks_delivered={delivered}/{payments_total} webhook_repeats={delivery_repeats}",
        debits_after - debits_before
    );
    anyhow::ensure!(failed == 0, "{failed} notifications failed");
    anyhow::ensure!(
        debits_after - debits_before == sum,
        "the clearing account moved {} but {sum} was notified",
        debits_after - debits_before
    );
    anyhow::ensure!(
        streamed == watched_total && stream_repeats == 0,
        "the watched streams delivered {streamed} of {watched_total} payments, {stream_repeats} more than once"
    );
    anyhow::ensure!(
        delivered == payments_total,
        "webhooks delivered {delivered} of {payments_total} payments within {DRAIN_MAX:?}"
    );
    Ok(())
}
