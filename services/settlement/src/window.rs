//! A window's line for one merchant or biller, from the posted movements of its payable
//! account in the window. The one place that decides what counts as gross, fees, refunds and
//! adjustments, what is paid out and what is carried.
//!
//! Every posted movement of the account lands in exactly one figure, so
//! `gross − fees − refunds + adjustments − paid_out` is the account's posted movement over the
//! window to the đồng (a test checks it against the ledger's rows):
//!
//! | ledger code | credit to the account | debit from it |
//! |---|---|---|
//! | QR_PAYMENT, BILL_PAYMENT | gross + | adjustments − |
//! | FEE | fees − (given back with a refund) | fees + |
//! | REFUND | adjustments + | refunds + |
//! | PAYOUT | adjustments + (a payout reversed) | paid_out + (earlier windows' payouts) |
//! | ADJUSTMENT, anything else | adjustments + | adjustments − |
//!
//! Pending transfers (a refund's reservation) and voids move no posted balance and count
//! nowhere; posting a pending transfer counts as the movement it posts.
//!
//! `net = gross − fees − refunds + adjustments`; what is due is `net + carried_in`, where
//! `carried_in` is what earlier windows left: a shortfall (< 0) or money held back (> 0). The
//! payout is what is due, at most what the account can pay now (its posted balance less its
//! pending debits: a refund reserved but not yet paid keeps its money), never below zero; the
//! rest is carried on (`carried_out`: a shortfall, or money held back until the refund is paid
//! — then the refund is that window's and the two cancel — or voided and paid out). Earlier
//! windows' payouts are not part of this window's net: they were that window's.

use paymesh_money::Id128;
use paymesh_proto::ledger::v1 as lpb;

/// The figures of one account over one window, in đồng.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sums {
    pub gross: i64,
    pub fees: i64,
    pub refunds: i64,
    pub adjustments: i64,
    pub paid_out: i64,
    /// Posted movements counted.
    pub movements: u64,
}

/// A line's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub sums: Sums,
    pub carried_in: i64,
    pub net: i64,
    pub payout: i64,
    pub carried_out: i64,
}

impl Sums {
    /// The account's posted movement (credits − debits) these figures add up to.
    pub fn movement(&self) -> i64 {
        self.gross - self.fees - self.refunds + self.adjustments - self.paid_out
    }

    /// The line, with what earlier windows left and what the account can pay now
    /// (`None`: no bound).
    pub fn line(self, carried_in: i64, available: Option<i64>) -> Line {
        let net = self.gross - self.fees - self.refunds + self.adjustments;
        let due = net + carried_in;
        let payout = due.clamp(0, available.unwrap_or(i64::MAX).max(0));
        Line {
            sums: self,
            carried_in,
            net,
            payout,
            carried_out: due - payout,
        }
    }
}

/// Whether a record moves posted balances: not a reservation, not a void.
pub fn is_posted(t: &lpb::Transfer) -> bool {
    let flags = t.flags.unwrap_or_default();
    !flags.pending && !flags.void_pending
}

/// The amount of a record in whole đồng (the ledger writes VND with no decimals).
pub fn amount(t: &lpb::Transfer) -> i64 {
    t.amount
        .as_ref()
        .and_then(|m| m.amount.parse::<i64>().ok())
        .unwrap_or(0)
}

