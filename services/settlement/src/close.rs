//! Closing a business day's window.
//!
//! 1. The ledger's commit order is sealed at the cut-off (`SealCommitOrder`): a transfer
//!    committed later gets a commit position after it, so the window — the transfers with a
//!    position in `[previous cut-off, cut-off)` — is final, and a payment that commits after
//!    the cut-off belongs to the next window, even if it started before.
//! 2. The window's movements are read from the ledger: every bank's clearing and payout
//!    accounts (the bookings the bank statements are made of, joined to the credits the bank
//!    notified) and every merchant's and biller's payable account (their lines, see
//!    [`crate::window`]). Stored in one transaction with the window, CLOSED.
//! 3. Payouts are posted (merchant payable → the settlement bank's payout account, one
//!    transfer each, ids derived from the window and the merchant: a retry posts nothing
//!    twice); a refusal fails that line and the window (FAILED with the reason), and closing
//!    again retries it.
//! 4. The files are written ([`crate::files`]); the window is SETTLED.
//!
//! Windows close one after another in date order (each starts at the previous cut-off); a
//! session-level advisory lock keeps two closers (the scheduled job and an operator, or two
//! processes) from closing at once.

use std::collections::{HashMap, HashSet};

use paymesh_ledger::chart::{MerchantAccount, SystemAccount};
use paymesh_ledger::client::LedgerClient;
use paymesh_ledger::client::chain::{self, derived_uuid, leg};
use paymesh_merchant::client::MerchantClient;
use paymesh_money::Id128;
use paymesh_payment::client::PaymentClient;
use paymesh_platform::ApiError;
use paymesh_platform::time::{Date, now_ns, timestamp_from_ns};
use paymesh_proto::ledger::v1 as lpb;
use paymesh_proto::merchant::v1 as mpb;
use paymesh_proto::payment::v1 as ppb;
use sqlx::PgPool;
use uuid::Uuid;

use crate::internal;
use crate::settings::Settings;
use crate::store::{self, Booking, Direction, PayoutRow, WindowRow};
use crate::window;

const NS: i64 = 1_000_000_000;

/// Credits are read from this long before the window's start: a credit received before the
/// start whose ledger transfer committed in the window is still joined to its details.
const CREDITS_BEFORE_NS: i64 = 2 * 86_400 * NS;

/// The advisory lock of closing (any window).
const CLOSE_LOCK: &str = "settlement.close";

/// What closing reaches.
#[derive(Clone)]
pub struct Peers {
    pub ledger: LedgerClient,
    pub merchants: MerchantClient,
    pub payments: PaymentClient,
}

/// The configured cut-off of `date` in ns since the epoch.
pub fn cutoff_ns(settings: &Settings, date: Date) -> i64 {
    (date.vietnam_start_unix() + settings.cutoff_seconds) * NS
}

/// The business day whose window is open at `now` (ns): today in Asia/Ho_Chi_Minh until its
/// cut-off, tomorrow after it.
pub fn open_day(settings: &Settings, now: i64) -> Date {
    latest_due(settings, now).plus_days(1)
}

/// The latest business day whose configured cut-off has passed at `now_ns`.
pub fn latest_due(settings: &Settings, now: i64) -> Date {
    let today = Date::in_vietnam_at(now.div_euclid(NS));
    if cutoff_ns(settings, today) <= now {
        today
    } else {
        today.plus_days(-1)
    }
}

fn refused(reason: &'static str, message: String) -> ApiError {
    ApiError::FailedPrecondition { reason, message }
}

/// Closes (or finishes closing) `date`'s window as `actor`; `early` is an operator's earlier
/// cut-off (ns). Answers the window as it ends up.
pub async fn close(
    pool: &PgPool,
    peers: &Peers,
    settings: &Settings,
    date: Date,
    early: Option<i64>,
    actor: &str,
) -> Result<WindowRow, ApiError> {
    let held = store::hold(pool, CLOSE_LOCK).await.map_err(internal)?;
    let result = close_locked(pool, peers, settings, date, early, actor).await;
    held.release().await;
    result
}

