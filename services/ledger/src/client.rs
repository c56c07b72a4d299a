//! The one typed client every service posts to the ledger with.
//!
//! [`LedgerClient`] calls the ledger over gRPC as `service:{name}`, with a token it mints and
//! reuses until shortly before it expires, a timeout on every call, and the ledger's answers
//! turned into [`ApiError`] in one place ([`from_status`]): a ledger that cannot be reached in
//! time, or says so, is [`ApiError::Unavailable`] (retry: ids make a retry safe); anything else
//! is [`ApiError::Internal`] (the ledger refused what this service sent: our bug).
//!
//! [`TransferBatcher`] is for callers that post many transfers at once from many tasks: it
//! queues them and sends what is waiting as one CreateTransfers call, and each caller gets the
//! results of its own transfers.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use paymesh_money::Id128;
use paymesh_platform::ApiError;
use paymesh_platform::auth::{Minter, Principal};
use paymesh_platform::client::{CallContext, channel};
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use crate::chart::NewAccount;
use crate::validate::{self, BALANCE_IDS_MAX, BATCH_ITEMS_MAX};

/// How long one ledger call may take when the caller does not say.
pub const CALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Lifetime of the service tokens the client mints.
const TOKEN_TTL: Duration = Duration::from_secs(300);
/// A token is replaced when less than this is left of its life (clock skew, slow calls).
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

type Grpc = LedgerServiceClient<InterceptedService<Channel, CallContext>>;

/// A client of the ledger at one address, calling as one service. Cheap to clone: clones
/// share the connection and the token.
#[derive(Clone)]
pub struct LedgerClient {
    inner: Arc<Inner>,
    timeout: Duration,
}

struct Inner {
    channel: Channel,
    minter: Minter,
    principal: Principal,
    token: Mutex<Option<CachedToken>>,
    create_transfers_calls: AtomicU64,
}

struct CachedToken {
    context: CallContext,
    replace_at: Instant,
}

/// How an account of [`LedgerClient::open_accounts`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// This call opened it.
    Opened,
    /// It was open already, with the same fields.
    AlreadyOpen,
}

/// A query of [`LedgerClient::list_transfers`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferQuery {
    pub account: Id128,
    /// Inclusive lower bound on the create time (`None`: from the start).
    pub start_time: Option<SystemTime>,
    /// Exclusive upper bound on the create time (`None`: up to now).
    pub end_time: Option<SystemTime>,
    /// 1..=1000; 0 means the ledger's default (100).
    pub page_size: u32,
    /// From the previous page; empty for the first.
    pub page_token: String,
}

impl TransferQuery {
    /// The first page of `account`'s transfers, all of time, the default page size.
    pub fn account(account: Id128) -> TransferQuery {
        TransferQuery {
            account,
            start_time: None,
            end_time: None,
            page_size: 0,
            page_token: String::new(),
        }
    }
}

/// One page of an account's transfers, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferPage {
    pub transfers: Vec<pb::TransferRecord>,
    /// `None` on the last page.
    pub next_page_token: Option<String>,
}

impl LedgerClient {
    /// A lazily connecting client of the ledger at `addr` (`host:port` or a URL) that calls as
    /// `service:{service}`, with tokens signed by `minter`, and [`CALL_TIMEOUT_DEFAULT`].
    /// Call it within a tokio runtime (the connection is tokio's).
    pub fn new(addr: &str, minter: Minter, service: &str) -> anyhow::Result<LedgerClient> {
        let principal = Principal::parse(&format!("service:{service}"))
            .map_err(|e| anyhow::anyhow!("ledger client service name {service:?}: {e}"))?;
        Ok(LedgerClient {
            inner: Arc::new(Inner {
                channel: channel(addr)?,
                minter,
                principal,
                token: Mutex::new(None),
                create_transfers_calls: AtomicU64::new(0),
            }),
            timeout: CALL_TIMEOUT_DEFAULT,
        })
    }

    /// The same client with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> LedgerClient {
        self.timeout = timeout;
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// CreateTransfers calls this client (and its clones) has sent.
    pub fn create_transfers_calls(&self) -> u64 {
        self.inner.create_transfers_calls.load(Ordering::Relaxed)
    }

