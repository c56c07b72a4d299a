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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use paymesh_money::Id128;
use paymesh_platform::ApiError;
use paymesh_platform::auth::Minter;
use paymesh_platform::client::{CallContext, ServiceCaller, within};
use paymesh_platform::time::timestamp_from_ns;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use crate::chart::NewAccount;

mod batcher;
pub mod chain;
use crate::validate::{BALANCE_IDS_MAX, BATCH_ITEMS_MAX};
pub use batcher::{BatcherConfig, BatcherStats, TransferBatcher};

/// How long one ledger call may take when the caller does not say.
pub const CALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
type Grpc = LedgerServiceClient<InterceptedService<Channel, CallContext>>;

/// A client of the ledger at one address, calling as one service. Cheap to clone: clones
/// share the connection and the token.
#[derive(Clone)]
pub struct LedgerClient {
    inner: Arc<Inner>,
    timeout: Duration,
}

struct Inner {
    caller: ServiceCaller,
    create_transfers_calls: AtomicU64,
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
    /// Commit positions (ns since the epoch, see `SealCommitOrder`) in `[start, end)`;
    /// `None`: no bound.
    pub commit_window: Option<(i64, i64)>,
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
            commit_window: None,
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
        Ok(LedgerClient {
            inner: Arc::new(Inner {
                caller: ServiceCaller::new(addr, minter, service)?,
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

    fn grpc(&self) -> Result<Grpc, ApiError> {
        Ok(LedgerServiceClient::with_interceptor(
            self.inner.caller.channel(),
            self.inner.caller.context()?,
        ))
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        within::request(message, self.timeout)
    }

    /// Runs one call within the timeout; errors become [`ApiError`]s.
    async fn within<T>(
        &self,
        rpc: &'static str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, ApiError> {
        within::call("ledger", rpc, self.timeout, call)
            .await?
            .map_err(|status| from_status(rpc, &status))
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
            commit_start_time: query.commit_window.map(|(s, _)| timestamp_from_ns(s)),
            commit_end_time: query.commit_window.map(|(_, e)| timestamp_from_ns(e)),
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

impl LedgerClient {
    /// Every transfer committed after this call has a commit position at or after `before`
    /// (ns since the epoch, not in the future); returns the sealed position.
    pub async fn seal_commit_order(&self, before: i64) -> Result<i64, ApiError> {
        let request = self.request(pb::SealCommitOrderRequest {
            before: Some(timestamp_from_ns(before)),
        });
        let mut grpc = self.grpc()?;
        let response = self
            .within("SealCommitOrder", grpc.seal_commit_order(request))
            .await?;
        Ok(response.sealed_position)
    }

    /// Every transfer touching `account` with a commit position in `[start, end)`, all pages.
    pub async fn transfers_committed(
        &self,
        account: Id128,
        (start, end): (i64, i64),
    ) -> Result<Vec<pb::TransferRecord>, ApiError> {
        let mut query = TransferQuery::account(account);
        query.commit_window = Some((start, end));
        query.page_size = 1000;
        let mut all = Vec::new();
        loop {
            let page = self.list_transfers(&query).await?;
            all.extend(page.transfers);
            match page.next_page_token {
                Some(token) => query.page_token = token,
                None => return Ok(all),
            }
        }
    }
}

/// A ledger error as the calling service reports it: unreachable, overloaded or contended is
/// UNAVAILABLE (the caller retries; ledger ids make that safe), anything else is our own
/// fault (INTERNAL, logged).
pub fn from_status(rpc: &str, status: &tonic::Status) -> ApiError {
    within::peer_error("ledger", rpc, status)
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
}