async fn close_locked(
    pool: &PgPool,
    peers: &Peers,
    settings: &Settings,
    date: Date,
    early: Option<i64>,
    actor: &str,
) -> Result<WindowRow, ApiError> {
    let window = match store::window(pool, date).await.map_err(internal)? {
        Some(w) if w.status == "SETTLED" => return Ok(w),
        Some(w) => w,
        None => open_and_sum(pool, peers, settings, date, early, actor).await?,
    };
    pay_out(pool, peers, &window).await?;
    crate::files::write_window(pool, settings, &window)
        .await
        .map_err(internal)?;
    let failed = store::failed_payouts(pool, date).await.map_err(internal)?;
    let reason = match failed.as_slice() {
        [] => None,
        [first, ..] => Some(format!(
            "{} payout(s) refused by the ledger, e.g. merchant {}: {}",
            failed.len(),
            first.0,
            first.1
        )),
    };
    store::finish_window(pool, date, reason.as_deref())
        .await
        .map_err(internal)?;
    store::window(pool, date)
        .await
        .map_err(internal)?
        .ok_or_else(|| internal(anyhow::anyhow!("window {date} vanished")))
}

/// Seals the ledger, reads the window's movements and stores the window CLOSED with its
/// bookings, bank days and lines.
async fn open_and_sum(
    pool: &PgPool,
    peers: &Peers,
    settings: &Settings,
    date: Date,
    early: Option<i64>,
    actor: &str,
) -> Result<WindowRow, ApiError> {
    let configured = cutoff_ns(settings, date);
    let previous = store::latest_window(pool).await.map_err(internal)?;
    let start = match &previous {
        None => 0,
        Some(p) if p.business_date.plus_days(1) != date => {
            return Err(refused(
                "WINDOW_OUT_OF_ORDER",
                format!(
                    "the last window is {}: windows close in date order, the next is {}",
                    p.business_date,
                    p.business_date.plus_days(1)
                ),
            ));
        }
        Some(p) if p.status != "SETTLED" => {
            return Err(refused(
                "PREVIOUS_WINDOW_NOT_SETTLED",
                format!(
                    "window {} is {}: close it again first",
                    p.business_date, p.status
                ),
            ));
        }
        Some(p) => p.cutoff_seq,
    };
    let cutoff = early.unwrap_or(configured);
    let now = now_ns();
    if cutoff > now {
        return Err(refused(
            "WINDOW_NOT_DUE",
            format!(
                "the cut-off of {date} ({}) has not passed yet",
                paymesh_platform::time::rfc3339_from_ns(cutoff)
            ),
        ));
    }
    if cutoff > configured || cutoff <= start {
        return Err(ApiError::invalid(
            "cutoff_time",
            "an early cut-off must lie after the previous window's cut-off and not after the day's configured cut-off",
        ));
    }
    let sealed = peers.ledger.seal_commit_order(cutoff).await?;
    tracing::info!(%date, cutoff, sealed, "ledger commit order sealed for the window");
    let range = (start, cutoff);
    let bookings = bank_bookings(pool, peers, date, range).await?;
    let lines = merchant_lines(pool, peers, date, range).await?;
    let row = WindowRow {
        business_date: date,
        status: "CLOSED".into(),
        start_seq: start,
        cutoff_seq: cutoff,
        closed_by: actor.to_owned(),
        failure_reason: String::new(),
        close_ns: now,
        settle_ns: None,
    };
    store::store_closed(pool, &row, &bookings, &lines)
        .await
        .map_err(internal)?;
    Ok(row)
}

/// The credit of `(bin, txn)` under both ids its ledger movements may carry: the payment's
/// (a QR payment or suspense) and the bill payment's (a paper bill paid by transfer).
fn credit_keys(c: &ppb::Credit) -> [Option<Uuid>; 2] {
    [
        Uuid::try_parse(&c.id).ok(),
        Some(paymesh_billing::client::bank_credit_payment_id(
            &c.bank_bin,
            &c.bank_transaction_id,
        )),
    ]
}