    /// The call context with a valid token: the cached one, or a fresh one when it is near
    /// its expiry.
    fn context(&self) -> Result<CallContext, ApiError> {
        let mut cached = self
            .inner
            .token
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(t) = cached.as_ref()
            && now < t.replace_at
        {
            return Ok(t.context.clone());
        }
        let token = self
            .inner
            .minter
            .mint(&self.inner.principal, TOKEN_TTL.as_secs())?;
        let context = CallContext::with_token(&token)?;
        *cached = Some(CachedToken {
            context: context.clone(),
            replace_at: now + TOKEN_TTL.saturating_sub(TOKEN_REFRESH_MARGIN),
        });
        Ok(context)
    }

    fn grpc(&self) -> Result<Grpc, ApiError> {
        Ok(LedgerServiceClient::with_interceptor(
            self.inner.channel.clone(),
            self.context()?,
        ))
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        // The ledger learns the deadline too (grpc-timeout), so it gives up when we do.
        request.set_timeout(self.timeout);
        request
    }

    /// Runs one call within the timeout; errors become [`ApiError`]s.
    async fn within<T>(
        &self,
        rpc: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ApiError> {
        let started = Instant::now();
        let late = || {
            ApiError::Unavailable(format!(
                "the ledger did not answer {rpc} within {} ms; retry",
                self.timeout.as_millis()
            ))
        };
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(late()),
            // tonic enforces the request's grpc-timeout itself and reports CANCELLED when it
            // passes (it may beat the timer above): our deadline, not the ledger's answer.
            Ok(Err(status))
                if status.code() == tonic::Code::Cancelled && started.elapsed() >= self.timeout =>
            {
                Err(late())
            }
            Ok(Err(status)) => Err(from_status(rpc, &status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    /// Opens `accounts` (in calls of at most 8,190). An account that exists already with the
    /// same fields counts as opened ([`Opened::AlreadyOpen`]), so an opening can be retried;
    /// one that exists with other fields is an error naming it.
    pub async fn open_accounts(&self, accounts: &[NewAccount]) -> Result<Vec<Opened>, ApiError> {
        let mut opened = Vec::with_capacity(accounts.len());
        for chunk in accounts.chunks(BATCH_ITEMS_MAX) {
            let request = self.request(pb::CreateAccountsRequest {
                accounts: chunk.iter().map(NewAccount::to_wire).collect(),
            });
            let mut grpc = self.grpc()?;
            let response = self
                .within("CreateAccounts", grpc.create_accounts(request))
                .await?;
            if response.results.len() != chunk.len() {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "ledger answered {} results for {} accounts",
                    response.results.len(),
                    chunk.len()
                )));
            }
            for (account, result) in chunk.iter().zip(response.results) {
                opened.push(match pb::CreateAccountResult::try_from(result) {
                    Ok(pb::CreateAccountResult::Ok) => Opened::Opened,
                    Ok(pb::CreateAccountResult::Exists) => Opened::AlreadyOpen,
                    other => {
                        return Err(ApiError::Internal(anyhow::anyhow!(
                            "ledger refused to open account {} ({}, {:?}): {}",
                            account.id,
                            account.reference,
                            account.code,
                            other.map_or_else(
                                |_| format!("unknown result {result}"),
                                |r| r.as_str_name().to_owned()
                            )
                        )));
                    }
                });
            }
        }
        Ok(opened)
    }

    /// Sends `transfers` (1..=8,190, applied in order, linked chains as flagged) in one
    /// CreateTransfers call; one result per transfer, in order. An empty list sends nothing.
    pub async fn create_transfers(
        &self,
        transfers: Vec<pb::Transfer>,
    ) -> Result<Vec<pb::CreateTransferResult>, ApiError> {
        if transfers.is_empty() {
            return Ok(Vec::new());
        }
        if transfers.len() > BATCH_ITEMS_MAX {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "{} transfers in one CreateTransfers call; the ledger takes at most {BATCH_ITEMS_MAX}",
                transfers.len()
            )));
        }
        let count = transfers.len();
        let request = self.request(pb::CreateTransfersRequest { transfers });
        let mut grpc = self.grpc()?;
        self.inner
            .create_transfers_calls
            .fetch_add(1, Ordering::Relaxed);
        let response = self
            .within("CreateTransfers", grpc.create_transfers(request))
            .await?;
        if response.results.len() != count {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "ledger answered {} results for {count} transfers",
                response.results.len()
            )));
        }
        response
            .results
            .into_iter()
            .map(|r| {
                pb::CreateTransferResult::try_from(r).map_err(|_| {
                    ApiError::Internal(anyhow::anyhow!("ledger answered unknown result {r}"))
                })
            })
            .collect()
    }

    /// Balances of `ids` (in calls of at most 1,000), in the order asked; unknown ids are
    /// left out.
    pub async fn get_balances(&self, ids: &[Id128]) -> Result<Vec<pb::AccountBalance>, ApiError> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BALANCE_IDS_MAX) {
            let request = self.request(pb::GetBalancesRequest {
                account_ids: chunk.iter().map(|id| id.to_bytes().to_vec()).collect(),
            });
            let mut grpc = self.grpc()?;
            let response = self
                .within("GetBalances", grpc.get_balances(request))
                .await?;
            found.extend(response.accounts);
        }
        Ok(found)
    }

    /// One page of the transfers that debit or credit `query.account`, oldest first.
    pub async fn list_transfers(&self, query: &TransferQuery) -> Result<TransferPage, ApiError> {
        let page_size = i32::try_from(query.page_size).unwrap_or(i32::MAX);
        let request = self.request(pb::ListTransfersRequest {
            account_id: query.account.to_bytes().to_vec(),
            start_time: query.start_time.map(prost_types::Timestamp::from),
            end_time: query.end_time.map(prost_types::Timestamp::from),
            page_size,
            page_token: query.page_token.clone(),
        });
        let mut grpc = self.grpc()?;
        let response = self
            .within("ListTransfers", grpc.list_transfers(request))
            .await?;
        Ok(TransferPage {
            transfers: response.transfers,
            next_page_token: Some(response.next_page_token).filter(|t| !t.is_empty()),
        })
    }
}

