//! API credentials: issue (the secret shown once), revoke, list, and exchange for a short-lived
//! merchant token; and the revocation list every service's auth layer reads.

use std::time::Duration;

use paymesh_platform::ApiError;
use paymesh_platform::auth::{Principal, mark_credential_revoked, principal};
use paymesh_platform::edge::{Violations, Work, cursor_i64, i64_cursor};
use paymesh_platform::migrate::RowLock;
use paymesh_platform::time::timestamp_in;
use paymesh_proto::merchant::v1 as pb;
use tonic::Request;

use super::MerchantService;
use super::input::{MerchantFields, merchant_closed, merchant_page, not_found_merchant};
use crate::convert;
use crate::credential::{self, Presented};
use crate::domain::{MerchantStatus, TradingName};
use crate::store::{self, AuditAction, NewAuditEvent};

/// Valid (unrevoked) credentials a merchant may have at once.
pub const CREDENTIALS_PER_MERCHANT_MAX: i64 = 10;
/// How often the revocation list is rewritten from the database (it heals a Redis flush).
const REVOCATION_REPUBLISH: Duration = Duration::from_secs(5);
/// Added to the token lifetime when listing a revoked credential (clock skew, leeway).
const REVOCATION_MARGIN: Duration = Duration::from_secs(120);

/// The Redis list of revoked credentials that the auth layers check.
#[derive(Clone)]
pub(super) struct Revocations {
    conn: redis::aio::ConnectionManager,
    key_prefix: String,
}

impl Revocations {
    pub(super) fn new(conn: redis::aio::ConnectionManager, key_prefix: &str) -> Revocations {
        Revocations {
            conn,
            key_prefix: key_prefix.to_string(),
        }
    }

    async fn list(&self, id: uuid::Uuid, ttl: Duration) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        mark_credential_revoked(&mut conn, &self.key_prefix, &credential::id_text(id), ttl).await
    }
}

impl MerchantService {
    /// How long a revoked credential stays listed: the life of its tokens and a margin.
    fn revocation_window(&self) -> Duration {
        self.inner.settings.credential_token_ttl + REVOCATION_MARGIN
    }

    /// Lists revoked credentials for the auth layers, before the revocation commits: if Redis
    /// cannot take it, the RPC fails and nothing is revoked.
    pub(super) async fn publish_revocations(&self, ids: &[uuid::Uuid]) -> Result<(), ApiError> {
        let Some(revocations) = &self.inner.revocations else {
            return Ok(());
        };
        for id in ids {
            revocations
                .list(*id, self.revocation_window())
                .await
                .map_err(|e| {
                    ApiError::Unavailable(format!("cannot list the revoked credential: {e}"))
                })?;
        }
        Ok(())
    }

