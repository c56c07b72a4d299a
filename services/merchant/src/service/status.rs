//! The operator's status changes, with the audit log: approval opens the merchant's ledger
//! accounts and, the first time, assigns the virtual account and issues the static VietQR.

use paymesh_platform::ApiError;
use paymesh_platform::auth::principal;
use paymesh_platform::edge::{Violations, Work, cursor_i64, i64_cursor};
use paymesh_platform::migrate::RowLock;
use paymesh_proto::merchant::v1 as pb;
use sqlx::PgConnection;
use tonic::Request;

use super::MerchantService;
use super::input::{MerchantFields, db, merchant_page, not_found_merchant, transition_error};
use super::merchants::reread;
use crate::convert;
use crate::domain::{Action, Actor, MerchantStatus, transition};
use crate::ids::{MerchantId, virtual_account_number};
use crate::static_qr::{self, StaticQrInput};
use crate::store::{self, AuditAction, MerchantRow, NewActivation, NewAuditEvent};

/// What the five status RPCs carry.
pub(super) trait StatusChange {
    fn merchant_id(&self) -> &str;
    fn reason(&self) -> &str;
}

macro_rules! status_change {
    ($($t:ty),*) => {$(
        impl StatusChange for $t {
            fn merchant_id(&self) -> &str {
                &self.merchant_id
            }
            fn reason(&self) -> &str {
                &self.reason
            }
        }
    )*};
}
status_change!(
    pb::ApproveMerchantRequest,
    pb::RejectMerchantRequest,
    pb::SuspendMerchantRequest,
    pb::ReinstateMerchantRequest,
    pb::CloseMerchantRequest
);

fn audit_action(action: Action) -> AuditAction {
    match action {
        Action::Approve => AuditAction::Approve,
        Action::Reject => AuditAction::Reject,
        Action::Suspend => AuditAction::Suspend,
        Action::Reinstate => AuditAction::Reinstate,
        Action::Close => AuditAction::Close,
        Action::ResubmitForReview => AuditAction::ResubmitForReview,
    }
}

impl MerchantService {
    pub(super) async fn change_status<T: StatusChange>(
        &self,
        request: Request<T>,
        action: Action,
    ) -> Result<pb::Merchant, ApiError> {
        let actor = principal(&request)?.to_string();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", request.get_ref().merchant_id());
        let reason = v.reason(request.get_ref().reason());
        v.into_result()?;
        let id = id.ok_or_else(|| ApiError::invalid("merchant_id", "required"))?;
        self.inner
            .tx
            .once(&request, |mut work: Work| async move {
                let row = store::merchant(&mut work.tx, id, RowLock::ForUpdate)
                    .await?
                    .ok_or_else(not_found_merchant)?;
                let to =
                    transition(row.status, action, Actor::Operator).map_err(transition_error)?;
                match action {
                    Action::Approve => self.activate(&mut work.tx, &row, to).await?,
                    Action::Close => self.close(&mut work.tx, id, to, &actor).await?,
                    _ => store::set_status(&mut work.tx, id, to).await?,
                }
                let event = NewAuditEvent {
                    merchant: id,
                    actor: &actor,
                    action: audit_action(action),
                    from: Some(row.status),
                    to,
                    reason: &reason,
                };
                store::append_audit(&mut work.tx, &event).await?;
                let merchant = reread(&mut work.tx, id).await?;
                tracing::info!(merchant_id = %id, from = %row.status, to = %to, %actor, "merchant status changed");
                Ok((work, merchant))
            })
            .await
    }

    /// Closing revokes every credential (listed for the auth layers before the commit).
    async fn close(
        &self,
        tx: &mut PgConnection,
        id: MerchantId,
        to: MerchantStatus,
        actor: &str,
    ) -> Result<(), ApiError> {
        let revoked = store::revoke_all_credentials(tx, id, actor).await?;
        self.publish_revocations(&revoked).await?;
        if !revoked.is_empty() {
            tracing::info!(merchant_id = %id, revoked = revoked.len(), "credentials revoked on close");
        }
        store::set_status(tx, id, to).await?;
        Ok(())
    }

    /// Approval: opens the ledger accounts (or finds them, on a retry or a second approval),
    /// and on the first approval assigns the virtual account and issues the static QR.
    async fn activate(
        &self,
        tx: &mut PgConnection,
        row: &MerchantRow,
        to: MerchantStatus,
    ) -> Result<(), ApiError> {
        // Called with the merchant's row locked: a concurrent approval waits for this one.
        let opened = row.id.ledger_accounts();
        self.inner.ledger.open_accounts(&opened.to_open()).await?;
        if row.activation.is_some() {
            store::set_status(tx, row.id, to).await?;
            return Ok(());
        }
        let sequence = store::next_virtual_account_sequence(tx).await?;
        let settings = &self.inner.settings;
        let va = virtual_account_number(&settings.virtual_account_prefix, sequence)?;
        let bin = settings.collection_bank.as_str();
        let payload = static_qr::payload(&StaticQrInput {
            collection_bank_bin: bin,
            virtual_account_number: &va,
            mcc: &row.profile.mcc,
            business_name: &row.profile.business_name,
            trading_name: row.profile.trading_name.as_deref(),
            address: &row.profile.address,
        })
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("building the static VietQR: {e}")))?;
        let activation = NewActivation {
            virtual_account_number: va,
            collection_bank_bin: bin.to_owned(),
            static_qr_payload: payload,
            payable_account_id: opened.payable.to_uuid(),
            receivable_account_id: opened.receivable.to_uuid(),
        };
        store::activate(tx, row.id, to, &activation).await?;
        Ok(())
    }

    pub(super) async fn audit_events(
        &self,
        request: Request<pb::ListMerchantAuditEventsRequest>,
    ) -> Result<pb::ListMerchantAuditEventsResponse, ApiError> {
        let req = request.get_ref();
        let (id, paging) = merchant_page(
            "merchant.audit_events",
            &req.merchant_id,
            req.page_size,
            &req.page_token,
        )?;
        let mut conn = self.pool().acquire().await.map_err(db)?;
        if store::merchant(&mut conn, id, RowLock::None)
            .await?
            .is_none()
        {
            return Err(not_found_merchant());
        }
        drop(conn);
        let after = paging.after().and_then(cursor_i64).unwrap_or(0);
        let rows = store::audit_events(self.pool(), id, after, paging.fetch_limit()).await?;
        let (rows, next_page_token) = paging.finish(rows, |r| i64_cursor(r.id));
        Ok(pb::ListMerchantAuditEventsResponse {
            events: rows.iter().map(convert::audit_event_to_pb).collect(),
            next_page_token,
        })
    }
}
