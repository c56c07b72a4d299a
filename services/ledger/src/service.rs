//! The gRPC surface of the ledger, and its description for the platform's service kit
//! ([`SERVICE`]).

use futures::future::BoxFuture;
use paymesh_money::{Id128, Money};
use paymesh_platform::ApiError;
use paymesh_platform::config::Section;
use paymesh_platform::edge::{PageLimits, Paging, cursor_i64, i64_cursor};
use paymesh_platform::idempotency::KeyRule;
use paymesh_platform::kit::{Callers, Rpc, ServiceDef, StartContext, Started};
use paymesh_platform::migrate::Migration;
use paymesh_platform::time::{ns_from_timestamp, timestamp_from_ns};
use paymesh_proto::common::v1 as common;
use paymesh_proto::ledger::v1 as pb;
use paymesh_proto::ledger::v1::ledger_service_server::{self, LedgerServiceServer};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::config::LedgerConfig;
use crate::engine::{self, TransferRow};
use crate::store;
use crate::validate::{self, LedgerFields, Violations};
use crate::writer::Writer;

const PAGE_LIMITS: PageLimits = PageLimits {
    size_default: 100,
    size_max: 1000,
};

/// The ledger as the service kit starts it.
pub struct Ledger;

/// The ledger's description: list it where the binary lists its services.
pub static SERVICE: Ledger = Ledger;

/// Only operators and the paymesh services that need each RPC call the ledger (a `service:*`
/// token is not a pass to all of it): accounts are opened by operators, the merchant service
/// (on approval) and the dev demo (`service:demo`, its own accounts); money is moved and read by
/// operators, the services that post it (payment, billing, settlement; DESIGN §2) and the demo.
/// A service added later that posts names itself in [`MONEY_MOVERS`].
/// Transfers and accounts carry their own 128-bit ids, which the ledger applies at most once,
/// so an idempotency key is optional; with one, the first answer is replayed byte for byte
/// (while Redis keeps it; after that a retry answers EXISTS, never a second transfer).
/// The payment service opens paymesh's own accounts of a bank (clearing, fees, suspense) the
/// first time that bank notifies a credit; the billing service a channel's clearing account
/// and a biller's payable the first time it posts to them; the settlement service a bank's
/// payout account before its first payout.
const ACCOUNT_OPENERS: Callers = Callers::OPERATOR.or(Callers::services(&[
    "merchant",
    "payment",
    "billing",
    "settlement",
    "demo",
]));
/// Who posts transfers and reads balances and history.
const MONEY_MOVERS: Callers = Callers::OPERATOR.or(Callers::services(&[
    "payment",
    "billing",
    "settlement",
    "demo",
]));

const RPCS: &[Rpc] = &[
    Rpc::write("CreateAccounts", ACCOUNT_OPENERS, KeyRule::Optional),
    Rpc::write("CreateTransfers", MONEY_MOVERS, KeyRule::Optional),
    Rpc::read("GetBalances", MONEY_MOVERS),
    Rpc::read("ListTransfers", MONEY_MOVERS),
    // Idempotent by nature: sealing a time again changes nothing.
    Rpc::write(
        "SealCommitOrder",
        Callers::OPERATOR.or(Callers::services(&["settlement"])),
        KeyRule::Optional,
    ),
];

impl ServiceDef for Ledger {
    fn name(&self) -> &'static str {
        store::SCHEMA
    }

    fn grpc_service(&self) -> &'static str {
        <LedgerServiceServer<LedgerService> as tonic::server::NamedService>::NAME
    }

    fn rpcs(&self) -> &'static [Rpc] {
        RPCS
    }

    fn config(&self) -> Section {
        crate::config::SECTION
    }

    fn migrations(&self) -> Vec<Migration> {
        store::migrations()
    }

    fn start<'a>(&'a self, ctx: StartContext<'a>) -> BoxFuture<'a, anyhow::Result<Started>> {
        Box::pin(async move {
            let cfg = LedgerConfig::from_section(ctx.section)?;
            let bytes_max = ctx.message_bytes_max();
            let service = LedgerService::start(ctx.pool, &cfg);
            let server = LedgerServiceServer::new(service.clone())
                .max_decoding_message_size(bytes_max)
                .max_encoding_message_size(bytes_max);
            Ok(Started::new(server).with_handle(service))
        })
    }
}

#[derive(Clone)]
pub struct LedgerService {
    pool: PgPool,
    writer: Writer,
}

