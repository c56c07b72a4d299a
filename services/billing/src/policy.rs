//! A biller's policy, and the one place that decides what a bill costs today and what a
//! payment does to it.
//!
//! # Amounts due now (all whole đồng, every computed amount rounded down)
//!
//! - principal left = amount due − discount given − (paid − late fees paid), never below 0
//!   (an advance above the amount counts as principal);
//! - **late fee**: once the day is past `due date + late_fee.days` and principal is left, the
//!   late fee of the bill (fixed, or percent of the amount due, rounded down: the payer's
//!   favour) less what was paid of it already: charged once per bill, however many part
//!   payments follow;
//! - **early discount**: while the day is at most `issue date + early_discount.days` and
//!   nothing is paid yet, the discount (fixed, or percent rounded down: the biller's favour),
//!   at most the amount due − 1 (a bill is never free); given only to a payment in full;
//! - due now = principal left + late fee − discount.
//!
//! # What a payment may be (the biller's amount rule)
//!
//! `EXACT`: due now. `EXACT_AND_BELOW`: due now, or less but at least the minimum part (or
//! the late fee owed, if more: a part payment covers the fee first), `EXACT_AND_ABOVE`: due
//! now or more. A payment pays the late fee first, then principal; one of at least the amount
//! due now pays the bill (`PAID`), a smaller one leaves it `PARTIALLY_PAID`. A bill past
//! `due date + expires_after_days` (when set) and not paid is `EXPIRED` and takes nothing.

use std::fmt;

use paymesh_platform::time::Date;
use paymesh_proto::billing::v1 as pb;

/// Longest customer-code pattern.
pub const PATTERN_CHARS_MAX: usize = 200;
/// Longest customer code.
pub const CUSTOMER_CODE_CHARS_MAX: usize = 32;
/// Largest bill: 12 digits, as a QR's amount carries.
pub const AMOUNT_MAX: i64 = 999_999_999_999;
/// Longest a late fee can wait or a discount last, and a bill live past its due date.
pub const DAYS_MAX: u32 = 3_650;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountRule {
    Exact,
    ExactAndBelow,
    ExactAndAbove,
}

impl AmountRule {
    pub fn name(self) -> &'static str {
        match self {
            AmountRule::Exact => "EXACT",
            AmountRule::ExactAndBelow => "EXACT_AND_BELOW",
            AmountRule::ExactAndAbove => "EXACT_AND_ABOVE",
        }
    }

    pub fn parse(name: &str) -> Option<AmountRule> {
        match name {
            "EXACT" => Some(AmountRule::Exact),
            "EXACT_AND_BELOW" => Some(AmountRule::ExactAndBelow),
            "EXACT_AND_ABOVE" => Some(AmountRule::ExactAndAbove),
            _ => None,
        }
    }

    pub fn from_pb(rule: i32) -> Option<AmountRule> {
        match pb::AmountRule::try_from(rule).ok()? {
            pb::AmountRule::Exact => Some(AmountRule::Exact),
            pb::AmountRule::ExactAndBelow => Some(AmountRule::ExactAndBelow),
            pb::AmountRule::ExactAndAbove => Some(AmountRule::ExactAndAbove),
            pb::AmountRule::Unspecified => None,
        }
    }

    pub fn to_pb(self) -> pb::AmountRule {
        match self {
            AmountRule::Exact => pb::AmountRule::Exact,
            AmountRule::ExactAndBelow => pb::AmountRule::ExactAndBelow,
            AmountRule::ExactAndAbove => pb::AmountRule::ExactAndAbove,
        }
    }
}

/// A late fee or a discount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Charge {
    pub amount: ChargeAmount,
    /// Late fee: from this many days after the due date; discount: up to this many days after
    /// the issue date.
    pub days: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeAmount {
    /// Whole đồng.
    Fixed(i64),
    /// Hundredths of a percent (250 = 2.5 %), 1..=10,000.
    BasisPoints(i64),
}