/// A ledger error as the calling service reports it: unreachable, overloaded or contended is
/// UNAVAILABLE (the caller retries; ledger ids make that safe), anything else is our own
/// fault (INTERNAL, logged).
pub fn from_status(rpc: &str, status: &tonic::Status) -> ApiError {
    use tonic::Code;
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
            ApiError::Unavailable(format!(
                "the ledger is unavailable ({rpc}: {:?}); retry",
                status.code()
            ))
        }
        code => ApiError::Internal(anyhow::anyhow!(
            "ledger {rpc} failed: {code:?} {}",
            status.message()
        )),
    }
}

/// The same error for another caller (ApiError is not Clone: its Internal carries an
/// `anyhow::Error`). The client only makes Unavailable and Internal errors.
fn copy_error(e: &ApiError) -> ApiError {
    match e {
        ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
        ApiError::Overloaded(m) => ApiError::Overloaded(m.clone()),
        other => ApiError::Internal(anyhow::anyhow!("{other:#}")),
    }
}

/// Limits of a [`TransferBatcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatcherConfig {
    /// Submissions waiting to be sent at most. Beyond it a submitter waits for room (within
    /// `wait_max`).
    pub queue_submissions_max: usize,
    /// Transfers per CreateTransfers call at most (1..=8,190); also the longest submission.
    pub batch_transfers_max: usize,
    /// CreateTransfers calls in flight at once at most (the ledger group-commits concurrent
    /// calls, so a few in flight keep it busy while the next batch fills).
    pub in_flight_batches_max: usize,
    /// How long a submitter waits at most, queue and call together, before it is answered
    /// UNAVAILABLE (its transfers may still be applied: retry with the same ids).
    pub wait_max: Duration,
}

impl Default for BatcherConfig {
    fn default() -> BatcherConfig {
        BatcherConfig {
            queue_submissions_max: 16_384,
            batch_transfers_max: BATCH_ITEMS_MAX,
            in_flight_batches_max: 4,
            wait_max: Duration::from_secs(10),
        }
    }
}

/// Counters of a [`TransferBatcher`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatcherStats {
    /// CreateTransfers calls sent.
    pub batches: u64,
    /// Transfers sent in them.
    pub transfers: u64,
}

type Reply = oneshot::Sender<Result<Vec<pb::CreateTransferResult>, ApiError>>;

struct Submission {
    transfers: Vec<pb::Transfer>,
    reply: Reply,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    transfers: AtomicU64,
}

