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
    /// The etag of the merchant as the operator reviewed it: approval and rejection carry one
    /// (required), the other changes none.
    fn etag(&self) -> Option<&str> {
        None
    }
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
    pb::SuspendMerchantRequest,
    pb::ReinstateMerchantRequest,
    pb::CloseMerchantRequest
);

macro_rules! reviewed_status_change {
    ($($t:ty),*) => {$(
        impl StatusChange for $t {
            fn merchant_id(&self) -> &str {
                &self.merchant_id
            }
            fn reason(&self) -> &str {
                &self.reason
            }
            fn etag(&self) -> Option<&str> {
                Some(&self.etag)
            }
        }
    )*};
}
reviewed_status_change!(pb::ApproveMerchantRequest, pb::RejectMerchantRequest);

/// The merchant changed since the operator reviewed it.
fn etag_mismatch(row: &MerchantRow) -> ApiError {
    ApiError::Aborted {
        reason: "ETAG_MISMATCH",
        message: format!(
            "merchant {} changed since it was reviewed (its etag is now {:?}): review it again",
            row.id,
            row.etag()
        ),
    }
}

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
        let etag = request.get_ref().etag().map(str::to_owned);
        if etag.as_deref() == Some("") {
            v.add(
                "etag",
                "is required: the merchant's etag as reviewed (GetMerchant)",
            );
        }
        v.into_result()?;
        let id = id.ok_or_else(|| ApiError::invalid("merchant_id", "required"))?;
        // Approval opens the ledger accounts first, holding no lock (see `open_accounts`).
        let opened = match action {
            Action::Approve => self.open_accounts(id, etag.as_deref()).await?,
            _ => false,
        };
        self.inner
            .tx
            .once(&request, |mut work: Work| async move {
                let row = store::merchant(&mut work.tx, id, RowLock::ForUpdate)
                    .await?
                    .ok_or_else(not_found_merchant)?;
                if etag.as_ref().is_some_and(|e| *e != row.etag()) {
                    return Err(etag_mismatch(&row));
                }
                let to =
                    transition(row.status, action, Actor::Operator).map_err(transition_error)?;
                match action {
                    Action::Approve if !opened => {
                        // Not reached: the same version was approvable when the accounts were
                        // looked at. Refused rather than activated without accounts.
                        return Err(ApiError::Aborted {
                            reason: "MERCHANT_CHANGED",
                            message: "the merchant changed during approval; retry".into(),
                        });
                    }
                    Action::Approve => self.activate(&mut work.tx, &row, to).await?,
                    Action::Suspend => self.suspend(&mut work.tx, id, to).await?,
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

    /// Suspension stops the merchant's live credential tokens at once: a new token epoch, and
    /// the old one's tokens listed for the auth layers before the commit. The credentials stay
    /// valid (exchanged again after reinstatement); exchanges are refused meanwhile.
    async fn suspend(
        &self,
        tx: &mut PgConnection,
        id: MerchantId,
        to: MerchantStatus,
    ) -> Result<(), ApiError> {
        let ended = store::suspend(tx, id, to).await?;
        let credentials = store::valid_credentials(tx, id).await?;
        self.publish_token_cut(&credentials, ended).await?;
        tracing::info!(merchant_id = %id, credentials = credentials.len(), "credential tokens stopped on suspension");
        Ok(())
    }

    /// Approval's first step, before its transaction and without any lock: opens the merchant's
    /// ledger accounts if the merchant is as reviewed (`etag`) and may be approved. Their ids
    /// derive from the merchant id, so a retry or a second approval finds them open (EXISTS
    /// counts as opened). A slow or unreachable ledger (UNAVAILABLE after its timeout) thus
    /// blocks no reader or writer of the merchant, and changes nothing. `false` when not
    /// opened: the transaction's locked checks then refuse, or an idempotent replay answers.
    async fn open_accounts(&self, id: MerchantId, etag: Option<&str>) -> Result<bool, ApiError> {
        let mut conn = self.pool().acquire().await.map_err(db)?;
        let row = store::merchant(&mut conn, id, RowLock::None).await?;
        drop(conn);
        let Some(row) = row else {
            return Ok(false);
        };
        if etag.is_some_and(|e| e != row.etag())
            || transition(row.status, Action::Approve, Actor::Operator).is_err()
        {
            return Ok(false);
        }
        self.inner
            .ledger
            .open_accounts(&row.id.ledger_accounts().to_open())
            .await?;
        Ok(true)
    }

    /// Approval, with the merchant's row locked and its ledger accounts open: on the first
    /// approval assigns the virtual account and issues the static QR.
    async fn activate(
        &self,
        tx: &mut PgConnection,
        row: &MerchantRow,
        to: MerchantStatus,
    ) -> Result<(), ApiError> {
        let opened = row.id.ledger_accounts();
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