impl ChargeAmount {
    /// Of `amount`, rounded down.
    pub fn of(self, amount: i64) -> i64 {
        match self {
            ChargeAmount::Fixed(f) => f,
            ChargeAmount::BasisPoints(bp) => {
                i64::try_from(i128::from(amount) * i128::from(bp) / 10_000).unwrap_or(0)
            }
        }
    }

    /// A percentage as written, `"2.5"`: at most 2 decimals, above 0, at most 100.
    pub fn parse_percent(text: &str) -> Result<ChargeAmount, String> {
        let t = text.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let ok = !whole.is_empty()
            && whole.len() <= 3
            && whole.bytes().all(|b| b.is_ascii_digit())
            && frac.len() <= 2
            && frac.bytes().all(|b| b.is_ascii_digit())
            && !(t.contains('.') && frac.is_empty());
        if !ok {
            return Err("must be a percentage like 2.5 (at most 2 decimals)".into());
        }
        let whole: i64 = whole.parse().map_err(|_| "not a number".to_string())?;
        let frac: i64 = format!("{frac:0<2}")
            .parse()
            .map_err(|_| "not a number".to_string())?;
        let bp = whole * 100 + frac;
        if !(1..=10_000).contains(&bp) {
            return Err("must be above 0 and at most 100".into());
        }
        Ok(ChargeAmount::BasisPoints(bp))
    }
}

impl fmt::Display for ChargeAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChargeAmount::Fixed(v) => write!(f, "{v}"),
            ChargeAmount::BasisPoints(bp) if bp % 100 == 0 => write!(f, "{}", bp / 100),
            ChargeAmount::BasisPoints(bp) if bp % 10 == 0 => {
                write!(f, "{}.{}", bp / 100, (bp % 100) / 10)
            }
            ChargeAmount::BasisPoints(bp) => write!(f, "{}.{:02}", bp / 100, bp % 100),
        }
    }
}

/// A biller's policy, checked.
#[derive(Clone, Debug)]
pub struct Policy {
    /// As the biller wrote it.
    pub pattern: String,
    /// The same, anchored at both ends.
    pub matcher: regex::Regex,
    pub rule: AmountRule,
    pub minimum_part: i64,
    pub late_fee: Option<Charge>,
    pub early_discount: Option<Charge>,
    /// 0: bills never expire.
    pub expires_after_days: u32,
}

/// Compiles a customer-code pattern, anchored (it must match the whole code).
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, String> {
    let p = pattern.trim();
    if p.is_empty() {
        return Err("required".into());
    }
    if p.chars().count() > PATTERN_CHARS_MAX {
        return Err(format!("must be at most {PATTERN_CHARS_MAX} characters"));
    }
    regex::RegexBuilder::new(&format!("^(?:{p})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("not a regular expression: {}", first_line(&e.to_string())))
}

fn first_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text).trim()
}

impl Policy {
    /// A customer code as written (trimmed, upper-cased), if it is one of this biller's.
    pub fn customer_code(&self, text: &str) -> Result<String, String> {
        let code = text.trim().to_ascii_uppercase();
        if code.is_empty() {
            return Err("required".into());
        }
        if code.len() > CUSTOMER_CODE_CHARS_MAX || !code.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(format!(
                "must be 1-{CUSTOMER_CODE_CHARS_MAX} letters and digits"
            ));
        }
        if !self.matcher.is_match(&code) {
            return Err(format!(
                "does not match the biller's pattern {}",
                self.pattern
            ));
        }
        Ok(code)
    }
}

/// Status of a bill as stored (EXPIRED is computed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    Open,
    PartiallyPaid,
    Paid,
    Cancelled,
}