/// Every bank's bookings of the window: its clearing and payout accounts' posted movements,
/// with the credits' details; and the credits it notified in the window with no movement.
async fn bank_bookings(
    pool: &PgPool,
    peers: &Peers,
    date: Date,
    (start, cutoff): (i64, i64),
) -> Result<Vec<Booking>, ApiError> {
    let mut bookings = Vec::new();
    for bank in paymesh_vn::bank::Bank::all() {
        let bin = bank.bin();
        let clearing = chain::system(SystemAccount::BankClearing { bin })?;
        let payout = chain::system(SystemAccount::BankPayout { bin })?;
        let mut moves = Vec::new();
        for account in [clearing, payout] {
            for r in peers
                .ledger
                .transfers_committed(account, (start, cutoff))
                .await?
            {
                moves.push((account, r));
            }
        }
        let credits = peers
            .payments
            .bank_credits(
                bin,
                timestamp_from_ns(start.saturating_sub(CREDITS_BEFORE_NS).max(0)),
                timestamp_from_ns(cutoff),
            )
            .await?;
        if moves.is_empty() && credits.is_empty() {
            continue;
        }
        let mut by_key: HashMap<Uuid, &ppb::Credit> = HashMap::new();
        for c in &credits {
            for k in credit_keys(c).into_iter().flatten() {
                by_key.insert(k, c);
            }
        }
        let (clearing_b, payout_b) = (clearing.to_bytes(), payout.to_bytes());
        let mut joined: HashSet<String> = HashSet::new();
        let first = bookings.len();
        for (account, r) in &moves {
            let Some(t) = r.transfer.as_ref() else {
                continue;
            };
            if !window::is_posted(t) {
                continue;
            }
            // Between the bank's own two accounts: no money crosses the bank.
            let (d, c) = (
                t.debit_account_id.as_slice(),
                t.credit_account_id.as_slice(),
            );
            if (d == clearing_b && c == payout_b) || (d == payout_b && c == clearing_b) {
                continue;
            }
            let debited = d == account.to_bytes();
            // Money into paymesh's account at the bank: the clearing account debited, or the
            // payout account debited (a payout given back); out: either credited.
            let direction = if debited {
                Direction::Credit
            } else {
                Direction::Debit
            };
            let id = Id128::from_bytes(&t.id)
                .map_err(|e| internal(anyhow::anyhow!("ledger sent a bad id: {e}")))?
                .to_uuid();
            let code = lpb::TransferCode::try_from(t.code)
                .map(|c| {
                    c.as_str_name()
                        .trim_start_matches("TRANSFER_CODE_")
                        .to_owned()
                })
                .unwrap_or_else(|_| t.code.to_string());
            let commit_day = Date::in_vietnam_at(r.commit_position.div_euclid(NS));
            let reference = Uuid::try_parse(&t.reference).ok();
            let credit = reference.and_then(|r| by_key.get(&r).copied());
            let mut b = Booking {
                id,
                bank_bin: bin.to_owned(),
                business_date: date,
                seq: r.commit_position,
                direction,
                amount: window::amount(t),
                code,
                in_ledger: true,
                bank_reference: String::new(),
                end_to_end_id: String::new(),
                reference: String::new(),
                batch: String::new(),
                description: String::new(),
                value_date: commit_day,
                credit_id: None,
            };
            match credit {
                Some(c) => {
                    joined.insert(c.id.clone());
                    b.credit_id = Uuid::try_parse(&c.id).ok();
                    b.bank_reference = c.bank_transaction_id.clone();
                    b.description = c.description.clone();
                    if let Some(v) = &c.value_time {
                        b.value_date = Date::in_vietnam_at(v.seconds);
                    }
                    if let paymesh_vn::reference::Finding::Found(found) =
                        paymesh_vn::reference::find(&c.description)
                    {
                        b.reference = found.as_str().to_owned();
                    }
                }
                None => {
                    // A payout or refund paymesh instructs: the bank carries our id back; its
                    // value date is the business day it is paid out on.
                    b.value_date = date;
                    b.end_to_end_id = t.reference.clone();
                    b.reference = t.reference.clone();
                    b.description = format!("{} {}", b.code, t.reference);
                }
            }
            bookings.push(b);
        }
        // Payouts: the bank books a payout file as one line, named by its batch.
        let payout_refs: Vec<Uuid> = bookings[first..]
            .iter()
            .filter(|b| b.code == "PAYOUT")
            .filter_map(|b| Uuid::try_parse(&b.end_to_end_id).ok())
            .collect();
        let windows = store::payout_windows(pool, &payout_refs)
            .await
            .map_err(internal)?;
        for b in bookings[first..].iter_mut().filter(|b| b.code == "PAYOUT") {
            if let Some(d) = Uuid::try_parse(&b.end_to_end_id)
                .ok()
                .and_then(|id| windows.get(&id))
            {
                b.batch = payout_batch(bin, *d);
                b.description = format!("PAYOUT {} {}", b.batch, b.end_to_end_id);
            }
        }
        // Credits notified in the window (received before the cut-off) with no ledger
        // movement in this window or an earlier one: booked by the service, missing in the
        // ledger.
        let unjoined: Vec<&ppb::Credit> = credits
            .iter()
            .filter(|c| !joined.contains(&c.id))
            .filter(|c| {
                c.receive_time
                    .as_ref()
                    .is_some_and(|t| t.seconds.saturating_mul(NS) >= start)
            })
            .collect();
        let ids: Vec<Uuid> = unjoined
            .iter()
            .filter_map(|c| Uuid::try_parse(&c.id).ok())
            .collect();
        let booked = store::credits_booked(pool, &ids).await.map_err(internal)?;
        for c in unjoined {
            let Ok(id) = Uuid::try_parse(&c.id) else {
                continue;
            };
            if booked.contains(&id) {
                continue;
            }
            let amount = c
                .amount
                .as_ref()
                .and_then(|m| m.amount.parse::<i64>().ok())
                .unwrap_or(0);
            let received = c.receive_time.as_ref().map_or(0, |t| t.seconds);
            bookings.push(Booking {
                id,
                bank_bin: bin.to_owned(),
                business_date: date,
                seq: received.saturating_mul(NS),
                direction: Direction::Credit,
                amount,
                code: "CREDIT".into(),
                in_ledger: false,
                bank_reference: c.bank_transaction_id.clone(),
                end_to_end_id: String::new(),
                reference: match paymesh_vn::reference::find(&c.description) {
                    paymesh_vn::reference::Finding::Found(r) => r.as_str().to_owned(),
                    _ => String::new(),
                },
                batch: String::new(),
                description: c.description.clone(),
                value_date: c
                    .value_time
                    .as_ref()
                    .map_or(date, |v| Date::in_vietnam_at(v.seconds)),
                credit_id: Some(id),
            });
        }
    }
    Ok(bookings)
}

