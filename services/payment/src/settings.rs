//! The payment service's configuration section (`payment.*`), read into typed settings.

use std::time::Duration;

use paymesh_platform::config::{ConfigError, Key, Kind, Section, ServiceSection};

use crate::fees::FeePlan;

pub const SECTION: Section = Section {
    name: "payment",
    keys: &[
        Key::new(
            "listen",
            Kind::Addr,
            "127.0.0.1:50053",
            "payment gRPC address",
        ),
        Key::new(
            "ledger_addr",
            Kind::Str,
            "127.0.0.1:50051",
            "the ledger payments are posted to (host:port or http://host:port)",
        ),
        Key::new(
            "merchant_addr",
            Kind::Str,
            "127.0.0.1:50052",
            "the merchant service merchants are looked up in (host:port or http://host:port)",
        ),
        Key::new(
            "fee_plan",
            Kind::Str,
            "percent:0.5,cap:50000",
            "the fee plan of every merchant: none, flat:AMOUNT or percent:RATE[,min:AMOUNT][,cap:AMOUNT] (whole đồng, rate in %)",
        ),
        Key::new(
            "merchant_cache_ms",
            Kind::Uint(0, 60_000),
            "5000",
            "how long a merchant looked up (status, virtual account, static QR) is reused; a suspension takes effect within it",
        ),
        Key::new(
            "watch_poll_ms",
            Kind::Uint(50, 5_000),
            "500",
            "how often a payment stream looks for events committed by other processes (events of this process wake it at once)",
        ),
    ],
};

#[derive(Debug, Clone)]
pub struct Settings {
    pub fee_plan: FeePlan,
    pub merchant_cache: Duration,
    pub watch_poll: Duration,
}

impl Settings {
    pub fn from_section(s: &ServiceSection) -> Result<Settings, ConfigError> {
        let fee_plan = FeePlan::parse(s.text("fee_plan")?)
            .map_err(|e| s.invalid("fee_plan", e.to_string()))?;
        Ok(Settings {
            fee_plan,
            merchant_cache: s.millis("merchant_cache_ms")?,
            watch_poll: s.millis("watch_poll_ms")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use paymesh_platform::config::Config;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cfg = Config::load_from(None, &env, &[SECTION])?;
        Settings::from_section(cfg.service("payment")?)
    }

    #[test]
    fn defaults_load_and_a_bad_plan_names_its_key() {
        let s = load(&[]).unwrap();
        assert_eq!(s.fee_plan.to_string(), "percent:0.5,cap:50000");
        let e = load(&[("PAYMESH_PAYMENT_FEE_PLAN", "percent:200")]).unwrap_err();
        assert!(e.to_string().contains("payment.fee_plan"), "{e}");
    }
}
