//! `paymesh-load faults`: faults survived, nothing lost.
//!
//! The six services run as separate `paymesh serve <service>` processes, started, `kill -9`ed
//! and restarted by this command, on a private PostgreSQL and Redis (`load-tests/faults.sh`
//! brings them up and passes where they are). Under load — the acquiring bank's credit
//! notifications, each retried like a bank retries (the same bank transaction, again and again,
//! until it is acknowledged); a few merchants' payment streams that reconnect from their last
//! cursor; every merchant's webhooks to a receiver in this process; intents created under
//! idempotency keys; a kiosk paying bills (lookup, the customer confirms, PayBill under a key)
//! — it injects one fault after another:
//!
//! - PostgreSQL crashed and restarted (`pg_ctl stop -m immediate`, then `start`: WAL recovery);
//! - Redis stopped (`SHUTDOWN NOSAVE`), started again and flushed (`FLUSHALL`), with a revoked
//!   API credential's token tried throughout (the revocation list lives in Redis);
//! - each service `kill -9`ed and started again;
//! - PostgreSQL paused (SIGSTOP to the postmaster and all its processes) for longer than every
//!   deadline (`server.request_timeout_ms`, the ledger client's 5 s, the pool's acquire
//!   timeout), then SIGCONT;
//! - the webhook receiver dropped (its port closed) for a while, then back.
//!
//! After each, the load is stopped and everything in flight settled (acknowledged, or given up
//! after `--settle-seconds` of retries), and the database and the receivers are checked —
//! cumulatively, over everything the run did so far:
//!
//! - every acknowledged payment is in `payment.credits`/`payment.payments` and in the ledger
//!   (its chain, by the ids the payment service derives from the bank transaction) exactly
//!   once, with its amount, payee and fee;
//! - nothing is half-applied, acknowledged or not: no ledger legs without their credit, no
//!   credit without its legs or its payment;
//! - the ledger balances (`paymesh_ledger::store::audit`), and the bank's clearing account
//!   moved by exactly what was acknowledged;
//! - every bill payment answered is its bill's only payment, the bill PAID, its ledger leg
//!   there; no bill paid twice; every PayBill and every intent sent again under its key
//!   answers what it answered the first time (Redis flushed or not), one intent per key;
//! - every watched stream delivered each of its merchant's payments exactly once across
//!   reconnections, and the webhook receiver got every payment's event (at least once,
//!   deduplicated by event id);
//! - no client got an answer it should not (a refusal, a wrong outcome, another id);
//! - every service answers (gRPC health SERVING and a read that reaches PostgreSQL) within
//!   `--recover-seconds` of the fault's end, none having exited by itself, and payments are
//!   acknowledged again;
//! - after the Redis flush, the revoked credential's token is refused again within
//!   [`REVOCATION_HEAL`] and was never accepted before.
//!
//! One table row per fault; the run fails if any check fails. Speed is printed, never judged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use paymesh_ledger::chart::{self, MerchantAccount, SystemAccount};
use paymesh_ledger::client::chain::derived_uuid;
use paymesh_money::Id128;
use paymesh_platform::client::{CallContext, channel};
use paymesh_proto::billing::v1 as bpb;
use paymesh_proto::billing::v1::billing_service_client::BillingServiceClient;
use paymesh_proto::common::v1::Money;
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use paymesh_proto::payment::v1 as pb;
use paymesh_proto::payment::v1::payment_service_client::PaymentServiceClient;
use paymesh_proto::settlement::v1 as spb;
use paymesh_proto::settlement::v1::settlement_service_client::SettlementServiceClient;
use paymesh_proto::stall::v1 as stpb;
use paymesh_proto::stall::v1::stall_service_client::StallServiceClient;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::check;

type Authed = InterceptedService<Channel, CallContext>;
/// A credit as stored: id, bank transaction, amount, outcome, its payment's amount and fee.
type CreditRow = (Uuid, String, i64, String, Option<i64>, Option<i64>);
/// A reference's ledger legs: how many, the payment leg's amount, the fee leg's amount, how
/// many debit the bank's clearing account, the payment leg's payee, the bill payment leg's
/// amount.
type LegsRow = (String, i64, i64, i64, i64, Option<String>, i64);
/// A bill: number, status, amount paid, its payments' count, amount and fee, and one
/// payment's id.
type BillRow = (String, String, i64, i64, i64, i64, Option<String>);

// The acquiring bank of the run (the merchant service's collection bank), as the payments
// scenario's, whose merchant application the run's vendors use.
use crate::payments::BANK_BIN;
/// The services, in start order, and whom each calls (its `<service>.<peer>_addr` keys).
const SERVICES: [&str; 6] = [
    "ledger",
    "merchant",
    "billing",
    "payment",
    "settlement",
    "stall",
];
const PEERS: [(&str, &[&str]); 5] = [
    ("merchant", &["ledger"]),
    ("billing", &["ledger", "merchant"]),
    ("payment", &["ledger", "merchant", "billing"]),
    ("settlement", &["ledger", "merchant", "payment"]),
    ("stall", &["merchant", "payment"]),
];
/// The ledger client's own per-call timeout in every service (`CALL_TIMEOUT_DEFAULT`).
const LEDGER_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for one probe (health, then a read) of a service.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a process (pg_ctl, redis-cli) the faults run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);
/// Problems quoted in a failed check, at most.
const QUOTED_MAX: usize = 3;

#[derive(clap::Args)]
pub struct FaultsRun {
    /// The `paymesh` binary: each service runs as `paymesh serve <service>`, its own process.
    #[arg(long)]
    paymesh: PathBuf,
    /// Each service's log goes to `<dir>/<service>.log` (appended across restarts).
    #[arg(long)]
    log_dir: PathBuf,
    /// Where the running services' pids are kept (`<pid> <service>` lines), for the script to
    /// stop them if this process is killed.
    #[arg(long)]
    pids_file: PathBuf,
    /// The mesh's database (read directly by the checks).
    #[arg(long, env = "PAYMESH_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[arg(long, env = "PAYMESH_LEDGER_LISTEN")]
    ledger_addr: SocketAddr,
    #[arg(long, env = "PAYMESH_MERCHANT_LISTEN")]
    merchant_addr: SocketAddr,
    #[arg(long, env = "PAYMESH_BILLING_LISTEN")]
    billing_addr: SocketAddr,
    #[arg(long, env = "PAYMESH_PAYMENT_LISTEN")]
    payment_addr: SocketAddr,
    #[arg(long, env = "PAYMESH_SETTLEMENT_LISTEN")]
    settlement_addr: SocketAddr,
    #[arg(long, env = "PAYMESH_STALL_LISTEN")]
    stall_addr: SocketAddr,
    /// PostgreSQL's programs (pg_ctl).
    #[arg(long, env = "PAYMESH_PG_BIN")]
    pg_bin: PathBuf,
    /// PostgreSQL's data directory and server log (the stack's).
    #[arg(long)]
    pg_data: PathBuf,
    #[arg(long)]
    pg_log: PathBuf,
    /// The OS user that owns the data directory, when it is not this one (pg_ctl runs as it
    /// through runuser).
    #[arg(long, default_value = "")]
    pg_user: String,
    /// Redis's port and config file (the stack's).
    #[arg(long, env = "PAYMESH_REDIS_PORT")]
    redis_port: u16,
    #[arg(long)]
    redis_conf: PathBuf,
    /// An operator's token (onboards merchants, sets endpoints, watches, probes).
    #[arg(long, env = "PAYMESH_LOAD_OPERATOR_TOKEN", hide_env_values = true)]
    operator_token: String,
    /// The acquiring bank's token (`bank:970436`).
    #[arg(long, env = "PAYMESH_LOAD_BANK_TOKEN", hide_env_values = true)]
    bank_token: String,
    /// Merchants onboarded (each with a webhook endpoint and one open intent).
    #[arg(long, default_value_t = 40)]
    merchants: usize,
    /// Banks' clients notifying at once, each retrying its notification until acknowledged.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// New notifications per second, all clients together (at most: a client retrying waits).
    #[arg(long, default_value_t = 100)]
    rate: usize,
    /// Merchants whose payment stream is watched (the first ones).
    #[arg(long, default_value_t = 4)]
    watchers: usize,
    /// A payer channel's token (`channel:…`): it pays one biller's bills during every phase.
    #[arg(long, env = "PAYMESH_LOAD_CHANNEL_TOKEN", hide_env_values = true)]
    channel_token: String,
    /// Bills loaded for the biller (one per customer), paid one by one.
    #[arg(long, default_value_t = 3000)]
    bills: usize,
    /// Bill payments started per second at most, all payers together.
    #[arg(long, default_value_t = 8)]
    bill_rate: usize,
    /// Payers (a kiosk's counters), each paying one bill at a time.
    #[arg(long, default_value_t = 8)]
    payers: usize,
    /// How long a payer's customer looks at the bill between the lookup and the payment.
    #[arg(long, default_value_t = 1000)]
    confirm_ms: u64,
    /// Seconds of load before each fault, and again after it.
    #[arg(long, default_value_t = 5.0)]
    load_seconds: f64,
    /// How long a killed service, a stopped Redis or PostgreSQL stays down.
    #[arg(long, default_value_t = 2.0)]
    down_seconds: f64,
    /// How long PostgreSQL is paused (must be longer than every deadline).
    #[arg(long, default_value_t = 12.0)]
    pause_seconds: f64,
    /// How long the webhook receiver is gone.
    #[arg(long, default_value_t = 15.0)]
    receiver_down_seconds: f64,
    /// Each service must answer within this many seconds of a fault's end.
    #[arg(long, default_value_t = 30)]
    recover_seconds: u64,
    /// A notification (or a keyed intent) is retried this long at most, then given up.
    #[arg(long, default_value_t = 120)]
    settle_seconds: u64,
    /// How long streams and webhooks may take to catch up after the load stops.
    #[arg(long, default_value_t = 90)]
    drain_seconds: u64,
    /// Faults in order: none (a baseline), pg-restart, redis-flush, kill-<service>, kill-all
    /// (each service in turn), pg-pause, webhook-drop; `all` is every fault.
    #[arg(long, value_delimiter = ',', default_value = "all")]
    faults: Vec<String>,
    /// The build, printed with the conditions.
    #[arg(long, default_value = "release")]
    build: String,
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn vnd(amount: u64) -> Option<Money> {
    Some(Money {
        amount: amount.to_string(),
        currency_code: "VND".into(),
    })
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether a bank (or a merchant's client) tries again after this answer: the answers that say
/// "try again" in paymesh's contract (the idempotency layer keeps none of them; see the README's
/// "Idempotency keys"). NotifyCredit is idempotent by the bank transaction and
/// CreatePaymentIntent by its key, so these retries are safe; any other answer is a refusal,
/// which no notification of this load should get.
fn retried(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::Internal
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Cancelled
            | Code::Unknown
    )
}

fn keyed<T>(message: T, key: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    if let Ok(key) = key.parse() {
        r.metadata_mut().insert("idempotency-key", key);
    }
    r
}

/// A duration from a `PAYMESH_*_MS` variable, or its default.
fn env_ms(var: &str, default: u64) -> Duration {
    Duration::from_millis(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

// ---------------------------------------------------------------------------------------------
// The services as processes

struct Mesh {
    bin: PathBuf,
    logs: PathBuf,
    pids: PathBuf,
    addrs: BTreeMap<&'static str, SocketAddr>,
    children: tokio::sync::Mutex<BTreeMap<&'static str, tokio::process::Child>>,
}

impl Mesh {
    fn command(&self, name: &'static str) -> anyhow::Result<tokio::process::Command> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}.log")))
            .with_context(|| format!("opening {name}'s log in {}", self.logs.display()))?;
        let mut c = tokio::process::Command::new(&self.bin);
        c.args(["serve", name])
            .env("PAYMESH_TELEMETRY_METRICS_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        for (service, addr) in &self.addrs {
            c.env(
                format!("PAYMESH_{}_LISTEN", service.to_ascii_uppercase()),
                addr.to_string(),
            );
        }
        for (service, peers) in PEERS {
            for peer in peers {
                if let Some(addr) = self.addrs.get(peer) {
                    c.env(
                        format!(
                            "PAYMESH_{}_{}_ADDR",
                            service.to_ascii_uppercase(),
                            peer.to_ascii_uppercase()
                        ),
                        addr.to_string(),
                    );
                }
            }
        }
        Ok(c)
    }

    async fn spawn(&self, name: &'static str) -> anyhow::Result<()> {
        let child = self
            .command(name)?
            .spawn()
            .with_context(|| format!("starting {} serve {name}", self.bin.display()))?;
        let mut children = self.children.lock().await;
        children.insert(name, child);
        let pids: String = children
            .iter()
            .filter_map(|(n, c)| c.id().map(|pid| format!("{pid} {n}\n")))
            .collect();
        std::fs::write(&self.pids, pids)
            .with_context(|| format!("writing {}", self.pids.display()))?;
        Ok(())
    }

    /// SIGKILL, and the process reaped.
    async fn kill9(&self, name: &str) -> anyhow::Result<()> {
        let child = self.children.lock().await.remove(name);
        let mut child = child.with_context(|| format!("{name} is not running"))?;
        child
            .kill()
            .await
            .with_context(|| format!("kill -9 {name}"))
    }

    /// The services whose process ended by itself.
    async fn exited(&self) -> Vec<String> {
        let mut children = self.children.lock().await;
        let mut out = Vec::new();
        for (name, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                out.push(format!("{name} exited by itself ({status})"));
            }
        }
        out
    }

    /// SIGTERM to every service, then each is waited for (20 s, then SIGKILL).
    async fn stop(&self) {
        let mut children = std::mem::take(&mut *self.children.lock().await);
        for child in children.values() {
            if let Some(pid) = child.id() {
                let _ = tokio::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
        }
        for (name, child) in children.iter_mut() {
            match tokio::time::timeout(Duration::from_secs(20), child.wait()).await {
                Ok(Ok(status)) if status.success() => {}
                Ok(Ok(status)) => eprintln!("faults: {name} stopped with {status}"),
                _ => {
                    eprintln!("faults: {name} did not stop within 20 s of SIGTERM; killed");
                    let _ = child.kill().await;
                }
            }
        }
        let _ = std::fs::write(&self.pids, "");
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL and Redis, as the stack runs them

struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    user: String,
    tool_log: PathBuf,
}

async fn run_tool(mut c: tokio::process::Command, what: &str, log: &Path) -> anyhow::Result<()> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    c.stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .current_dir("/")
        .kill_on_drop(true);
    let status = tokio::time::timeout(TOOL_TIMEOUT, c.status())
        .await
        .with_context(|| format!("{what} took longer than {TOOL_TIMEOUT:?}"))?
        .with_context(|| format!("running {what}"))?;
    anyhow::ensure!(
        status.success(),
        "{what} failed ({status}); see {}",
        log.display()
    );
    Ok(())
}

impl Postgres {
    fn pg_ctl(&self) -> tokio::process::Command {
        let pg_ctl = self.bin.join("pg_ctl");
        let mut c = if self.user.is_empty() {
            tokio::process::Command::new(pg_ctl)
        } else {
            let mut c = tokio::process::Command::new("runuser");
            c.args(["-u", &self.user, "--"]).arg(pg_ctl);
            c
        };
        c.arg("-D").arg(&self.data);
        c
    }

    /// A crash: every process ends at once, nothing flushed; the next start replays the WAL.
    async fn crash(&self) -> anyhow::Result<()> {
        let mut c = self.pg_ctl();
        c.args(["-m", "immediate", "-w", "-t", "60", "stop"]);
        run_tool(c, "pg_ctl stop -m immediate", &self.tool_log).await
    }

    async fn start(&self) -> anyhow::Result<()> {
        let mut c = self.pg_ctl();
        c.arg("-l").arg(&self.log).args(["-w", "-t", "60", "start"]);
        run_tool(c, "pg_ctl start", &self.tool_log).await
    }

    fn postmaster(&self) -> anyhow::Result<u32> {
        let path = self.data.join("postmaster.pid");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("no pid in {}", path.display()))
    }
}

/// The children of `parent`, from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    // "pid (comm) state ppid …": comm may hold spaces and parentheses.
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

fn signal(sig: &str, pids: &[u32]) -> anyhow::Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let status = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(u32::to_string))
        .status()
        .context("running kill")?;
    anyhow::ensure!(status.success(), "kill -{sig} {pids:?} failed ({status})");
    Ok(())
}

/// PostgreSQL's processes while stopped: continued when dropped, whatever happens meanwhile.
struct Paused {
    postmaster: u32,
    children: Vec<u32>,
}

impl Paused {
    fn stop(postmaster: u32) -> anyhow::Result<Paused> {
        // The postmaster first, so that it forks nothing while its children are stopped.
        signal("STOP", &[postmaster])?;
        let mut paused = Paused {
            postmaster,
            children: Vec::new(),
        };
        paused.children = children_of(postmaster);
        signal("STOP", &paused.children)?;
        Ok(paused)
    }