/// The batch reference of a window's payouts to one settlement bank, as the payout file and
/// the bank's single statement line for it carry it: `PO` + `YYYYMMDD` + the BIN.
pub fn payout_batch(bin: &str, date: Date) -> String {
    let (y, m, d) = date.civil();
    format!("PO{y:04}{m:02}{d:02}{bin}")
}

/// The payout's id and ledger transfer id for a (window, merchant, biller?) line.
pub fn payout_ids(date: Date, merchant: Uuid, biller: bool) -> Result<(Uuid, Id128), ApiError> {
    let kind = if biller { "biller" } else { "vendor" };
    let id = derived_uuid(
        "paymesh.settlement.payout.v1",
        &[&date.to_string(), &merchant.to_string(), kind],
    );
    Ok((
        id,
        chain::transfer_id("paymesh.settlement.transfer.v1", id, "payout")?,
    ))
}

/// Every merchant's and biller's line of the window.
async fn merchant_lines(
    pool: &PgPool,
    peers: &Peers,
    date: Date,
    range: (i64, i64),
) -> Result<Vec<PayoutRow>, ApiError> {
    let merchants = peers.merchants.list_all().await?;
    let carried = store::carried(pool, date.plus_days(-1))
        .await
        .map_err(internal)?;
    let mut lines = Vec::new();
    for m in &merchants {
        let Ok(merchant) = Uuid::try_parse(&m.id) else {
            continue;
        };
        let biller = m.kind == mpb::MerchantKind::Biller as i32;
        let kind = if biller {
            MerchantAccount::BillerPayable
        } else {
            MerchantAccount::Payable
        };
        let account = kind.id(merchant);
        let records = peers.ledger.transfers_committed(account, range).await?;
        let carried_in = carried.get(&(merchant, biller)).copied().unwrap_or(0);
        if records.is_empty() && carried_in == 0 {
            continue;
        }
        let available = available(peers, account).await?;
        let line = window::sums(account, &records).line(carried_in, Some(available));
        let (id, transfer) = payout_ids(date, merchant, biller)?;
        lines.push(PayoutRow {
            id,
            business_date: date,
            merchant_id: merchant,
            biller,
            business_name: m.business_name.clone(),
            bank_bin: m.settlement_bank_bin.clone(),
            account_number: m.settlement_account_number.clone(),
            gross: line.sums.gross,
            fees: line.sums.fees,
            refunds: line.sums.refunds,
            adjustments: line.sums.adjustments,
            paid_out: line.sums.paid_out,
            carried_in: line.carried_in,
            net: line.net,
            payout: line.payout,
            carried_out: line.carried_out,
            status: if line.payout > 0 { "PENDING" } else { "NONE" }.into(),
            failure_reason: String::new(),
            transfer_id: (line.payout > 0).then(|| transfer.to_uuid()),
        });
    }
    Ok(lines)
}