impl Stored {
    pub fn name(self) -> &'static str {
        match self {
            Stored::Open => "OPEN",
            Stored::PartiallyPaid => "PARTIALLY_PAID",
            Stored::Paid => "PAID",
            Stored::Cancelled => "CANCELLED",
        }
    }

    /// OPEN or PARTIALLY_PAID: a bill a lookup shows and "pay all outstanding" pays.
    pub fn outstanding(self) -> bool {
        matches!(self, Stored::Open | Stored::PartiallyPaid)
    }

    pub fn parse(name: &str) -> Option<Stored> {
        match name {
            "OPEN" => Some(Stored::Open),
            "PARTIALLY_PAID" => Some(Stored::PartiallyPaid),
            "PAID" => Some(Stored::Paid),
            "CANCELLED" => Some(Stored::Cancelled),
            _ => None,
        }
    }
}

/// What of a bill its cost depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BillMoney {
    pub status: Stored,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub late_fee_paid: i64,
    pub discount_given: i64,
    pub issue_date: Date,
    pub due_date: Date,
}

/// What a bill costs on a day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub late_fee: i64,
    pub discount: i64,
    /// Paying the bill in full today.
    pub due_now: i64,
    /// The least a payment may be today (the amount rule).
    pub minimum_now: i64,
    /// Past its expiry and not paid.
    pub expired: bool,
}

/// Why a payment cannot be taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

fn refuse(reason: &'static str, message: String) -> Refusal {
    Refusal { reason, message }
}

/// A payment's effect on a bill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    pub late_fee: i64,
    pub discount: i64,
    pub bill: BillMoney,
}

impl Policy {
    /// What `bill` costs on `today`.
    pub fn quote(&self, bill: &BillMoney, today: Date) -> Quote {
        let principal_paid = bill.amount_paid - bill.late_fee_paid;
        let principal_left = (bill.amount_due - bill.discount_given - principal_paid).max(0);
        let outstanding = matches!(bill.status, Stored::Open | Stored::PartiallyPaid);
        let late_fee = match self.late_fee {
            Some(c)
                if outstanding
                    && principal_left > 0
                    && today > bill.due_date.plus_days(c.days as i32) =>
            {
                (c.amount.of(bill.amount_due) - bill.late_fee_paid).max(0)
            }
            _ => 0,
        };
        let discount = match self.early_discount {
            Some(c)
                if outstanding
                    && bill.amount_paid == 0
                    && today <= bill.issue_date.plus_days(c.days as i32) =>
            {
                c.amount.of(bill.amount_due).clamp(0, bill.amount_due - 1)
            }
            _ => 0,
        };
        let due_now = if outstanding {
            principal_left + late_fee - discount
        } else {
            0
        };
        let minimum_now = match self.rule {
            AmountRule::ExactAndBelow => self.minimum_part.max(late_fee).clamp(1, due_now.max(1)),
            _ => due_now,
        };
        let expired = outstanding
            && self.expires_after_days > 0
            && today > bill.due_date.plus_days(self.expires_after_days as i32);
        Quote {
            late_fee,
            discount,
            due_now,
            minimum_now,
            expired,
        }
    }