/// Adds `transfers` (records listed for `account`) into the figures.
pub fn sums(account: Id128, transfers: &[lpb::TransferRecord]) -> Sums {
    use lpb::TransferCode as C;
    let account = account.to_bytes();
    let mut s = Sums::default();
    for t in transfers.iter().filter_map(|r| r.transfer.as_ref()) {
        if !is_posted(t) {
            continue;
        }
        let a = amount(t);
        let credited = t.credit_account_id == account;
        let debited = t.debit_account_id == account;
        if credited == debited {
            continue;
        }
        s.movements += 1;
        match (C::try_from(t.code).unwrap_or(C::Unspecified), credited) {
            (C::QrPayment | C::BillPayment, true) => s.gross += a,
            (C::Fee, true) => s.fees -= a,
            (C::Fee, false) => s.fees += a,
            (C::Refund, false) => s.refunds += a,
            (C::Payout, false) => s.paid_out += a,
            (_, true) => s.adjustments += a,
            (_, false) => s.adjustments -= a,
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use paymesh_ledger::client::chain::vnd;

    fn record(
        debit: Id128,
        credit: Id128,
        amount: i64,
        code: lpb::TransferCode,
    ) -> lpb::TransferRecord {
        lpb::TransferRecord {
            transfer: Some(lpb::Transfer {
                id: Id128::random().to_bytes().to_vec(),
                debit_account_id: debit.to_bytes().to_vec(),
                credit_account_id: credit.to_bytes().to_vec(),
                amount: Some(vnd(amount)),
                code: code as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn every_movement_lands_in_one_figure_and_they_add_up() {
        use lpb::TransferCode as C;
        let (acct, bank, fee, other) = (
            Id128::random(),
            Id128::random(),
            Id128::random(),
            Id128::random(),
        );
        let mut reserve = record(acct, other, 9_000, C::Refund);
        if let Some(t) = reserve.transfer.as_mut() {
            t.flags = Some(lpb::TransferFlags {
                pending: true,
                ..Default::default()
            });
        }
        let records = vec![
            record(bank, acct, 150_000, C::QrPayment),
            record(acct, fee, 750, C::Fee),
            record(other, acct, 300_000, C::BillPayment),
            record(acct, fee, 1_500, C::Fee),
            record(fee, acct, 250, C::Fee),
            record(acct, other, 50_000, C::Refund),
            record(other, acct, 20_000, C::Adjustment),
            record(acct, other, 100_000, C::Payout),
            reserve,
        ];
        let s = sums(acct, &records);
        assert_eq!(s.gross, 450_000);
        assert_eq!(s.fees, 2_000);
        assert_eq!(s.refunds, 50_000);
        assert_eq!(s.adjustments, 20_000);
        assert_eq!(s.paid_out, 100_000);
        assert_eq!(s.movements, 8, "the reservation moved nothing posted");
        // credits 150,000 + 300,000 + 250 + 20,000; debits 750 + 1,500 + 50,000 + 100,000.
        assert_eq!(s.movement(), 470_250 - 152_250);
        let line = s.line(0, None);
        assert_eq!(line.net, 418_000);
        assert_eq!(line.payout, 418_000);
        assert_eq!(line.carried_out, 0);
    }

    #[test]
    fn money_a_pending_refund_holds_is_carried_not_paid() {
        // 100,000 due, 30,000 of it reserved for a refund not yet paid: 70,000 paid out.
        let held = Sums {
            gross: 100_000,
            ..Sums::default()
        }
        .line(0, Some(70_000));
        assert_eq!((held.payout, held.carried_out), (70_000, 30_000));
        // The refund is paid the next day: its window's refund and the money held cancel.
        let paid = Sums {
            refunds: 30_000,
            ..Sums::default()
        }
        .line(held.carried_out, Some(0));
        assert_eq!((paid.net, paid.payout, paid.carried_out), (-30_000, 0, 0));
        // Or it fails (voided): the money held is paid out then.
        let voided = Sums::default().line(held.carried_out, Some(30_000));
        assert_eq!((voided.payout, voided.carried_out), (30_000, 0));
        // Nothing available at all: nothing paid, all carried.
        let none = Sums {
            gross: 5_000,
            ..Sums::default()
        }
        .line(0, Some(-1));
        assert_eq!((none.payout, none.carried_out), (0, 5_000));
    }

    #[test]
    fn a_shortfall_is_carried_until_a_window_covers_it() {
        let short = Sums {
            gross: 10_000,
            refunds: 25_000,
            ..Sums::default()
        }
        .line(0, None);
        assert_eq!(
            (short.net, short.payout, short.carried_out),
            (-15_000, 0, -15_000)
        );
        let next = Sums {
            gross: 40_000,
            fees: 200,
            ..Sums::default()
        }
        .line(short.carried_out, None);
        assert_eq!(
            (next.net, next.payout, next.carried_out),
            (39_800, 24_800, 0)
        );
        let still = Sums {
            gross: 5_000,
            ..Sums::default()
        }
        .line(-15_000, None);
        assert_eq!((still.payout, still.carried_out), (0, -10_000));
    }
}
