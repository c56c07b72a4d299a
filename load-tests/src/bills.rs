//! `paymesh-load bills`: bill payment through the billing service — billers' bulk loads,
//! payer channels' lookups, and their payments, with some of them racing for the same bill.
//!
//! Set-up (not measured): `--billers` billers (WATER and ELECTRICITY in turn, MCC 4900)
//! onboarded and approved through the merchant service, each with a policy set by an operator
//! (customer codes `PE[0-9]{11}`, amount rule EXACT, no late fee, discount or expiry).
//!
//! Then three measured phases, each printing one `RESULT` line with its conditions:
//!
//! 1. load: `--bills` bills through `UpsertBills`, `--bills-per-message` bills per message,
//!    `--bills-per-stream` bills per stream (one transaction, its own idempotency key; the first
//!    message names the biller), `--streams` streams in flight; bills/s over the whole load;
//! 2. lookups: `LookupBills` as payer channels (`channel:{id}` tokens), open loop at
//!    `--lookup-rate` per second for `--seconds` (after a 2-second warm-up) from as many
//!    concurrent tasks as needed (at most `--lookups-in-flight`); latency counted from the
//!    moment each lookup was due, so a slow answer delays no one's clock;
//! 3. payments: `--clients` closed-loop clients, each looking a customer up then paying one
//!    bill with `PayBill` quoting the lookup reference (an idempotency key each), for
//!    `--seconds` after a warm-up. `--collisions` percent of them pay a bill that another
//!    channel pays at the same moment: one must succeed, the other must be refused
//!    FAILED_PRECONDITION with reason BILL_PAID (an expected refusal, not an error).
//!
//! Afterwards it reads PostgreSQL (`--database-url`, the mesh's database) and fails unless no
//! bill was paid twice: for every bill of the run, at most one payment (EXACT bills), the sum
//! of its payments equal to its `amount_paid`, as many paid bills and payments as the clients
//! saw succeed. Bills are derived from their index (customer, period, number, amount), so
//! nothing of the million is kept in memory.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use paymesh_money::Id128;
use paymesh_platform::client::{CallContext, channel};
use paymesh_platform::time::Date;
use paymesh_proto::billing::v1 as pb;
use paymesh_proto::billing::v1::billing_service_client::BillingServiceClient;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use sqlx::Connection;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::{DURATION_MAX, WARM_UP, check, histogram};

pub(crate) type Billing = BillingServiceClient<InterceptedService<Channel, CallContext>>;

/// The customer-code pattern of every biller of the run (Ho Chi Minh City power customers).
pub(crate) const PATTERN: &str = "PE[0-9]{11}";
/// Requests in flight while setting up.
const SETUP_IN_FLIGHT: usize = 8;
/// Bills one customer may have: a lookup shows at most 100 outstanding ones.
const BILLS_PER_CUSTOMER_MAX: u64 = 100;
/// Failures whose cause is printed (the rest are counted).
const ERRORS_PRINTED_MAX: u64 = 10;
/// The refusal the losing payer of a race must get.
const BILL_PAID: &str = "BILL_PAID";

#[derive(clap::Args)]
pub struct BillsRun {
    #[arg(long, default_value = "127.0.0.1:50054")]
    billing_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:50052")]
    merchant_addr: SocketAddr,
    #[command(flatten)]
    access: Access,
    /// Bills loaded, spread evenly over the billers.
    #[arg(long, default_value_t = 1_000_000)]
    bills: usize,
    #[arg(long, default_value_t = 2)]
    billers: usize,
    /// Customers per biller (fewer when a biller has fewer bills); each has its bills in
    /// consecutive periods.
    #[arg(long, default_value_t = 100_000)]
    customers: usize,
    /// Bills per UpsertBills message.
    #[arg(long, default_value_t = 1_000)]
    bills_per_message: usize,
    /// Bills per UpsertBills stream: one transaction, which must end within the server's
    /// request deadline (server.request_timeout_ms, 10 s by default).
    #[arg(long, default_value_t = 50_000)]
    bills_per_stream: usize,
    /// UpsertBills streams in flight.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Lookups offered per second (open loop).
    #[arg(long, default_value_t = 5_000)]
    lookup_rate: usize,
    /// Most lookups in flight; past it, the next ones wait (their latency counts the wait).
    #[arg(long, default_value_t = 4_096)]
    lookups_in_flight: usize,
    /// Seconds of measured lookups, and of measured payments (each after a 2-second warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Concurrent paying clients, each with one payment in flight.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// HTTP/2 connections to the billing service.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Percent of payments that race another channel for the same bill.
    #[arg(long, default_value_t = 5.0)]
    collisions: f64,
}

