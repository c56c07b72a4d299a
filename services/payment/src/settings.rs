//! The payment service's configuration section (`payment.*`), read into typed settings.

use std::collections::BTreeMap;
use std::time::Duration;

use paymesh_money::fees::FeePlan;
use paymesh_platform::config::{ConfigError, Key, Kind, Section, ServiceSection};

pub const SECTION: Section = Section {
    name: "payment",
    shared: &[paymesh_platform::events::WEBHOOK_KEYS],
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
            "billing_addr",
            Kind::Str,
            "127.0.0.1:50054",
            "the billing service that bank credits quoting a bill's reference are handed to (host:port or http://host:port)",
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
        Key::new(
            "credit_batches",
            Kind::Uint(1, 8),
            "1",
            "credit notifications are applied in batches (group commit); how many batches may be in flight at once in this process (2 measured no faster than 1 on 2 cores: the ledger commits batches on the hot clearing account one at a time)",
        ),
        Key::new(
            "webhook_listen",
            Kind::Addr,
            "127.0.0.1:8453",
            "the HTTP edge where acquiring banks POST signed credit notifications (/v1/banks/{bin}/credits)",
        ),
        Key::new(
            "bank_webhook_secrets",
            Kind::Secret,
            "",
            "the HMAC-SHA256 key of each bank's webhooks: BIN=SECRET pairs separated by commas (a bank not listed is refused)",
        ),
    ],
};

pub use paymesh_platform::events::Delivery;

#[derive(Debug, Clone)]
pub struct Settings {
    pub fee_plan: FeePlan,
    pub merchant_cache: Duration,
    pub watch_poll: Duration,
    /// Batches of credit notifications in flight at once.
    pub credit_batches: usize,
    pub webhook_listen: std::net::SocketAddr,
    /// Each bank's webhook signing key, by BIN.
    pub bank_secrets: BTreeMap<String, Vec<u8>>,
    pub delivery: Delivery,
}

/// `BIN=SECRET,BIN=SECRET`.
fn bank_secrets(text: &str) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (bin, secret) = pair
            .split_once('=')
            .ok_or_else(|| "expected BIN=SECRET pairs separated by commas".to_string())?;
        let bin = bin.trim();
        if bin.len() != 6 || !bin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{bin:?} is not a 6-digit BIN"));
        }
        if secret.trim().len() < 16 {
            return Err(format!(
                "the secret of {bin} must have at least 16 characters"
            ));
        }
        if out
            .insert(bin.to_owned(), secret.trim().as_bytes().to_vec())
            .is_some()
        {
            return Err(format!("{bin} is listed twice"));
        }
    }
    Ok(out)
}

impl Settings {
    pub fn from_section(s: &ServiceSection) -> Result<Settings, ConfigError> {
        let fee_plan = FeePlan::parse(s.text("fee_plan")?)
            .map_err(|e| s.invalid("fee_plan", e.to_string()))?;
        let bank_secrets = bank_secrets(s.text("bank_webhook_secrets")?)
            .map_err(|e| s.invalid("bank_webhook_secrets", e))?;
        Ok(Settings {
            fee_plan,
            merchant_cache: s.millis("merchant_cache_ms")?,
            watch_poll: s.millis("watch_poll_ms")?,
            credit_batches: usize::try_from(s.uint("credit_batches")?).unwrap_or(1),
            webhook_listen: s.addr("webhook_listen")?,
            bank_secrets,
            delivery: Delivery::from_section(s)?,
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
        assert!(s.bank_secrets.is_empty());
        assert!(s.delivery.retry_for >= Duration::from_secs(24 * 3600));
    }

    #[test]
    fn bank_secrets_are_pairs_of_a_bin_and_a_long_secret() {
        let s = load(&[(
            "PAYMESH_PAYMENT_BANK_WEBHOOK_SECRETS",
            "970436=abcdefghijklmnop, 970422 = 0123456789abcdef0",
        )])
        .unwrap();
        assert_eq!(s.bank_secrets["970436"], b"abcdefghijklmnop");
        assert_eq!(s.bank_secrets["970422"], b"0123456789abcdef0");
        for bad in [
            "970436",
            "97043=abcdefghijklmnop",
            "970436=short",
            "970436=abcdefghijklmnop,970436=abcdefghijklmnopq",
        ] {
            let e = load(&[("PAYMESH_PAYMENT_BANK_WEBHOOK_SECRETS", bad)]).unwrap_err();
            assert!(
                e.to_string().contains("payment.bank_webhook_secrets"),
                "{bad}: {e}"
            );
            assert!(
                !e.to_string().contains("abcdefghijklmnop"),
                "a secret leaks: {e}"
            );
        }
    }
}
