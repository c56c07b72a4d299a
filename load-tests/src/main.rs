//! paymesh-load: a bounded load generator for paymesh services, loopback only.
//!
//! `paymesh-load ledger` opens one hot clearing account and many merchant accounts, then N
//! clients post transfers (clearing → merchant) for a fixed time, each RPC carrying one
//! transfer (`--batch 1`) or many. Every transfer touches the one hot account: the case where
//! a ledger that locks a row per transfer collapses. It prints its conditions (cores, data
//! size, concurrency) with every figure, and stops by itself.
//!
//! `paymesh-load payments` notifies bank credits through the payment service's whole path (see
//! [`payments`]).
//!
//! `paymesh-load bills` loads bills in bulk, looks them up open-loop and pays them from payer
//! channels, some racing for the same bill, then checks that no bill was paid twice (see
//! [`bills`]).
//!
//! `paymesh-load health` calls `grpc.health.v1.Health/Check` the same way: a unary RPC that
//! does nothing, the most one-RPC-per-transfer could ever reach on this machine (the
//! single-transfer scenario's ceiling).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use paymesh_money::Id128;
use paymesh_platform::client::{CallContext, channel};
use paymesh_proto::common::v1::Money;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;

mod bills;
mod faults;
mod payments;
mod province;
mod recon;

/// Longest run allowed, whatever is asked.
pub(crate) const DURATION_MAX: Duration = Duration::from_secs(300);
/// Most transfers one run may send, whatever is asked.
const TRANSFERS_MAX: u64 = 50_000_000;

#[derive(Parser)]
#[command(name = "paymesh-load")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Transfers that all debit one hot clearing account.
    Ledger(LedgerRun),
    /// A no-op unary RPC (health Check): the ceiling of one RPC per transfer.
    Health(HealthRun),
    /// Bank credit notifications through the payment service, with watchers and webhooks.
    Payments(payments::PaymentsRun),
    /// Bill payment: bulk loads, open-loop lookups, payments from channels (some racing), and
    /// the no-double-pay check.
    Bills(bills::BillsRun),
    /// Reconciliation: a bank's statement of N lines with planted breaks imported and matched
    /// against N bookings, in-process on PostgreSQL; its counts checked.
    Recon(recon::ReconRun),
    /// A day's camt.053 of N entries rendered and stored as a window's close does.
    Camt(recon::CamtRun),
    /// A province's day: QR payments, bills, refunds and watchers open loop, the settlement
    /// window closed early in the middle; a table per RPC and the checks (see [`province`]).
    Province(province::ProvinceRun),
    /// Faults under load (PostgreSQL crashed and paused, Redis flushed, each service kill -9ed,
    /// the webhook receiver dropped), each followed by the no-loss checks (see [`faults`]).
    Faults(Box<faults::FaultsRun>),
}

#[derive(clap::Args)]
struct HealthRun {
    /// Any paymesh gRPC address (health needs no token); must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Seconds of measured load (after a 2-second warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

/// How transfer ids are chosen.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Ids {
    /// 128 random bits: every insert lands on a random page of the primary key.
    Random,
    /// Nanoseconds then random bits (ULID-like): inserts land at the key's right edge.
    TimeOrdered,
}

#[derive(clap::Args)]
struct LedgerRun {
    /// Ledger gRPC address; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// Bearer token (a service or operator principal).
    #[arg(long, env = "PAYMESH_LOAD_TOKEN")]
    token: String,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Transfers per CreateTransfers call.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// HTTP/2 connections the clients share.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Merchant accounts credited (the debit side is always the one clearing account).
    #[arg(long, default_value_t = 1000)]
    merchants: usize,
    /// Seconds of measured load (after a 2-second warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// How transfer ids are chosen.
    #[arg(long, value_enum, default_value_t = Ids::Random)]
    ids: Ids,
    /// Label printed with the result.
    #[arg(long, default_value = "")]
    label: String,
}

/// Seconds of load before measuring starts.
pub(crate) const WARM_UP: Duration = Duration::from_secs(2);

type Client = LedgerServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, CallContext>,
>;

/// The same allocator as the `paymesh` binary, so the load generator costs the machine as
/// little as it can.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.scenario {
            Scenario::Ledger(run) => ledger(run).await,
            Scenario::Health(run) => health(run).await,
            Scenario::Payments(run) => payments::payments(run).await,
            Scenario::Bills(run) => bills::bills(run).await,
            Scenario::Recon(run) => recon::recon(run).await,
            Scenario::Camt(run) => recon::camt(run).await,
            Scenario::Faults(run) => faults::faults(*run).await,
            Scenario::Province(run) => province::province(run).await,
        }
    })
}

fn vnd(amount: u64) -> Option<Money> {
    Some(Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    })
}

