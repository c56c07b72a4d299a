//! The typed client other services read merchants with (the payment service matches credits
//! to merchants by virtual account, makes dynamic QRs from their static ones, and charges each
//! merchant's fee plan: `Merchant.fee_plan`, read with [`fee_plan`]).

use std::time::Duration;

use paymesh_money::fees::{FeePlan, FeePlanError};
use paymesh_platform::ApiError;
use paymesh_platform::auth::Minter;
use paymesh_platform::client::{CallContext, ServiceCaller, within};
use paymesh_proto::merchant::v1 as pb;
use paymesh_proto::merchant::v1::merchant_service_client::MerchantServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// How long one call may take.
pub const CALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(3);

type Grpc = MerchantServiceClient<InterceptedService<Channel, CallContext>>;

/// A client of the merchant service calling as `service:{name}`. Cheap to clone.
#[derive(Clone)]
pub struct MerchantClient {
    caller: ServiceCaller,
    timeout: Duration,
}

impl MerchantClient {
    pub fn new(addr: &str, minter: Minter, service: &str) -> anyhow::Result<MerchantClient> {
        Ok(MerchantClient {
            caller: ServiceCaller::new(addr, minter, service)?,
            timeout: CALL_TIMEOUT_DEFAULT,
        })
    }

    fn grpc(&self) -> Result<Grpc, ApiError> {
        Ok(MerchantServiceClient::with_interceptor(
            self.caller.channel(),
            self.caller.context()?,
        ))
    }

    /// The merchant with this id (canonical UUID text), or `None` if there is none.
    pub async fn get(&self, merchant_id: &str) -> Result<Option<pb::Merchant>, ApiError> {
        let request = within::request(
            pb::GetMerchantRequest {
                merchant_id: merchant_id.to_owned(),
            },
            self.timeout,
        );
        let mut grpc = self.grpc()?;
        match within::call(
            "merchant service",
            "GetMerchant",
            self.timeout,
            grpc.get_merchant(request),
        )
        .await?
        {
            Ok(m) => Ok(Some(m)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(from_status("GetMerchant", &status)),
        }
    }

    /// The holders of these virtual accounts (at most
    /// [`crate::service::VIRTUAL_ACCOUNTS_PER_LOOKUP_MAX`]), in one call: one answer per
    /// number, in order (`None`: nobody's).
    pub async fn by_virtual_accounts(
        &self,
        numbers: &[String],
    ) -> Result<Vec<Option<pb::Merchant>>, ApiError> {
        let request = within::request(
            pb::LookupVirtualAccountsRequest {
                virtual_account_numbers: numbers.to_vec(),
            },
            self.timeout,
        );
        let mut grpc = self.grpc()?;
        let answer = within::call(
            "merchant service",
            "LookupVirtualAccounts",
            self.timeout,
            grpc.lookup_virtual_accounts(request),
        )
        .await?
        .map_err(|status| from_status("LookupVirtualAccounts", &status))?;
        if answer.holders.len() != numbers.len() {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "the merchant service answered {} holders for {} virtual accounts",
                answer.holders.len(),
                numbers.len()
            )));
        }
        Ok(answer.holders.into_iter().map(|h| h.merchant).collect())
    }
}

impl MerchantClient {
    /// One page of merchants (as the settlement service lists them, with the whole
    /// settlement account number).
    pub async fn list(
        &self,
        request: pb::ListMerchantsRequest,
    ) -> Result<pb::ListMerchantsResponse, ApiError> {
        let request = within::request(request, self.timeout);
        let mut grpc = self.grpc()?;
        within::call(
            "merchant service",
            "ListMerchants",
            self.timeout,
            grpc.list_merchants(request),
        )
        .await?
        .map_err(|status| from_status("ListMerchants", &status))
    }

    /// Every merchant, all pages.
    pub async fn list_all(&self) -> Result<Vec<pb::Merchant>, ApiError> {
        let mut all = Vec::new();
        let mut request = pb::ListMerchantsRequest {
            page_size: 100,
            ..Default::default()
        };
        loop {
            let page = self.list(request.clone()).await?;
            all.extend(page.merchants);
            if page.next_page_token.is_empty() {
                return Ok(all);
            }
            request.page_token = page.next_page_token;
        }
    }
}

/// The merchant's own fee plan, parsed from `Merchant.fee_plan`; `None` when it has none (the
/// caller's default plan, `payment.fee_plan`, applies). The merchant service stores only plans
/// that parse, in canonical form, so an error means a merchant service of another version.
pub fn fee_plan(merchant: &pb::Merchant) -> Result<Option<FeePlan>, FeePlanError> {
    match merchant.fee_plan.trim() {
        "" => Ok(None),
        text => FeePlan::parse(text).map(Some),
    }
}

fn from_status(rpc: &str, status: &tonic::Status) -> ApiError {
    within::peer_error("merchant service", rpc, status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merchant_without_a_plan_has_the_default() {
        let mut m = pb::Merchant::default();
        assert_eq!(fee_plan(&m), Ok(None));
        m.fee_plan = "percent:0.6,min:1000,cap:50000".into();
        let plan = fee_plan(&m).unwrap().unwrap();
        assert_eq!(plan.fee(1_000_000), 6_000);
        m.fee_plan = "tiered:1".into();
        assert!(fee_plan(&m).is_err());
    }
}