/// The tokens and the database a run with payer channels needs (read from the environment
/// by the scripts, not given on the command line).
#[derive(clap::Args)]
pub(crate) struct Access {
    /// An operator's token (onboards and approves merchants, sets policies, loads bills).
    #[arg(long, env = "PAYMESH_LOAD_OPERATOR_TOKEN", hide_env_values = true)]
    pub(crate) operator_token: String,
    /// Payer channels' tokens (`channel:{id}`), comma-separated; clients take them in turn (a
    /// racing payment comes from the next one).
    #[arg(
        long,
        env = "PAYMESH_LOAD_CHANNEL_TOKENS",
        hide_env_values = true,
        value_delimiter = ',',
        required = true
    )]
    pub(crate) channel_tokens: Vec<String>,
    /// The mesh's PostgreSQL (read after the run: no bill paid twice, and more).
    #[arg(long, env = "PAYMESH_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: String,
}

impl Access {
    /// The operator's call context, and one per channel.
    pub(crate) fn contexts(&self) -> anyhow::Result<(CallContext, Vec<CallContext>)> {
        let channels = self
            .channel_tokens
            .iter()
            .map(|t| CallContext::with_token(t.trim()))
            .collect::<anyhow::Result<_>>()?;
        Ok((CallContext::with_token(&self.operator_token)?, channels))
    }
}

/// The channels' billing clients: client k on connection k mod connections, as channel k mod
/// channels.
pub(crate) fn channel_clients(connections: &[Channel], channels: &[CallContext]) -> Vec<Billing> {
    (0..connections.len().max(channels.len()))
        .map(|k| {
            BillingServiceClient::with_interceptor(
                connections[k % connections.len()].clone(),
                channels[k % channels.len()].clone(),
            )
        })
        .collect()
}

/// SplitMix64: enough randomness to pick customers, without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn seeded() -> Rng {
        let bytes = Id128::random().to_bytes();
        Rng(u64::from_le_bytes(bytes[..8].try_into().unwrap_or([7; 8])))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn keyed<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    with_key(&mut r);
    r
}

fn with_key<T>(r: &mut tonic::Request<T>) {
    if let Ok(key) = Id128::random().to_string().parse() {
        r.metadata_mut().insert("idempotency-key", key);
    }
}

fn application(run: u64, i: usize, water: bool) -> mpb::MerchantApplication {
    let (name, category) = if water {
        (
            format!("Công ty Cổ phần Cấp nước Tải thử {i}"),
            mpb::BillerCategory::Water,
        )
    } else {
        (
            format!("Công ty Điện lực Tải thử {i}"),
            mpb::BillerCategory::Electricity,
        )
    };
    mpb::MerchantApplication {
        business_name: name,
        trading_name: String::new(),
        tax_code: crate::tax_code("03", run, i),
        owner_citizen_id: String::new(),
        phone: "+84 912 345 678".into(),
        address: "194 Pasteur, Q.3, TP. Hồ Chí Minh".into(),
        market_name: String::new(),
        stall_number: String::new(),
        mcc: "4900".into(),
        biller_category: category as i32,
        settlement_bank_bin: "970418".into(),
        settlement_account_number: "12010000123456".into(),
    }
}

/// A biller of the run and how its bills are laid out.
pub(crate) struct Biller {
    pub(crate) id: String,
    water: bool,
    /// Its bills: indices `0..bills`.
    bills: u64,
    /// Its customers with bills: bill `w` is customer `w % customers`'s `w / customers`-th.
    pub(crate) customers: u64,
}

const NAMES: [&str; 8] = [
    "Nguyễn Văn An",
    "Trần Thị Bình",
    "Lê Hoàng Cường",
    "Phạm Thị Dung",
    "Hoàng Minh Đức",
    "Võ Thị Hạnh",
    "Đặng Quốc Khánh",
    "Bùi Thị Lan",
];

/// Every bill of the run, derived from (biller, index): run-wide bill `j` is bill `j / billers`
/// of biller `j % billers`.
pub(crate) struct Book {
    pub(crate) billers: Vec<Biller>,
    pub(crate) bills: u64,
    issue: String,
    due: String,
    /// This month as `year * 12 + month - 1`: a customer's `k`-th bill is `k` months before.
    month: i32,
}

/// One bill as the payer sees it.
pub(crate) struct Wanted {
    pub(crate) customer: String,
    pub(crate) number: String,
}

impl Book {
    pub(crate) fn new(
        billers: Vec<(String, bool)>,
        bills: u64,
        customers: u64,
    ) -> anyhow::Result<Book> {
        let n = billers.len() as u64;
        let billers: Vec<Biller> = billers
            .into_iter()
            .enumerate()
            .map(|(b, (id, water))| {
                let count = (bills + n - 1 - b as u64) / n;
                Biller {
                    id,
                    water,
                    bills: count,
                    customers: customers.min(count).max(1),
                }
            })
            .collect();
        for b in &billers {
            let per_customer = b.bills.div_ceil(b.customers);
            anyhow::ensure!(
                per_customer <= BILLS_PER_CUSTOMER_MAX,
                "{per_customer} bills per customer: a lookup shows at most {BILLS_PER_CUSTOMER_MAX}; \
                 raise --customers"
            );
        }
        let today = Date::today_in_vietnam();
        let (y, m, _) = today.civil();
        Ok(Book {
            billers,
            bills,
            issue: today.plus_days(-5).to_string(),
            due: today.plus_days(25).to_string(),
            month: y * 12 + m as i32 - 1,
        })
    }