/// What an account can pay now: its posted balance (credits − debits) less its pending
/// debits (a refund reserved and not yet paid).
async fn available(peers: &Peers, account: Id128) -> Result<i64, ApiError> {
    let balances = peers.ledger.get_balances(&[account]).await?;
    let Some(b) = balances.first() else {
        return Ok(0);
    };
    let n = |m: &Option<paymesh_proto::common::v1::Money>| -> i64 {
        m.as_ref()
            .and_then(|m| m.amount.parse::<i64>().ok())
            .unwrap_or(0)
    };
    Ok(n(&b.credits_posted) - n(&b.debits_posted) - n(&b.debits_pending))
}

/// Posts the window's pending payouts: one transfer each, merchant payable → the settlement
/// bank's payout account. EXISTS (a retry) counts as posted.
async fn pay_out(pool: &PgPool, peers: &Peers, window: &WindowRow) -> Result<(), ApiError> {
    let pending = store::pending_payouts(pool, window.business_date)
        .await
        .map_err(internal)?;
    if pending.is_empty() {
        return Ok(());
    }
    let bins: HashSet<&str> = pending.iter().map(|p| p.bank_bin.as_str()).collect();
    let mut accounts = Vec::new();
    for bin in &bins {
        accounts.extend(chain::system_accounts(&[SystemAccount::BankPayout {
            bin,
        }])?);
    }
    peers.ledger.open_accounts(&accounts).await?;
    for batch in pending.chunks(4_000) {
        let mut transfers = Vec::with_capacity(batch.len());
        for p in batch {
            let kind = if p.biller {
                MerchantAccount::BillerPayable
            } else {
                MerchantAccount::Payable
            };
            let (_, transfer) = payout_ids(window.business_date, p.merchant_id, p.biller)?;
            transfers.push(leg(
                transfer,
                kind.id(p.merchant_id),
                chain::system(SystemAccount::BankPayout { bin: &p.bank_bin })?,
                p.payout,
                lpb::TransferCode::Payout,
                &p.id,
            ));
        }
        let results = peers.ledger.create_transfers(transfers).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (p, r) in batch.iter().zip(results) {
            use lpb::CreateTransferResult as R;
            let failure = match r {
                R::Ok | R::Exists => None,
                other => Some(
                    other
                        .as_str_name()
                        .trim_start_matches("CREATE_TRANSFER_RESULT_")
                        .to_owned(),
                ),
            };
            outcomes.push((p.id, failure));
        }
        store::set_payout_outcomes(pool, &outcomes)
            .await
            .map_err(internal)?;
    }
    Ok(())
}
