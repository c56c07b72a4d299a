//! Time on the wire: `google.protobuf.Timestamp` (UTC) to and from the integer clocks the
//! services store (nanoseconds or microseconds since the Unix epoch).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn timestamp_from_ns(ns: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

pub fn timestamp_from_micros(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1_000) as i32,
    }
}

/// `ttl` from now.
pub fn timestamp_in(ttl: Duration) -> prost_types::Timestamp {
    timestamp_from_ns(now_ns().saturating_add(ttl.as_nanos().min(i64::MAX as u128) as i64))
}

/// Nanoseconds of a wire timestamp, if it is within 1970 … 2255 (i64 nanoseconds) with
/// nanos in 0..1e9.
pub fn ns_from_timestamp(t: &prost_types::Timestamp) -> Result<i64, &'static str> {
    if !(0..=9_000_000_000).contains(&t.seconds) || !(0..1_000_000_000).contains(&t.nanos) {
        return Err("must be between 1970 and 2255 with nanos in 0..1e9");
    }
    Ok(t.seconds * 1_000_000_000 + i64::from(t.nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert_both_ways() {
        let t = timestamp_from_ns(1_700_000_000_123_456_789);
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_456_789));
        assert_eq!(ns_from_timestamp(&t), Ok(1_700_000_000_123_456_789));
        let t = timestamp_from_micros(-1);
        assert_eq!((t.seconds, t.nanos), (-1, 999_999_000));
        assert!(
            ns_from_timestamp(&prost_types::Timestamp {
                seconds: -1,
                nanos: 0
            })
            .is_err()
        );
        assert!(
            ns_from_timestamp(&prost_types::Timestamp {
                seconds: 1,
                nanos: -1
            })
            .is_err()
        );
        assert!(
            timestamp_in(Duration::from_secs(60)).seconds > timestamp_from_ns(now_ns()).seconds
        );
    }
}

/// Asia/Ho_Chi_Minh is UTC+7 all year (no daylight saving).
pub const VIETNAM_OFFSET_SECONDS: i64 = 7 * 3600;

/// A calendar day (proleptic Gregorian), as Vietnam's business days, cut-offs and bills'
/// dates are: `YYYY-MM-DD` on the wire, days since 1970-01-01 inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

