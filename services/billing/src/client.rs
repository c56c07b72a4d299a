//! The typed client the payment service hands bank credits to when their description quotes a
//! bill's reference (a paper bill's VietQR paid from a bank app).

use std::time::Duration;

use paymesh_platform::ApiError;
use paymesh_platform::auth::Minter;
use paymesh_platform::client::{CallContext, ServiceCaller, within};
use paymesh_proto::billing::v1 as pb;
use paymesh_proto::billing::v1::billing_service_client::BillingServiceClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// How long one call may take (it posts to the ledger).
pub const CALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);

type Grpc = BillingServiceClient<InterceptedService<Channel, CallContext>>;

/// The id of the bill payment a bank transaction made (the reference of its ledger transfers):
/// the same transaction always makes the same one. Settlement joins a bank's ledger
/// movements to the credits it notified by it.
pub fn bank_credit_payment_id(bank_bin: &str, bank_transaction_id: &str) -> uuid::Uuid {
    paymesh_ledger::client::chain::derived_uuid(
        "paymesh.billing.bank-credit.v1",
        &[bank_bin, bank_transaction_id],
    )
}

/// What the billing service made of a bank credit.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The bill took it (now, or before for the same bank transaction).
    Paid(Box<pb::BillPayment>),
    /// The bill cannot take it (unknown, paid, cancelled, expired, wrong amount): the reason,
    /// and the credit stays with the payment service (suspense).
    Refused { reason: String, message: String },
}

/// A client of the billing service calling as `service:{name}`. Cheap to clone.
#[derive(Clone)]
pub struct BillingClient {
    caller: ServiceCaller,
    timeout: Duration,
}

impl BillingClient {
    pub fn new(addr: &str, minter: Minter, service: &str) -> anyhow::Result<BillingClient> {
        Ok(BillingClient {
            caller: ServiceCaller::new(addr, minter, service)?,
            timeout: CALL_TIMEOUT_DEFAULT,
        })
    }

    /// Hands over a bank credit quoting `bill_reference`. Idempotent by (BIN, transaction).
    pub async fn apply_bank_credit(
        &self,
        bill_reference: &str,
        bank_bin: &str,
        bank_transaction_id: &str,
        amount: paymesh_proto::common::v1::Money,
    ) -> Result<Applied, ApiError> {
        let request = within::request(
            pb::ApplyBankCreditRequest {
                bill_reference: bill_reference.to_owned(),
                bank_bin: bank_bin.to_owned(),
                bank_transaction_id: bank_transaction_id.to_owned(),
                amount: Some(amount),
            },
            self.timeout,
        );
        let mut grpc: Grpc =
            BillingServiceClient::with_interceptor(self.caller.channel(), self.caller.context()?);
        match within::call(
            "billing service",
            "ApplyBankCredit",
            self.timeout,
            grpc.apply_bank_credit(request),
        )
        .await?
        {
            Ok(answer) => answer
                .payment
                .map(|p| Applied::Paid(Box::new(p)))
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("ApplyBankCredit: no payment"))),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::NotFound
                ) =>
            {
                Ok(Applied::Refused {
                    reason: reason_of(&status),
                    message: status.message().to_owned(),
                })
            }
            Err(status) => Err(within::peer_error(
                "billing service",
                "ApplyBankCredit",
                &status,
            )),
        }
    }
}

/// The `ErrorInfo` reason of a status, else its code.
fn reason_of(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_else(|| format!("{:?}", status.code()).to_uppercase())
}