    /// Takes `amount` for `bill` on `today`, or says why not.
    pub fn pay(&self, bill: &BillMoney, amount: i64, today: Date) -> Result<Applied, Refusal> {
        match bill.status {
            Stored::Paid => return Err(refuse("BILL_PAID", "the bill is paid already".into())),
            Stored::Cancelled => {
                return Err(refuse(
                    "BILL_CANCELLED",
                    "the biller cancelled the bill".into(),
                ));
            }
            Stored::Open | Stored::PartiallyPaid => {}
        }
        let q = self.quote(bill, today);
        if q.expired {
            return Err(refuse(
                "BILL_EXPIRED",
                "the bill expired: it can no longer be paid".into(),
            ));
        }
        if amount <= 0 {
            return Err(refuse(
                "AMOUNT_INVALID",
                "the amount must be positive".into(),
            ));
        }
        match self.rule {
            AmountRule::Exact if amount != q.due_now => {
                return Err(refuse(
                    "AMOUNT_NOT_EXACT",
                    format!("the biller takes exactly {} đồng today", q.due_now),
                ));
            }
            AmountRule::ExactAndBelow if amount > q.due_now => {
                return Err(refuse(
                    "AMOUNT_ABOVE_DUE",
                    format!("at most {} đồng is due today", q.due_now),
                ));
            }
            AmountRule::ExactAndBelow if amount < q.minimum_now => {
                return Err(refuse(
                    "AMOUNT_BELOW_MINIMUM",
                    format!("a part payment is at least {} đồng today", q.minimum_now),
                ));
            }
            AmountRule::ExactAndAbove if amount < q.due_now => {
                return Err(refuse(
                    "AMOUNT_BELOW_DUE",
                    format!("at least {} đồng is due today", q.due_now),
                ));
            }
            _ => {}
        }
        let full = amount >= q.due_now;
        let late_fee = amount.min(q.late_fee);
        let discount = if full { q.discount } else { 0 };
        let mut after = *bill;
        after.amount_paid += amount;
        after.late_fee_paid += late_fee;
        after.discount_given += discount;
        after.status = if full {
            Stored::Paid
        } else {
            Stored::PartiallyPaid
        };
        Ok(Applied {
            late_fee,
            discount,
            bill: after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> Date {
        Date::parse(text).unwrap()
    }

    fn policy(rule: AmountRule) -> Policy {
        Policy {
            pattern: "P[A-Z][0-9]{11}".into(),
            matcher: compile_pattern("P[A-Z][0-9]{11}").unwrap(),
            rule,
            minimum_part: 0,
            late_fee: None,
            early_discount: None,
            expires_after_days: 0,
        }
    }

    fn bill(amount: i64) -> BillMoney {
        BillMoney {
            status: Stored::Open,
            amount_due: amount,
            amount_paid: 0,
            late_fee_paid: 0,
            discount_given: 0,
            issue_date: day("2026-11-01"),
            due_date: day("2026-11-20"),
        }
    }

    #[test]
    fn customer_codes_match_the_whole_pattern_upper_cased() {
        let p = policy(AmountRule::Exact);
        assert_eq!(p.customer_code(" pe01234567890 ").unwrap(), "PE01234567890");
        assert!(p.customer_code("XPE01234567890").is_err());
        assert!(p.customer_code("PE012345678901").is_err());
        assert!(p.customer_code("PE0123-567890").is_err());
        assert!(compile_pattern("(").is_err());
        assert!(compile_pattern("").is_err());
    }

    #[test]
    fn percentages_are_hundredths_at_most_100() {
        assert_eq!(
            ChargeAmount::parse_percent("2.5"),
            Ok(ChargeAmount::BasisPoints(250))
        );
        assert_eq!(
            ChargeAmount::parse_percent("100"),
            Ok(ChargeAmount::BasisPoints(10_000))
        );
        for bad in ["0", "100.01", "2.555", "2.", ".5", "-1", "1e2", "abc", ""] {
            assert!(ChargeAmount::parse_percent(bad).is_err(), "{bad}");
        }
        assert_eq!(ChargeAmount::BasisPoints(250).to_string(), "2.5");
        assert_eq!(ChargeAmount::BasisPoints(205).to_string(), "2.05");
        // 1.5 % of 333,333 is 4,999.995: rounded down.
        assert_eq!(ChargeAmount::BasisPoints(150).of(333_333), 4_999);
    }

    #[test]
    fn exact_bills_take_exactly_the_amount_and_are_paid_once() {
        let p = policy(AmountRule::Exact);
        let b = bill(180_000);
        let today = day("2026-11-10");
        assert_eq!(
            p.pay(&b, 179_999, today).unwrap_err().reason,
            "AMOUNT_NOT_EXACT"
        );
        assert_eq!(
            p.pay(&b, 180_001, today).unwrap_err().reason,
            "AMOUNT_NOT_EXACT"
        );
        let paid = p.pay(&b, 180_000, today).unwrap();
        assert_eq!(paid.bill.status, Stored::Paid);
        assert_eq!(
            p.pay(&paid.bill, 180_000, today).unwrap_err().reason,
            "BILL_PAID"
        );
        let mut cancelled = b;
        cancelled.status = Stored::Cancelled;
        assert_eq!(
            p.pay(&cancelled, 180_000, today).unwrap_err().reason,
            "BILL_CANCELLED"
        );
    }

    #[test]
    fn a_late_fee_is_charged_once_after_its_day_and_paid_first() {
        let mut p = policy(AmountRule::ExactAndBelow);
        p.minimum_part = 50_000;
        p.late_fee = Some(Charge {
            amount: ChargeAmount::BasisPoints(200),
            days: 5,
        });
        let b = bill(1_000_000);
        // Due 11-20, late from 11-26 (the day after 20 + 5).
        assert_eq!(p.quote(&b, day("2026-11-25")).late_fee, 0);
        let q = p.quote(&b, day("2026-11-26"));
        assert_eq!((q.late_fee, q.due_now), (20_000, 1_020_000));
        // A part payment covers the fee first; the fee is not charged again.
        let part = p.pay(&b, 300_000, day("2026-11-26")).unwrap();
        assert_eq!(part.late_fee, 20_000);
        assert_eq!(part.bill.status, Stored::PartiallyPaid);
        let q = p.quote(&part.bill, day("2026-12-20"));
        assert_eq!((q.late_fee, q.due_now), (0, 720_000));
        assert_eq!(
            p.pay(&part.bill, 49_999, day("2026-12-20"))
                .unwrap_err()
                .reason,
            "AMOUNT_BELOW_MINIMUM"
        );
        assert_eq!(
            p.pay(&part.bill, 720_001, day("2026-12-20"))
                .unwrap_err()
                .reason,
            "AMOUNT_ABOVE_DUE"
        );
        let rest = p.pay(&part.bill, 720_000, day("2026-12-20")).unwrap();
        assert_eq!(rest.bill.status, Stored::Paid);
        assert_eq!(rest.bill.amount_paid, 1_020_000);
    }

    #[test]
    fn an_early_discount_goes_only_to_a_payment_in_full_before_its_day() {
        let mut p = policy(AmountRule::ExactAndBelow);
        p.early_discount = Some(Charge {
            amount: ChargeAmount::Fixed(10_000),
            days: 3,
        });
        let b = bill(500_000);
        let q = p.quote(&b, day("2026-11-04"));
        assert_eq!((q.discount, q.due_now), (10_000, 490_000));
        assert_eq!(p.quote(&b, day("2026-11-05")).discount, 0);
        let full = p.pay(&b, 490_000, day("2026-11-04")).unwrap();
        assert_eq!((full.discount, full.bill.status), (10_000, Stored::Paid));
        let part = p.pay(&b, 100_000, day("2026-11-04")).unwrap();
        assert_eq!(part.discount, 0);
        // After a part payment the discount is gone.
        assert_eq!(p.quote(&part.bill, day("2026-11-04")).due_now, 400_000);
    }

    #[test]
    fn above_takes_more_and_expired_bills_take_nothing() {
        let mut p = policy(AmountRule::ExactAndAbove);
        p.expires_after_days = 10;
        let b = bill(200_000);
        assert_eq!(
            p.pay(&b, 199_999, day("2026-11-10")).unwrap_err().reason,
            "AMOUNT_BELOW_DUE"
        );
        let more = p.pay(&b, 250_000, day("2026-11-10")).unwrap();
        assert_eq!(
            (more.bill.status, more.bill.amount_paid),
            (Stored::Paid, 250_000)
        );
        assert!(!p.quote(&b, day("2026-11-30")).expired);
        assert!(p.quote(&b, day("2026-12-01")).expired);
        assert_eq!(
            p.pay(&b, 200_000, day("2026-12-01")).unwrap_err().reason,
            "BILL_EXPIRED"
        );
    }
}