/// Why a `YYYY-MM-DD` (or `YYYY-MM`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    #[error("must be a date written YYYY-MM-DD")]
    Form,
    #[error("must be a day that exists (month 01-12, day within the month)")]
    NoSuchDay,
    #[error("must be within the years 2000-2999")]
    Year,
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Digits only, exactly `n` of them.
fn digits(text: &str, n: usize) -> Option<u32> {
    (text.len() == n && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

impl Date {
    /// Days since 1970-01-01 of a valid (y, m, d) (H. Hinnant's `days_from_civil`).
    fn from_civil(y: i32, m: u32, d: u32) -> Date {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = m as i32;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Date(era * 146_097 + doe - 719_468)
    }

    /// (year, month, day).
    pub fn civil(self) -> (i32, u32, u32) {
        let z = self.0 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = yoe + era * 400 + i32::from(m <= 2);
        (y, m, d)
    }

    /// `YYYY-MM-DD`, years 2000-2999 (what a bill or a business day can be).
    pub fn parse(text: &str) -> Result<Date, DateError> {
        let t = text.trim();
        let mut parts = t.split('-');
        let (Some(y), Some(m), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DateError::Form);
        };
        let (Some(y), Some(m), Some(d)) = (digits(y, 4), digits(m, 2), digits(d, 2)) else {
            return Err(DateError::Form);
        };
        let y = y as i32;
        if !(2000..=2999).contains(&y) {
            return Err(DateError::Year);
        }
        if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
            return Err(DateError::NoSuchDay);
        }
        Ok(Date::from_civil(y, m, d))
    }

    /// The day in Asia/Ho_Chi_Minh at `unix_seconds`.
    pub fn in_vietnam_at(unix_seconds: i64) -> Date {
        let days = (unix_seconds + VIETNAM_OFFSET_SECONDS).div_euclid(86_400);
        Date(i32::try_from(days).unwrap_or(i32::MAX))
    }

    /// Today in Asia/Ho_Chi_Minh.
    pub fn today_in_vietnam() -> Date {
        Date::in_vietnam_at(now_ns().div_euclid(1_000_000_000))
    }

    /// Days since 1970-01-01.
    pub fn days(self) -> i32 {
        self.0
    }

    pub fn from_days(days: i32) -> Date {
        Date(days)
    }

    /// `n` days later (earlier if negative).
    pub fn plus_days(self, n: i32) -> Date {
        Date(self.0.saturating_add(n))
    }

    /// The Unix second at which this day starts in Asia/Ho_Chi_Minh.
    pub fn vietnam_start_unix(self) -> i64 {
        i64::from(self.0) * 86_400 - VIETNAM_OFFSET_SECONDS
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = self.civil();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// `unix_seconds` as RFC 3339 at `offset_seconds` from UTC, to the second
/// (`2026-12-01T16:00:05Z`, `2026-12-01T23:00:05+07:00`).
fn rfc3339_at(unix_seconds: i64, offset_seconds: i64) -> String {
    let local = unix_seconds + offset_seconds;
    let day = Date(i32::try_from(local.div_euclid(86_400)).unwrap_or(i32::MAX));
    let (y, m, d) = day.civil();
    let secs = local.rem_euclid(86_400);
    let zone = match offset_seconds {
        0 => "Z".to_owned(),
        o => format!(
            "{}{:02}:{:02}",
            if o < 0 { '-' } else { '+' },
            o.abs() / 3600,
            o.abs() % 3600 / 60
        ),
    };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{zone}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// RFC 3339 in UTC, to the second: what goes on the wire.
pub fn rfc3339_from_ns(ns: i64) -> String {
    rfc3339_at(ns.div_euclid(1_000_000_000), 0)
}

/// RFC 3339 in Asia/Ho_Chi_Minh (`+07:00`), to the second: what a person reads.
pub fn vietnam_rfc3339_from_ns(ns: i64) -> String {
    rfc3339_at(ns.div_euclid(1_000_000_000), VIETNAM_OFFSET_SECONDS)
}

/// `YYYY-MM` (a billing period), years 2000-2999.
pub fn parse_period(text: &str) -> Result<String, DateError> {
    let t = text.trim();
    Date::parse(&format!("{t}-01"))?;
    Ok(t.to_owned())
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn days_round_trip_through_the_calendar() {
        for text in [
            "2000-01-01",
            "2000-02-29",
            "2024-12-31",
            "2026-12-01",
            "2100-03-01",
        ] {
            let d = Date::parse(text).unwrap();
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(Date::parse("1970-01-01"), Err(DateError::Year));
        assert_eq!(Date::parse("2026-12-01").unwrap().days(), 20_788);
        let mut d = Date::parse("2000-01-01").unwrap();
        for _ in 0..40_000 {
            let next = d.plus_days(1);
            assert_eq!(Date::parse(&next.to_string()), Ok(next));
            d = next;
        }
    }

    #[test]
    fn bad_days_are_refused_with_their_rule() {
        assert_eq!(Date::parse("2026-02-29"), Err(DateError::NoSuchDay));
        assert_eq!(Date::parse("2026-13-01"), Err(DateError::NoSuchDay));
        assert_eq!(Date::parse("2026-04-31"), Err(DateError::NoSuchDay));
        for bad in [
            "2026-1-01",
            "26-01-01",
            "2026/01/01",
            "2026-01-01x",
            "",
            "2026-01",
        ] {
            assert_eq!(Date::parse(bad), Err(DateError::Form), "{bad}");
        }
        assert_eq!(parse_period("2026-11"), Ok("2026-11".into()));
        assert!(parse_period("2026-11-01").is_err());
    }

    #[test]
    fn times_are_written_in_utc_and_in_vietnam() {
        // 2026-12-01T16:00:05Z is 23:00:05 in Hanoi.
        let ns = 1_796_140_805 * 1_000_000_000 + 999;
        assert_eq!(rfc3339_from_ns(ns), "2026-12-01T16:00:05Z");
        assert_eq!(vietnam_rfc3339_from_ns(ns), "2026-12-01T23:00:05+07:00");
        assert_eq!(rfc3339_from_ns(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn the_vietnamese_day_starts_at_17_utc() {
        // 2026-11-30T17:00:00Z is 2026-12-01 00:00 in Hanoi.
        let start = Date::parse("2026-12-01").unwrap().vietnam_start_unix();
        assert_eq!(start, 1_796_058_000);
        assert_eq!(Date::in_vietnam_at(start).to_string(), "2026-12-01");
        assert_eq!(Date::in_vietnam_at(start - 1).to_string(), "2026-11-30");
    }
}
