//! API credentials: issue (the secret shown once), revoke, list, and exchange for a short-lived
//! merchant token; and the revocation list every service's auth layer reads.

use std::time::Duration;

use paymesh_platform::ApiError;
use paymesh_platform::auth::{
    Principal, is_credential_revoked, mark_credential_revoked, principal,
};
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
/// How soon a rewrite that failed is tried again: the first command after Redis restarted
/// fails on the old connection (broken pipe) while the client reconnects, and waiting the
/// full interval would leave a flushed list empty for up to two intervals.
const REVOCATION_REPUBLISH_RETRY: Duration = Duration::from_secs(1);
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

    /// Lists one token family (a `cid` claim, see [`token_cids`]).
    async fn list(&self, cid: &str, ttl: Duration) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        mark_credential_revoked(&mut conn, &self.key_prefix, cid, ttl).await
    }

    /// Whether a token family is listed; `Err` when Redis cannot tell.
    async fn is_listed(&self, cid: &str) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        is_credential_revoked(&mut conn, &self.key_prefix, cid).await
    }
}

/// The `cid` claim of a token exchanged for credential `id` while its merchant's token epoch
/// is `epoch`. The epoch goes up when the merchant is suspended: listing `<id>.<old epoch>`
/// stops the tokens exchanged before the suspension, while the same credential exchanged after
/// reinstatement (`<id>.<new epoch>`) is not listed. A credential revoked for good is listed
/// at its merchant's current epoch (no token of a later one can exist: it is refused).
pub(super) fn token_cid(id: uuid::Uuid, epoch: i32) -> String {
    format!("{}.{epoch}", credential::id_text(id))
}

/// The `cid`s to list for credential `id` at `epochs`, and its bare id (what tokens exchanged
/// before token epochs existed carry).
fn token_cids(id: uuid::Uuid, epochs: std::ops::Range<i32>) -> impl Iterator<Item = String> {
    std::iter::once(credential::id_text(id)).chain(epochs.map(move |e| token_cid(id, e)))
}

impl MerchantService {
    /// How long a revoked credential stays listed: the life of its tokens and a margin.
    fn revocation_window(&self) -> Duration {
        self.inner.settings.credential_token_ttl + REVOCATION_MARGIN
    }

    /// The revocation list, or UNAVAILABLE: without one (no Redis at start-up) a revocation
    /// could not reach the auth layers, so nothing that depends on it happens: revocation
    /// never fails open.
    fn revocation_list(&self) -> Result<&Revocations, ApiError> {
        self.inner.revocations.as_ref().ok_or_else(|| {
            ApiError::Unavailable(
                "the credential revocation list (Redis) is unavailable; retry later".into(),
            )
        })
    }

    /// Lists revoked credentials for the auth layers, before the revocation commits: if there
    /// is no list or Redis cannot take it, the RPC fails and nothing is revoked.
    pub(super) async fn publish_revocations(&self, ids: &[uuid::Uuid]) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Ok(());
        }
        let revocations = self.revocation_list()?;
        // The merchant's row is locked by the caller: no suspension moves the epoch meanwhile.
        let epochs = store::token_epochs(self.pool(), ids).await?;
        let cids = epochs
            .into_iter()
            .flat_map(|(id, epoch)| token_cids(id, epoch..epoch + 1));
        self.list_cids(revocations, cids).await
    }

    /// Suspension: lists the tokens of every valid credential of the merchant exchanged at the
    /// epoch now ended, before the suspension commits (if Redis cannot take it, the RPC fails
    /// and nothing changes). The credentials stay valid: after reinstatement they are
    /// exchanged again, for tokens of the new epoch.
    pub(super) async fn publish_token_cut(
        &self,
        ids: &[uuid::Uuid],
        ended_epoch: i32,
    ) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Ok(());
        }
        let revocations = self.revocation_list()?;
        let cids = ids
            .iter()
            .flat_map(|id| token_cids(*id, ended_epoch..ended_epoch + 1));
        self.list_cids(revocations, cids).await
    }

    async fn list_cids(
        &self,
        revocations: &Revocations,
        cids: impl Iterator<Item = String>,
    ) -> Result<(), ApiError> {
        for cid in cids {
            revocations
                .list(&cid, self.revocation_window())
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
                // Revoked credentials at their merchant's epoch; credentials of a merchant
                // suspended within the window at every earlier epoch.
                let listed = match (
                    store::recently_revoked_credentials(&pool, window).await,
                    store::recently_cut_credentials(&pool, window).await,
                ) {
                    (Ok(revoked), Ok(cut)) => revoked
                        .into_iter()
                        .flat_map(|(id, epoch)| token_cids(id, epoch..epoch + 1))
                        .chain(
                            cut.into_iter()
                                .flat_map(|(id, epoch)| token_cids(id, 0..epoch)),
                        )
                        .collect::<Vec<_>>(),
                    (Err(e), _) | (_, Err(e)) => {
                        tracing::warn!(error = format!("{e:#}"), "cannot read revoked credentials");
                        continue;
                    }
                };
                for cid in listed {
                    if let Err(e) = revocations.list(&cid, window).await {
                        tracing::warn!(error = %e, "cannot rewrite the credential revocation list");
                        tick.reset_after(REVOCATION_REPUBLISH_RETRY);
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
                // The stored replay leaves the secret out: paymesh keeps no copy of it at rest
                // (and the idempotency layer keeps no answer for this RPC: `replayed_by_service`).
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
        // The hash is compared before anything else is looked at, in constant time. Only an
        // ACTIVE merchant's credentials are exchanged (not while pending review or suspended).
        if !presented.matches(&check.secret_sha256)
            || check.revoked
            || check.merchant_status != MerchantStatus::Active
        {
            return Err(refused());
        }
        // No token that could not be revoked: without a revocation list that answers now,
        // UNAVAILABLE (and a listed token family is refused).
        let cid = token_cid(presented.id, check.token_epoch);
        let listed = self.revocation_list()?.is_listed(&cid).await.map_err(|_| {
            ApiError::Unavailable("cannot check the credential's revocation now; retry".into())
        })?;
        if listed {
            return Err(refused());
        }
        let ttl = self.inner.settings.credential_token_ttl;
        let credential_id = credential::id_text(presented.id);
        // The token names the credential and the merchant's token epoch: a suspension lists
        // this epoch, so the token stops with it (see `token_cid`).
        let token = self.inner.minter.mint_for_credential(
            &Principal::Merchant(check.merchant.to_string()),
            ttl.as_secs(),
            &cid,
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