    /// Rewrites the revocation list from the database every few seconds while the service
    /// lives, so a Redis flush or restart heals by itself.
    pub(super) fn republish_revocations(&self) {
        let Some(revocations) = self.inner.revocations.clone() else {
            return;
        };
        let pool = self.pool().clone();
        let window = self.revocation_window();
        let weak = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REVOCATION_REPUBLISH);
            while weak.strong_count() > 0 {
                tick.tick().await;
                let ids = match store::recently_revoked_credentials(&pool, window).await {
                    Ok(ids) => ids,
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "cannot read revoked credentials");
                        continue;
                    }
                };
                for id in ids {
                    if let Err(e) = revocations.list(id, window).await {
                        tracing::warn!(error = %e, "cannot rewrite the credential revocation list");
                        break;
                    }
                }
            }
        });
    }

    pub(super) async fn issue(
        &self,
        request: Request<pb::IssueCredentialRequest>,
    ) -> Result<pb::IssueCredentialResponse, ApiError> {
        let actor = principal(&request)?.to_string();
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let display_name = v.parse("display_name", TradingName::parse(&req.display_name));
        v.into_result()?;
        let (Some(id), Some(display_name)) = (id, display_name) else {
            return Err(ApiError::invalid("merchant_id", "required"));
        };
        self.inner
            .tx
            .once_storing(&request, |mut work: Work| async move {
                let row = store::merchant(&mut work.tx, id, RowLock::ForUpdate)
                    .await?
                    .ok_or_else(not_found_merchant)?;
                may_get_credentials(row.status)?;
                let active = store::active_credential_count(&mut work.tx, id).await?;
                if active >= CREDENTIALS_PER_MERCHANT_MAX {
                    return Err(ApiError::FailedPrecondition {
                        reason: "TOO_MANY_CREDENTIALS",
                        message: format!(
                            "the merchant has {active} valid credentials, the most allowed; revoke one first"
                        ),
                    });
                }
                let new = credential::generate()?;
                let stored = store::insert_credential(
                    &mut work.tx,
                    new.id,
                    id,
                    display_name.as_str(),
                    &new.secret_sha256,
                    &actor,
                )
                .await?;
                let reason = format!(
                    "credential {} ({})",
                    credential::id_text(new.id),
                    display_name.as_str()
                );
                let event = NewAuditEvent {
                    merchant: id,
                    actor: &actor,
                    action: AuditAction::IssueCredential,
                    from: Some(row.status),
                    to: row.status,
                    reason: &reason,
                };
                store::append_audit(&mut work.tx, &event).await?;
                let credential = convert::credential_to_pb(&stored);
                tracing::info!(merchant_id = %id, credential_id = %credential.id, %actor, "credential issued");
                // The stored replay leaves the secret out: paymesh keeps no copy of it at rest.
                let without_secret = pb::IssueCredentialResponse {
                    credential: Some(credential.clone()),
                    secret: String::new(),
                };
                let answer = pb::IssueCredentialResponse {
                    credential: Some(credential),
                    secret: new.token,
                };
                Ok((work, Some(without_secret), answer))
            })
            .await
    }

    pub(super) async fn revoke(
        &self,
        request: Request<pb::RevokeCredentialRequest>,
    ) -> Result<pb::Credential, ApiError> {
        let actor = principal(&request)?.to_string();
        let req = request.get_ref();
        let mut v = Violations::default();
        let id = v.merchant_id("merchant_id", &req.merchant_id);
        let credential_id = credential::parse_id(&req.credential_id);
        if credential_id.is_none() {
            v.add(
                "credential_id",
                "must be a credential id: 32 lower-case hex digits",
            );
        }
        v.into_result()?;
        let (Some(id), Some(credential_id)) = (id, credential_id) else {
            return Err(ApiError::invalid("credential_id", "required"));
        };
        self.inner
            .tx
            .once(&request, |mut work: Work| async move {
                let row = store::merchant(&mut work.tx, id, RowLock::ForUpdate)
                    .await?
                    .ok_or_else(not_found_merchant)?;
                let (stored, newly) =
                    store::revoke_credential(&mut work.tx, id, credential_id, &actor)
                        .await?
                        .ok_or(ApiError::NotFound {
                            resource: "credential",
                        })?;
                if newly {
                    let reason = format!("credential {}", credential::id_text(credential_id));
                    let event = NewAuditEvent {
                        merchant: id,
                        actor: &actor,
                        action: AuditAction::RevokeCredential,
                        from: Some(row.status),
                        to: row.status,
                        reason: &reason,
                    };
                    store::append_audit(&mut work.tx, &event).await?;
                    tracing::info!(merchant_id = %id, credential_id = %credential::id_text(credential_id), %actor, "credential revoked");
                }
                self.publish_revocations(&[credential_id]).await?;
                Ok((work, convert::credential_to_pb(&stored)))
            })
            .await
    }

    pub(super) async fn credentials(
        &self,
        request: Request<pb::ListCredentialsRequest>,
    ) -> Result<pb::ListCredentialsResponse, ApiError> {
        let req = request.get_ref();
        let (id, paging) = merchant_page(
            "merchant.credentials",
            &req.merchant_id,
            req.page_size,
            &req.page_token,
        )?;
        let after = paging.after().and_then(cursor_i64).unwrap_or(0);
        let rows = store::list_credentials(self.pool(), id, after, paging.fetch_limit()).await?;
        let (rows, next_page_token) = paging.finish(rows, |r| i64_cursor(r.seq));
        Ok(pb::ListCredentialsResponse {
            credentials: rows.iter().map(convert::credential_to_pb).collect(),
            next_page_token,
        })
    }

    pub(super) async fn exchange(
        &self,
        request: Request<pb::ExchangeCredentialRequest>,
    ) -> Result<pb::ExchangeCredentialResponse, ApiError> {
        // One answer for every failure: a caller learns nothing about which part was wrong.
        let refused = || ApiError::Unauthenticated("invalid API credential".into());
        let presented = presented_credential(&request).ok_or_else(refused)?;
        let check = store::credential_check(self.pool(), presented.id)
            .await?
            .ok_or_else(refused)?;
        // The hash is compared before anything else is looked at, in constant time.
        if !presented.matches(&check.secret_sha256)
            || check.revoked
            || matches!(
                check.merchant_status,
                MerchantStatus::Closed | MerchantStatus::Rejected
            )
        {
            return Err(refused());
        }
        let ttl = self.inner.settings.credential_token_ttl;
        let credential_id = credential::id_text(presented.id);
        let token = self.inner.minter.mint_for_credential(
            &Principal::Merchant(check.merchant.to_string()),
            ttl.as_secs(),
            &credential_id,
        )?;
        tracing::info!(merchant_id = %check.merchant, %credential_id, "credential exchanged");
        Ok(pb::ExchangeCredentialResponse {
            access_token: token,
            expire_time: Some(timestamp_in(ttl)),
            merchant_id: check.merchant.to_string(),
        })
    }
}

/// A closed or rejected merchant gets no credentials.
fn may_get_credentials(status: MerchantStatus) -> Result<(), ApiError> {
    match status {
        MerchantStatus::Closed => Err(merchant_closed()),
        MerchantStatus::Rejected => Err(ApiError::FailedPrecondition {
            reason: "MERCHANT_REJECTED",
            message: "a rejected merchant gets no credentials".into(),
        }),
        _ => Ok(()),
    }
}

/// The `pmk_…` credential in the request's `authorization: Bearer …` metadata.
fn presented_credential<T>(req: &Request<T>) -> Option<Presented> {
    let text = req.metadata().get("authorization")?.to_str().ok()?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))?
        .trim();
    Presented::parse(token)
}
