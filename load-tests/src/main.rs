//! paymesh-load: a bounded load generator for paymesh services, loopback only.
//!
//! `paymesh-load ledger` opens one hot clearing account and many merchant accounts, then N
//! clients post transfers (clearing → merchant) for a fixed time, each RPC carrying one
//! transfer (`--batch 1`) or many. Every transfer touches the one hot account: the case where
//! a ledger that locks a row per transfer collapses. It prints its conditions (cores, data
//! size, concurrency) with every figure, and stops by itself.

use std::net::{IpAddr, SocketAddr};
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
    Ledger {
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
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.scenario {
            Scenario::Ledger {
                addr,
                token,
                clients,
                batch,
                connections,
                merchants,
                seconds,
                label,
            } => {
                ledger(LedgerRun {
                    addr,
                    token,
                    clients,
                    batch,
                    connections,
                    merchants,
                    seconds,
                    label,
                })
                .await
            }
        }
    })
}

struct LedgerRun {
    addr: SocketAddr,
    token: String,
    clients: usize,
    batch: usize,
    connections: usize,
    merchants: usize,
    seconds: u64,
    label: String,
}

fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback()
}

fn vnd(amount: u64) -> Option<Money> {
    Some(Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    })
}

async fn ledger(run: LedgerRun) -> anyhow::Result<()> {
    anyhow::ensure!(
        is_loopback(run.addr.ip()),
        "load tests target loopback addresses only, not {}",
        run.addr
    );
    anyhow::ensure!(
        (1..=1024).contains(&run.clients),
        "--clients must be 1..=1024"
    );
    anyhow::ensure!((1..=8190).contains(&run.batch), "--batch must be 1..=8190");
    anyhow::ensure!(
        (1..=64).contains(&run.connections),
        "--connections must be 1..=64"
    );
    anyhow::ensure!(
        (1..=8190).contains(&run.merchants),
        "--merchants must be 1..=8190"
    );
    let duration = Duration::from_secs(run.seconds).min(DURATION_MAX);
    let ctx = CallContext::with_token(&run.token)?;
    let clients: Vec<_> = (0..run.connections)
        .map(|_| {
            Ok(LedgerServiceClient::with_interceptor(
                channel(&run.addr.to_string())?,
                ctx.clone(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;

    let clearing = Id128::random();
    let merchants: Arc<Vec<Id128>> =
        Arc::new((0..run.merchants).map(|_| Id128::random()).collect());
    let mut accounts = vec![pb::Account {
        id: clearing.to_bytes().to_vec(),
        currency_code: "VND".into(),
        code: pb::AccountCode::BankClearing as i32,
        flags: None,
        reference: "load: bank clearing".into(),
    }];
    accounts.extend(merchants.iter().map(|m| pb::Account {
        id: m.to_bytes().to_vec(),
        currency_code: "VND".into(),
        code: pb::AccountCode::MerchantPayable as i32,
        flags: Some(pb::AccountFlags {
            debits_must_not_exceed_credits: true,
            credits_must_not_exceed_debits: false,
        }),
        reference: "load: merchant".into(),
    }));
    clients[0]
        .clone()
        .create_accounts(pb::CreateAccountsRequest { accounts })
        .await
        .context("creating accounts")?;

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..run.clients {
        let mut client = clients[i % clients.len()].clone();
        let (ok, failed, measuring, stop, sent, merchants) = (
            ok.clone(),
            failed.clone(),
            measuring.clone(),
            stop.clone(),
            sent.clone(),
            merchants.clone(),
        );
        let batch = run.batch;
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("histogram bounds are valid");
            let mut n: u64 = i as u64;
            while !stop.load(Ordering::Relaxed) {
                if sent.fetch_add(batch as u64, Ordering::Relaxed) >= TRANSFERS_MAX {
                    break;
                }
                let transfers = (0..batch)
                    .map(|_| {
                        n = n.wrapping_add(7919);
                        let merchant = merchants[(n as usize) % merchants.len()];
                        pb::Transfer {
                            id: Id128::random().to_bytes().to_vec(),
                            debit_account_id: clearing.to_bytes().to_vec(),
                            credit_account_id: merchant.to_bytes().to_vec(),
                            amount: vnd(10_000 + n % 90_000),
                            code: pb::TransferCode::QrPayment as i32,
                            reference: "load".into(),
                            flags: None,
                            pending_id: vec![],
                            timeout_seconds: 0,
                        }
                    })
                    .collect();
                let started = Instant::now();
                let result = client
                    .create_transfers(pb::CreateTransfersRequest { transfers })
                    .await;
                let micros = started.elapsed().as_micros() as u64;
                if !measuring.load(Ordering::Relaxed) {
                    continue;
                }
                match result {
                    Ok(r) => {
                        let good = r
                            .into_inner()
                            .results
                            .iter()
                            .filter(|c| **c == pb::CreateTransferResult::Ok as i32)
                            .count() as u64;
                        ok.fetch_add(good, Ordering::Relaxed);
                        failed.fetch_add(batch as u64 - good, Ordering::Relaxed);
                        let _ = hist.record(micros.max(1));
                    }
                    Err(_) => {
                        failed.fetch_add(batch as u64, Ordering::Relaxed);
                    }
                }
            }
            hist
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        hist.add(t.await?)?;
    }
    let ok = ok.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let tps = ok as f64 / elapsed.as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "RESULT label={} transfers_per_s={:.0} ok={} failed={} rpc_p50_ms={:.2} rpc_p99_ms={:.2} rpc_max_ms={:.2} \
         clients={} transfers_per_rpc={} connections={} hot_accounts=1 merchants={} seconds={:.1} cores={}",
        if run.label.is_empty() {
            "ledger"
        } else {
            &run.label
        },
        tps,
        ok,
        failed,
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0,
        run.clients,
        run.batch,
        run.connections,
        run.merchants,
        elapsed.as_secs_f64(),
        cores
    );
    anyhow::ensure!(failed == 0, "{failed} transfers failed");
    Ok(())
}
