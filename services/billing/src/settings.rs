//! The billing service's configuration section (`billing.*`), read into typed settings.

use std::time::Duration;

use paymesh_money::fees::FeePlan;
use paymesh_platform::config::{ConfigError, Key, Kind, Section, ServiceSection};

pub const SECTION: Section = Section {
    name: "billing",
    shared: &[paymesh_platform::events::WEBHOOK_KEYS],
    keys: &[
        Key::new(
            "listen",
            Kind::Addr,
            "127.0.0.1:50054",
            "billing gRPC address",
        ),
        Key::new(
            "ledger_addr",
            Kind::Str,
            "127.0.0.1:50051",
            "the ledger bill payments are posted to (host:port or http://host:port)",
        ),
        Key::new(
            "merchant_addr",
            Kind::Str,
            "127.0.0.1:50052",
            "the merchant service billers are looked up in (host:port or http://host:port)",
        ),
        Key::new(
            "fee_plan",
            Kind::Str,
            "none",
            "the fee plan of billers without their own: none, flat:AMOUNT or percent:RATE[,min:AMOUNT][,cap:AMOUNT] (whole đồng, rate in %)",
        ),
        Key::new(
            "biller_cache_ms",
            Kind::Uint(0, 60_000),
            "5000",
            "how long a biller looked up (status, category, fee plan) is reused; a suspension takes effect within it",
        ),
        Key::new(
            "lookup_ttl_ms",
            Kind::Uint(10_000, 86_400_000),
            "900000",
            "how long a lookup reference may be quoted by the payment",
        ),
        Key::new(
            "lookup_key",
            Kind::Secret,
            "",
            "the HMAC key lookup references are signed with (at least 16 characters); empty: a random key per process, so set it when several billing processes serve one channel",
        ),
        Key::new(
            "watch_poll_ms",
            Kind::Uint(50, 5_000),
            "500",
            "how often a biller's event stream looks for events committed by other processes (events of this process wake it at once)",
        ),
        Key::new(
            "pay_groups",
            Kind::Uint(0, 8),
            "1",
            "channels' payments are made in groups, one transaction each (group commit); how many groups may be in flight at once in this process; 0: one transaction per payment",
        ),
        Key::new(
            "lookup_groups",
            Kind::Uint(0, 8),
            "2",
            "lookups waiting at once read their customers' bills in one statement; how many such reads may be in flight at once in this process; 0: one statement per lookup",
        ),
        Key::new(
            "pay_group_lock_wait_ms",
            Kind::Uint(1, 60_000),
            "200",
            "how long a group of payments waits for a lock held elsewhere (a bill being loaded or paid) before it fails and each of its payments is made alone",
        ),
    ],
};

#[derive(Debug, Clone)]
pub struct Settings {
    pub fee_plan: FeePlan,
    pub biller_cache: Duration,
    pub lookup_ttl: Duration,
    pub lookup_key: Vec<u8>,
    pub watch_poll: Duration,
    pub pay_groups: usize,
    pub pay_group_lock_wait: Duration,
    /// Readers of lookups' bills in groups (0: each lookup reads alone).
    pub lookup_groups: usize,
    pub delivery: paymesh_platform::events::Delivery,
}

impl Settings {
    pub fn from_section(s: &ServiceSection) -> Result<Settings, ConfigError> {
        let fee_plan = FeePlan::parse(s.text("fee_plan")?)
            .map_err(|e| s.invalid("fee_plan", e.to_string()))?;
        let key = s.text("lookup_key")?.trim();
        let lookup_key = if key.is_empty() {
            let mut random = vec![0u8; 32];
            getrandom::getrandom(&mut random)
                .map_err(|e| s.invalid("lookup_key", format!("no random key: {e}")))?;
            random
        } else if key.len() < 16 {
            return Err(s.invalid("lookup_key", "must have at least 16 characters"));
        } else {
            key.as_bytes().to_vec()
        };
        Ok(Settings {
            fee_plan,
            biller_cache: s.millis("biller_cache_ms")?,
            lookup_ttl: s.millis("lookup_ttl_ms")?,
            lookup_key,
            watch_poll: s.millis("watch_poll_ms")?,
            pay_groups: usize::try_from(s.uint("pay_groups")?).unwrap_or(1),
            pay_group_lock_wait: s.millis("pay_group_lock_wait_ms")?,
            lookup_groups: usize::try_from(s.uint("lookup_groups")?).unwrap_or(2),
            delivery: paymesh_platform::events::Delivery::from_section(s)?,
        })
    }
}
