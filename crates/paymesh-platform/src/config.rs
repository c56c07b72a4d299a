//! Configuration from a TOML file plus `PAYMESH_*` environment variables, validated at start-up.
//!
//! Every key is listed once in [`KEYS`] with its type and default. The environment variable for
//! `a.b_c` is `PAYMESH_A_B_C`. An unknown key in the file, a value of the wrong type, or a value
//! out of range stops start-up with a message that names the key. Secrets (database and Redis
//! URLs) are wrapped in [`Secret`], whose `Debug` never prints them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("config key `{key}` (env {env}): {message}")]
    Key {
        key: &'static str,
        env: String,
        message: String,
    },
    #[error("unknown config key `{0}` (known keys: see `paymesh config keys`)")]
    Unknown(String),
}

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Str,
    Secret,
    /// Unsigned integer within an inclusive range.
    Uint(u64, u64),
    Addr,
}

/// Every configuration key: name, kind, default (as text), and what it is for.
const KEYS: &[(&str, Kind, &str, &str)] = &[
    (
        "database.url",
        Kind::Secret,
        "postgres://paymesh@127.0.0.1:54329/paymesh",
        "PostgreSQL URL",
    ),
    (
        "database.pool_size_max",
        Kind::Uint(1, 512),
        "16",
        "connections per service",
    ),
    (
        "database.acquire_timeout_ms",
        Kind::Uint(10, 600_000),
        "5000",
        "wait for a pooled connection",
    ),
    (
        "redis.url",
        Kind::Secret,
        "redis://127.0.0.1:63799/",
        "Redis URL",
    ),
    (
        "auth.issuer",
        Kind::Str,
        "paymesh",
        "required `iss` of every JWT",
    ),
    (
        "auth.audience",
        Kind::Str,
        "paymesh",
        "required `aud` of every JWT",
    ),
    (
        "auth.public_key_file",
        Kind::Str,
        ".paymesh/keys/jwt-public.pem",
        "Ed25519 public key (PEM) that verifies JWTs",
    ),
    (
        "auth.private_key_file",
        Kind::Str,
        ".paymesh/keys/jwt-private.pem",
        "Ed25519 private key (PEM) for minting service and demo tokens",
    ),
    (
        "auth.leeway_seconds",
        Kind::Uint(0, 300),
        "30",
        "clock skew allowed on exp/nbf",
    ),
    (
        "server.message_bytes_max",
        Kind::Uint(1024, 64 << 20),
        "8388608",
        "largest gRPC message in or out",
    ),
    (
        "server.concurrency_per_connection_max",
        Kind::Uint(1, 100_000),
        "256",
        "in-flight RPCs per HTTP/2 connection",
    ),
    (
        "server.request_timeout_ms",
        Kind::Uint(10, 600_000),
        "10000",
        "deadline for one RPC",
    ),
    (
        "server.shutdown_grace_ms",
        Kind::Uint(0, 600_000),
        "15000",
        "time to drain in-flight RPCs on shutdown",
    ),
    (
        "ledger.listen",
        Kind::Addr,
        "127.0.0.1:50051",
        "ledger gRPC address",
    ),
    (
        "ledger.batch_transfers_max",
        Kind::Uint(1, 65_536),
        "8190",
        "transfers per group-commit transaction",
    ),
    (
        "ledger.writers",
        Kind::Uint(1, 16),
        "2",
        "group-commit transactions in flight at once",
    ),
    (
        "ledger.queue_requests_max",
        Kind::Uint(1, 1_000_000),
        "4096",
        "requests waiting for the writer before UNAVAILABLE",
    ),
    (
        "ledger.expiry_interval_ms",
        Kind::Uint(10, 3_600_000),
        "1000",
        "how often expired pending transfers are voided",
    ),
    (
        "merchant.listen",
        Kind::Addr,
        "127.0.0.1:50052",
        "merchant gRPC address",
    ),
    (
        "merchant.ledger_addr",
        Kind::Str,
        "127.0.0.1:50051",
        "the ledger the merchant service opens accounts on (host:port or http://host:port)",
    ),
    (
        "merchant.collection_bank_bin",
        Kind::Str,
        "970436",
        "6-digit BIN of the bank that holds the merchants' virtual accounts (static VietQR)",
    ),
    (
        "merchant.virtual_account_prefix",
        Kind::Str,
        "8868",
        "1-8 digits that start every virtual account number (then 10-digit sequence + check digit)",
    ),
    (
        "merchant.credential_token_ttl_seconds",
        Kind::Uint(60, 3600),
        "300",
        "lifetime of the JWT an API credential is exchanged for",
    ),
    (
        "idempotency.lease_ms",
        Kind::Uint(100, 600_000),
        "30000",
        "how long a claimed key blocks duplicates while its first call runs",
    ),
    (
        "idempotency.retention_seconds",
        Kind::Uint(1, 30 * 86_400),
        "86400",
        "how long keys and their responses are kept (24 h or more in production)",
    ),
    ("telemetry.log_format", Kind::Str, "json", "json or text"),
    (
        "telemetry.log_level",
        Kind::Str,
        "info",
        "tracing filter, e.g. info,paymesh_ledger=debug",
    ),
    (
        "telemetry.otlp_endpoint",
        Kind::Str,
        "",
        "OTLP/gRPC collector, e.g. http://127.0.0.1:4317 (empty: no export)",
    ),
    (
        "telemetry.metrics_listen",
        Kind::Addr,
        "127.0.0.1:9464",
        "Prometheus /metrics address",
    ),
];

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub pool_size_max: u32,
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    pub public_key_file: PathBuf,
    pub private_key_file: PathBuf,
    pub leeway_seconds: u64,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub message_bytes_max: usize,
    pub concurrency_per_connection_max: usize,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct LedgerConfig {
    pub listen: SocketAddr,
    pub batch_transfers_max: usize,
    pub writers: usize,
    pub queue_requests_max: usize,
    pub expiry_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct MerchantConfig {
    pub listen: SocketAddr,
    pub ledger_addr: String,
    /// Six digits (the merchant service also checks it against the NAPAS list).
    pub collection_bank_bin: String,
    /// One to eight digits.
    pub virtual_account_prefix: String,
    pub credential_token_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    pub lease: Duration,
    pub retention: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    pub log_format: LogFormat,
    pub log_level: String,
    pub otlp_endpoint: Option<String>,
    pub metrics_listen: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis_url: Secret,
    pub auth: AuthConfig,
    pub server: ServerConfig,
    pub ledger: LedgerConfig,
    pub merchant: MerchantConfig,
    pub idempotency: IdempotencyConfig,
    pub telemetry: TelemetryConfig,
}

fn env_name(key: &str) -> String {
    format!("PAYMESH_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Raw values after merging defaults, file and environment.
struct Raw {
    values: BTreeMap<&'static str, String>,
}

impl Raw {
    fn text(&self, key: &'static str) -> &str {
        self.values.get(key).map(String::as_str).unwrap_or_default()
    }

    fn err(key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            key,
            env: env_name(key),
            message: message.into(),
        }
    }

    fn uint(&self, key: &'static str) -> Result<u64, ConfigError> {
        let kind = KEYS.iter().find(|k| k.0 == key).map(|k| k.1);
        let text = self.text(key);
        let value: u64 = text
            .parse()
            .map_err(|_| Raw::err(key, format!("expected a whole number, got {text:?}")))?;
        if let Some(Kind::Uint(lo, hi)) = kind
            && (value < lo || value > hi)
        {
            return Err(Raw::err(key, format!("{value} is outside {lo}..={hi}")));
        }
        Ok(value)
    }

    fn addr(&self, key: &'static str) -> Result<SocketAddr, ConfigError> {
        let text = self.text(key);
        text.parse().map_err(|_| {
            Raw::err(
                key,
                format!("expected host:port like 127.0.0.1:50051, got {text:?}"),
            )
        })
    }
}

impl Config {
    /// Defaults, then the file (if given), then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Config::load_from(file, &env)
    }

    /// As [`Config::load`], with the environment passed in (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let mut values: BTreeMap<&'static str, String> = KEYS
            .iter()
            .map(|(k, _, d, _)| (*k, (*d).to_string()))
            .collect();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::File {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
            merge_file(&table, "", &mut values)?;
        }
        for (key, _, _, _) in KEYS {
            if let Some(v) = env.get(&env_name(key)) {
                values.insert(key, v.clone());
            }
        }
        Config::from_raw(&Raw { values })
    }

    fn from_raw(raw: &Raw) -> Result<Config, ConfigError> {
        let ms = |key| raw.uint(key).map(Duration::from_millis);
        let url = |key: &'static str, schemes: &[&str]| -> Result<Secret, ConfigError> {
            let text = raw.text(key);
            if !schemes.iter().any(|s| text.starts_with(&format!("{s}://"))) {
                // Never echo the value: it may hold a password.
                return Err(Raw::err(
                    key,
                    format!(
                        "expected a URL starting with {}://",
                        schemes.join(":// or ")
                    ),
                ));
            }
            Ok(Secret::new(text))
        };
        let non_empty = |key: &'static str| -> Result<String, ConfigError> {
            let text = raw.text(key);
            if text.trim().is_empty() {
                return Err(Raw::err(key, "must not be empty"));
            }
            Ok(text.to_string())
        };
        let digits = |key: &'static str, lengths: std::ops::RangeInclusive<usize>| {
            let text = raw.text(key).trim().to_string();
            if lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
                Ok(text)
            } else {
                Err(Raw::err(
                    key,
                    format!(
                        "expected {}..={} digits, got {text:?}",
                        lengths.start(),
                        lengths.end()
                    ),
                ))
            }
        };
        let log_format = match raw.text("telemetry.log_format") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(Raw::err(
                    "telemetry.log_format",
                    format!("expected json or text, got {other:?}"),
                ));
            }
        };
        let otlp = raw.text("telemetry.otlp_endpoint").trim().to_string();
        if !(otlp.is_empty() || otlp.starts_with("http://") || otlp.starts_with("https://")) {
            return Err(Raw::err(
                "telemetry.otlp_endpoint",
                "expected http://host:port or empty",
            ));
        }
        Ok(Config {
            database: DatabaseConfig {
                url: url("database.url", &["postgres", "postgresql"])?,
                pool_size_max: raw.uint("database.pool_size_max")? as u32,
                acquire_timeout: ms("database.acquire_timeout_ms")?,
            },
            redis_url: url("redis.url", &["redis", "rediss", "redis+unix"])?,
            auth: AuthConfig {
                issuer: non_empty("auth.issuer")?,
                audience: non_empty("auth.audience")?,
                public_key_file: PathBuf::from(non_empty("auth.public_key_file")?),
                private_key_file: PathBuf::from(non_empty("auth.private_key_file")?),
                leeway_seconds: raw.uint("auth.leeway_seconds")?,
            },
            server: ServerConfig {
                message_bytes_max: raw.uint("server.message_bytes_max")? as usize,
                concurrency_per_connection_max: raw.uint("server.concurrency_per_connection_max")?
                    as usize,
                request_timeout: ms("server.request_timeout_ms")?,
                shutdown_grace: ms("server.shutdown_grace_ms")?,
            },
            ledger: LedgerConfig {
                listen: raw.addr("ledger.listen")?,
                batch_transfers_max: raw.uint("ledger.batch_transfers_max")? as usize,
                writers: raw.uint("ledger.writers")? as usize,
                queue_requests_max: raw.uint("ledger.queue_requests_max")? as usize,
                expiry_interval: ms("ledger.expiry_interval_ms")?,
            },
            merchant: MerchantConfig {
                listen: raw.addr("merchant.listen")?,
                ledger_addr: non_empty("merchant.ledger_addr")?,
                collection_bank_bin: digits("merchant.collection_bank_bin", 6..=6)?,
                virtual_account_prefix: digits("merchant.virtual_account_prefix", 1..=8)?,
                credential_token_ttl: Duration::from_secs(
                    raw.uint("merchant.credential_token_ttl_seconds")?,
                ),
            },
            idempotency: IdempotencyConfig {
                lease: ms("idempotency.lease_ms")?,
                retention: Duration::from_secs(raw.uint("idempotency.retention_seconds")?),
            },
            telemetry: TelemetryConfig {
                log_format,
                log_level: non_empty("telemetry.log_level")?,
                otlp_endpoint: (!otlp.is_empty()).then_some(otlp),
                metrics_listen: raw.addr("telemetry.metrics_listen")?,
            },
        })
    }

    /// `(key, env var, default, description)` for every key, for `paymesh config keys`.
    pub fn keys() -> impl Iterator<Item = (&'static str, String, &'static str, &'static str)> {
        KEYS.iter().map(|(k, _, d, h)| (*k, env_name(k), *d, *h))
    }
}

