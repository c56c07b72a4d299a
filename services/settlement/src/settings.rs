//! The settlement service's configuration section (`settlement.*`), read into typed settings.

use std::time::Duration;

use paymesh_platform::config::{ConfigError, Key, Kind, Section, ServiceSection};

pub const SECTION: Section = Section {
    name: "settlement",
    shared: &[],
    keys: &[
        Key::new(
            "listen",
            Kind::Addr,
            "127.0.0.1:50055",
            "settlement gRPC address",
        ),
        Key::new(
            "ledger_addr",
            Kind::Str,
            "127.0.0.1:50051",
            "the ledger windows are sealed in and payouts posted to (host:port or http://host:port)",
        ),
        Key::new(
            "merchant_addr",
            Kind::Str,
            "127.0.0.1:50052",
            "the merchant service merchants and billers are listed from (host:port or http://host:port)",
        ),
        Key::new(
            "payment_addr",
            Kind::Str,
            "127.0.0.1:50053",
            "the payment service banks' credits are read from (host:port or http://host:port)",
        ),
        Key::new(
            "cutoff",
            Kind::Str,
            "23:00",
            "the daily cut-off, HH:MM in Asia/Ho_Chi_Minh: a business day's window holds what commits after the previous day's cut-off and before this one",
        ),
        Key::new(
            "schedule_poll_ms",
            Kind::Uint(0, 3_600_000),
            "60000",
            "how often the scheduled job looks for windows whose cut-off has passed and closes them (0: no scheduled job, operators close windows)",
        ),
        Key::new(
            "statement_bytes_max",
            Kind::Uint(1_024, 1_073_741_824),
            "268435456",
            "the largest bank statement ImportStatement takes, in bytes",
        ),
        Key::new(
            "account_owner",
            Kind::Str,
            "PAYMESH",
            "the account owner's name in the statement files banks pull",
        ),
    ],
};

#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds after local midnight.
    pub cutoff_seconds: i64,
    /// `None`: no scheduled job.
    pub schedule_poll: Option<Duration>,
    pub statement_bytes_max: usize,
    pub account_owner: String,
}

/// `HH:MM` (00:00-23:59) as seconds after midnight.
pub fn parse_cutoff(text: &str) -> Option<i64> {
    let (h, m) = text.trim().split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some(h * 3600 + m * 60)
}

impl Settings {
    pub fn from_section(s: &ServiceSection) -> Result<Settings, ConfigError> {
        let cutoff_seconds = parse_cutoff(s.text("cutoff")?)
            .ok_or_else(|| s.invalid("cutoff", "must be HH:MM, 00:00 to 23:59"))?;
        let poll = s.millis("schedule_poll_ms")?;
        Ok(Settings {
            cutoff_seconds,
            schedule_poll: (!poll.is_zero()).then_some(poll),
            statement_bytes_max: usize::try_from(s.uint("statement_bytes_max")?)
                .unwrap_or(usize::MAX),
            account_owner: s.text("account_owner")?.trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_are_hours_and_minutes_of_a_day() {
        assert_eq!(parse_cutoff("23:00"), Some(82_800));
        assert_eq!(parse_cutoff("00:00"), Some(0));
        assert_eq!(parse_cutoff("23:59"), Some(86_340));
        for bad in ["24:00", "23:60", "7:00", "2300", "", "ab:cd", "-1:00"] {
            assert_eq!(parse_cutoff(bad), None, "{bad}");
        }
    }
}
