//! The merchant service's configuration section (`merchant.*`), read into typed settings.

use std::time::Duration;

use paymesh_platform::config::{ConfigError, Key, Kind, Section, ServiceSection};
use paymesh_vn::BankBin;

use crate::ids::virtual_account_number;

pub const SECTION: Section = Section {
    name: "merchant",
    shared: &[],
    keys: &[
        Key::new(
            "listen",
            Kind::Addr,
            "127.0.0.1:50052",
            "merchant gRPC address",
        ),
        Key::new(
            "ledger_addr",
            Kind::Str,
            "127.0.0.1:50051",
            "the ledger the merchant service opens accounts on (host:port or http://host:port)",
        ),
        Key::new(
            "collection_bank_bin",
            Kind::Digits(6, 6),
            "970436",
            "6-digit BIN of the bank that holds the merchants' virtual accounts (static VietQR)",
        ),
        Key::new(
            "virtual_account_prefix",
            Kind::Digits(1, 8),
            "8868",
            "1-8 digits that start every virtual account number (then 10-digit sequence + check digit)",
        ),
        Key::new(
            "credential_token_ttl_seconds",
            Kind::Uint(60, 3600),
            "300",
            "lifetime of the JWT an API credential is exchanged for",
        ),
    ],
};

/// What the service needs besides its database and its peers.
#[derive(Debug, Clone)]
pub struct Settings {
    pub collection_bank: BankBin,
    pub virtual_account_prefix: String,
    pub credential_token_ttl: Duration,
}

impl Settings {
    /// Reads and checks the section: a BIN off the NAPAS list or a prefix that cannot make a
    /// virtual account stops start-up, not the first approval.
    pub fn from_section(s: &ServiceSection) -> Result<Settings, ConfigError> {
        let collection_bank = BankBin::parse(s.text("collection_bank_bin")?)
            .map_err(|e| s.invalid("collection_bank_bin", e.to_string()))?;
        let virtual_account_prefix = s.text("virtual_account_prefix")?.to_string();
        virtual_account_number(&virtual_account_prefix, 1)
            .map_err(|e| s.invalid("virtual_account_prefix", e.to_string()))?;
        Ok(Settings {
            collection_bank,
            virtual_account_prefix,
            credential_token_ttl: s.seconds("credential_token_ttl_seconds")?,
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
        Settings::from_section(cfg.service("merchant")?)
    }

    #[test]
    fn defaults_load() {
        let s = load(&[]).unwrap();
        assert_eq!(s.collection_bank.as_str(), "970436");
        assert_eq!(s.virtual_account_prefix, "8868");
        assert_eq!(s.credential_token_ttl, Duration::from_secs(300));
    }

    #[test]
    fn every_bad_value_names_its_key() {
        for (var, value, key) in [
            (
                "PAYMESH_MERCHANT_COLLECTION_BANK_BIN",
                "97043",
                "merchant.collection_bank_bin",
            ),
            (
                "PAYMESH_MERCHANT_COLLECTION_BANK_BIN",
                "123456",
                "merchant.collection_bank_bin",
            ),
            (
                "PAYMESH_MERCHANT_VIRTUAL_ACCOUNT_PREFIX",
                "",
                "merchant.virtual_account_prefix",
            ),
            (
                "PAYMESH_MERCHANT_VIRTUAL_ACCOUNT_PREFIX",
                "123456789",
                "merchant.virtual_account_prefix",
            ),
            (
                "PAYMESH_MERCHANT_VIRTUAL_ACCOUNT_PREFIX",
                "12a",
                "merchant.virtual_account_prefix",
            ),
            (
                "PAYMESH_MERCHANT_CREDENTIAL_TOKEN_TTL_SECONDS",
                "5",
                "merchant.credential_token_ttl_seconds",
            ),
        ] {
            let e = load(&[(var, value)]).unwrap_err();
            assert!(e.to_string().contains(key), "{var}={value}: {e}");
        }
    }
}