    /// Run-wide bill `j`: (biller, its index there).
    pub(crate) fn at(&self, j: u64) -> (usize, u64) {
        let n = self.billers.len() as u64;
        ((j % n) as usize, j / n)
    }

    pub(crate) fn customer_code(c: u64) -> String {
        format!("PE{c:011}")
    }

    pub(crate) fn wanted(&self, b: usize, w: u64) -> Wanted {
        let biller = &self.billers[b];
        let (c, k) = (w % biller.customers, w / biller.customers);
        Wanted {
            customer: Book::customer_code(c),
            number: format!("HD{k:02}{c:011}"),
        }
    }

    fn input(&self, b: usize, w: u64) -> pb::BillInput {
        let biller = &self.billers[b];
        let (c, k) = (w % biller.customers, w / biller.customers);
        let month = self.month - k as i32;
        let period = format!("{:04}-{:02}", month / 12, month % 12 + 1);
        let amount = 20_000 + ((w * 7_919 + b as u64 * 104_729) % 19_800) * 100;
        let what = if biller.water {
            "Tiền nước"
        } else {
            "Tiền điện"
        };
        pb::BillInput {
            customer_code: Book::customer_code(c),
            bill_number: format!("HD{k:02}{c:011}"),
            description: format!("{what} kỳ {period}"),
            period,
            amount_due: amount.to_string(),
            issue_date: self.issue.clone(),
            due_date: self.due.clone(),
            customer_name: NAMES[(c % NAMES.len() as u64) as usize].into(),
        }
    }
}