/// Groups the transfers of many concurrent callers into few CreateTransfers calls.
///
/// Callers [`submit`](Self::submit) one transfer, or [`submit_chain`](Self::submit_chain)
/// several that must travel together (a linked chain); a submission goes into a bounded queue,
/// and a task takes everything waiting, whole submissions up to `batch_transfers_max`
/// transfers, into one call. A submission is never split or interleaved: it stays contiguous
/// and in order, so a linked chain commits or fails together; and it must not end linked, so
/// it cannot chain into another caller's transfers. Each caller gets the results of its own
/// transfers; if the call fails, every caller in it gets the error.
///
/// Submissions are checked as the ledger checks them before they join a batch, so one bad
/// transfer fails only its own submitter, not everyone batched with it. A submission, once
/// queued, is sent even if its caller stops waiting.
///
/// Clones share the queue. The task ends when the last clone is dropped.
#[derive(Clone)]
pub struct TransferBatcher {
    queue: mpsc::Sender<Submission>,
    counters: Arc<Counters>,
    batch_transfers_max: usize,
    wait_max: Duration,
}

impl TransferBatcher {
    /// Starts the batching task (on the current tokio runtime) sending through `client`.
    pub fn start(client: LedgerClient, cfg: BatcherConfig) -> anyhow::Result<TransferBatcher> {
        anyhow::ensure!(
            (1..=BATCH_ITEMS_MAX).contains(&cfg.batch_transfers_max),
            "batch_transfers_max must be 1..={BATCH_ITEMS_MAX}, got {}",
            cfg.batch_transfers_max
        );
        anyhow::ensure!(
            cfg.queue_submissions_max >= 1,
            "queue_submissions_max must be at least 1"
        );
        anyhow::ensure!(
            (1..=Semaphore::MAX_PERMITS).contains(&cfg.in_flight_batches_max),
            "in_flight_batches_max must be at least 1"
        );
        anyhow::ensure!(!cfg.wait_max.is_zero(), "wait_max must be more than zero");
        let (queue, rx) = mpsc::channel(cfg.queue_submissions_max);
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(
            client,
            rx,
            cfg.batch_transfers_max,
            cfg.in_flight_batches_max,
            counters.clone(),
        ));
        Ok(TransferBatcher {
            queue,
            counters,
            batch_transfers_max: cfg.batch_transfers_max,
            wait_max: cfg.wait_max,
        })
    }

    pub fn stats(&self) -> BatcherStats {
        BatcherStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            transfers: self.counters.transfers.load(Ordering::Relaxed),
        }
    }

    /// Posts one transfer (not linked) and answers its result.
    pub async fn submit(
        &self,
        transfer: pb::Transfer,
    ) -> Result<pb::CreateTransferResult, ApiError> {
        let results = self.submit_chain(vec![transfer]).await?;
        results.into_iter().next().ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "the ledger answered no result for a transfer"
            ))
        })
    }

    /// Posts transfers that travel together: they go into one CreateTransfers call,
    /// contiguous and in this order, so a linked chain (linked on all but the last) commits
    /// or fails together. The last must not be linked. One result per transfer, in order.
    ///
    /// Transfers the ledger would refuse (a field out of bounds, a chain left open, more than
    /// `batch_transfers_max`) are refused here, INTERNAL naming the field, as the ledger's own
    /// refusal would be.
    pub async fn submit_chain(
        &self,
        transfers: Vec<pb::Transfer>,
    ) -> Result<Vec<pb::CreateTransferResult>, ApiError> {
        self.check(&transfers)?;
        let (reply, answer) = oneshot::channel();
        let submission = Submission { transfers, reply };
        let deadline = tokio::time::Instant::now() + self.wait_max;
        match tokio::time::timeout_at(deadline, self.queue.send(submission)).await {
            Err(_) => {
                return Err(ApiError::Unavailable(
                    "the ledger batcher's queue stayed full; nothing was sent, retry".into(),
                ));
            }
            Ok(Err(_)) => {
                return Err(ApiError::Internal(anyhow::anyhow!(
                    "the ledger batcher has stopped"
                )));
            }
            Ok(Ok(())) => {}
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Err(_) => Err(ApiError::Unavailable(
                "the ledger did not answer in time; retry with the same ids".into(),
            )),
            Ok(Err(_)) => Err(ApiError::Internal(anyhow::anyhow!(
                "the ledger batcher dropped a submission unanswered"
            ))),
            Ok(Ok(result)) => result,
        }
    }

    fn check(&self, transfers: &[pb::Transfer]) -> Result<(), ApiError> {
        let refuse = |why: String| {
            Err(ApiError::Internal(anyhow::anyhow!(
                "the ledger would refuse these transfers: {why}"
            )))
        };
        if transfers.len() > self.batch_transfers_max {
            return refuse(format!(
                "transfers: at most {} per submission, got {}",
                self.batch_transfers_max,
                transfers.len()
            ));
        }
        if let Some(last) = transfers.last()
            && last.flags.is_some_and(|f| f.linked)
        {
            return refuse(format!(
                "transfers[{}].flags.linked: the last transfer of a submission must not be \
                 linked (it would chain into another caller's transfers)",
                transfers.len() - 1
            ));
        }
        // The ledger's own checks (empty list, ids, amounts, codes, flags, references).
        match validate::transfer_list(transfers) {
            Ok(_) => Ok(()),
            Err(e) => refuse(e.to_string()),
        }
    }
}

