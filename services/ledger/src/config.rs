//! The ledger's configuration section (`ledger.*`), read into typed settings.

use std::time::Duration;

use paymesh_platform::config::{ConfigError, Key, Kind, Section, ServiceSection};

pub const SECTION: Section = Section {
    name: "ledger",
    shared: &[],
    keys: &[
        Key::new(
            "listen",
            Kind::Addr,
            "127.0.0.1:50051",
            "ledger gRPC address",
        ),
        Key::new(
            "batch_transfers_max",
            Kind::Uint(1, 65_536),
            "8190",
            "transfers per group-commit transaction",
        ),
        Key::new(
            "writers",
            Kind::Uint(1, 16),
            "2",
            "group-commit transactions in flight at once",
        ),
        Key::new(
            "queue_requests_max",
            Kind::Uint(1, 1_000_000),
            "4096",
            "requests waiting for the writer before UNAVAILABLE",
        ),
        Key::new(
            "copy_rows_min",
            Kind::Uint(0, 1_000_000),
            "256",
            "batches of at least this many new transfers insert them with COPY (0: never)",
        ),
        Key::new(
            "expiry_interval_ms",
            Kind::Uint(10, 3_600_000),
            "1000",
            "how often expired pending transfers are voided",
        ),
    ],
};

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub batch_transfers_max: usize,
    pub writers: usize,
    pub queue_requests_max: usize,
    pub copy_rows_min: usize,
    pub expiry_interval: Duration,
}

impl LedgerConfig {
    pub fn from_section(s: &ServiceSection) -> Result<LedgerConfig, ConfigError> {
        Ok(LedgerConfig {
            batch_transfers_max: s.uint("batch_transfers_max")? as usize,
            writers: s.uint("writers")? as usize,
            queue_requests_max: s.uint("queue_requests_max")? as usize,
            copy_rows_min: s.uint("copy_rows_min")? as usize,
            expiry_interval: s.millis("expiry_interval_ms")?,
        })
    }
}
