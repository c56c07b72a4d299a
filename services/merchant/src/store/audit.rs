//! The append-only audit log: every change to a merchant, who made it and why.

use anyhow::Context;
use sqlx::{PgConnection, PgPool, Row};

use crate::domain::MerchantStatus;
use crate::ids::MerchantId;

/// What an audit event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    Onboard,
    Approve,
    Reject,
    Suspend,
    Reinstate,
    Close,
    ResubmitForReview,
    Update,
    IssueCredential,
    RevokeCredential,
    SetFeePlan,
}

impl AuditAction {
    pub const ALL: [AuditAction; 11] = [
        AuditAction::Onboard,
        AuditAction::Approve,
        AuditAction::Reject,
        AuditAction::Suspend,
        AuditAction::Reinstate,
        AuditAction::Close,
        AuditAction::ResubmitForReview,
        AuditAction::Update,
        AuditAction::IssueCredential,
        AuditAction::RevokeCredential,
        AuditAction::SetFeePlan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Onboard => "ONBOARD",
            AuditAction::Approve => "APPROVE",
            AuditAction::Reject => "REJECT",
            AuditAction::Suspend => "SUSPEND",
            AuditAction::Reinstate => "REINSTATE",
            AuditAction::Close => "CLOSE",
            AuditAction::ResubmitForReview => "RESUBMIT_FOR_REVIEW",
            AuditAction::Update => "UPDATE",
            AuditAction::IssueCredential => "ISSUE_CREDENTIAL",
            AuditAction::RevokeCredential => "REVOKE_CREDENTIAL",
            AuditAction::SetFeePlan => "SET_FEE_PLAN",
        }
    }

    pub fn parse(s: &str) -> Option<AuditAction> {
        AuditAction::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One audit event to append.
#[derive(Debug, Clone)]
pub struct NewAuditEvent<'a> {
    pub merchant: MerchantId,
    pub actor: &'a str,
    pub action: AuditAction,
    pub from: Option<MerchantStatus>,
    pub to: MerchantStatus,
    pub reason: &'a str,
}

pub async fn append_audit(tx: &mut PgConnection, e: &NewAuditEvent<'_>) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO merchant.audit_events (merchant_id, actor, action, from_status, to_status, reason) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(e.merchant.uuid())
    .bind(e.actor)
    .bind(e.action.as_str())
    .bind(e.from.map(MerchantStatus::as_str))
    .bind(e.to.as_str())
    .bind(e.reason)
    .execute(&mut *tx)
    .await
    .context("appending an audit event")?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: i64,
    pub merchant: MerchantId,
    pub actor: String,
    pub action: AuditAction,
    pub from: Option<MerchantStatus>,
    pub to: MerchantStatus,
    pub reason: String,
    pub created_us: i64,
}

pub async fn audit_events(
    pool: &PgPool,
    merchant: MerchantId,
    after: i64,
    limit: i64,
) -> anyhow::Result<Vec<AuditRow>> {
    let rows = sqlx::query(
        "SELECT id, merchant_id, actor, action, from_status, to_status, reason, \
         (extract(epoch FROM created_at) * 1000000)::bigint AS created_us \
         FROM merchant.audit_events WHERE merchant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
    )
    .bind(merchant.uuid())
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
    .context("listing audit events")?;
    rows.iter()
        .map(|row| {
            let action: String = row.try_get("action")?;
            let from: Option<String> = row.try_get("from_status")?;
            let to: String = row.try_get("to_status")?;
            Ok(AuditRow {
                id: row.try_get("id")?,
                merchant: MerchantId::from_uuid(row.try_get("merchant_id")?),
                actor: row.try_get("actor")?,
                action: AuditAction::parse(&action)
                    .with_context(|| format!("stored audit action {action:?}"))?,
                from: from
                    .map(|f| MerchantStatus::parse(&f).context("stored from_status"))
                    .transpose()?,
                to: MerchantStatus::parse(&to).context("stored to_status")?,
                reason: row.try_get("reason")?,
                created_us: row.try_get("created_us")?,
            })
        })
        .collect()
}