/// The batching task: wait for a submission, then for a free call slot, then take everything
/// waiting (whole submissions, up to `batch_max` transfers) into one call.
async fn run(
    client: LedgerClient,
    mut queue: mpsc::Receiver<Submission>,
    batch_max: usize,
    in_flight_max: usize,
    counters: Arc<Counters>,
) {
    let slots = Arc::new(Semaphore::new(in_flight_max));
    // A submission taken from the queue that did not fit in the last batch: first in the next.
    let mut held: Option<Submission> = None;
    loop {
        let first = match held.take() {
            Some(s) => s,
            None => match queue.recv().await {
                Some(s) => s,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut size = first.transfers.len();
        let mut batch = vec![first];
        while size < batch_max {
            match queue.try_recv() {
                Ok(s) if size + s.transfers.len() <= batch_max => {
                    size += s.transfers.len();
                    batch.push(s);
                }
                Ok(s) => {
                    held = Some(s);
                    break;
                }
                Err(_) => break,
            }
        }
        counters.batches.fetch_add(1, Ordering::Relaxed);
        counters.transfers.fetch_add(size as u64, Ordering::Relaxed);
        let client = client.clone();
        tokio::spawn(async move {
            send(&client, batch, size).await;
            drop(slot);
        });
    }
}

/// Sends one batch and answers each submitter with its own results.
async fn send(client: &LedgerClient, batch: Vec<Submission>, size: usize) {
    let mut transfers = Vec::with_capacity(size);
    let mut waiting = Vec::with_capacity(batch.len());
    for s in batch {
        waiting.push((s.transfers.len(), s.reply));
        transfers.extend(s.transfers);
    }
    match client.create_transfers(transfers).await {
        Ok(results) => {
            let mut results = results.into_iter();
            for (len, reply) in waiting {
                let mine: Vec<pb::CreateTransferResult> = results.by_ref().take(len).collect();
                // The submitter may have stopped waiting; its transfers stand either way.
                let _ = reply.send(Ok(mine));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, transfers = size, "ledger batch failed");
            for (_, reply) in waiting {
                let _ = reply.send(Err(copy_error(&e)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_codes_map_to_unavailable_or_internal() {
        use tonic::Code;
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Aborted,
        ] {
            let e = from_status("CreateTransfers", &tonic::Status::new(code, "x"));
            assert!(matches!(e, ApiError::Unavailable(_)), "{code:?}: {e:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::Internal,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::Unknown,
        ] {
            let e = from_status("CreateAccounts", &tonic::Status::new(code, "why"));
            match e {
                ApiError::Internal(inner) => {
                    let text = inner.to_string();
                    assert!(
                        text.contains("CreateAccounts") && text.contains("why"),
                        "{text}"
                    );
                }
                other => panic!("{code:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn errors_copy_for_every_caller() {
        let e = ApiError::Unavailable("down".into());
        assert!(matches!(copy_error(&e), ApiError::Unavailable(m) if m == "down"));
        let e = ApiError::Internal(anyhow::anyhow!("broken"));
        assert!(matches!(copy_error(&e), ApiError::Internal(i) if i.to_string() == "broken"));
    }
}
