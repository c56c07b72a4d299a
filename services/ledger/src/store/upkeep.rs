//! Upkeep: releasing expired pending transfers, and the audit of every invariant.

use anyhow::Context;
use paymesh_money::Id128;
use sqlx::PgPool;
use uuid::Uuid;

use super::*;
use crate::engine::AccountState;

/// Voids up to `limit` expired pending transfers in one transaction; returns how many.
pub async fn expire_pendings(pool: &PgPool, now_ns: i64, limit: i64) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let expired: Vec<(Uuid, Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT id, debit_account_id, credit_account_id, amount FROM ledger.pending_transfers \
         WHERE status = 1 AND expires_at IS NOT NULL AND expires_at <= $1 \
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now_ns)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .context("finding expired pending transfers")?;
    if expired.is_empty() {
        return Ok(0);
    }
    let mut accounts = lock_accounts(
        &mut tx,
        expired
            .iter()
            .flat_map(|(_, d, c, _)| [*d, *c])
            .map(id)
            .collect::<anyhow::Result<Vec<_>>>()?,
    )
    .await?;
    for (_, d, c, amount) in &expired {
        if let Some(a) = accounts.get_mut(&id(*d)?) {
            a.debits_pending -= amount;
        }
        if let Some(a) = accounts.get_mut(&id(*c)?) {
            a.credits_pending -= amount;
        }
    }
    let changed: Vec<(Id128, AccountState)> = accounts.into_iter().collect();
    write_balances(&mut tx, &changed).await?;
    let ids: Vec<Uuid> = expired.iter().map(|(i, ..)| *i).collect();
    sqlx::query("UPDATE ledger.pending_transfers SET status = 4 WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await.context("committing expiry")?;
    Ok(expired.len())
}

/// Checks the ledger's invariants over the whole database; returns what is broken.
pub async fn audit(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let per_currency: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT currency, sum(debits_posted)::text, sum(credits_posted)::text, \
                sum(debits_pending)::text, sum(credits_pending)::text \
         FROM ledger.accounts GROUP BY currency",
    )
    .fetch_all(pool)
    .await?;
    for (ccy, dp, cp, dpe, cpe) in per_currency {
        if dp != cp {
            problems.push(format!("{ccy}: posted debits {dp} != posted credits {cp}"));
        }
        if dpe != cpe {
            problems.push(format!(
                "{ccy}: pending debits {dpe} != pending credits {cpe}"
            ));
        }
    }
    // Every balance equals what the transfers say it should be.
    let mismatched: Vec<(Uuid, String)> = sqlx::query_as(
        "WITH effect AS ( \
           SELECT t.debit_account_id AS acct, \
                  CASE WHEN t.flags & 2 = 0 AND t.flags & 8 = 0 THEN t.amount ELSE 0 END AS dp, 0::int8 AS cp \
           FROM ledger.transfers t \
           UNION ALL \
           SELECT t.credit_account_id, 0, CASE WHEN t.flags & 2 = 0 AND t.flags & 8 = 0 THEN t.amount ELSE 0 END \
           FROM ledger.transfers t \
         ), posted AS ( \
           SELECT acct, sum(dp) AS dp, sum(cp) AS cp FROM effect GROUP BY acct \
         ), pending AS ( \
           SELECT acct, sum(dpe) AS dpe, sum(cpe) AS cpe FROM ( \
             SELECT debit_account_id AS acct, amount AS dpe, 0::int8 AS cpe FROM ledger.pending_transfers WHERE status = 1 \
             UNION ALL \
             SELECT credit_account_id, 0, amount FROM ledger.pending_transfers WHERE status = 1) p GROUP BY acct \
         ) \
         SELECT a.id, format('posted %s/%s pending %s/%s, transfers say posted %s/%s pending %s/%s', \
                  a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending, \
                  coalesce(po.dp, 0), coalesce(po.cp, 0), coalesce(pe.dpe, 0), coalesce(pe.cpe, 0)) \
         FROM ledger.accounts a \
         LEFT JOIN posted po ON po.acct = a.id LEFT JOIN pending pe ON pe.acct = a.id \
         WHERE a.debits_posted <> coalesce(po.dp, 0) OR a.credits_posted <> coalesce(po.cp, 0) \
            OR a.debits_pending <> coalesce(pe.dpe, 0) OR a.credits_pending <> coalesce(pe.cpe, 0)",
    )
    .fetch_all(pool)
    .await?;
    for (aid, what) in mismatched {
        problems.push(format!("account {aid}: {what}"));
    }
    let limits: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM ledger.accounts WHERE \
           (flags & 1 <> 0 AND debits_posted::numeric + debits_pending > credits_posted) OR \
           (flags & 2 <> 0 AND credits_posted::numeric + credits_pending > debits_posted)",
    )
    .fetch_all(pool)
    .await?;
    for (aid,) in limits {
        problems.push(format!("account {aid}: balance limit broken"));
    }
    // The commit order: unique, and never behind the counter the next batch starts from.
    let (duplicates, max_seq, counter): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM (SELECT seq FROM ledger.transfers \
                   GROUP BY seq HAVING count(*) > 1) d), \
                (SELECT max(seq) FROM ledger.transfers), \
                (SELECT n FROM ledger.commit_seq)",
    )
    .fetch_one(pool)
    .await?;
    if duplicates > 0 {
        problems.push(format!(
            "{duplicates} commit seq values shared by several transfers"
        ));
    }
    match (max_seq, counter) {
        (_, None) => problems.push("ledger.commit_seq has no row".into()),
        (Some(m), Some(n)) if m > n => problems.push(format!(
            "a transfer's commit seq {m} is past the commit counter {n}"
        )),
        _ => {}
    }
    Ok(problems)
}
