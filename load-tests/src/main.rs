//! paymesh-load: a bounded load generator for paymesh services, loopback only.
//!
//! `paymesh-load ledger` opens one hot clearing account and many merchant accounts, then N
//! clients post transfers (clearing → merchant) for a fixed time, each RPC carrying one
//! transfer (`--batch 1`) or many. Every transfer touches the one hot account: the case where
//! a ledger that locks a row per transfer collapses. It prints its conditions (cores, data
//! size, concurrency) with every figure, and stops by itself.

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

/// Longest run allowed, whatever is asked.
const DURATION_MAX: Duration = Duration::from_secs(300);
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
    /// Label printed with the result.
    #[arg(long, default_value = "")]
    label: String,
}

/// Seconds of load before measuring starts.
const WARM_UP: Duration = Duration::from_secs(2);

type Client = LedgerServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, CallContext>,
>;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.scenario {
            Scenario::Ledger(run) => ledger(run).await,
        }
    })
}

fn vnd(amount: u64) -> Option<Money> {
    Some(Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    })
}

/// Refuses a run that is not bounded and on loopback.
fn check(run: &LedgerRun) -> anyhow::Result<()> {
    anyhow::ensure!(
        run.addr.ip().is_loopback(),
        "load tests target loopback addresses only, not {}",
        run.addr
    );
    for (flag, value, max) in [
        ("--clients", run.clients, 1024),
        ("--batch", run.batch, 8190),
        ("--connections", run.connections, 64),
        ("--merchants", run.merchants, 8190),
    ] {
        anyhow::ensure!((1..=max).contains(&value), "{flag} must be 1..={max}");
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
struct Shared {
    ok: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    measuring: AtomicBool,
    stop: AtomicBool,
}

/// Latencies in µs, 1 µs … 60 s, 3 significant digits.
fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?)
}

/// One client: a request in flight at a time until told to stop; latencies while measuring.
async fn client_loop(
    mut client: Client,
    seed: u64,
    batch: usize,
    accounts: Arc<Accounts>,
    shared: Arc<Shared>,
    mut hist: Histogram<u64>,
) -> Histogram<u64> {
    let mut n = seed;
    while !shared.stop.load(Ordering::Relaxed) {
        if shared.sent.fetch_add(batch as u64, Ordering::Relaxed) >= TRANSFERS_MAX {
            break;
        }
        let transfers = (0..batch)
            .map(|_| {
                n = n.wrapping_add(7919);
                let merchant = accounts.merchants[(n as usize) % accounts.merchants.len()];
                pb::Transfer {
                    id: Id128::random().to_bytes().to_vec(),
                    debit_account_id: accounts.clearing.to_bytes().to_vec(),
                    credit_account_id: merchant.to_bytes().to_vec(),
                    amount: vnd(10_000 + n % 90_000),
                    code: pb::TransferCode::QrPayment as i32,
                    reference: "load".into(),
                    ..Default::default()
                }
            })
            .collect();
        let started = Instant::now();
        let result = client
            .create_transfers(pb::CreateTransfersRequest { transfers })
            .await;
        let micros = started.elapsed().as_micros() as u64;
        if !shared.measuring.load(Ordering::Relaxed) {
            continue;
        }
        let good = match result {
            Ok(r) => {
                let _ = hist.record(micros.max(1));
                r.into_inner()
                    .results
                    .iter()
                    .filter(|c| **c == pb::CreateTransferResult::Ok as i32)
                    .count() as u64
            }
            Err(_) => 0,
        };
        shared.ok.fetch_add(good, Ordering::Relaxed);
        shared
            .failed
            .fetch_add(batch as u64 - good, Ordering::Relaxed);
    }
    hist
}

async fn ledger(run: LedgerRun) -> anyhow::Result<()> {
    check(&run)?;
    let duration = Duration::from_secs(run.seconds).min(DURATION_MAX);
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
    let tasks: Vec<_> = (0..run.clients)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let hist = histogram()?;
            Ok(tokio::spawn(client_loop(
                client,
                i as u64,
                run.batch,
                accounts.clone(),
                shared.clone(),
                hist,
            )))
        })
        .collect::<anyhow::Result<_>>()?;
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
    report(&run, &shared, &hist, elapsed)
}

/// Prints the result line with its conditions; a failed transfer fails the run.
fn report(
    run: &LedgerRun,
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
    let label = if run.label.is_empty() {
        "ledger"
    } else {
        &run.label
    };
    println!(
        "RESULT label={label} transfers_per_s={:.0} ok={ok} failed={failed} rpc_p50_ms={:.2} rpc_p99_ms={:.2} rpc_max_ms={:.2} \
         clients={} transfers_per_rpc={} connections={} hot_accounts=1 merchants={} seconds={:.1} cores={cores}",
        ok as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0,
        run.clients,
        run.batch,
        run.connections,
        run.merchants,
        elapsed.as_secs_f64(),
    );
    anyhow::ensure!(failed == 0, "{failed} transfers failed");
    Ok(())
}