/// Onboards, approves and gives a policy to `billers` billers.
pub(crate) async fn set_up(
    merchant_addr: SocketAddr,
    billing_addr: SocketAddr,
    billers: usize,
    operator: &CallContext,
) -> anyhow::Result<Vec<(String, bool)>> {
    let merchants = MerchantServiceClient::with_interceptor(
        channel(&merchant_addr.to_string())?,
        operator.clone(),
    );
    let billing = BillingServiceClient::with_interceptor(
        channel(&billing_addr.to_string())?,
        operator.clone(),
    );
    let run_id = u64::from_le_bytes(Id128::random().to_bytes()[..8].try_into().unwrap_or([0; 8]));
    let started = Instant::now();
    let billers: Vec<(usize, String, bool)> = futures::stream::iter(0..billers)
        .map(|i| {
            let (mut merchants, mut billing) = (merchants.clone(), billing.clone());
            let water = i % 2 == 0;
            async move {
                let m = merchants
                    .onboard_merchant(keyed(mpb::OnboardMerchantRequest {
                        kind: mpb::MerchantKind::Biller as i32,
                        application: Some(application(run_id, i, water)),
                        ..Default::default()
                    }))
                    .await
                    .context("onboarding a biller")?
                    .into_inner();
                let m = merchants
                    .approve_merchant(keyed(mpb::ApproveMerchantRequest {
                        merchant_id: m.id.clone(),
                        reason: "load test".into(),
                        etag: m.etag,
                    }))
                    .await
                    .context("approving a biller")?
                    .into_inner();
                billing
                    .set_biller_policy(keyed(pb::SetBillerPolicyRequest {
                        policy: Some(pb::BillerPolicy {
                            biller_id: m.id.clone(),
                            customer_code_pattern: PATTERN.into(),
                            amount_rule: pb::AmountRule::Exact as i32,
                            ..Default::default()
                        }),
                    }))
                    .await
                    .context("setting a biller's policy")?;
                anyhow::Ok((i, m.id, water))
            }
        })
        .buffer_unordered(SETUP_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut billers = billers;
    billers.sort_by_key(|(i, _, _)| *i);
    eprintln!(
        "set-up: {} billers onboarded, approved, with a policy ({PATTERN}, EXACT) in {:.1} s",
        billers.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(billers.into_iter().map(|(_, id, w)| (id, w)).collect())
}

/// What the load phase did.
pub(crate) struct Loaded {
    pub(crate) loaded: u64,
    pub(crate) streams: usize,
    pub(crate) elapsed: Duration,
    pub(crate) stream_max: Duration,
}

/// How bills are loaded: bills per stream (one transaction), per message, streams in flight.
#[derive(Clone, Copy)]
pub(crate) struct Loading {
    pub(crate) per_stream: usize,
    pub(crate) per_message: usize,
    pub(crate) streams: usize,
}

/// Loads every bill of the book: streams of `per_stream` bills, `streams` at a time.
pub(crate) async fn load(
    how: Loading,
    book: &Arc<Book>,
    clients: &[Billing],
) -> anyhow::Result<Loaded> {
    let per_stream = how.per_stream as u64;
    let per_message = how.per_message;
    let plan: Vec<(usize, u64, u64)> = book
        .billers
        .iter()
        .enumerate()
        .flat_map(|(b, biller)| {
            (0..biller.bills)
                .step_by(how.per_stream)
                .map(move |from| (b, from, (from + per_stream).min(biller.bills)))
        })
        .collect();
    let streams = plan.len();
    let started = Instant::now();
    let answers: Vec<(pb::UpsertBillsResponse, Duration)> =
        futures::stream::iter(plan.into_iter().enumerate())
            .map(|(s, (b, from, to))| {
                let mut client = clients[s % clients.len()].clone();
                let book = book.clone();
                async move {
                    let biller_id = book.billers[b].id.clone();
                    let messages =
                        futures::stream::iter((from..to).step_by(per_message).map(move |start| {
                            let end = (start + per_message as u64).min(to);
                            pb::UpsertBillsRequest {
                                // The first message names the biller; the others leave it empty.
                                biller_id: if start == from {
                                    biller_id.clone()
                                } else {
                                    String::new()
                                },
                                bills: (start..end).map(|w| book.input(b, w)).collect(),
                            }
                        }));
                    let mut request = tonic::Request::new(messages);
                    with_key(&mut request);
                    let began = Instant::now();
                    let answer = client
                        .upsert_bills(request)
                        .await
                        .with_context(|| {
                            format!("UpsertBills of bills {from}..{to} of biller {b}")
                        })?
                        .into_inner();
                    anyhow::Ok((answer, began.elapsed()))
                }
            })
            .buffer_unordered(how.streams)
            .try_collect()
            .await?;
    let elapsed = started.elapsed();
    let mut loaded = 0;
    let mut rejected = 0;
    let mut first_rejection = None;
    for (a, _) in &answers {
        loaded += a.loaded;
        rejected += a.rejected_count + a.unchanged + a.adjusted;
        if first_rejection.is_none() {
            first_rejection = a
                .rejected
                .first()
                .map(|r| format!("{}: {}", r.bill_number, r.reason));
        }
    }
    anyhow::ensure!(
        loaded == book.bills && rejected == 0,
        "loaded {loaded} of {} bills, {rejected} rejected, unchanged or adjusted (first: {})",
        book.bills,
        first_rejection.unwrap_or_default()
    );
    Ok(Loaded {
        loaded,
        streams,
        elapsed,
        stream_max: answers.iter().map(|(_, d)| *d).max().unwrap_or_default(),
    })
}

/// What the lookup phase measured.
struct Looked {
    hist: Histogram<u64>,
    /// From each lookup's due time to the moment its task ran (the generator's own lateness).
    send_lag: Histogram<u64>,
    ok: u64,
    failed: u64,
    elapsed: Duration,
}

/// Prints the first failures' causes.
pub(crate) fn report_error(printed: &AtomicU64, what: &str, e: &anyhow::Error) {
    if printed.fetch_add(1, Ordering::Relaxed) < ERRORS_PRINTED_MAX {
        eprintln!("{what} failed: {e:#}");
    }
}

/// What the lookup tasks record, shared by all of them.
struct Tally {
    hist: Mutex<Histogram<u64>>,
    /// From each lookup's due time to the moment its task ran (the generator's own lateness).
    send_lag: Mutex<Histogram<u64>>,
    ok: AtomicU64,
    failed: AtomicU64,
    printed: AtomicU64,
    last_done: Mutex<tokio::time::Instant>,
    /// At most `--lookups-in-flight` lookups at once.
    slots: Arc<tokio::sync::Semaphore>,
}

/// `--lookup-rate` lookups a second, each at its time whatever the others do.
///
/// The lookups are released by a thread of their own that sleeps until each one's due time:
/// tokio's timer ticks once a millisecond, so paced by it they went out in bursts at each tick,
/// up to a millisecond late, and that lateness counted in their latency. The lag from the due
/// time to the moment a lookup's task runs is measured (`send_lag`) and stays in the latency.
async fn lookups(run: &BillsRun, book: &Arc<Book>, clients: &[Billing]) -> anyhow::Result<Looked> {
    let rate = run.lookup_rate as f64;
    let measured = Duration::from_secs(run.seconds).min(DURATION_MAX);
    let warm_n = (rate * WARM_UP.as_secs_f64()) as u64;
    let total = warm_n + (rate * measured.as_secs_f64()) as u64;
    let in_flight = u32::try_from(run.lookups_in_flight)?;
    let tally = Arc::new(Tally {
        hist: Mutex::new(histogram()?),
        send_lag: Mutex::new(histogram()?),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        printed: AtomicU64::new(0),
        last_done: Mutex::new(tokio::time::Instant::now()),
        slots: Arc::new(tokio::sync::Semaphore::new(run.lookups_in_flight)),
    });
    let start = std::time::Instant::now();
    let measure_from = tokio::time::Instant::from_std(start + WARM_UP);
    let runtime = tokio::runtime::Handle::current();
    let (book, clients, shared) = (book.clone(), clients.to_vec(), tally.clone());
    let pacer = std::thread::spawn(move || {
        let mut rng = Rng::seeded();
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            let now = std::time::Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let b = rng.below(book.billers.len() as u64) as usize;
            let customer = Book::customer_code(rng.below(book.billers[b].customers));
            let request = pb::LookupBillsRequest {
                biller_id: book.billers[b].id.clone(),
                customer_code: customer,
            };
            let mut client = clients[i as usize % clients.len()].clone();
            let tally = shared.clone();
            runtime.spawn(async move {
                let Ok(slot) = tally.slots.clone().acquire_owned().await else {
                    return;
                };
                let sent = due.elapsed();
                let answer = client.lookup_bills(request).await;
                let latency = due.elapsed();
                let good = match answer {
                    Ok(a)
                        if !a.get_ref().bills.is_empty()
                            && !a.get_ref().lookup_reference.is_empty() =>
                    {
                        true
                    }
                    Ok(_) => {
                        let e = anyhow::anyhow!("no bill found");
                        report_error(&tally.printed, "a lookup", &e);
                        false
                    }
                    Err(s) => {
                        report_error(&tally.printed, "a lookup", &anyhow::Error::new(s));
                        false
                    }
                };
                if !good {
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                } else if i >= warm_n {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut h) = tally.hist.lock() {
                        let _ = h.record((latency.as_micros() as u64).max(1));
                    }
                    if let Ok(mut h) = tally.send_lag.lock() {
                        let _ = h.record((sent.as_micros() as u64).max(1));
                    }
                }
                if i >= warm_n
                    && let Ok(mut last) = tally.last_done.lock()
                {
                    *last = (*last).max(tokio::time::Instant::now());
                }
                drop(slot);
            });
        }
    });
    // The pacer only sleeps and spawns; waiting for it off the runtime's threads.
    tokio::task::spawn_blocking(move || pacer.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the lookup pacer panicked"))?;
    // Every lookup answered: all the slots back.
    let _all = tally.slots.acquire_many(in_flight).await?;
    let elapsed = tally
        .last_done
        .lock()
        .map(|last| last.saturating_duration_since(measure_from))
        .unwrap_or(measured)
        .max(measured);
    let copy = |h: &Mutex<Histogram<u64>>| h.lock().map(|h| h.clone()).ok();
    Ok(Looked {
        hist: copy(&tally.hist).map_or_else(histogram, Ok)?,
        send_lag: copy(&tally.send_lag).map_or_else(histogram, Ok)?,
        ok: tally.ok.load(Ordering::Relaxed),
        failed: tally.failed.load(Ordering::Relaxed),
        elapsed,
    })
}

/// How one payment ended, when it did not fail.
enum Paid {
    /// Paid in one PayBill, which took this long.
    Alone(Duration),
    /// Raced by another channel: one paid (this long), the other refused BILL_PAID.
    Raced(Duration),
}

/// Looks `bill` up as `client`, and answers the lookup reference and the amount it shows.
pub(crate) async fn look_up(
    client: &mut Billing,
    biller: &str,
    bill: &Wanted,
) -> anyhow::Result<(String, paymesh_proto::common::v1::Money)> {
    let found = client
        .lookup_bills(pb::LookupBillsRequest {
            biller_id: biller.into(),
            customer_code: bill.customer.clone(),
        })
        .await
        .context("LookupBills")?
        .into_inner();
    let amount = found
        .bills
        .iter()
        .find(|b| b.bill_number == bill.number)
        .and_then(|b| b.amount_due_now.clone())
        .with_context(|| format!("bill {} is not outstanding", bill.number))?;
    Ok((found.lookup_reference, amount))
}

pub(crate) async fn pay(
    client: &mut Billing,
    lookup_reference: String,
    number: &str,
    amount: paymesh_proto::common::v1::Money,
    reference: String,
) -> Result<(pb::PayBillResponse, Duration), tonic::Status> {
    let started = Instant::now();
    let answer = client
        .pay_bill(keyed(pb::PayBillRequest {
            lookup_reference,
            bills: vec![pb::BillAmount {
                bill_number: number.into(),
                amount: Some(amount),
            }],
            channel_reference: reference,
        }))
        .await?
        .into_inner();
    Ok((answer, started.elapsed()))
}

pub(crate) fn paid_in_full(answer: &pb::PayBillResponse) -> anyhow::Result<()> {
    anyhow::ensure!(
        answer.payments.len() == 1 && answer.payments[0].bill_status == pb::BillStatus::Paid as i32,
        "the payment did not leave its bill PAID: {answer:?}"
    );
    Ok(())
}

pub(crate) fn reason(status: &tonic::Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default()
}

/// Counters of the payment phase.
#[derive(Default)]
struct Payments {
    measuring: AtomicBool,
    stop: AtomicBool,
    /// Within the measured window.
    ok: AtomicU64,
    refused: AtomicU64,
    /// All of the run, warm-up included (the database check counts them).
    ok_total: AtomicU64,
    refused_total: AtomicU64,
    failed: AtomicU64,
    /// Both payers of a race succeeded.
    double_paid: AtomicU64,
    /// Clients that ran out of unpaid bills.
    exhausted: AtomicU64,
    printed: AtomicU64,
}

/// What every paying client shares.
struct Payers {
    clients: usize,
    book: Arc<Book>,
    state: Payments,
    collide_per_10k: u64,
    tag: String,
}

/// Pays `bill` once: a lookup, then PayBill quoting it.
async fn alone(
    client: &mut Billing,
    biller: &str,
    bill: &Wanted,
    reference: String,
) -> anyhow::Result<Paid> {
    let (lookup_reference, amount) = look_up(client, biller, bill).await?;
    let (answer, took) = pay(client, lookup_reference, &bill.number, amount, reference)
        .await
        .context("PayBill")?;
    paid_in_full(&answer)?;
    Ok(Paid::Alone(took))
}

/// Two channels look `bill` up, then pay it at the same moment: one must pay it, the other be
/// refused BILL_PAID.
async fn race(
    state: &Payments,
    mine: &mut Billing,
    rival: &mut Billing,
    biller: &str,
    bill: &Wanted,
    reference: String,
) -> anyhow::Result<Paid> {
    let (a, r) =
        futures::future::join(look_up(mine, biller, bill), look_up(rival, biller, bill)).await;
    let ((ref_a, amount_a), (ref_r, amount_r)) = (a?, r?);
    let rival_reference = format!("{reference}-R");
    let (a, r) = futures::future::join(
        pay(mine, ref_a, &bill.number, amount_a, reference),
        pay(rival, ref_r, &bill.number, amount_r, rival_reference),
    )
    .await;
    match (a, r) {
        (Ok(_), Ok(_)) => {
            state.double_paid.fetch_add(1, Ordering::Relaxed);
            anyhow::bail!("bill {} was paid by both racing channels", bill.number)
        }
        (Ok((answer, took)), Err(s)) | (Err(s), Ok((answer, took)))
            if s.code() == tonic::Code::FailedPrecondition && reason(&s) == BILL_PAID =>
        {
            paid_in_full(&answer)?;
            Ok(Paid::Raced(took))
        }
        (Ok(_), Err(s)) | (Err(s), Ok(_)) => {
            Err(anyhow::Error::new(s)
                .context(format!("the race's loser was not refused {BILL_PAID}")))
        }
        (Err(a), Err(r)) => Err(anyhow::anyhow!("neither racing channel paid: {a:?}; {r:?}")),
    }
}

/// Paying client `i`: bills `i`, `i + clients`, `i + 2 × clients`… of the book, one at a time,
/// some raced by the next channel. Answers its latencies: lookup and payment, and PayBill.
async fn payer(
    i: usize,
    mut mine: Billing,
    mut rival: Billing,
    payers: Arc<Payers>,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let (book, state) = (&payers.book, &payers.state);
    let mut flow = histogram()?;
    let mut paying = histogram()?;
    let mut rng = Rng::seeded();
    let mut n = 0u64;
    while !state.stop.load(Ordering::Relaxed) {
        let j = i as u64 + n * payers.clients as u64;
        n += 1;
        if j >= book.bills {
            state.exhausted.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let (b, w) = book.at(j);
        let bill = book.wanted(b, w);
        let biller = &book.billers[b].id;
        let reference = format!("{}-{i}-{n}", payers.tag);
        let started = Instant::now();
        let outcome = if rng.below(10_000) < payers.collide_per_10k {
            race(state, &mut mine, &mut rival, biller, &bill, reference).await
        } else {
            alone(&mut mine, biller, &bill, reference).await
        };
        let took_all = started.elapsed();
        let measuring = state.measuring.load(Ordering::Relaxed);
        match outcome {
            Ok(paid) => {
                state.ok_total.fetch_add(1, Ordering::Relaxed);
                let took = match paid {
                    Paid::Alone(t) => t,
                    Paid::Raced(t) => {
                        state.refused_total.fetch_add(1, Ordering::Relaxed);
                        if measuring {
                            state.refused.fetch_add(1, Ordering::Relaxed);
                        }
                        t
                    }
                };
                if measuring {
                    state.ok.fetch_add(1, Ordering::Relaxed);
                    let _ = flow.record((took_all.as_micros() as u64).max(1));
                    let _ = paying.record((took.as_micros() as u64).max(1));
                }
            }
            Err(e) => {
                state.failed.fetch_add(1, Ordering::Relaxed);
                report_error(&state.printed, "a payment", &e);
            }
        }
    }
    Ok((flow, paying))
}

/// What the database says about the run's bills.
pub(crate) struct Audit {
    pub(crate) bills: i64,
    pub(crate) paid_bills: i64,
    pub(crate) payments: i64,
    pub(crate) double_paid: i64,
    pub(crate) mismatched: i64,
}

pub(crate) async fn audit(database_url: &str, book: &Book) -> anyhow::Result<Audit> {
    let mut db = sqlx::PgConnection::connect(database_url)
        .await
        .context("connecting to the mesh's database (--database-url)")?;
    let ids: Vec<String> = book.billers.iter().map(|b| b.id.clone()).collect();
    let (bills, paid_bills, payments, double_paid, mismatched): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "WITH paid AS ( \
               SELECT bill_id, count(*) AS n, sum(amount)::int8 AS s FROM billing.payments \
               GROUP BY bill_id) \
             SELECT count(*), \
               count(*) FILTER (WHERE b.status = 'PAID'), \
               coalesce(sum(paid.n), 0)::int8, \
               count(*) FILTER (WHERE pol.amount_rule = 'EXACT' AND paid.n > 1), \
               count(*) FILTER (WHERE b.amount_paid <> coalesce(paid.s, 0)) \
             FROM billing.bills b \
             JOIN billing.policies pol ON pol.biller_id = b.biller_id \
             LEFT JOIN paid ON paid.bill_id = b.id \
             WHERE b.biller_id = ANY($1::text[]::uuid[])",
        )
        .bind(ids)
        .fetch_one(&mut db)
        .await
        .context("reading the run's bills and payments")?;
    let _ = db.close().await;
    Ok(Audit {
        bills,
        paid_bills,
        payments,
        double_paid,
        mismatched,
    })
}

pub async fn bills(run: BillsRun) -> anyhow::Result<()> {
    for addr in [run.billing_addr, run.merchant_addr] {
        check(
            addr,
            &[
                ("--bills", run.bills, 10_000_000),
                ("--billers", run.billers, 100),
                ("--customers", run.customers, 10_000_000),
                ("--bills-per-message", run.bills_per_message, 10_000),
                ("--bills-per-stream", run.bills_per_stream, 1_000_000),
                ("--streams", run.streams, 64),
                ("--lookup-rate", run.lookup_rate, 100_000),
                ("--lookups-in-flight", run.lookups_in_flight, 65_536),
                ("--clients", run.clients, 1024),
                ("--connections", run.connections, 64),
                ("channel tokens", run.access.channel_tokens.len(), 1024),
            ],
        )?;
    }
    anyhow::ensure!(
        run.bills >= run.billers,
        "--bills must be at least --billers"
    );
    anyhow::ensure!(
        (0.0..=50.0).contains(&run.collisions),
        "--collisions must be 0..=50 (percent)"
    );
    anyhow::ensure!(
        run.seconds >= 1 && Duration::from_secs(run.seconds) <= DURATION_MAX,
        "--seconds must be 1..={}",
        DURATION_MAX.as_secs()
    );
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (operator, channels) = run.access.contexts()?;
    let connections: Vec<Channel> = (0..run.connections)
        .map(|_| channel(&run.billing_addr.to_string()))
        .collect::<anyhow::Result<_>>()?;
    let as_channels = channel_clients(&connections, &channels);
    let as_operator: Vec<Billing> = connections
        .iter()
        .map(|c| BillingServiceClient::with_interceptor(c.clone(), operator.clone()))
        .collect();

    let billers = set_up(run.merchant_addr, run.billing_addr, run.billers, &operator).await?;
    let book = Arc::new(Book::new(billers, run.bills as u64, run.customers as u64)?);
    let customers_max = book.billers.iter().map(|b| b.customers).max().unwrap_or(0);

    // 1. The load.
    eprintln!(
        "== load: {} bills, {} per message, {} per stream, {} streams in flight ==",
        run.bills, run.bills_per_message, run.bills_per_stream, run.streams
    );
    let loading = Loading {
        per_stream: run.bills_per_stream,
        per_message: run.bills_per_message,
        streams: run.streams,
    };
    let loaded = load(loading, &book, &as_operator).await?;
    println!(
        "RESULT label=bills-load bills_per_s={:.0} loaded={} rejected=0 billers={} customers_per_biller={customers_max} \
         bills_per_message={} bills_per_stream={} streams={} streams_in_flight={} stream_max_s={:.2} \
         seconds={:.1} cores={cores}",
        loaded.loaded as f64 / loaded.elapsed.as_secs_f64(),
        loaded.loaded,
        book.billers.len(),
        run.bills_per_message,
        run.bills_per_stream,
        loaded.streams,
        run.streams,
        loaded.stream_max.as_secs_f64(),
        loaded.elapsed.as_secs_f64(),
    );

    // 2. Lookups, open loop.
    eprintln!(
        "== lookups: {}/s offered for {}s after a {}s warm-up ==",
        run.lookup_rate,
        run.seconds,
        WARM_UP.as_secs()
    );
    let looked = lookups(&run, &book, &as_channels).await?;
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "RESULT label=bills-lookup offered_per_s={} achieved_per_s={:.0} ok={} failed={} lookup_p50_ms={:.2} \
         lookup_p95_ms={:.2} lookup_p99_ms={:.2} lookup_max_ms={:.2} send_lag_p99_ms={:.2} in_flight_max={} connections={} channels={} \
         bills={} customers_per_biller={customers_max} seconds={:.1} cores={cores}",
        run.lookup_rate,
        looked.ok as f64 / looked.elapsed.as_secs_f64(),
        looked.ok,
        looked.failed,
        ms(&looked.hist, 0.5),
        ms(&looked.hist, 0.95),
        ms(&looked.hist, 0.99),
        looked.hist.max() as f64 / 1000.0,
        ms(&looked.send_lag, 0.99),
        run.lookups_in_flight,
        run.connections,
        channels.len(),
        book.bills,
        looked.elapsed.as_secs_f64(),
    );

    // 3. Payments, closed loop.
    eprintln!(
        "== payments: {} clients, {} channels, {}% raced, {}s after a {}s warm-up ==",
        run.clients,
        channels.len(),
        run.collisions,
        run.seconds,
        WARM_UP.as_secs()
    );
    let payers = Arc::new(Payers {
        clients: run.clients,
        book: book.clone(),
        state: Payments::default(),
        collide_per_10k: (run.collisions * 100.0).round() as u64,
        tag: Id128::random().to_string()[..8].to_uppercase(),
    });
    let state = &payers.state;
    let tasks: Vec<_> = (0..run.clients)
        .map(|i| {
            let mine = as_channels[i % as_channels.len()].clone();
            // The rival pays from the next channel (the same one if there is only one).
            let rival = as_channels[(i + 1) % as_channels.len()].clone();
            tokio::spawn(payer(i, mine, rival, payers.clone()))
        })
        .collect();
    tokio::time::sleep(WARM_UP).await;
    state.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(run.seconds).min(DURATION_MAX)).await;
    state.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    state.stop.store(true, Ordering::Relaxed);
    let mut flow = histogram()?;
    let mut paying = histogram()?;
    for t in tasks {
        let (f, p) = t.await??;
        flow.add(f)?;
        paying.add(p)?;
    }
    let ok = state.ok.load(Ordering::Relaxed);
    let refused = state.refused.load(Ordering::Relaxed);
    let failed = state.failed.load(Ordering::Relaxed);
    let exhausted = state.exhausted.load(Ordering::Relaxed);
    println!(
        "RESULT label=bills-pay payments_per_s={:.0} ok={ok} refused_expected={refused} failed={failed} \
         pay_p50_ms={:.2} pay_p99_ms={:.2} pay_max_ms={:.2} flow_p50_ms={:.2} flow_p99_ms={:.2} clients={} \
         channels={} connections={} raced_pct={} bills={} seconds={:.1} cores={cores}",
        ok as f64 / elapsed.as_secs_f64(),
        ms(&paying, 0.5),
        ms(&paying, 0.99),
        paying.max() as f64 / 1000.0,
        ms(&flow, 0.5),
        ms(&flow, 0.99),
        run.clients,
        channels.len(),
        run.connections,
        run.collisions,
        book.bills,
        elapsed.as_secs_f64(),
    );

    // 4. No bill paid twice, as the database has it.
    let a = audit(&run.access.database_url, &book).await?;
    let ok_total = state.ok_total.load(Ordering::Relaxed) as i64;
    let refused_total = state.refused_total.load(Ordering::Relaxed);
    let double_paid_seen = state.double_paid.load(Ordering::Relaxed);
    let held = a.double_paid == 0
        && a.mismatched == 0
        && double_paid_seen == 0
        && a.payments == ok_total
        && a.paid_bills == ok_total
        && a.bills == book.bills as i64;
    println!(
        "CHECK bills={} paid_bills={} payments={} client_payments={ok_total} races_refused={refused_total} \
         paid_twice={} sum_mismatch={} races_both_paid={double_paid_seen} no_double_pay={}",
        a.bills,
        a.paid_bills,
        a.payments,
        a.double_paid,
        a.mismatched,
        if held { "ok" } else { "VIOLATED" },
    );
    anyhow::ensure!(
        held,
        "no-double-pay check failed: {} bills paid more than once, {} whose payments do not sum to \
         amount_paid, {double_paid_seen} races both paid, {} payments and {} paid bills stored for \
         {ok_total} payments the clients saw, {} of {} bills stored",
        a.double_paid,
        a.mismatched,
        a.payments,
        a.paid_bills,
        a.bills,
        book.bills
    );
    anyhow::ensure!(
        looked.failed == 0 && failed == 0,
        "{} lookups and {failed} payments failed",
        looked.failed
    );
    anyhow::ensure!(
        exhausted == 0,
        "{exhausted} clients ran out of unpaid bills: raise --bills"
    );
    Ok(())
}