/// Refuses a run that is not bounded and on loopback: `bounds` are `(flag, value, max)`.
pub(crate) fn check(addr: SocketAddr, bounds: &[(&str, usize, usize)]) -> anyhow::Result<()> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "load tests target loopback addresses only, not {addr}"
    );
    for (flag, value, max) in bounds {
        anyhow::ensure!((1..=*max).contains(value), "{flag} must be 1..={max}");
    }
    Ok(())
}

/// The accounts of a run: one hot clearing account, and the merchants it pays.
struct Accounts {
    clearing: Id128,
    merchants: Vec<Id128>,
}

async fn open_accounts(client: &mut Client, merchants: usize) -> anyhow::Result<Accounts> {
    let accounts = Accounts {
        clearing: Id128::random(),
        merchants: (0..merchants).map(|_| Id128::random()).collect(),
    };
    let account = |id: Id128, code: pb::AccountCode, limited: bool, reference: &str| pb::Account {
        id: id.to_bytes().to_vec(),
        currency_code: "VND".into(),
        code: code as i32,
        flags: Some(pb::AccountFlags {
            debits_must_not_exceed_credits: limited,
            credits_must_not_exceed_debits: false,
        }),
        reference: reference.into(),
    };
    let mut wire = vec![account(
        accounts.clearing,
        pb::AccountCode::BankClearing,
        false,
        "load: bank clearing",
    )];
    wire.extend(
        accounts
            .merchants
            .iter()
            .map(|m| account(*m, pb::AccountCode::MerchantPayable, true, "load: merchant")),
    );
    client
        .create_accounts(pb::CreateAccountsRequest { accounts: wire })
        .await
        .context("creating accounts")?;
    Ok(accounts)
}

/// What the clients share: the counters and the two switches.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
    sent: AtomicU64,
    measuring: AtomicBool,
    stop: AtomicBool,
}

/// A valid tax code for merchant `i` of run `run`: `prefix` (two digits, one per scenario, so
/// scenarios sharing a database never collide), 7 digits from the run and `i`, and the mod-11
/// check digit.
pub(crate) fn tax_code(prefix: &str, run: u64, i: usize) -> String {
    let mut n = (run % 1_000) * 10_000 + i as u64;
    loop {
        let first_nine = format!("{prefix}{:07}", n % 10_000_000);
        // An all-zero sequence number is refused (run % 1000 == 0 and i == 0 made one).
        if !n.is_multiple_of(10_000_000)
            && let Some(check) = paymesh_vn::tax_code::TaxCode::check_digit(&first_nine)
        {
            return format!("{first_nine}{check}");
        }
        n += 7_000_000; // no check digit for this prefix, or all zeros: move away
    }
}

/// Latencies in µs, 1 µs … 60 s, 3 significant digits.
pub(crate) fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?)
}

/// One client: a request in flight at a time until told to stop, counting what `call` says
/// succeeded of how many, and its latency while measuring.
pub(crate) async fn drive<F, Fut>(
    shared: Arc<Shared>,
    mut hist: Histogram<u64>,
    per_call: u64,
    mut call: F,
) -> Histogram<u64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<u64>>,
{
    while !shared.stop.load(Ordering::Relaxed) {
        if shared.sent.fetch_add(per_call, Ordering::Relaxed) >= TRANSFERS_MAX {
            break;
        }
        let started = Instant::now();
        let good = call().await;
        let micros = started.elapsed().as_micros() as u64;
        if !shared.measuring.load(Ordering::Relaxed) {
            continue;
        }
        if good.is_some() {
            let _ = hist.record(micros.max(1));
        }
        let good = good.unwrap_or(0);
        shared.ok.fetch_add(good, Ordering::Relaxed);
        shared.failed.fetch_add(per_call - good, Ordering::Relaxed);
    }
    hist
}

/// One batch of transfers, clearing → merchants, with ids chosen as asked.
fn transfers(accounts: &Accounts, batch: usize, ids: Ids, n: &mut u64) -> Vec<pb::Transfer> {
    (0..batch)
        .map(|_| {
            *n = n.wrapping_add(7919);
            let merchant = accounts.merchants[(*n as usize) % accounts.merchants.len()];
            let id = match ids {
                Ids::Random => Id128::random(),
                Ids::TimeOrdered => Id128::time_ordered(),
            };
            pb::Transfer {
                id: id.to_bytes().to_vec(),
                debit_account_id: accounts.clearing.to_bytes().to_vec(),
                credit_account_id: merchant.to_bytes().to_vec(),
                amount: vnd(10_000 + *n % 90_000),
                code: pb::TransferCode::QrPayment as i32,
                reference: "load".into(),
                ..Default::default()
            }
        })
        .collect()
}

