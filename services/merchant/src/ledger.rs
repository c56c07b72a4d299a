//! The merchant service's calls to the ledger, over gRPC as `service:merchant`.

use std::time::Duration;

use paymesh_money::Id128;
use paymesh_platform::ApiError;
use paymesh_platform::auth::{Minter, Principal};
use paymesh_platform::client::{CallContext, channel};
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use tonic::transport::Channel;

use crate::ids::{LedgerAccount, MerchantId};

/// How long one ledger call may take before the merchant RPC answers UNAVAILABLE.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Lifetime of the service token minted for each call.
const TOKEN_TTL_SECONDS: u64 = 300;

#[derive(Clone)]
pub struct Ledger {
    channel: Channel,
    minter: Minter,
}

/// The merchant's accounts as the ledger has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenedAccounts {
    pub payable: Id128,
    pub receivable: Id128,
}

impl Ledger {
    /// A lazily connecting client of the ledger at `addr`.
    pub fn new(addr: &str, minter: Minter) -> anyhow::Result<Ledger> {
        Ok(Ledger {
            channel: channel(addr)?,
            minter,
        })
    }

    fn client(
        &self,
    ) -> Result<
        LedgerServiceClient<tonic::service::interceptor::InterceptedService<Channel, CallContext>>,
        ApiError,
    > {
        let token = self
            .minter
            .mint(&Principal::Service("merchant".into()), TOKEN_TTL_SECONDS)?;
        Ok(LedgerServiceClient::with_interceptor(
            self.channel.clone(),
            CallContext::with_token(&token)?,
        ))
    }

    /// Opens the merchant's payable and receivable accounts. The ids are derived from the
    /// merchant id, so a retry (after a crash, or a second approval after a review) finds them:
    /// EXISTS with the same fields counts as opened. UNAVAILABLE when the ledger cannot be
    /// reached in time.
    pub async fn open_accounts(&self, merchant: MerchantId) -> Result<OpenedAccounts, ApiError> {
        let mut accounts = Vec::with_capacity(LedgerAccount::ALL.len());
        for kind in LedgerAccount::ALL {
            accounts.push(pb::Account {
                id: kind.id(merchant)?.to_bytes().to_vec(),
                currency_code: "VND".into(),
                code: kind.code(),
                flags: Some(pb::AccountFlags {
                    debits_must_not_exceed_credits: kind == LedgerAccount::Payable,
                    credits_must_not_exceed_debits: kind == LedgerAccount::Receivable,
                }),
                reference: kind.reference(merchant),
            });
        }
        let mut client = self.client()?;
        let call = client.create_accounts(pb::CreateAccountsRequest { accounts });
        let response = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Err(_) => {
                return Err(ApiError::Unavailable(
                    "the ledger did not answer in time; nothing was changed, retry".into(),
                ));
            }
            Ok(Err(status)) => return Err(from_ledger_status(&status)),
            Ok(Ok(response)) => response.into_inner(),
        };
        if response.results.len() != LedgerAccount::ALL.len() {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "ledger answered {} results for {} accounts",
                response.results.len(),
                LedgerAccount::ALL.len()
            )));
        }
        for (kind, result) in LedgerAccount::ALL.iter().zip(&response.results) {
            match pb::CreateAccountResult::try_from(*result) {
                Ok(pb::CreateAccountResult::Ok | pb::CreateAccountResult::Exists) => {}
                other => {
                    return Err(ApiError::Internal(anyhow::anyhow!(
                        "ledger refused the {} account of merchant {merchant}: {other:?}",
                        kind.name()
                    )));
                }
            }
        }
        Ok(OpenedAccounts {
            payable: LedgerAccount::Payable.id(merchant)?,
            receivable: LedgerAccount::Receivable.id(merchant)?,
        })
    }
}

/// A ledger error as this service reports it: unreachable or overloaded is UNAVAILABLE (the
/// caller retries), anything else is our own fault (INTERNAL, logged).
fn from_ledger_status(status: &tonic::Status) -> ApiError {
    use tonic::Code;
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted => {
            ApiError::Unavailable(format!(
                "the ledger is unavailable ({:?}); nothing was changed, retry",
                status.code()
            ))
        }
        code => ApiError::Internal(anyhow::anyhow!(
            "ledger CreateAccounts failed: {code:?} {}",
            status.message()
        )),
    }
}
