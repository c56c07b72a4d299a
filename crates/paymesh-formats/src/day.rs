//! A calendar day, without a time zone: the booking and value dates banks print.

use std::fmt;

use crate::{FormatError, Reason};

/// A calendar day (proleptic Gregorian). [`Day::new`] and [`Day::parse_iso`] accept only days
/// that exist, in years 1 to 9999 (four digits in every format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

/// Days from 0000-03-01 to 1970-01-01 in the era arithmetic below.
const EPOCH_SHIFT: i64 = 719_468;
const DAYS_PER_ERA: i64 = 146_097;

impl Day {
    pub fn new(year: i32, month: u32, day: u32) -> Result<Day, FormatError> {
        let valid = (1..=9999).contains(&year)
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month);
        if valid {
            Ok(Day { year, month, day })
        } else {
            Err(FormatError::new(
                Reason::DateInvalid,
                format!("{year:04}-{month:02}-{day:02} is not a calendar day"),
            ))
        }
    }

    /// Parses exactly `YYYY-MM-DD`.
    pub fn parse_iso(text: &str) -> Result<Day, FormatError> {
        let b = text.as_bytes();
        let shape = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shape {
            return Err(FormatError::new(
                Reason::DateInvalid,
                format!("date must be YYYY-MM-DD, got {:?}", crate::cut(text)),
            ));
        }
        let num =
            |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0'));
        Day::new(num(0..4) as i32, num(5..7), num(8..10))
    }

    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// Days since 1970-01-01 (negative before it).
    pub fn days_since_epoch(&self) -> i32 {
        let (m, d) = (i64::from(self.month), i64::from(self.day));
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let year_of_era = y - era * 400;
        // Day of the year counted from March 1st, so that February's length comes last.
        let day_of_year = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        (era * DAYS_PER_ERA + day_of_era - EPOCH_SHIFT) as i32
    }

    /// The day `days` after 1970-01-01. Days outside years 1-9999 give a correct proleptic
    /// date that the formats cannot carry (writers refuse it).
    pub fn from_days_since_epoch(days: i32) -> Day {
        let z = i64::from(days) + EPOCH_SHIFT;
        let era = z.div_euclid(DAYS_PER_ERA);
        let day_of_era = z - era * DAYS_PER_ERA;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Day {
            year: year as i32,
            month: month as u32,
            day: day as u32,
        }
    }

    /// Checks a day built by hand (the fields are public).
    pub(crate) fn checked(self) -> Result<Day, FormatError> {
        Day::new(self.year, self.month, self.day)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn epoch_days_of_known_dates() {
        assert_eq!(Day::new(1970, 1, 1).unwrap().days_since_epoch(), 0);
        assert_eq!(Day::new(2000, 3, 1).unwrap().days_since_epoch(), 11_017);
        assert_eq!(Day::new(1969, 12, 31).unwrap().days_since_epoch(), -1);
        assert_eq!(Day::from_days_since_epoch(20_788).iso(), "2026-12-01");
    }

    #[test]
    fn only_real_days_parse() {
        assert_eq!(
            Day::parse_iso("2024-02-29").unwrap(),
            Day::new(2024, 2, 29).unwrap()
        );
        for bad in [
            "2026-02-29",
            "1900-02-29",
            "2026-04-31",
            "2026-13-01",
            "2026-00-10",
            "0000-01-01",
            "2026-1-01",
            "2026/01/01",
            "2026-01-01Z",
            "２０２６-01-01",
        ] {
            let e = Day::parse_iso(bad).unwrap_err();
            assert_eq!(e.reason, Reason::DateInvalid, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn epoch_days_round_trip(days in -719_162i32..2_932_896) {
            let day = Day::from_days_since_epoch(days);
            prop_assert_eq!(day.checked().unwrap(), day);
            prop_assert_eq!(day.days_since_epoch(), days);
            prop_assert_eq!(Day::parse_iso(&day.iso()).unwrap(), day);
            let next = Day::from_days_since_epoch(days + 1);
            prop_assert!(next > day);
        }
    }
}