/// Lets the clients warm up, measures for `duration`, stops them, and merges their latencies.
pub(crate) async fn measure(
    shared: &Shared,
    tasks: Vec<tokio::task::JoinHandle<Histogram<u64>>>,
    duration: Duration,
) -> anyhow::Result<(Histogram<u64>, Duration)> {
    tokio::time::sleep(WARM_UP).await;
    shared.measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    let mut hist = histogram()?;
    for t in tasks {
        hist.add(t.await?)?;
    }
    Ok((hist, elapsed))
}

async fn ledger(run: LedgerRun) -> anyhow::Result<()> {
    check(
        run.addr,
        &[
            ("--clients", run.clients, 1024),
            ("--batch", run.batch, 8190),
            ("--connections", run.connections, 64),
            ("--merchants", run.merchants, 8190),
        ],
    )?;
    let ctx = CallContext::with_token(&run.token)?;
    let clients: Vec<Client> = (0..run.connections)
        .map(|_| {
            Ok(LedgerServiceClient::with_interceptor(
                channel(&run.addr.to_string())?,
                ctx.clone(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let accounts = Arc::new(open_accounts(&mut clients[0].clone(), run.merchants).await?);
    let shared = Arc::new(Shared::default());
    let (batch, ids) = (run.batch, run.ids);
    let tasks = (0..run.clients)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let accounts = accounts.clone();
            let mut n = i as u64;
            let call = move || {
                let mut client = client.clone();
                let transfers = transfers(&accounts, batch, ids, &mut n);
                async move {
                    let r = client
                        .create_transfers(pb::CreateTransfersRequest { transfers })
                        .await
                        .ok()?;
                    let ok = pb::CreateTransferResult::Ok as i32;
                    Some(r.into_inner().results.iter().filter(|c| **c == ok).count() as u64)
                }
            };
            Ok(tokio::spawn(drive(
                shared.clone(),
                histogram()?,
                batch as u64,
                call,
            )))
        })
        .collect::<anyhow::Result<_>>()?;
    let duration = Duration::from_secs(run.seconds).min(DURATION_MAX);
    let (hist, elapsed) = measure(&shared, tasks, duration).await?;
    let label = if run.label.is_empty() {
        "ledger"
    } else {
        &run.label
    };
    let conditions = format!(
        "clients={} transfers_per_rpc={} connections={} hot_accounts=1 merchants={} ids={}",
        run.clients,
        run.batch,
        run.connections,
        run.merchants,
        match run.ids {
            Ids::Random => "random",
            Ids::TimeOrdered => "time-ordered",
        }
    );
    report(
        label,
        "transfers_per_s",
        &conditions,
        &shared,
        &hist,
        elapsed,
    )
}

async fn health(run: HealthRun) -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    check(
        run.addr,
        &[
            ("--clients", run.clients, 1024),
            ("--connections", run.connections, 64),
        ],
    )?;
    let channels: Vec<_> = (0..run.connections)
        .map(|_| channel(&run.addr.to_string()))
        .collect::<anyhow::Result<_>>()?;
    let shared = Arc::new(Shared::default());
    let tasks = (0..run.clients)
        .map(|i| {
            let client = HealthClient::new(channels[i % channels.len()].clone());
            let call = move || {
                let mut client = client.clone();
                async move {
                    client
                        .check(HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .ok()?;
                    Some(1)
                }
            };
            Ok(tokio::spawn(drive(shared.clone(), histogram()?, 1, call)))
        })
        .collect::<anyhow::Result<_>>()?;
    let duration = Duration::from_secs(run.seconds).min(DURATION_MAX);
    let (hist, elapsed) = measure(&shared, tasks, duration).await?;
    let conditions = format!("clients={} connections={}", run.clients, run.connections);
    report("health", "rpcs_per_s", &conditions, &shared, &hist, elapsed)
}

/// Prints the result line with its conditions; a failed call fails the run.
fn report(
    label: &str,
    rate_name: &str,
    conditions: &str,
    shared: &Shared,
    hist: &Histogram<u64>,
    elapsed: Duration,
) -> anyhow::Result<()> {
    let ok = shared.ok.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "RESULT label={label} {rate_name}={:.0} ok={ok} failed={failed} rpc_p50_ms={:.2} rpc_p99_ms={:.2} rpc_max_ms={:.2} \
         {conditions} seconds={:.1} cores={cores}",
        ok as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0,
        elapsed.as_secs_f64(),
    );
    anyhow::ensure!(failed == 0, "{failed} calls failed");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn tax_codes_never_have_an_all_zero_sequence() {
        // run % 1000 == 0 and i == 0 gave 030000000x, which the merchant service refuses.
        let code = super::tax_code("03", 1_000, 0);
        assert_ne!(&code[2..9], "0000000", "{code}");
        assert!(paymesh_vn::tax_code::TaxCode::check_digit(&code[..9]).is_some());
        assert_ne!(super::tax_code("03", 1_000, 1), code);
    }
}
