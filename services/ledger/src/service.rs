//! The gRPC surface of the ledger.

use base64::Engine as _;
use paymesh_money::{Id128, Money};
use paymesh_platform::ApiError;
use paymesh_platform::auth::require_internal;
use paymesh_platform::config::LedgerConfig;
use paymesh_platform::idempotency::KeyRule;
use paymesh_proto::common::v1 as common;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_server::{self, LedgerServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::engine::{self, TransferRow};
use crate::validate::{self, Violations};
use crate::writer::Writer;
use crate::{store, writer};

/// Transfers per ListTransfers page when the caller does not say.
const PAGE_SIZE_DEFAULT: i64 = 100;
const PAGE_SIZE_MAX: i64 = 1000;

#[derive(Clone)]
pub struct LedgerService {
    pool: PgPool,
    writer: Writer,
}

impl LedgerService {
    /// Runs the migrations and starts the group-commit writers.
    pub async fn start(pool: PgPool, cfg: &LedgerConfig) -> anyhow::Result<LedgerService> {
        let applied = store::migrate(&pool).await?;
        if applied > 0 {
            tracing::info!(applied, "ledger migrations applied");
        }
        let writer = Writer::start(pool.clone(), cfg);
        Ok(LedgerService { pool, writer })
    }

    pub fn into_server(self, message_bytes_max: usize) -> LedgerServiceServer<LedgerService> {
        LedgerServiceServer::new(self)
            .max_decoding_message_size(message_bytes_max)
            .max_encoding_message_size(message_bytes_max)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The mutating RPCs and their idempotency-key rule. Keys are optional here: transfers
    /// and accounts carry their own 128-bit ids, which the ledger applies at most once; a key
    /// adds the byte-for-byte replay of the first answer (while Redis keeps it; after that a
    /// retry answers EXISTS, never a second transfer).
    pub fn idempotent_rpcs() -> Vec<(String, KeyRule)> {
        ["CreateAccounts", "CreateTransfers"]
            .into_iter()
            .map(|m| {
                (
                    format!("/paymesh.ledger.v1.LedgerService/{m}"),
                    KeyRule::Optional,
                )
            })
            .collect()
    }
}

fn money(minor: i64, currency: paymesh_money::Currency) -> Option<common::Money> {
    let m = Money::from_minor(minor, currency);
    Some(common::Money {
        amount: m.amount_string(),
        currency_code: currency.code().to_string(),
    })
}

fn timestamp_ns(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

fn ns_from_timestamp(v: &mut Violations, field: &str, t: &prost_types::Timestamp) -> Option<i64> {
    // 1970 … 2262, the range of i64 nanoseconds.
    if !(0..=9_000_000_000).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        v.add(field, "must be between 1970 and 2255 with nanos in 0..1e9");
        return None;
    }
    Some(t.seconds * 1_000_000_000 + i64::from(t.nanos))
}

fn transfer_record(row: &TransferRow) -> pb::TransferRecord {
    // A post/void record shows the accounts and amount that moved, even where they were
    // taken from the pending transfer.
    let flags = row.flags;
    pb::TransferRecord {
        transfer: Some(pb::Transfer {
            id: row.id.to_bytes().to_vec(),
            debit_account_id: row.debit.to_bytes().to_vec(),
            credit_account_id: row.credit.to_bytes().to_vec(),
            amount: money(row.amount, row.currency),
            code: i32::from(row.code),
            reference: row.reference.clone(),
            flags: Some(pb::TransferFlags {
                linked: flags & engine::FLAG_LINKED != 0,
                pending: flags & engine::FLAG_PENDING != 0,
                post_pending: flags & engine::FLAG_POST_PENDING != 0,
                void_pending: flags & engine::FLAG_VOID_PENDING != 0,
            }),
            pending_id: row
                .pending_id
                .map(|p| p.to_bytes().to_vec())
                .unwrap_or_default(),
            timeout_seconds: row.timeout_seconds,
        }),
        create_time: Some(timestamp_ns(row.ts)),
        expire_time: row.expires_at().map(timestamp_ns),
    }
}

const PAGE_TOKEN_BYTES: usize = 8 + 16 + 16;

fn encode_page_token(account: Id128, ts: i64, id: Id128) -> String {
    let mut bytes = Vec::with_capacity(PAGE_TOKEN_BYTES);
    bytes.extend_from_slice(&ts.to_be_bytes());
    bytes.extend_from_slice(&id.to_bytes());
    bytes.extend_from_slice(&account.to_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_page_token(account: Id128, token: &str) -> Result<(i64, Id128), String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| "not a token this service issued".to_string())?;
    if bytes.len() != PAGE_TOKEN_BYTES {
        return Err("not a token this service issued".into());
    }
    let ts = i64::from_be_bytes(bytes[0..8].try_into().map_err(|_| "bad token")?);
    let id = Id128::from_bytes(&bytes[8..24]).map_err(|_| "bad token")?;
    let acct = Id128::from_bytes(&bytes[24..40]).map_err(|_| "bad token")?;
    if acct != account {
        return Err("token belongs to another account's listing".into());
    }
    Ok((ts, id))
}

#[tonic::async_trait]
impl ledger_service_server::LedgerService for LedgerService {
    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> Result<Response<pb::CreateAccountsResponse>, Status> {
        require_internal(&request)?;
        let accounts = validate::accounts(request.get_ref())?;
        let inserted: std::collections::HashSet<Id128> =
            store::insert_accounts(&self.pool, &accounts)
                .await
                .map_err(ApiError::from)?
                .into_iter()
                .collect();
        let others: Vec<Id128> = accounts
            .iter()
            .map(|a| a.id)
            .filter(|id| !inserted.contains(id))
            .collect();
        let existing = if others.is_empty() {
            Default::default()
        } else {
            store::accounts_by_id(&self.pool, &others)
                .await
                .map_err(ApiError::from)?
        };
        let mut first_seen = std::collections::HashSet::new();
        let results = accounts
            .iter()
            .map(|a| {
                // The first occurrence of an id that this call inserted is OK; any later one
                // (in this call or another) compares with the stored account.
                if inserted.contains(&a.id) && first_seen.insert(a.id) {
                    return pb::CreateAccountResult::Ok as i32;
                }
                let stored_same = match existing.get(&a.id) {
                    Some(s) => a.same_fields(s.currency, s.code, s.flags, &s.reference),
                    // Inserted by an earlier occurrence in this call.
                    None => accounts
                        .iter()
                        .find(|b| b.id == a.id)
                        .is_some_and(|b| a.same_fields(b.currency, b.code, b.flags, &b.reference)),
                };
                if stored_same {
                    pb::CreateAccountResult::Exists as i32
                } else {
                    pb::CreateAccountResult::ExistsWithDifferentFields as i32
                }
            })
            .collect();
        Ok(Response::new(pb::CreateAccountsResponse { results }))
    }

    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<Response<pb::CreateTransfersResponse>, Status> {
        require_internal(&request)?;
        let transfers = validate::transfers(request.get_ref())?;
        let results = self.writer.submit(transfers).await?;
        Ok(Response::new(pb::CreateTransfersResponse {
            results: results.into_iter().map(|r| r as i32).collect(),
        }))
    }

    async fn get_balances(
        &self,
        request: Request<pb::GetBalancesRequest>,
    ) -> Result<Response<pb::GetBalancesResponse>, Status> {
        require_internal(&request)?;
        let ids = validate::balance_ids(request.get_ref())?;
        let found = store::accounts_by_id(&self.pool, &ids)
            .await
            .map_err(ApiError::from)?;
        let accounts = ids
            .iter()
            .filter_map(|id| found.get(id))
            .map(|a| pb::AccountBalance {
                id: a.id.to_bytes().to_vec(),
                currency_code: a.currency.code().to_string(),
                code: a.code,
                flags: Some(pb::AccountFlags {
                    debits_must_not_exceed_credits: a.flags
                        & engine::ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS
                        != 0,
                    credits_must_not_exceed_debits: a.flags
                        & engine::ACCOUNT_CREDITS_MUST_NOT_EXCEED_DEBITS
                        != 0,
                }),
                reference: a.reference.clone(),
                debits_posted: money(a.debits_posted, a.currency),
                credits_posted: money(a.credits_posted, a.currency),
                debits_pending: money(a.debits_pending, a.currency),
                credits_pending: money(a.credits_pending, a.currency),
                create_time: Some(timestamp_ns(a.created_unix_micros.saturating_mul(1000))),
            })
            .collect();
        Ok(Response::new(pb::GetBalancesResponse { accounts }))
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        require_internal(&request)?;
        let req = request.get_ref();
        let mut v = Violations::default();
        let account = v.id("account_id".into(), &req.account_id);
        let start = req
            .start_time
            .as_ref()
            .and_then(|t| ns_from_timestamp(&mut v, "start_time", t))
            .unwrap_or(0);
        let end = req
            .end_time
            .as_ref()
            .and_then(|t| ns_from_timestamp(&mut v, "end_time", t))
            .unwrap_or(i64::MAX);
        if start >= end {
            v.add("end_time", "must be after start_time");
        }
        let page_size = match i64::from(req.page_size) {
            0 => PAGE_SIZE_DEFAULT,
            n if (1..=PAGE_SIZE_MAX).contains(&n) => n,
            n => {
                v.add("page_size", format!("must be 0..={PAGE_SIZE_MAX}, got {n}"));
                PAGE_SIZE_DEFAULT
            }
        };
        let mut after = None;
        if let Some(account) = account
            && !req.page_token.is_empty()
        {
            match decode_page_token(account, &req.page_token) {
                Ok(cursor) => after = Some(cursor),
                Err(why) => v.add("page_token", why),
            }
        }
        v.into_result()?;
        let Some(account) = account else {
            return Err(ApiError::invalid("account_id", "required").into());
        };
        let mut rows = store::list_transfers(&self.pool, account, start, end, after, page_size + 1)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if rows.len() as i64 > page_size {
            rows.truncate(page_size as usize);
            rows.last()
                .map(|r| encode_page_token(account, r.ts, r.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListTransfersResponse {
            transfers: rows.iter().map(transfer_record).collect(),
            next_page_token,
        }))
    }
}

/// For tools: the ledger's clock.
pub fn now_ns() -> i64 {
    writer::now_ns()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_are_bound_to_the_account() {
        let a = Id128::random();
        let id = Id128::random();
        let t = encode_page_token(a, 42, id);
        assert_eq!(decode_page_token(a, &t), Ok((42, id)));
        assert!(decode_page_token(Id128::random(), &t).is_err());
        assert!(decode_page_token(a, "garbage!").is_err());
        assert!(decode_page_token(a, "").is_err());
    }

    #[test]
    fn timestamps_convert() {
        assert_eq!(
            timestamp_ns(1_500_000_000),
            prost_types::Timestamp {
                seconds: 1,
                nanos: 500_000_000
            }
        );
    }
}