/// Flattens a TOML table into dotted keys, rejecting unknown keys and wrong types.
fn merge_file(
    table: &toml::Table,
    prefix: &str,
    values: &mut BTreeMap<&'static str, String>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let toml::Value::Table(inner) = value {
            merge_file(inner, &dotted, values)?;
            continue;
        }
        let Some((key, kind, _, _)) = KEYS.iter().find(|k| k.0 == dotted) else {
            return Err(ConfigError::Unknown(dotted));
        };
        let text = match (kind, value) {
            (Kind::Uint(..), toml::Value::Integer(i)) => i.to_string(),
            (Kind::Str | Kind::Secret | Kind::Addr, toml::Value::String(s)) => s.clone(),
            (Kind::Uint(..), _) => return Err(Raw::err(key, "expected an integer")),
            _ => return Err(Raw::err(key, "expected a string")),
        };
        values.insert(key, text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::new(text)
    }

    mod tempfile_path {
        pub struct TempFile(pub std::path::PathBuf);
        impl TempFile {
            pub fn new(text: &str) -> TempFile {
                let path = std::env::temp_dir().join(format!(
                    "paymesh-config-{}-{}.toml",
                    std::process::id(),
                    uuid_like()
                ));
                std::fs::write(&path, text).unwrap();
                TempFile(path)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
        fn uuid_like() -> u64 {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            N.fetch_add(1, Ordering::Relaxed)
        }
    }

    #[test]
    fn defaults_load() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(c.ledger.batch_transfers_max, 8190);
        assert_eq!(c.telemetry.log_format, LogFormat::Json);
        assert!(c.telemetry.otlp_endpoint.is_none());
    }

    #[test]
    fn env_overrides_file_and_file_overrides_default() {
        let f = file("[ledger]\nlisten = \"127.0.0.1:6000\"\nbatch_transfers_max = 100\n");
        let c = Config::load_from(
            Some(&f.0),
            &env(&[("PAYMESH_LEDGER_BATCH_TRANSFERS_MAX", "7")]),
        )
        .unwrap();
        assert_eq!(c.ledger.listen.port(), 6000);
        assert_eq!(c.ledger.batch_transfers_max, 7);
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::load_from(
            None,
            &env(&[("PAYMESH_LEDGER_BATCH_TRANSFERS_MAX", "lots")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ledger.batch_transfers_max"), "{e}");
        let e = Config::load_from(None, &env(&[("PAYMESH_LEDGER_BATCH_TRANSFERS_MAX", "0")]))
            .unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let f = file("[ledger]\nlisten = 5\n");
        let e = Config::load_from(Some(&f.0), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("ledger.listen"), "{e}");
        let f = file("[ledger]\nlisen = \"x\"\n");
        let e = Config::load_from(Some(&f.0), &env(&[])).unwrap_err();
        assert!(e.to_string().contains("ledger.lisen"), "{e}");
    }

    #[test]
    fn merchant_keys_are_checked() {
        let c = Config::load_from(None, &env(&[])).unwrap();
        assert_eq!(c.merchant.collection_bank_bin, "970436");
        assert_eq!(c.merchant.virtual_account_prefix, "8868");
        for (var, value, key) in [
            (
                "PAYMESH_MERCHANT_COLLECTION_BANK_BIN",
                "97043",
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
            ("PAYMESH_MERCHANT_LEDGER_ADDR", " ", "merchant.ledger_addr"),
        ] {
            let e = Config::load_from(None, &env(&[(var, value)])).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn secrets_are_never_printed() {
        let url = "postgres://paymesh:hunter2@127.0.0.1/x";
        let c = Config::load_from(None, &env(&[("PAYMESH_DATABASE_URL", url)])).unwrap();
        assert_eq!(c.database.url.expose(), url);
        assert!(!format!("{c:?}").contains("hunter2"));
        let e = Config::load_from(
            None,
            &env(&[("PAYMESH_DATABASE_URL", "mysql://u:hunter2@x")]),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("database.url"), "{e}");
    }
}