impl LedgerService {
    /// Starts the group-commit writers (the kit has applied the migrations).
    pub fn start(pool: PgPool, cfg: &LedgerConfig) -> LedgerService {
        let writer = Writer::start(pool.clone(), cfg);
        LedgerService { pool, writer }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn money(minor: i64, currency: paymesh_money::Currency) -> Option<common::Money> {
    let m = Money::from_minor(minor, currency);
    Some(common::Money {
        amount: m.amount_string(),
        currency_code: currency.code().to_string(),
    })
}

fn transfer_record(row: &TransferRow, seq: i64) -> pb::TransferRecord {
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
        create_time: Some(timestamp_from_ns(row.ts)),
        expire_time: row.expires_at().map(timestamp_from_ns),
        commit_position: seq,
    }
}

#[tonic::async_trait]
impl ledger_service_server::LedgerService for LedgerService {
    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> Result<Response<pb::CreateAccountsResponse>, Status> {
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
                // Stored as an integer; written only from AccountCode values since the enum,
                // and a bit-for-bit cast keeps any older value as it was on the wire (varint).
                code: a.code as i32,
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
                create_time: Some(timestamp_from_ns(
                    a.created_unix_micros.saturating_mul(1000),
                )),
            })
            .collect();
        Ok(Response::new(pb::GetBalancesResponse { accounts }))
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        let req = request.get_ref();
        let mut v = Violations::default();
        let account = v.id("account_id".into(), &req.account_id);
        let mut time = |field: &str, t: &Option<prost_types::Timestamp>, default: i64| match t {
            None => default,
            Some(t) => ns_from_timestamp(t).unwrap_or_else(|why| {
                v.add(field, why);
                default
            }),
        };
        let start = time("start_time", &req.start_time, 0);
        let end = time("end_time", &req.end_time, i64::MAX);
        let commit_start = time("commit_start_time", &req.commit_start_time, i64::MIN);
        let commit_end = time("commit_end_time", &req.commit_end_time, i64::MAX);
        if start >= end {
            v.add("end_time", "must be after start_time");
        }
        if commit_start >= commit_end {
            v.add("commit_end_time", "must be after commit_start_time");
        }
        let filters: [&[u8]; 5] = [
            &req.account_id,
            &start.to_be_bytes(),
            &end.to_be_bytes(),
            &commit_start.to_be_bytes(),
            &commit_end.to_be_bytes(),
        ];
        // Paged in commit order (`seq`): a page token never passes a transfer that commits
        // later. Tokens of the earlier (create time, id) order are not tokens of this listing.
        let paging = Paging::parse(
            &mut v,
            "ledger.transfers.commit_order",
            &filters,
            req.page_size,
            &req.page_token,
            PAGE_LIMITS,
        );
        let after = match paging.after().map(cursor_i64) {
            Some(None) => {
                v.add("page_token", "not a page token of this listing");
                None
            }
            Some(Some(c)) => Some(c),
            None => None,
        };
        v.into_result()?;
        let Some(account) = account else {
            return Err(ApiError::invalid("account_id", "required").into());
        };
        let window = store::ListWindow {
            start_ts: start,
            end_ts: end,
            // The cursor and the commit window both bound `seq` from below.
            after: after.map_or(commit_start.saturating_sub(1), |a| {
                a.max(commit_start.saturating_sub(1))
            }),
            seq_end: commit_end,
        };
        let rows = store::list_transfers(&self.pool, account, &window, paging.fetch_limit())
            .await
            .map_err(ApiError::from)?;
        let (rows, next_page_token) = paging.finish(rows, |(_, seq)| i64_cursor(*seq));
        Ok(Response::new(pb::ListTransfersResponse {
            transfers: rows
                .iter()
                .map(|(row, seq)| transfer_record(row, *seq))
                .collect(),
            next_page_token,
        }))
    }

    async fn seal_commit_order(
        &self,
        request: Request<pb::SealCommitOrderRequest>,
    ) -> Result<Response<pb::SealCommitOrderResponse>, Status> {
        let before = match &request.get_ref().before {
            None => return Err(ApiError::invalid("before", "required").into()),
            Some(t) => ns_from_timestamp(t).map_err(|why| ApiError::invalid("before", why))?,
        };
        // A time ahead of the clock would move every later batch's rows up (a full rewrite
        // of each batch, see store::shift_seq) until the clock caught up.
        if before > paymesh_platform::time::now_ns() {
            return Err(ApiError::invalid("before", "must not be in the future").into());
        }
        let sealed = store::seal_commit_order(&self.pool, before)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::SealCommitOrderResponse {
            sealed_position: sealed,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_cursor_is_the_commit_seq() {
        assert_eq!(cursor_i64(&i64_cursor(42)), Some(42));
        // A token of the earlier (create time, id) order is refused, not misread.
        let mut old = 42i64.to_be_bytes().to_vec();
        old.extend_from_slice(&Id128::random().to_bytes());
        assert_eq!(cursor_i64(&old), None);
    }
}