    fn resume(&mut self) -> anyhow::Result<()> {
        let children = std::mem::take(&mut self.children);
        signal("CONT", &children)?;
        let postmaster = std::mem::take(&mut self.postmaster);
        if postmaster != 0 {
            signal("CONT", &[postmaster])?;
        }
        Ok(())
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Err(e) = self.resume() {
            eprintln!("faults: could not resume PostgreSQL: {e:#}");
        }
    }
}

struct Redis {
    port: u16,
    conf: PathBuf,
}

impl Redis {
    async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::process::Command::new("redis-cli")
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .args(args)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .context("redis-cli took longer than 10 s")??;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    async fn answers(&self) -> bool {
        self.cli(&["ping"]).await.is_ok_and(|s| s == "PONG")
    }

    async fn stop(&self) -> anyhow::Result<()> {
        let _ = self.cli(&["shutdown", "nosave"]).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.answers().await {
            anyhow::ensure!(
                Instant::now() < deadline,
                "Redis still answers 10 s after SHUTDOWN"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    async fn start(&self) -> anyhow::Result<()> {
        // The stack's config daemonizes it (its own session, its own log).
        let status = tokio::process::Command::new("redis-server")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .context("starting redis-server")?;
        anyhow::ensure!(status.success(), "redis-server failed ({status})");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.answers().await {
            anyhow::ensure!(
                Instant::now() < deadline,
                "Redis does not answer 30 s after start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The merchants, the webhook receiver and the streams

struct Stall {
    id: String,
    uuid: Uuid,
    account: String,
    reference: String,
    intent_amount: u64,
    intent_used: AtomicBool,
}

async fn set_up(
    run: &FaultsRun,
    ctx: &CallContext,
    webhook: SocketAddr,
) -> anyhow::Result<Vec<Stall>> {
    let merchants = MerchantServiceClient::with_interceptor(
        channel(&run.merchant_addr.to_string())?,
        ctx.clone(),
    );
    let payments = PaymentServiceClient::with_interceptor(
        channel(&run.payment_addr.to_string())?,
        ctx.clone(),
    );
    let run_id = u64::from_le_bytes(Id128::random().to_bytes()[..8].try_into().unwrap_or([0; 8]));
    let mut stalls: Vec<(usize, Stall)> = futures::stream::iter(0..run.merchants)
        .map(|i| {
            let (mut merchants, mut payments) = (merchants.clone(), payments.clone());
            async move {
                let key = |what: &str| format!("faults-setup-{run_id}-{i}-{what}");
                let m = merchants
                    .onboard_merchant(keyed(
                        mpb::OnboardMerchantRequest {
                            kind: mpb::MerchantKind::Vendor as i32,
                            application: Some(crate::payments::application(run_id, i)),
                            ..Default::default()
                        },
                        &key("onboard"),
                    ))
                    .await
                    .context("onboarding")?
                    .into_inner();
                let m = merchants
                    .approve_merchant(keyed(
                        mpb::ApproveMerchantRequest {
                            merchant_id: m.id.clone(),
                            reason: "fault test".into(),
                            etag: m.etag,
                        },
                        &key("approve"),
                    ))
                    .await
                    .context("approving")?
                    .into_inner();
                payments
                    .update_webhook_endpoint(keyed(
                        pb::UpdateWebhookEndpointRequest {
                            merchant_id: m.id.clone(),
                            url: format!("http://{webhook}/hooks"),
                        },
                        &key("webhook"),
                    ))
                    .await
                    .context("setting the webhook endpoint")?;
                let amount = 20_000 + (i as u64 % 50) * 1_000;
                let intent = payments
                    .create_payment_intent(keyed(
                        pb::CreatePaymentIntentRequest {
                            merchant_id: m.id.clone(),
                            amount: vnd(amount),
                            expires_in_seconds: 86_400,
                            ..Default::default()
                        },
                        &key("intent"),
                    ))
                    .await
                    .context("creating an intent")?
                    .into_inner()
                    .intent
                    .context("no intent")?;
                let uuid = Uuid::try_parse(&m.id).context("merchant id")?;
                anyhow::Ok((
                    i,
                    Stall {
                        id: m.id,
                        uuid,
                        account: m.virtual_account_number,
                        reference: intent.reference,
                        intent_amount: amount,
                        intent_used: AtomicBool::new(false),
                    },
                ))
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    stalls.sort_by_key(|(i, _)| *i);
    Ok(stalls.into_iter().map(|(_, s)| s).collect())
}

/// A water company with `bills` bills (one per customer, pattern `PE[0-9]{11}`, EXACT), loaded
/// in one UpsertBills stream. Answers its id.
async fn set_up_biller(run: &FaultsRun, ctx: &CallContext) -> anyhow::Result<String> {
    let mut merchants = MerchantServiceClient::with_interceptor(
        channel(&run.merchant_addr.to_string())?,
        ctx.clone(),
    );
    let mut billing = BillingServiceClient::with_interceptor(
        channel(&run.billing_addr.to_string())?,
        ctx.clone(),
    );
    let tag = Id128::random().to_string();
    let key = |what: &str| format!("faults-biller-{tag}-{what}");
    let run_id = u64::from_le_bytes(Id128::random().to_bytes()[..8].try_into().unwrap_or([0; 8]));
    let m = merchants
        .onboard_merchant(keyed(
            mpb::OnboardMerchantRequest {
                kind: mpb::MerchantKind::Biller as i32,
                application: Some(mpb::MerchantApplication {
                    business_name: "Công ty Cổ phần Cấp nước Thử lỗi".into(),
                    tax_code: crate::tax_code("05", run_id, 9_999),
                    phone: "+84 912 345 678".into(),
                    address: "194 Pasteur, Q.3, TP. Hồ Chí Minh".into(),
                    mcc: "4900".into(),
                    biller_category: mpb::BillerCategory::Water as i32,
                    settlement_bank_bin: "970418".into(),
                    settlement_account_number: "12010000123456".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            &key("onboard"),
        ))
        .await
        .context("onboarding the biller")?
        .into_inner();
    let m = merchants
        .approve_merchant(keyed(
            mpb::ApproveMerchantRequest {
                merchant_id: m.id.clone(),
                reason: "fault test".into(),
                etag: m.etag,
            },
            &key("approve"),
        ))
        .await
        .context("approving the biller")?
        .into_inner();
    billing
        .set_biller_policy(keyed(
            bpb::SetBillerPolicyRequest {
                policy: Some(bpb::BillerPolicy {
                    biller_id: m.id.clone(),
                    customer_code_pattern: "PE[0-9]{11}".into(),
                    amount_rule: bpb::AmountRule::Exact as i32,
                    ..Default::default()
                }),
            },
            &key("policy"),
        ))
        .await
        .context("setting the biller's policy")?;
    let today = paymesh_platform::time::Date::today_in_vietnam();
    let (issue, due) = (
        today.plus_days(-5).to_string(),
        today.plus_days(25).to_string(),
    );
    let period = issue[..7].to_owned();
    let all: Vec<bpb::BillInput> = (0..run.bills as u64)
        .map(|i| bpb::BillInput {
            customer_code: customer_code(i),
            bill_number: bill_number(i),
            period: period.clone(),
            amount_due: bill_amount(i).to_string(),
            issue_date: issue.clone(),
            due_date: due.clone(),
            customer_name: "Nguyễn Văn An".into(),
            description: format!("Tiền nước kỳ {period}"),
        })
        .collect();
    let biller = m.id.clone();
    let messages: Vec<bpb::UpsertBillsRequest> = all
        .chunks(1_000)
        .enumerate()
        .map(|(n, chunk)| bpb::UpsertBillsRequest {
            biller_id: if n == 0 {
                biller.clone()
            } else {
                String::new()
            },
            bills: chunk.to_vec(),
        })
        .collect();
    let loaded = billing
        .upsert_bills(keyed(futures::stream::iter(messages), &key("bills")))
        .await
        .context("loading the bills")?
        .into_inner();
    anyhow::ensure!(
        loaded.loaded == run.bills as u64,
        "{} of {} bills loaded ({} rejected)",
        loaded.loaded,
        run.bills,
        loaded.rejected_count
    );
    Ok(m.id)
}

/// Every webhook event received: event id → (payment id, times).
#[derive(Default)]
struct Deliveries {
    events: Mutex<HashMap<String, (String, u32)>>,
    posts: AtomicU64,
}

/// The merchants' webhook receiver: HTTP on loopback, in this process; dropped by closing its
/// port, brought back on the same one (the endpoints are stored URLs).
struct Receiver {
    addr: SocketAddr,
    deliveries: Arc<Deliveries>,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

/// The payment id a webhook body names (`"payment_id":"…"`), if any.
fn payment_id_in(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let at = text.find("\"payment_id\":\"")? + "\"payment_id\":\"".len();
    let rest = &text[at..];
    Some(rest[..rest.find('"')?].to_owned())
}

impl Receiver {
    async fn start(addr: SocketAddr, deliveries: Arc<Deliveries>) -> anyhow::Result<Receiver> {
        let mut r = Receiver {
            addr,
            deliveries,
            running: None,
        };
        r.up()?;
        Ok(r)
    }

    fn up(&mut self) -> anyhow::Result<()> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket
            .bind(self.addr)
            .with_context(|| format!("binding the webhook receiver to {}", self.addr))?;
        let listener = socket.listen(1024)?;
        self.addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let deliveries = self.deliveries.clone();
        let task = tokio::spawn(async move {
            let _ = paymesh_platform::http::serve(
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
                        let payment = paymesh_platform::http::body(req, 1 << 20)
                            .await
                            .and_then(|(_, body)| payment_id_in(&body))
                            .unwrap_or_default();
                        deliveries.posts.fetch_add(1, Ordering::Relaxed);
                        lock(&deliveries.events).entry(id).or_insert((payment, 0)).1 += 1;
                        paymesh_platform::http::respond(
                            http::StatusCode::NO_CONTENT,
                            "text/plain",
                            "",
                        )
                    }
                },
                async move {
                    let _ = stopped.await;
                },
            )
            .await;
        });
        self.running = Some((stop, task));
        Ok(())
    }

    /// Closes the port (connections already accepted finish).
    async fn down(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

/// The watched merchants' streams: payment id → times seen, per merchant.
#[derive(Default)]
struct Streams {
    seen: Mutex<HashMap<String, HashMap<String, u32>>>,
    reconnects: AtomicU64,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Streams {
    /// A merchant's stream from its first event; after an error or an end, again after the
    /// cursor of the last event it delivered.
    fn watch(self: &Arc<Self>, addr: SocketAddr, ctx: CallContext, merchant: String) {
        let streams = self.clone();
        lock(&streams.seen).entry(merchant.clone()).or_default();
        let task = tokio::spawn(async move {
            let mut cursor = "0".to_owned();
            loop {
                if let Ok(ch) = channel(&addr.to_string()) {
                    let mut client = PaymentServiceClient::with_interceptor(ch, ctx.clone());
                    if let Ok(stream) = client
                        .watch_payments(pb::WatchPaymentsRequest {
                            merchant_id: merchant.clone(),
                            after_cursor: cursor.clone(),
                        })
                        .await
                    {
                        let mut stream = stream.into_inner();
                        while let Ok(Some(m)) = stream.message().await {
                            let Some(event) = m.event else { continue };
                            if !event.cursor.is_empty() {
                                cursor = event.cursor.clone();
                            }
                            if let Some(payment) = event.payment {
                                *lock(&streams.seen)
                                    .entry(merchant.clone())
                                    .or_default()
                                    .entry(payment.id)
                                    .or_default() += 1;
                            }
                        }
                    }
                }
                streams.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        lock(&self.tasks).push(task);
    }

    fn stop(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The load

/// One notification: the same bank transaction on every retry.
struct Note {
    txn: String,
    credit: Uuid,
    merchant: usize,
    amount: u64,
    by_reference: bool,
    request: pb::NotifyCreditRequest,
}

/// What the bank was answered in the end.
struct Ack {
    payment_id: String,
}

/// A notification when the load stopped: acknowledged, or given up (or refused).
struct Settled {
    txn: String,
    credit: Uuid,
    merchant: usize,
    amount: u64,
    ack: Option<Ack>,
}

/// An intent created under an idempotency key, and the answer to the same request again.
struct KeyedIntent {
    key: String,
    request: pb::CreatePaymentIntentRequest,
    first: Option<String>,
    replay: Option<String>,
}

/// A bill the channel paid (or tried to): its number, amount and the payment's id if answered.
struct BillSettled {
    number: String,
    amount: u64,
    payment: Option<String>,
    /// The PayBill and its key, sent again after every phase: the same payment is answered.
    key: String,
    request: Option<bpb::PayBillRequest>,
    replay: Option<Result<String, String>>,
}

/// Bill `i` of the run: one bill per customer.
fn customer_code(i: u64) -> String {
    format!("PE{i:011}")
}

fn bill_number(i: u64) -> String {
    format!("HD00{i:011}")
}

fn bill_amount(i: u64) -> u64 {
    50_000 + (i * 7_919 % 500) * 100
}

/// The counters of one phase's load.
#[derive(Default)]
struct PhaseLoad {
    notes: AtomicU64,
    attempts: AtomicU64,
    acked: AtomicU64,
    duplicates: AtomicU64,
    gave_up: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Answers no bank should get (a refusal, a wrong outcome, another credit id).
    problems: Mutex<Vec<String>>,
    fault_end: Mutex<Option<Instant>>,
    /// The first acknowledgement after the fault ended, that long after it.
    again_after: Mutex<Option<Duration>>,
    keyed: AtomicU64,
    keyed_errors: AtomicU64,
    bills: AtomicU64,
    bill_attempts: AtomicU64,
    bills_paid: AtomicU64,
    bill_errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl PhaseLoad {
    fn error(&self, code: Code) {
        *lock(&self.errors).entry(code_name(code)).or_default() += 1;
    }

    fn problem(&self, text: String) {
        let mut p = lock(&self.problems);
        if p.len() < 100 {
            p.push(text);
        }
    }

    fn acked_now(&self) {
        let Some(end) = *lock(&self.fault_end) else {
            return;
        };
        let now = Instant::now();
        if now >= end {
            let mut again = lock(&self.again_after);
            if again.is_none() {
                *again = Some(now - end);
            }
        }
    }

    fn errors_text(&self) -> String {
        errors_text(&self.errors)
    }
}

fn errors_text(errors: &Mutex<BTreeMap<&'static str, u64>>) -> String {
    let errors = lock(errors);
    if errors.is_empty() {
        return "no errors".into();
    }
    errors
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Everything the run shares.
struct World {
    run: FaultsRun,
    operator: CallContext,
    bank: Vec<PaymentServiceClient<Authed>>,
    stalls: Vec<Stall>,
    clearing: Id128,
    run_tag: String,
    next_txn: AtomicU64,
    next_key: AtomicU64,
    attempt_timeout: Duration,
    settle: Duration,
    /// The biller whose bills the channel pays, its client, and the next bill to pay.
    biller: String,
    billing: BillingServiceClient<Authed>,
    next_bill: AtomicU64,
}

impl World {
    fn note(&self) -> Note {
        let n = self.next_txn.fetch_add(1, Ordering::Relaxed);
        let merchant = (n.wrapping_mul(7919) % self.stalls.len() as u64) as usize;
        let stall = &self.stalls[merchant];
        let by_reference = !stall.intent_used.swap(true, Ordering::Relaxed);
        let txn = format!("FLT{}{n:07}", self.run_tag);
        let (amount, description) = if by_reference {
            (
                stall.intent_amount,
                format!(
                    "MBVCB.{n}.{}.CT tu 0071000123456 NGUYEN VAN AN toi {}",
                    stall.reference, stall.account
                ),
            )
        } else {
            (
                10_000 + (n * 37 % 190) * 1_000,
                format!("IBFT {n} chuyen tien mua hang"),
            )
        };
        let request = pb::NotifyCreditRequest {
            bank_bin: BANK_BIN.into(),
            bank_transaction_id: txn.clone(),
            account_number: stall.account.clone(),
            amount: vnd(amount),
            description,
            // Fixed once: a retry carries the same value time (another is a conflict).
            value_time: Some(paymesh_platform::time::timestamp_from_ns(
                paymesh_platform::time::now_ns(),
            )),
        };
        Note {
            credit: derived_uuid("paymesh.payment.credit.v1", &[BANK_BIN, &txn]),
            txn,
            merchant,
            amount,
            by_reference,
            request,
        }
    }

    /// Notifies until acknowledged (like a bank: the same transaction, backing off from 100 ms
    /// to 1 s), or until `settle` has passed.
    async fn deliver(&self, phase: &PhaseLoad, note: Note) -> Settled {
        let give_up = Instant::now() + self.settle;
        let mut wait = Duration::from_millis(100);
        let mut client = self.bank[note.merchant % self.bank.len()].clone();
        phase.notes.fetch_add(1, Ordering::Relaxed);
        let settled = |ack| Settled {
            txn: note.txn.clone(),
            credit: note.credit,
            merchant: note.merchant,
            amount: note.amount,
            ack,
        };
        loop {
            phase.attempts.fetch_add(1, Ordering::Relaxed);
            let mut request = tonic::Request::new(note.request.clone());
            request.set_timeout(self.attempt_timeout);
            let answer = tokio::time::timeout(
                self.attempt_timeout + Duration::from_secs(1),
                client.notify_credit(request),
            )
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in time")));
            match answer {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    let Some(credit) = answer.credit else {
                        phase.problem(format!("{}: answered without a credit", note.txn));
                        return settled(None);
                    };
                    let expected = if note.by_reference {
                        pb::CreditOutcome::Paid
                    } else {
                        pb::CreditOutcome::Static
                    };
                    if credit.outcome() != expected {
                        phase.problem(format!(
                            "{}: outcome {} ({}), expected {}",
                            note.txn,
                            credit.outcome().as_str_name(),
                            credit.detail,
                            expected.as_str_name()
                        ));
                    }
                    if credit.id != note.credit.to_string() || credit.payment_id != credit.id {
                        phase.problem(format!(
                            "{}: credit {} / payment {}, derived {}",
                            note.txn, credit.id, credit.payment_id, note.credit
                        ));
                    }
                    phase.acked.fetch_add(1, Ordering::Relaxed);
                    if answer.duplicate {
                        phase.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    phase.acked_now();
                    return settled(Some(Ack {
                        payment_id: credit.payment_id,
                    }));
                }
                Err(status) => {
                    phase.error(status.code());
                    if !retried(status.code()) {
                        phase.problem(format!(
                            "{}: refused {} {}",
                            note.txn,
                            code_name(status.code()),
                            status.message()
                        ));
                        return settled(None);
                    }
                }
            }
            if Instant::now() + wait > give_up {
                phase.gave_up.fetch_add(1, Ordering::Relaxed);
                return settled(None);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }

    /// Creates (or replays) an intent under its key until answered or `settle` has passed.
    async fn create_keyed(&self, phase: &PhaseLoad, k: &KeyedIntent) -> Option<String> {
        let give_up = Instant::now() + self.settle;
        let mut wait = Duration::from_millis(100);
        let mut client = PaymentServiceClient::with_interceptor(
            channel(&self.run.payment_addr.to_string()).ok()?,
            self.operator.clone(),
        );
        loop {
            let mut request = keyed(k.request.clone(), &k.key);
            request.set_timeout(self.attempt_timeout);
            let answer = tokio::time::timeout(
                self.attempt_timeout + Duration::from_secs(1),
                client.create_payment_intent(request),
            )
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in time")));
            match answer {
                Ok(a) => return a.into_inner().intent.map(|i| i.id),
                Err(status) => {
                    phase.keyed_errors.fetch_add(1, Ordering::Relaxed);
                    if !retried(status.code()) {
                        phase.problem(format!(
                            "intent key {}: refused {} {}",
                            k.key,
                            code_name(status.code()),
                            status.message()
                        ));
                        return None;
                    }
                }
            }
            if Instant::now() + wait > give_up {
                return None;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }

    /// Pays the next bill as a channel does: looks the customer up, then PayBill under an
    /// idempotency key with the lookup's reference, the same request again on every "try
    /// again" answer (until `settle` has passed). None when the bills ran out.
    async fn pay_bill(&self, phase: &PhaseLoad) -> Option<BillSettled> {
        let i = self.next_bill.fetch_add(1, Ordering::Relaxed);
        if i >= self.run.bills as u64 {
            return None;
        }
        phase.bills.fetch_add(1, Ordering::Relaxed);
        let give_up = Instant::now() + self.settle;
        let (number, amount) = (bill_number(i), bill_amount(i));
        let mut settled = BillSettled {
            number: number.clone(),
            amount,
            payment: None,
            key: String::new(),
            request: None,
            replay: None,
        };
        let mut client = self.billing.clone();
        let mut wait = Duration::from_millis(100);
        let bill_error = |code: Code| {
            *lock(&phase.bill_errors).entry(code_name(code)).or_default() += 1;
        };
        // The lookup (it changes nothing: retried freely).
        let lookup_reference = loop {
            phase.bill_attempts.fetch_add(1, Ordering::Relaxed);
            let mut request = tonic::Request::new(bpb::LookupBillsRequest {
                biller_id: self.biller.clone(),
                customer_code: customer_code(i),
            });
            request.set_timeout(self.attempt_timeout);
            match tokio::time::timeout(
                self.attempt_timeout + Duration::from_secs(1),
                client.lookup_bills(request),
            )
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in time")))
            {
                Ok(found) => break found.into_inner().lookup_reference,
                Err(status) if retried(status.code()) => bill_error(status.code()),
                Err(status) => {
                    bill_error(status.code());
                    phase.problem(format!(
                        "bill {number}: lookup refused {} {}",
                        code_name(status.code()),
                        status.message()
                    ));
                    return Some(settled);
                }
            }
            if Instant::now() + wait > give_up {
                return Some(settled);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        };
        // The customer confirms what the lookup showed.
        tokio::time::sleep(Duration::from_millis(self.run.confirm_ms)).await;
        let key = format!("faults-{}-bill-{i}", self.run_tag);
        let pay = bpb::PayBillRequest {
            lookup_reference,
            bills: vec![bpb::BillAmount {
                bill_number: number.clone(),
                amount: vnd(amount),
            }],
            channel_reference: format!("FLTB{}{i}", self.run_tag),
        };
        settled.key = key.clone();
        settled.request = Some(pay.clone());
        match self.pay_call(&pay, &key, phase).await {
            Ok(paid) => match paid.payments.as_slice() {
                [p] if p.bill_number == number && p.bill_status == bpb::BillStatus::Paid as i32 => {
                    settled.payment = Some(p.id.clone());
                    phase.bills_paid.fetch_add(1, Ordering::Relaxed);
                }
                other => phase.problem(format!("bill {number}: answered {other:?}")),
            },
            Err(status) if retried(status.code()) => {}
            Err(status) => phase.problem(format!(
                "bill {number}: PayBill retried under its key refused {} {}",
                code_name(status.code()),
                status.message()
            )),
        }
        Some(settled)
    }

    /// PayBill under `key`, the same request again on every "try again" answer (until
    /// `settle` has passed): the last answer.
    async fn pay_call(
        &self,
        pay: &bpb::PayBillRequest,
        key: &str,
        phase: &PhaseLoad,
    ) -> Result<bpb::PayBillResponse, tonic::Status> {
        let give_up = Instant::now() + self.settle;
        let mut client = self.billing.clone();
        let mut wait = Duration::from_millis(100);
        loop {
            phase.bill_attempts.fetch_add(1, Ordering::Relaxed);
            let mut request = keyed(pay.clone(), key);
            request.set_timeout(self.attempt_timeout);
            let answer = tokio::time::timeout(
                self.attempt_timeout + Duration::from_secs(1),
                client.pay_bill(request),
            )
            .await
            .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in time")));
            match answer {
                Ok(paid) => return Ok(paid.into_inner()),
                Err(status) => {
                    *lock(&phase.bill_errors)
                        .entry(code_name(status.code()))
                        .or_default() += 1;
                    if !retried(status.code()) || Instant::now() + wait > give_up {
                        return Err(status);
                    }
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }

    fn keyed_intent(&self) -> KeyedIntent {
        let n = self.next_key.fetch_add(1, Ordering::Relaxed);
        let stall = &self.stalls[(n as usize * 13) % self.stalls.len()];
        let key = format!("faults-{}-intent-{n}", self.run_tag);
        KeyedIntent {
            request: pb::CreatePaymentIntentRequest {
                merchant_id: stall.id.clone(),
                amount: vnd(50_000 + (n % 100) * 1_000),
                order_reference: key.clone(),
                expires_in_seconds: 3_600,
                ..Default::default()
            },
            key,
            first: None,
            replay: None,
        }
    }
}

/// A phase's load while it runs: bank clients and one merchant creating keyed intents.
struct Load {
    on: Arc<AtomicBool>,
    started: Instant,
    banks: Vec<tokio::task::JoinHandle<Vec<Settled>>>,
    keys: tokio::task::JoinHandle<Vec<KeyedIntent>>,
    payers: Vec<tokio::task::JoinHandle<Vec<BillSettled>>>,
}

impl Load {
    fn start(world: &Arc<World>, phase: &Arc<PhaseLoad>) -> Load {
        let on = Arc::new(AtomicBool::new(true));
        let clients = world.run.clients;
        let interval = Duration::from_secs_f64(clients as f64 / world.run.rate as f64);
        let banks = (0..clients)
            .map(|i| {
                let (world, phase, on) = (world.clone(), phase.clone(), on.clone());
                tokio::spawn(async move {
                    let mut settled = Vec::new();
                    // Spread the clients' starts over one interval.
                    let mut next =
                        tokio::time::Instant::now() + interval.mul_f64(i as f64 / clients as f64);
                    loop {
                        tokio::time::sleep_until(next).await;
                        if !on.load(Ordering::Relaxed) {
                            break;
                        }
                        next = (next + interval).max(tokio::time::Instant::now());
                        let note = world.note();
                        settled.push(world.deliver(&phase, note).await);
                    }
                    settled
                })
            })
            .collect();
        let keys = {
            let (world, phase, on) = (world.clone(), phase.clone(), on.clone());
            tokio::spawn(async move {
                let mut made = Vec::new();
                while on.load(Ordering::Relaxed) {
                    let mut k = world.keyed_intent();
                    k.first = world.create_keyed(&phase, &k).await;
                    phase.keyed.fetch_add(1, Ordering::Relaxed);
                    made.push(k);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                made
            })
        };
        let payers_n = world.run.payers;
        let every = Duration::from_secs_f64(payers_n as f64 / world.run.bill_rate as f64);
        let payers = (0..payers_n)
            .map(|i| {
                let (world, phase, on) = (world.clone(), phase.clone(), on.clone());
                tokio::spawn(async move {
                    let mut paid = Vec::new();
                    let mut next =
                        tokio::time::Instant::now() + every.mul_f64(i as f64 / payers_n as f64);
                    loop {
                        tokio::time::sleep_until(next).await;
                        if !on.load(Ordering::Relaxed) {
                            break;
                        }
                        next = (next + every).max(tokio::time::Instant::now());
                        match world.pay_bill(&phase).await {
                            Some(b) => paid.push(b),
                            None => break,
                        }
                    }
                    paid
                })
            })
            .collect();
        Load {
            on,
            started: Instant::now(),
            banks,
            keys,
            payers,
        }
    }

    /// Stops new work and waits for every notification and key in flight to settle.
    async fn stop(
        self,
    ) -> anyhow::Result<(Duration, Vec<Settled>, Vec<KeyedIntent>, Vec<BillSettled>)> {
        self.on.store(false, Ordering::Relaxed);
        let ran = self.started.elapsed();
        let mut settled = Vec::new();
        for b in self.banks {
            settled.extend(b.await?);
        }
        let mut bills = Vec::new();
        for p in self.payers {
            bills.extend(p.await?);
        }
        Ok((ran, settled, self.keys.await?, bills))
    }
}

// ---------------------------------------------------------------------------------------------
// Probes: each service answers health and a read that reaches PostgreSQL

async fn probe(world: &World, name: &str, addr: SocketAddr, merchant: &str) -> bool {
    let Ok(ch) = channel(&addr.to_string()) else {
        return false;
    };
    let health = async {
        tonic_health::pb::health_client::HealthClient::new(ch.clone())
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .is_ok_and(|r| {
                r.into_inner().status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32
            })
    };
    if !tokio::time::timeout(PROBE_TIMEOUT, health)
        .await
        .unwrap_or(false)
    {
        return false;
    }
    let op = world.operator.clone();
    let read = async {
        let answer: Result<(), tonic::Status> = match name {
            "ledger" => LedgerServiceClient::with_interceptor(ch, op)
                .get_balances(lpb::GetBalancesRequest {
                    account_ids: vec![world.clearing.to_bytes().to_vec()],
                })
                .await
                .map(drop),
            "merchant" => MerchantServiceClient::with_interceptor(ch, op)
                .get_merchant(mpb::GetMerchantRequest {
                    merchant_id: merchant.into(),
                })
                .await
                .map(drop),
            "billing" => BillingServiceClient::with_interceptor(ch, op)
                .get_bill(bpb::GetBillRequest {
                    biller_id: merchant.into(),
                    bill_number: "FAULTS-PROBE".into(),
                })
                .await
                .map(drop),
            "payment" => PaymentServiceClient::with_interceptor(ch, op)
                .list_payments(pb::ListPaymentsRequest {
                    merchant_id: merchant.into(),
                    page_size: 1,
                    ..Default::default()
                })
                .await
                .map(drop),
            "settlement" => SettlementServiceClient::with_interceptor(ch, op)
                .list_windows(spb::ListWindowsRequest {
                    page_size: 1,
                    ..Default::default()
                })
                .await
                .map(drop),
            _ => StallServiceClient::with_interceptor(ch, op)
                .list_sound_boxes(stpb::ListSoundBoxesRequest {
                    merchant_id: merchant.into(),
                })
                .await
                .map(drop),
        };
        // NOT_FOUND is an answer from the database too (the probe's bill does not exist).
        answer.is_ok() || answer.is_err_and(|s| s.code() == Code::NotFound)
    };
    tokio::time::timeout(PROBE_TIMEOUT, read)
        .await
        .unwrap_or(false)
}

/// How long after `since` each service first answered (None: not within `limit`).
async fn recovery(
    world: Arc<World>,
    addrs: BTreeMap<&'static str, SocketAddr>,
    since: Instant,
    limit: Duration,
) -> BTreeMap<&'static str, Option<Duration>> {
    let merchant = world
        .stalls
        .first()
        .map(|s| s.id.clone())
        .unwrap_or_default();
    let mut answered: BTreeMap<&'static str, Option<Duration>> =
        addrs.keys().map(|n| (*n, None)).collect();
    while since.elapsed() < limit {
        let pending: Vec<(&'static str, SocketAddr)> = addrs
            .iter()
            .filter(|(n, _)| answered.get(*n).is_some_and(Option::is_none))
            .map(|(n, a)| (*n, *a))
            .collect();
        if pending.is_empty() {
            break;
        }
        let results =
            futures::future::join_all(pending.iter().map(|(n, a)| probe(&world, n, *a, &merchant)))
                .await;
        for ((name, _), ok) in pending.iter().zip(results) {
            if ok {
                answered.insert(name, Some(since.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    answered
}

// ---------------------------------------------------------------------------------------------
// Faults

#[derive(Clone, Debug, PartialEq, Eq)]
enum Fault {
    None,
    PgRestart,
    RedisFlush,
    Kill(&'static str),
    PgPause,
    WebhookDrop,
}

fn faults_from(names: &[String]) -> anyhow::Result<Vec<Fault>> {
    let every = || {
        let mut v = vec![Fault::PgRestart, Fault::RedisFlush];
        v.extend(SERVICES.iter().map(|s| Fault::Kill(s)));
        v.extend([Fault::PgPause, Fault::WebhookDrop]);
        v
    };
    let mut out = Vec::new();
    for name in names {
        match name.as_str() {
            "all" => out.extend(every()),
            "none" => out.push(Fault::None),
            "pg-restart" => out.push(Fault::PgRestart),
            "redis-flush" => out.push(Fault::RedisFlush),
            "kill-all" => out.extend(SERVICES.iter().map(|s| Fault::Kill(s))),
            "pg-pause" => out.push(Fault::PgPause),
            "webhook-drop" => out.push(Fault::WebhookDrop),
            other => match other
                .strip_prefix("kill-")
                .and_then(|s| SERVICES.iter().find(|x| **x == s))
            {
                Some(s) => out.push(Fault::Kill(s)),
                None => anyhow::bail!(
                    "unknown fault {other:?}: none, pg-restart, redis-flush, kill-<{}>, kill-all, pg-pause, webhook-drop, all",
                    SERVICES.join("|")
                ),
            },
        }
    }
    anyhow::ensure!(!out.is_empty() && out.len() <= 64, "1..=64 faults");
    Ok(out)
}

struct Harness {
    world: Arc<World>,
    mesh: Mesh,
    pg: Postgres,
    redis: Redis,
    receiver: Receiver,
    deliveries: Arc<Deliveries>,
    streams: Arc<Streams>,
    request_timeout: Duration,
    /// When Redis was last flushed (just before FLUSHALL was sent).
    flushed_at: Option<Instant>,
    /// Every notification and keyed intent settled so far, all phases.
    book: Vec<Settled>,
    keys: Vec<KeyedIntent>,
    bills: Vec<BillSettled>,
}

impl Harness {
    /// Injects `fault`; answers what happened and when the fault ended.
    async fn inject(&mut self, fault: &Fault) -> anyhow::Result<(String, Instant)> {
        let run = &self.world.run;
        let down = Duration::from_secs_f64(run.down_seconds);
        Ok(match fault {
            Fault::None => ("none (baseline)".into(), Instant::now()),
            Fault::PgRestart => {
                let t = Instant::now();
                self.pg.crash().await?;
                tokio::time::sleep(down).await;
                self.pg.start().await?;
                (
                    format!(
                        "PostgreSQL crashed (`pg_ctl stop -m immediate`), started {} later (WAL recovery); down {}",
                        secs(down),
                        secs(t.elapsed())
                    ),
                    Instant::now(),
                )
            }
            Fault::RedisFlush => {
                let t = Instant::now();
                self.redis.stop().await?;
                tokio::time::sleep(down).await;
                self.redis.start().await?;
                self.flushed_at = Some(Instant::now());
                let flushed = self.redis.cli(&["flushall"]).await?;
                anyhow::ensure!(flushed == "OK", "FLUSHALL answered {flushed:?}");
                (
                    format!(
                        "Redis stopped (`SHUTDOWN NOSAVE`), started {} later and flushed (`FLUSHALL`); down {}",
                        secs(down),
                        secs(t.elapsed())
                    ),
                    Instant::now(),
                )
            }
            Fault::Kill(name) => {
                self.mesh.kill9(name).await?;
                tokio::time::sleep(down).await;
                self.mesh.spawn(name).await?;
                (
                    format!("`kill -9` {name}, started again {} later", secs(down)),
                    Instant::now(),
                )
            }
            Fault::PgPause => {
                let pause = Duration::from_secs_f64(run.pause_seconds);
                let mut paused = Paused::stop(self.pg.postmaster()?)?;
                let n = paused.children.len() + 1;
                tokio::time::sleep(pause).await;
                paused.resume()?;
                (
                    format!(
                        "PostgreSQL paused: SIGSTOP to the postmaster and its {} processes for {} (deadlines: requests {}, ledger calls {}), then SIGCONT",
                        n - 1,
                        secs(pause),
                        secs(self.request_timeout),
                        secs(LEDGER_CALL_TIMEOUT)
                    ),
                    Instant::now(),
                )
            }
            Fault::WebhookDrop => {
                let gone = Duration::from_secs_f64(run.receiver_down_seconds);
                self.receiver.down().await;
                tokio::time::sleep(gone).await;
                self.receiver.up()?;
                (
                    format!(
                        "webhook receiver dropped (its port closed) for {}, then back on the same port",
                        secs(gone)
                    ),
                    Instant::now(),
                )
            }
        })
    }

    async fn phase(&mut self, fault: &Fault) -> anyhow::Result<Row> {
        let run = &self.world.run;
        let load_time = Duration::from_secs_f64(run.load_seconds);
        let recover_limit = Duration::from_secs(run.recover_seconds);
        let phase = Arc::new(PhaseLoad::default());
        let reconnects_before = self.streams.reconnects.load(Ordering::Relaxed);
        let posts_before = self.deliveries.posts.load(Ordering::Relaxed);
        eprintln!("faults: {fault:?}: load for {}", secs(load_time));
        // Before Redis loses its data: a merchant's credential revoked, its token probed
        // throughout (the revocation list lives in Redis).
        let mut revoked = match fault {
            Fault::RedisFlush => Some(Revoked::start(&self.world).await?),
            _ => None,
        };
        let load = Load::start(&self.world, &phase);
        tokio::time::sleep(load_time).await;
        eprintln!("faults: {fault:?}: injecting");
        let (what, ended) = self.inject(fault).await?;
        *lock(&phase.fault_end) = Some(ended);
        let recovering = tokio::spawn(recovery(
            self.world.clone(),
            self.mesh.addrs.clone(),
            ended,
            recover_limit,
        ));
        tokio::time::sleep(load_time).await;
        eprintln!("faults: {fault:?}: settling");
        let (ran, settled, mut keys, bills) = load.stop().await?;
        let recovered = recovering.await?;
        self.book.extend(settled);
        self.keys.append(&mut keys);
        self.bills.extend(bills);
        // Every key of the run again, the same request: the intent it made, not another (keys
        // made before a Redis flush are answered from PostgreSQL).
        let world = self.world.clone();
        // Counted apart from the phase's load; what they were refused is the phase's problem.
        let replaying = Arc::new(PhaseLoad::default());
        let replays: Vec<Option<String>> = futures::stream::iter(self.keys.iter())
            .map(|k| {
                let (world, replaying) = (world.clone(), replaying.clone());
                async move {
                    match k.first {
                        Some(_) => world.create_keyed(&replaying, k).await,
                        None => None,
                    }
                }
            })
            .buffered(8)
            .collect()
            .await;
        for (k, replay) in self.keys.iter_mut().zip(replays) {
            k.replay = replay;
        }
        // And every bill payment answered: the same request under its key answers the same
        // payment.
        let replays: Vec<Option<Result<String, String>>> = futures::stream::iter(self.bills.iter())
            .map(|b| {
                let (world, replaying) = (world.clone(), replaying.clone());
                async move {
                    let (Some(_), Some(request)) = (&b.payment, &b.request) else {
                        return None;
                    };
                    Some(match world.pay_call(request, &b.key, &replaying).await {
                        Ok(paid) => Ok(paid
                            .payments
                            .first()
                            .map(|p| p.id.clone())
                            .unwrap_or_default()),
                        Err(status) => {
                            Err(format!("{} {}", code_name(status.code()), status.message()))
                        }
                    })
                }
            })
            .buffered(8)
            .collect()
            .await;
        for (b, replay) in self.bills.iter_mut().zip(replays) {
            b.replay = replay;
        }
        for p in lock(&replaying.problems).drain(..) {
            phase.problem(format!("replay: {p}"));
        }
        let revocation = match (revoked.take(), self.flushed_at.take()) {
            (Some(r), Some(flushed)) => Some(r.finish(flushed).await),
            _ => None,
        };
        eprintln!("faults: {fault:?}: draining streams and webhooks");
        let drained = self.drain().await;
        eprintln!("faults: {fault:?}: checking");
        let mut checks = self.check_database().await?;
        checks.push(self.check_events(drained).await?);
        checks.extend(self.check_keys(&phase).await?);
        checks.push(self.check_recovery(&recovered, &phase).await);
        checks.extend(revocation);
        let load = format!(
            "{} notifications in {} ({:.0}/s), {} attempts ({}), {} answered as duplicates, {} given up; {} keyed intents ({} retried answers); {} bill payments, {} paid ({} calls: {}); {} streams ({} reconnects); {} webhook POSTs",
            phase.notes.load(Ordering::Relaxed),
            secs(ran),
            phase.notes.load(Ordering::Relaxed) as f64 / ran.as_secs_f64(),
            phase.attempts.load(Ordering::Relaxed),
            phase.errors_text(),
            phase.duplicates.load(Ordering::Relaxed),
            phase.gave_up.load(Ordering::Relaxed),
            phase.keyed.load(Ordering::Relaxed),
            phase.keyed_errors.load(Ordering::Relaxed),
            phase.bills.load(Ordering::Relaxed),
            phase.bills_paid.load(Ordering::Relaxed),
            phase.bill_attempts.load(Ordering::Relaxed),
            errors_text(&phase.bill_errors),
            self.world.run.watchers.min(self.world.stalls.len()),
            self.streams.reconnects.load(Ordering::Relaxed) - reconnects_before,
            self.deliveries.posts.load(Ordering::Relaxed) - posts_before,
        );
        Ok(Row {
            fault: what,
            load,
            checks,
        })
    }

    /// Waits until the watched streams and the receiver have every acknowledged payment, or
    /// `--drain-seconds` have passed; answers how long it took.
    async fn drain(&self) -> Duration {
        let started = Instant::now();
        let limit = Duration::from_secs(self.world.run.drain_seconds);
        let acked: Vec<(usize, &str)> = self
            .book
            .iter()
            .filter_map(|s| s.ack.as_ref().map(|a| (s.merchant, a.payment_id.as_str())))
            .collect();
        loop {
            let delivered: HashSet<String> = lock(&self.deliveries.events)
                .values()
                .map(|(p, _)| p.clone())
                .collect();
            let streamed = {
                let seen = lock(&self.streams.seen);
                acked.iter().all(|(m, p)| {
                    seen.get(&self.world.stalls[*m].id)
                        .is_none_or(|s| s.contains_key(*p))
                })
            };
            if (streamed && acked.iter().all(|(_, p)| delivered.contains(*p)))
                || started.elapsed() > limit
            {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn check_database(&self) -> anyhow::Result<Vec<Check>> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&self.world.run.database_url)
            .await
            .context("connecting to the mesh's database")?;
        let clearing = self.world.clearing.to_uuid();
        let credits: Vec<CreditRow> = sqlx::query_as(
            "SELECT c.id, c.bank_transaction_id, c.amount, c.outcome, p.amount, p.fee \
             FROM payment.credits c LEFT JOIN payment.payments p ON p.id = c.id",
        )
        .fetch_all(&pool)
        .await
        .context("reading credits and payments")?;
        // Each reference's legs: how many, the payment leg's amount and payee, the fee leg's
        // amount, and how many debit the bank's clearing account.
        let legs: Vec<LegsRow> = sqlx::query_as(
            "SELECT reference, count(*)::int8, \
               coalesce(sum(amount) FILTER (WHERE code = 1), 0)::int8, \
               coalesce(sum(amount) FILTER (WHERE code = 3), 0)::int8, \
               count(*) FILTER (WHERE debit_account_id = $1)::int8, \
               min(credit_account_id::text) FILTER (WHERE code = 1), \
               coalesce(sum(amount) FILTER (WHERE code = 2), 0)::int8 \
             FROM ledger.transfers GROUP BY reference",
        )
        .bind(clearing)
        .fetch_all(&pool)
        .await
        .context("reading the ledger's transfers")?;
        let clearing_debits: Option<i64> =
            sqlx::query_scalar("SELECT debits_posted FROM ledger.accounts WHERE id = $1")
                .bind(clearing)
                .fetch_optional(&pool)
                .await
                .context("reading the clearing account")?;
        let audit = paymesh_ledger::store::audit(&pool)
            .await
            .context("auditing the ledger")?;
        let bills: Vec<BillRow> = sqlx::query_as(
            "SELECT b.bill_number, b.status, b.amount_paid, count(p.id)::int8, \
               coalesce(sum(p.amount), 0)::int8, coalesce(sum(p.fee), 0)::int8, min(p.id::text) \
             FROM billing.bills b LEFT JOIN billing.payments p ON p.bill_id = b.id \
             WHERE b.biller_id = $1::text::uuid GROUP BY b.id",
        )
        .bind(&self.world.biller)
        .fetch_all(&pool)
        .await
        .context("reading the biller's bills and payments")?;
        pool.close().await;

        let credits: HashMap<Uuid, _> = credits.into_iter().map(|c| (c.0, c)).collect();
        let legs: HashMap<String, _> = legs.into_iter().map(|l| (l.0.clone(), l)).collect();
        let book: HashMap<Uuid, &Settled> = self.book.iter().map(|s| (s.credit, s)).collect();

        // Every acknowledged payment, exactly once, whole.
        let mut once = Problems::default();
        let mut acked = 0u64;
        let mut acked_sum = 0i64;
        for s in self.book.iter().filter(|s| s.ack.is_some()) {
            acked += 1;
            acked_sum += s.amount as i64;
            let Some((_, txn, amount, _outcome, p_amount, fee)) = credits.get(&s.credit) else {
                once.add(format!("{}: no credit row", s.txn));
                continue;
            };
            if txn != &s.txn || *amount != s.amount as i64 {
                once.add(format!("{}: credit row says {txn} {amount}", s.txn));
            }
            let (Some(p_amount), Some(fee)) = (p_amount, fee) else {
                once.add(format!("{}: no payment row", s.txn));
                continue;
            };
            if *p_amount != s.amount as i64 {
                once.add(format!(
                    "{}: payment of {p_amount}, notified {}",
                    s.txn, s.amount
                ));
            }
            let payee = chart::merchant_account(
                MerchantAccount::Payable,
                self.world.stalls[s.merchant].uuid,
            )
            .to_uuid()
            .to_string();
            match legs.get(&s.credit.to_string()) {
                None => once.add(format!("{}: not in the ledger", s.txn)),
                Some((_, n, moved, fee_moved, _, to, _)) => {
                    let want = 1 + i64::from(*fee > 0);
                    if *n != want || *moved != s.amount as i64 || fee_moved != fee {
                        once.add(format!(
                            "{}: {n} legs moving {moved} + fee {fee_moved}; expected {want} moving {} + fee {fee}",
                            s.txn, s.amount
                        ));
                    }
                    if to.as_deref() != Some(payee.as_str()) {
                        once.add(format!(
                            "{}: paid to {to:?}, not the merchant's payable",
                            s.txn
                        ));
                    }
                }
            }
        }
        let gave_up = self.book.iter().filter(|s| s.ack.is_none()).count();

        // Nothing half-applied: ledger legs ⇔ credit row ⇔ payment row, for every credit and
        // every clearing debit in the database, whether or not it was acknowledged.
        let mut half = Problems::default();
        let mut unknown = 0;
        for (id, (_, txn, _, outcome, p_amount, _)) in &credits {
            if !book.contains_key(id) {
                unknown += 1;
                half.add(format!("credit {txn} was never notified by this run"));
            }
            if !legs.contains_key(&id.to_string()) {
                half.add(format!("{txn}: credit row ({outcome}) without ledger legs"));
            }
            if outcome != "SUSPENSE" && p_amount.is_none() {
                half.add(format!("{txn}: credit row ({outcome}) without its payment"));
            }
        }
        for (reference, (_, _, _, _, debits_clearing, _, _)) in &legs {
            let known = Uuid::try_parse(reference).is_ok_and(|id| credits.contains_key(&id));
            if *debits_clearing > 0 && !known {
                let txn = Uuid::try_parse(reference)
                    .ok()
                    .and_then(|id| book.get(&id))
                    .map_or("an unknown notification", |s| s.txn.as_str());
                half.add(format!(
                    "{txn}: ledger legs ({reference}) without a credit row"
                ));
            }
        }
        let unacked_applied = self
            .book
            .iter()
            .filter(|s| s.ack.is_none() && credits.contains_key(&s.credit))
            .count();

        // The ledger balances, and the clearing account moved by what was acknowledged (and by
        // what was applied without an acknowledgement, which is then listed above).
        let applied_unacked_sum: i64 = self
            .book
            .iter()
            .filter(|s| s.ack.is_none() && credits.contains_key(&s.credit))
            .map(|s| s.amount as i64)
            .sum();
        let bill_check = self.check_bills(&bills, &legs);
        let moved = clearing_debits.unwrap_or(0);
        let balanced = audit.is_empty() && moved == acked_sum + applied_unacked_sum;
        Ok(vec![
            Check {
                ok: once.list.is_empty() && gave_up == 0,
                text: format!(
                    "acked once: {}/{acked} in credits, payments and the ledger (chain + fee), {gave_up} never acked{}",
                    acked - once.count.min(acked),
                    once.quote()
                ),
            },
            Check {
                ok: half.list.is_empty() && unknown == 0,
                text: format!(
                    "half-applied: {} of {} credits and the ledger's clearing debits ({unacked_applied} unacked applied whole){}",
                    half.count,
                    credits.len(),
                    half.quote()
                ),
            },
            Check {
                ok: balanced,
                text: if audit.is_empty() {
                    format!(
                        "ledger: audit holds, clearing debited {moved} = Σ acked {acked_sum}{}",
                        if applied_unacked_sum > 0 {
                            format!(" + {applied_unacked_sum} applied unacked")
                        } else {
                            String::new()
                        }
                    )
                } else {
                    format!("ledger audit: {}", audit.join("; "))
                },
            },
            bill_check,
        ])
    }

    /// Every bill payment answered is its bill's one payment, whole (the bill PAID, its ledger
    /// leg, its fee); no bill paid twice; no payment without its leg or leg without its payment.
    fn check_bills(&self, bills: &[BillRow], legs: &HashMap<String, LegsRow>) -> Check {
        let rows: HashMap<&str, &BillRow> = bills.iter().map(|b| (b.0.as_str(), b)).collect();
        let mut bad = Problems::default();
        let (mut answered, mut whole, mut replayed) = (0, 0, 0);
        for b in &self.bills {
            let Some(payment) = &b.payment else { continue };
            answered += 1;
            match &b.replay {
                Some(Ok(again)) if again == payment => replayed += 1,
                Some(Ok(again)) => bad.add(format!(
                    "bill {}: paid as {payment}, its key replayed {again}",
                    b.number
                )),
                Some(Err(e)) => bad.add(format!(
                    "bill {}: paid as {payment}, its key replayed as {e}",
                    b.number
                )),
                None => bad.add(format!("bill {}: not replayed", b.number)),
            }
            let Some((_, status, paid, n, sum, fee, id)) = rows.get(b.number.as_str()) else {
                bad.add(format!("bill {}: not found", b.number));
                continue;
            };
            let leg = legs.get(payment);
            let leg_ok = leg.is_some_and(|l| {
                l.6 == b.amount as i64 && l.1 == 1 + i64::from(*fee > 0) && l.3 == *fee
            });
            if status == "PAID"
                && *n == 1
                && *sum == b.amount as i64
                && *paid == *sum
                && id.as_deref() == Some(payment.as_str())
                && leg_ok
            {
                whole += 1;
            } else {
                bad.add(format!(
                    "bill {}: {status}, {n} payments of {sum} (paid {paid}), ledger {leg:?}",
                    b.number
                ));
            }
        }
        let mut twice = 0;
        let mut paid_ids = HashSet::new();
        for (number, status, paid, n, sum, _, id) in bills {
            if *n > 1 {
                twice += 1;
                bad.add(format!("bill {number}: paid {n} times"));
            }
            if let (true, Some(id)) = (*n > 0, id) {
                paid_ids.insert(id.as_str());
                if legs.get(id).is_none_or(|l| l.6 <= 0) {
                    bad.add(format!(
                        "bill {number}: payment {id} without its ledger leg"
                    ));
                }
            }
            if (*n > 0) != (status == "PAID") || *paid != *sum {
                bad.add(format!(
                    "bill {number}: {status} with {n} payments of {sum}, paid {paid}"
                ));
            }
        }
        for (reference, l) in legs {
            if l.6 > 0 && !paid_ids.contains(reference.as_str()) {
                bad.add(format!("bill leg {reference} without its payment"));
            }
        }
        let unanswered = self.bills.iter().filter(|b| b.payment.is_none()).count();
        Check {
            ok: bad.list.is_empty() && unanswered == 0,
            text: format!(
                "bills: {whole}/{answered} answered paid once and whole (bill PAID, one payment, its ledger leg), {replayed}/{answered} replayed the same payment under their key, {twice} paid twice, {unanswered} unanswered, {} paid in all{}",
                paid_ids.len(),
                bad.quote()
            ),
        }
    }

    async fn check_events(&self, drained: Duration) -> anyhow::Result<Check> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&self.world.run.database_url)
            .await?;
        // What the payment service's webhook worker saw: deliveries it had to retry, and the
        // most attempts one took (the receiver's absence shows here).
        let (retried, attempts_max, undelivered): (i64, i32, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE attempts > 1), coalesce(max(attempts), 0), \
               count(*) FILTER (WHERE status <> 'DELIVERED') FROM payment.outbox",
        )
        .fetch_one(&pool)
        .await
        .context("reading the webhook outbox")?;
        pool.close().await;
        let seen = lock(&self.streams.seen);
        let events = lock(&self.deliveries.events);
        let delivered: HashSet<&str> = events.values().map(|(p, _)| p.as_str()).collect();
        let mut missing = Problems::default();
        let (mut watched, mut streamed, mut hooks) = (0, 0, 0);
        let acked: Vec<(&Settled, &Ack)> = self
            .book
            .iter()
            .filter_map(|s| s.ack.as_ref().map(|a| (s, a)))
            .collect();
        for (s, a) in &acked {
            if let Some(stream) = seen.get(&self.world.stalls[s.merchant].id) {
                watched += 1;
                if stream.contains_key(&a.payment_id) {
                    streamed += 1;
                } else {
                    missing.add(format!("{}: not on its merchant's stream", s.txn));
                }
            }
            if delivered.contains(a.payment_id.as_str()) {
                hooks += 1;
            } else {
                missing.add(format!("{}: no webhook", s.txn));
            }
        }
        let repeats: usize = seen
            .values()
            .map(|s| s.values().filter(|n| **n > 1).count())
            .sum();
        let redelivered = events.values().filter(|(_, n)| *n > 1).count();
        Ok(Check {
            ok: missing.list.is_empty() && repeats == 0,
            text: format!(
                "events: streams {streamed}/{watched} ({repeats} seen twice), webhooks {hooks}/{} ({} events, {redelivered} POSTed twice; outbox: {retried} deliveries retried, at most {attempts_max} attempts, {undelivered} not delivered), caught up in {}{}",
                acked.len(),
                events.len(),
                secs(drained),
                missing.quote()
            ),
        })
    }

    /// The keyed intents (one intent per key, its replay the same), and the answers of this
    /// phase's load that no client should get (refusals, wrong outcomes, other ids).
    async fn check_keys(&self, phase: &PhaseLoad) -> anyhow::Result<[Check; 2]> {
        let keys: Vec<String> = self.keys.iter().map(|k| k.key.clone()).collect();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&self.world.run.database_url)
            .await?;
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT order_reference, count(*)::int8 FROM payment.intents \
             WHERE order_reference = ANY($1) GROUP BY 1",
        )
        .bind(&keys)
        .fetch_all(&pool)
        .await
        .context("counting the keyed intents")?;
        pool.close().await;
        let counts: HashMap<String, i64> = counts.into_iter().collect();
        let mut bad = Problems::default();
        let mut replayed = 0;
        for k in &self.keys {
            let n = counts.get(&k.key).copied().unwrap_or(0);
            match (&k.first, &k.replay) {
                (Some(first), Some(replay)) if first == replay && n == 1 => replayed += 1,
                (Some(first), replay) => bad.add(format!(
                    "key {}: {first} then {replay:?}, {n} intents",
                    k.key
                )),
                (None, _) => bad.add(format!("key {}: never answered, {n} intents", k.key)),
            }
        }
        let problems = lock(&phase.problems).clone();
        let mut answers = Problems::default();
        for p in problems {
            answers.add(p);
        }
        Ok([
            Check {
                ok: bad.list.is_empty(),
                text: format!(
                    "keys: {replayed}/{} intents' keys replayed the same intent, one intent each{}",
                    self.keys.len(),
                    bad.quote(),
                ),
            },
            Check {
                ok: answers.list.is_empty(),
                text: format!(
                    "answers: {} refused or wrong during this fault{}",
                    answers.count,
                    answers.quote()
                ),
            },
        ])
    }

    async fn check_recovery(
        &self,
        recovered: &BTreeMap<&'static str, Option<Duration>>,
        phase: &PhaseLoad,
    ) -> Check {
        let exited = self.mesh.exited().await;
        let late: Vec<&str> = recovered
            .iter()
            .filter(|(_, t)| t.is_none())
            .map(|(n, _)| *n)
            .collect();
        let slowest = recovered
            .iter()
            .filter_map(|(n, t)| t.map(|t| (t, *n)))
            .max();
        let again = *lock(&phase.again_after);
        Check {
            ok: late.is_empty() && exited.is_empty() && again.is_some(),
            text: format!(
                "recovered: {}/{} services answer (health + a read) within {} s{}{}; payments acked again {}",
                recovered.len() - late.len(),
                recovered.len(),
                self.world.run.recover_seconds,
                slowest.map_or(String::new(), |(t, n)| format!(
                    ", slowest {n} {} after",
                    secs(t)
                )),
                if late.is_empty() && exited.is_empty() {
                    String::new()
                } else {
                    format!(" — not answering: {late:?}; {}", exited.join("; "))
                },
                again.map_or("never".to_owned(), |t| format!("{} after", secs(t)))
            ),
        }
    }
}

/// A merchant's API credential, exchanged for a token and then revoked, whose token is tried
/// every 100 ms: refused while Redis is down (the list cannot be read: UNAVAILABLE), and after
/// the flush once the merchant service has written the list again from PostgreSQL (every 5 s).
struct Revoked {
    flush_limit: Duration,
    answers: Arc<Mutex<Vec<(Instant, Code)>>>,
    prober: tokio::task::JoinHandle<()>,
}

/// How long after a flush the revocation list may be missing: the merchant service rewrites it
/// every 5 s, 1 s after a write that failed (the first after Redis restarted may), and a
/// probe's round trip.
const REVOCATION_HEAL: Duration = Duration::from_secs(7);

impl Revoked {
    async fn start(world: &World) -> anyhow::Result<Revoked> {
        let stall = world.stalls.first().context("no merchant")?;
        let ch = channel(&world.run.merchant_addr.to_string())?;
        let mut operator =
            MerchantServiceClient::with_interceptor(ch.clone(), world.operator.clone());
        let tag = Id128::random().to_string();
        let issued = operator
            .issue_credential(keyed(
                mpb::IssueCredentialRequest {
                    merchant_id: stall.id.clone(),
                    display_name: "fault test".into(),
                },
                &format!("faults-credential-{tag}"),
            ))
            .await
            .context("issuing a credential")?
            .into_inner();
        let credential = issued.credential.context("no credential")?;
        let mut exchange = tonic::Request::new(mpb::ExchangeCredentialRequest {});
        exchange.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", issued.secret)
                .parse()
                .context("the credential as metadata")?,
        );
        let token = MerchantServiceClient::new(ch)
            .exchange_credential(exchange)
            .await
            .context("exchanging the credential")?
            .into_inner()
            .access_token;
        let mut payments = PaymentServiceClient::with_interceptor(
            channel(&world.run.payment_addr.to_string())?,
            CallContext::with_token(&token)?,
        );
        let read = pb::ListPaymentsRequest {
            page_size: 1,
            ..Default::default()
        };
        payments
            .list_payments(read.clone())
            .await
            .context("the credential's token before its revocation")?;
        operator
            .revoke_credential(keyed(
                mpb::RevokeCredentialRequest {
                    merchant_id: stall.id.clone(),
                    credential_id: credential.id,
                },
                &format!("faults-revoke-{tag}"),
            ))
            .await
            .context("revoking the credential")?;
        let answers: Arc<Mutex<Vec<(Instant, Code)>>> = Arc::default();
        let log = answers.clone();
        let prober = tokio::spawn(async move {
            loop {
                let mut request = tonic::Request::new(read.clone());
                request.set_timeout(Duration::from_secs(1));
                let code = match tokio::time::timeout(
                    Duration::from_secs(2),
                    payments.list_payments(request),
                )
                .await
                {
                    Ok(Ok(_)) => Code::Ok,
                    Ok(Err(status)) => status.code(),
                    Err(_) => Code::DeadlineExceeded,
                };
                lock(&log).push((Instant::now(), code));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Ok(Revoked {
            flush_limit: REVOCATION_HEAL,
            answers,
            prober,
        })
    }

    /// The check: accepted only in the first seconds after the flush (`flushed`), refused
    /// before and after.
    async fn finish(self, flushed: Instant) -> Check {
        // Until the token is refused again after the flush (the list rewritten), or too late.
        let deadline = flushed + self.flush_limit + Duration::from_secs(1);
        while Instant::now() < deadline
            && !lock(&self.answers)
                .last()
                .is_some_and(|(at, c)| *at > flushed && *c == Code::Unauthenticated)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.prober.abort();
        let answers = lock(&self.answers).clone();
        let mut codes: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut accepted: Vec<Duration> = Vec::new();
        let mut early = 0;
        for (at, code) in &answers {
            *codes.entry(code_name(*code)).or_default() += 1;
            if *code == Code::Ok {
                match at.checked_duration_since(flushed) {
                    Some(after) => accepted.push(after),
                    None => early += 1,
                }
            }
        }
        let last = accepted.iter().max().copied();
        let ended_refused = answers
            .last()
            .is_some_and(|(_, c)| *c == Code::Unauthenticated);
        let ok = early == 0 && last.is_none_or(|t| t <= self.flush_limit) && ended_refused;
        Check {
            ok,
            text: format!(
                "revocation: a revoked credential's token tried {} times ({}): {}",
                answers.len(),
                codes
                    .iter()
                    .map(|(c, n)| format!("{c} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                match last {
                    _ if early > 0 => format!("accepted {early} times before the flush"),
                    None => "never accepted".to_owned(),
                    Some(t) => format!(
                        "accepted until {} after the flush (the list is rewritten from PostgreSQL every 5 s; allowed {})",
                        secs(t),
                        secs(self.flush_limit)
                    ),
                }
            ),
        }
    }
}

#[derive(Default)]
struct Problems {
    count: u64,
    list: Vec<String>,
}

impl Problems {
    fn add(&mut self, p: String) {
        self.count += 1;
        if self.list.len() < QUOTED_MAX {
            self.list.push(p);
        }
    }

    fn quote(&self) -> String {
        if self.list.is_empty() {
            String::new()
        } else {
            format!(" — {} problems, e.g. {}", self.count, self.list.join("; "))
        }
    }
}

struct Check {
    ok: bool,
    text: String,
}

struct Row {
    fault: String,
    load: String,
    checks: Vec<Check>,
}

impl Row {
    fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    fn markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|");
        let checks: Vec<String> = self
            .checks
            .iter()
            .map(|c| format!("{}{}", if c.ok { "" } else { "**FAIL** " }, cell(&c.text)))
            .collect();
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.text.split(':').next().unwrap_or("").to_owned())
            .collect();
        format!(
            "| {} | {} | {} | {} |",
            cell(&self.fault),
            cell(&self.load),
            checks.join("; "),
            if failed.is_empty() {
                "PASS".to_owned()
            } else {
                format!("FAIL ({})", failed.join(", "))
            }
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The run

pub async fn faults(run: FaultsRun) -> anyhow::Result<()> {
    let addrs: BTreeMap<&'static str, SocketAddr> = SERVICES
        .iter()
        .copied()
        .zip([
            run.ledger_addr,
            run.merchant_addr,
            run.billing_addr,
            run.payment_addr,
            run.settlement_addr,
            run.stall_addr,
        ])
        .collect();
    for addr in addrs.values() {
        check(
            *addr,
            &[
                ("--merchants", run.merchants, 1_000),
                ("--clients", run.clients, 256),
                ("--rate", run.rate, 5_000),
                ("--watchers", run.watchers.max(1), 100),
                ("--bills", run.bills, 100_000),
                ("--bill-rate", run.bill_rate, 1_000),
                ("--payers", run.payers, 64),
                ("--confirm-ms", run.confirm_ms as usize, 60_000),
            ],
        )?;
    }
    let faults = faults_from(&run.faults)?;
    for (flag, v, max) in [
        ("--load-seconds", run.load_seconds, 120.0),
        ("--down-seconds", run.down_seconds, 60.0),
        ("--pause-seconds", run.pause_seconds, 120.0),
        ("--receiver-down-seconds", run.receiver_down_seconds, 300.0),
    ] {
        anyhow::ensure!((0.1..=max).contains(&v), "{flag} must be 0.1..={max}");
    }
    for (flag, v, max) in [
        ("--recover-seconds", run.recover_seconds, 300),
        ("--settle-seconds", run.settle_seconds, 600),
        ("--drain-seconds", run.drain_seconds, 600),
    ] {
        anyhow::ensure!((1..=max).contains(&v), "{flag} must be 1..={max}");
    }
    let request_timeout = env_ms("PAYMESH_SERVER_REQUEST_TIMEOUT_MS", 10_000);
    let acquire_timeout = env_ms("PAYMESH_DATABASE_ACQUIRE_TIMEOUT_MS", 5_000);
    let deadline = request_timeout
        .max(LEDGER_CALL_TIMEOUT)
        .max(acquire_timeout);
    if faults.contains(&Fault::PgPause) {
        anyhow::ensure!(
            Duration::from_secs_f64(run.pause_seconds) > deadline,
            "--pause-seconds must be longer than every deadline ({} here)",
            secs(deadline)
        );
    }
    let started = Instant::now();
    std::fs::create_dir_all(&run.log_dir)?;

    let mesh = Mesh {
        bin: run.paymesh.clone(),
        logs: run.log_dir.clone(),
        pids: run.pids_file.clone(),
        addrs: addrs.clone(),
        children: tokio::sync::Mutex::default(),
    };
    // pg_ctl runs from `/` (the postgres user may not reach this folder): absolute paths.
    let pg = Postgres {
        bin: std::path::absolute(&run.pg_bin)?,
        data: std::path::absolute(&run.pg_data)?,
        log: std::path::absolute(&run.pg_log)?,
        user: run.pg_user.clone(),
        tool_log: run.log_dir.join("tools.log"),
    };
    let redis = Redis {
        port: run.redis_port,
        conf: std::path::absolute(&run.redis_conf)?,
    };
    anyhow::ensure!(
        redis.answers().await,
        "Redis does not answer on port {}",
        redis.port
    );
    pg.postmaster()?;

    // The services, each its own process, in start order.
    let operator = CallContext::with_token(&run.operator_token)?;
    for name in SERVICES {
        mesh.spawn(name).await?;
        let t = Instant::now();
        loop {
            let health = async {
                tonic_health::pb::health_client::HealthClient::new(channel(
                    &addrs[name].to_string(),
                )?)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
                anyhow::Ok(())
            };
            if tokio::time::timeout(PROBE_TIMEOUT, health)
                .await
                .is_ok_and(|r| r.is_ok())
            {
                break;
            }
            if let Some(e) = mesh.exited().await.first() {
                anyhow::bail!(
                    "{e}; see {}",
                    run.log_dir.join(format!("{name}.log")).display()
                );
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(60),
                "{name} did not answer health within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!("faults: six services up in {}", secs(started.elapsed()));

    let deliveries = Arc::new(Deliveries::default());
    let receiver = Receiver::start("127.0.0.1:0".parse()?, deliveries.clone()).await?;
    let t = Instant::now();
    let stalls = set_up(&run, &operator, receiver.addr).await?;
    eprintln!(
        "faults: {} merchants onboarded, approved, with a webhook endpoint and an open intent in {}",
        stalls.len(),
        secs(t.elapsed())
    );
    let t = Instant::now();
    let biller = set_up_biller(&run, &operator).await?;
    eprintln!(
        "faults: a biller with {} bills in {}",
        run.bills,
        secs(t.elapsed())
    );
    let billing = BillingServiceClient::with_interceptor(
        channel(&run.billing_addr.to_string())?,
        CallContext::with_token(&run.channel_token)?,
    );
    let bank_ctx = CallContext::with_token(&run.bank_token)?;
    let bank = (0..4)
        .map(|_| {
            Ok(PaymentServiceClient::with_interceptor(
                channel(&run.payment_addr.to_string())?,
                bank_ctx.clone(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let streams = Arc::new(Streams::default());
    for stall in stalls.iter().take(run.watchers) {
        streams.watch(run.payment_addr, operator.clone(), stall.id.clone());
    }
    let conditions = conditions(&run, request_timeout, acquire_timeout).await;
    let world = Arc::new(World {
        attempt_timeout: request_timeout + Duration::from_secs(5),
        settle: Duration::from_secs(run.settle_seconds),
        operator,
        bank,
        stalls,
        clearing: SystemAccount::BankClearing { bin: BANK_BIN }
            .id()
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        run_tag: Id128::random().to_string()[..6].to_uppercase(),
        next_txn: AtomicU64::new(0),
        next_key: AtomicU64::new(0),
        biller,
        billing,
        next_bill: AtomicU64::new(0),
        run,
    });
    let mut harness = Harness {
        world,
        mesh,
        pg,
        redis,
        receiver,
        deliveries,
        streams,
        request_timeout,
        flushed_at: None,
        book: Vec::new(),
        keys: Vec::new(),
        bills: Vec::new(),
    };
    let mut rows = Vec::new();
    let mut failure = None;
    for fault in &faults {
        match harness.phase(fault).await {
            Ok(row) => {
                eprintln!("{}", row.markdown());
                rows.push(row);
            }
            Err(e) => {
                failure = Some(e.context(format!("injecting {fault:?}")));
                break;
            }
        }
    }
    harness.streams.stop();
    harness.receiver.down().await;
    harness.mesh.stop().await;

    println!(
        "\nConditions: {conditions}; the whole run took {}.\n",
        secs(started.elapsed())
    );
    println!(
        "| fault | load during it | checks (cumulative: every notification of the run so far) | result |"
    );
    println!("|---|---|---|---|");
    for row in &rows {
        println!("{}", row.markdown());
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let failed = rows.iter().filter(|r| !r.passed()).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} faults failed their checks",
        rows.len()
    );
    println!("\nRESULT faults={} passed={}", rows.len(), rows.len());
    Ok(())
}

async fn conditions(
    run: &FaultsRun,
    request_timeout: Duration,
    acquire_timeout: Duration,
) -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pg = async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&run.database_url)
            .await?;
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&pool)
            .await?;
        let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        anyhow::Ok(format!("PostgreSQL {version} (synchronous_commit={sync})"))
    }
    .await
    .unwrap_or_else(|e| format!("PostgreSQL (version unread: {e})"));
    format!(
        "{cores} cores; {pg} and Redis on loopback; six `paymesh serve` processes ({} build); \
         {} merchants (webhooks to this process), {} bank clients at ≤ {}/s new notifications, retried \
         100 ms→1 s until acknowledged (given up after {} s), {} watched streams, one keyed intent per 200 ms, \
         {} bills paid by {} payers at ≤ {}/s ({} ms between lookup and PayBill), billing.lookup_key {}; \
         {} s of load before and after each fault; server.request_timeout_ms={}, database.acquire_timeout_ms={}, \
         idempotency.lease_ms={}, payment.webhook_backoff_ms={} (max {}); every service must answer within {} s",
        run.build,
        run.merchants,
        run.clients,
        run.rate,
        run.settle_seconds,
        run.watchers,
        run.bills,
        run.payers,
        run.bill_rate,
        run.confirm_ms,
        if std::env::var("PAYMESH_BILLING_LOOKUP_KEY").is_ok_and(|k| !k.is_empty()) {
            "set"
        } else {
            "empty (a key per process)"
        },
        run.load_seconds,
        request_timeout.as_millis(),
        acquire_timeout.as_millis(),
        env_ms("PAYMESH_IDEMPOTENCY_LEASE_MS", 30_000).as_millis(),
        env_ms("PAYMESH_PAYMENT_WEBHOOK_BACKOFF_MS", 5_000).as_millis(),
        env_ms("PAYMESH_PAYMENT_WEBHOOK_BACKOFF_MAX_MS", 3_600_000).as_millis(),
        run.recover_seconds,
    )
}
