//! Fee plans: what paymesh keeps of a payment, in whole đồng.
//!
//! A plan is written as text: on a merchant (its own plan, set by an operator), in the payment
//! service's config (`payment.fee_plan`, the default for merchants without one) and on a
//! payment (the plan it was charged under):
//! - `none`: no fee;
//! - `flat:2000`: 2,000 đồng per payment;
//! - `percent:0.6,min:1000,cap:50000`: 0.6 % of the amount (up to 4 decimals, at most 100),
//!   at least `min` and at most `cap` (both optional).
//!
//! Rounding: the percentage is computed exactly and rounded half up to whole đồng (0.5 đồng
//! and above goes up), then raised to `min`, then lowered to `cap`. A fee is never more than
//! the payment itself, so a payment below the minimum fee leaves the merchant nothing but
//! never owing.

use std::fmt;

/// Parts per million in one percent.
const PPM_PER_PERCENT: u64 = 10_000;
const PPM: u128 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeePlan {
    None,
    Flat(u64),
    Percent {
        /// The rate in parts per million (0.6 % = 6,000).
        ppm: u64,
        min: u64,
        cap: Option<u64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "fee plan {text:?}: {why} (write none, flat:AMOUNT or percent:RATE[,min:AMOUNT][,cap:AMOUNT])"
)]
pub struct FeePlanError {
    text: String,
    why: String,
}

fn amount(text: &str) -> Result<u64, String> {
    if text.is_empty() || text.len() > 15 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole number of đồng"));
    }
    text.parse().map_err(|_| format!("{text:?} is too large"))
}

/// `0.6` → 6,000 ppm; at most 4 decimals, at most 100 %.
fn rate(text: &str) -> Result<u64, String> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 3 || frac.len() > 4 || !ok(whole) || !ok(frac) {
        return Err(format!(
            "rate {text:?} must be a percentage with at most 4 decimals"
        ));
    }
    let whole: u64 = whole.parse().map_err(|_| format!("rate {text:?}"))?;
    let mut frac_ppm = 0u64;
    for (i, b) in frac.bytes().enumerate() {
        frac_ppm += u64::from(b - b'0') * 10u64.pow(3 - i as u32);
    }
    let ppm = whole * PPM_PER_PERCENT + frac_ppm;
    if ppm > 100 * PPM_PER_PERCENT {
        return Err(format!("rate {text:?} is over 100 %"));
    }
    Ok(ppm)
}

impl FeePlan {
    pub fn parse(text: &str) -> Result<FeePlan, FeePlanError> {
        let err = |why: String| FeePlanError {
            text: text.to_owned(),
            why,
        };
        let text_trim = text.trim();
        if text_trim == "none" {
            return Ok(FeePlan::None);
        }
        if let Some(n) = text_trim.strip_prefix("flat:") {
            return amount(n).map(FeePlan::Flat).map_err(err);
        }
        let Some(rest) = text_trim.strip_prefix("percent:") else {
            return Err(err("unknown kind".into()));
        };
        let mut parts = rest.split(',');
        let ppm = rate(parts.next().unwrap_or_default()).map_err(err)?;
        let (mut min, mut cap) = (None, None);
        for part in parts {
            match part.split_once(':') {
                Some(("min", n)) if min.is_none() => min = Some(amount(n).map_err(err)?),
                Some(("cap", n)) if cap.is_none() => cap = Some(amount(n).map_err(err)?),
                _ => return Err(err(format!("unknown or repeated part {part:?}"))),
            }
        }
        let min = min.unwrap_or(0);
        if let Some(cap) = cap
            && cap < min
        {
            return Err(err(format!("cap {cap} is below min {min}")));
        }
        Ok(FeePlan::Percent { ppm, min, cap })
    }

    /// The fee on a payment of `amount` đồng (never more than `amount`).
    pub fn fee(&self, amount: u64) -> u64 {
        let fee = match *self {
            FeePlan::None => 0,
            FeePlan::Flat(n) => n,
            FeePlan::Percent { ppm, min, cap } => {
                let exact = u128::from(amount) * u128::from(ppm);
                // Half up: add half a đồng before cutting.
                let rounded = (exact + PPM / 2) / PPM;
                let fee = u64::try_from(rounded).unwrap_or(u64::MAX).max(min);
                cap.map_or(fee, |cap| fee.min(cap))
            }
        };
        fee.min(amount)
    }
}

impl fmt::Display for FeePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FeePlan::None => f.write_str("none"),
            FeePlan::Flat(n) => write!(f, "flat:{n}"),
            FeePlan::Percent { ppm, min, cap } => {
                let whole = ppm / PPM_PER_PERCENT;
                let frac = ppm % PPM_PER_PERCENT;
                write!(f, "percent:{whole}")?;
                if frac != 0 {
                    let digits = format!("{frac:04}");
                    write!(f, ".{}", digits.trim_end_matches('0'))?;
                }
                if min != 0 {
                    write!(f, ",min:{min}")?;
                }
                if let Some(cap) = cap {
                    write!(f, ",cap:{cap}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_parse_and_print_back() {
        for text in [
            "none",
            "flat:0",
            "flat:2000",
            "percent:0.6",
            "percent:0.6,min:1000,cap:50000",
            "percent:1.2345,cap:10",
            "percent:100",
            "percent:0.05,min:500",
        ] {
            assert_eq!(FeePlan::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn bad_plans_are_refused() {
        for text in [
            "",
            "flat",
            "flat:-1",
            "flat:1.5",
            "percent:",
            "percent:0.12345",
            "percent:101",
            "percent:1,min:10,min:20",
            "percent:1,fee:3",
            "percent:1,min:100,cap:50",
            "tiered:1",
        ] {
            assert!(FeePlan::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn percentages_round_half_up_then_min_then_cap() {
        let plan = FeePlan::parse("percent:0.6,min:1000,cap:50000").unwrap();
        assert_eq!(plan.fee(150_000), 1_000); // 900 → min 1,000
        assert_eq!(plan.fee(1_000_000), 6_000);
        assert_eq!(plan.fee(1_000_083), 6_000); // 6000.498 → 6,000
        assert_eq!(plan.fee(1_000_084), 6_001); // 6000.504 → 6,001
        assert_eq!(plan.fee(1_000_000_000), 50_000); // cap
        assert_eq!(plan.fee(500), 500); // never more than the payment
        let half = FeePlan::parse("percent:0.5").unwrap();
        assert_eq!(half.fee(100), 1); // 0.5 → 1 (half up)
        assert_eq!(half.fee(99), 0); // 0.495 → 0
        assert_eq!(FeePlan::parse("flat:2000").unwrap().fee(1_500), 1_500);
        assert_eq!(FeePlan::None.fee(1_500), 0);
        // The largest amount does not overflow.
        let all = FeePlan::parse("percent:100").unwrap();
        assert_eq!(all.fee(999_999_999_999_999_999), 999_999_999_999_999_999);
    }
}
