//! Configuration from a TOML file plus `PAYMESH_*` environment variables, validated at start-up.
//!
//! Every key is listed once, in its [`Section`], with its type and default: the platform's
//! sections here, each service's in its own crate. The environment variable for
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
        key: String,
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

/// What a key holds; values are checked against it when the configuration loads.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Str,
    Secret,
    /// Unsigned integer within an inclusive range.
    Uint(u64, u64),
    Addr,
    /// A string of ASCII digits whose length is in the inclusive range.
    Digits(usize, usize),
}

/// One configuration key: its name inside its section, kind, default (as text), and what it is
/// for.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub help: &'static str,
}

impl Key {
    pub const fn new(
        name: &'static str,
        kind: Kind,
        default: &'static str,
        help: &'static str,
    ) -> Key {
        Key {
            name,
            kind,
            default,
            help,
        }
    }
}

/// A named group of keys: the platform's own (`database`, `redis`, …) or a service's (each
/// service brings its section in its description; the platform knows none of them).
#[derive(Clone, Copy, Debug)]
pub struct Section {
    pub name: &'static str,
    pub keys: &'static [Key],
    /// Groups of keys several services declare alike (e.g. `paymesh_platform::events::
    /// WEBHOOK_KEYS`), after `keys`.
    pub shared: &'static [&'static [Key]],
}

impl Section {
    /// Every key of the section: its own, then the shared groups'.
    pub fn all_keys(&self) -> impl Iterator<Item = &'static Key> + use<> {
        let (keys, shared) = (self.keys, self.shared);
        keys.iter().chain(shared.iter().flat_map(|g| g.iter()))
    }
}

mod platform;
use platform::PLATFORM;

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub pool_size_max: u32,
    pub acquire_timeout: Duration,
    /// A pooled connection idle longer than this is pinged before it is handed out; one used
    /// more recently is handed out as it is (a broken one then fails its query, and is closed).
    pub ping_idle: Duration,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// Every `<kid>.pem` in it verifies tokens whose header names that `kid`.
    pub public_keys_dir: PathBuf,
    /// The services' signing key (its file name is its key id).
    pub private_key_file: PathBuf,
    /// The operators' signing key, for the CLI.
    pub operator_private_key_file: PathBuf,
    pub leeway_seconds: u64,
    /// Longest `exp - iat`.
    pub token_lifetime_max_seconds: u64,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub message_bytes_max: usize,
    pub concurrency_per_connection_max: usize,
    pub request_timeout: Duration,
    /// Client streams (`Rpc::streamed`): a bulk load is one request however long it is.
    pub load_timeout: Duration,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct IdempotencyConfig {
    pub lease: Duration,
    pub retention: Duration,
    /// How often each service deletes its expired `idempotency_keys` rows.
    pub sweep_interval: Duration,
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
pub struct RedisConfig {
    pub url: Secret,
    /// Starts every key paymesh writes; tests give each run its own.
    pub key_prefix: String,
    /// Longest wait for one Redis command (Redis is a fast path: past this, go without).
    pub command_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub server: ServerConfig,
    pub idempotency: IdempotencyConfig,
    pub telemetry: TelemetryConfig,
    /// Each service's own section, checked against its keys; the service reads it into its
    /// own typed settings.
    pub services: BTreeMap<&'static str, ServiceSection>,
}

/// A service's section: checked values by key name.
#[derive(Debug, Clone)]
pub struct ServiceSection {
    section: Section,
    values: BTreeMap<&'static str, String>,
}

fn env_name(dotted: &str) -> String {
    format!("PAYMESH_{}", dotted.replace('.', "_").to_ascii_uppercase())
}

fn key_error(dotted: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: dotted.to_string(),
        env: env_name(dotted),
        message: message.into(),
    }
}

/// Checks `text` against `kind`; the error never repeats a secret.
fn check(dotted: &str, kind: Kind, text: &str) -> Result<(), ConfigError> {
    match kind {
        Kind::Str => Ok(()),
        Kind::Secret => Ok(()),
        Kind::Uint(lo, hi) => {
            let value: u64 = text
                .parse()
                .map_err(|_| key_error(dotted, format!("expected a whole number, got {text:?}")))?;
            if value < lo || value > hi {
                return Err(key_error(dotted, format!("{value} is outside {lo}..={hi}")));
            }
            Ok(())
        }
        Kind::Addr => text.parse::<SocketAddr>().map(|_| ()).map_err(|_| {
            key_error(
                dotted,
                format!("expected host:port like 127.0.0.1:50051, got {text:?}"),
            )
        }),
        Kind::Digits(lo, hi) => {
            if (lo..=hi).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err(key_error(
                    dotted,
                    format!("expected {lo}..={hi} digits, got {text:?}"),
                ))
            }
        }
    }
}

impl ServiceSection {
    fn new(section: Section, raw: &Raw) -> Result<ServiceSection, ConfigError> {
        let mut values = BTreeMap::new();
        for key in section.all_keys() {
            let dotted = format!("{}.{}", section.name, key.name);
            let text = raw.text(&dotted).to_string();
            check(&dotted, key.kind, &text)?;
            values.insert(key.name, text);
        }
        Ok(ServiceSection { section, values })
    }

    pub fn name(&self) -> &'static str {
        self.section.name
    }

    fn key(&self, name: &str) -> Result<&Key, ConfigError> {
        self.section
            .all_keys()
            .find(|k| k.name == name)
            .ok_or_else(|| ConfigError::Unknown(format!("{}.{name}", self.section.name)))
    }

    fn dotted(&self, name: &str) -> String {
        format!("{}.{name}", self.section.name)
    }

    /// The key's text (checked against its kind when loaded).
    pub fn text(&self, name: &str) -> Result<&str, ConfigError> {
        self.key(name)?;
        Ok(self
            .values
            .get(name)
            .map(String::as_str)
            .unwrap_or_default())
    }

    /// The key's text, refused when blank.
    pub fn non_empty(&self, name: &str) -> Result<String, ConfigError> {
        let text = self.text(name)?.trim();
        if text.is_empty() {
            return Err(key_error(&self.dotted(name), "must not be empty"));
        }
        Ok(text.to_string())
    }

    pub fn uint(&self, name: &str) -> Result<u64, ConfigError> {
        let text = self.text(name)?;
        text.parse()
            .map_err(|_| key_error(&self.dotted(name), "expected a whole number"))
    }

    pub fn millis(&self, name: &str) -> Result<Duration, ConfigError> {
        self.uint(name).map(Duration::from_millis)
    }

    pub fn seconds(&self, name: &str) -> Result<Duration, ConfigError> {
        self.uint(name).map(Duration::from_secs)
    }

    pub fn addr(&self, name: &str) -> Result<SocketAddr, ConfigError> {
        let text = self.text(name)?;
        text.parse().map_err(|_| {
            key_error(
                &self.dotted(name),
                format!("expected host:port, got {text:?}"),
            )
        })
    }

    /// A service-specific refusal of a value, naming the key.
    pub fn invalid(&self, name: &str, message: impl Into<String>) -> ConfigError {
        key_error(&self.dotted(name), message)
    }

    /// Replaces a value (checked against the key's kind): `paymesh dev` and the test kit use it
    /// to point a service at a peer's actual address or at port 0.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> Result<(), ConfigError> {
        let key = *self.key(name)?;
        let value = value.into();
        check(&self.dotted(name), key.kind, &value)?;
        self.values.insert(key.name, value);
        Ok(())
    }
}

/// Raw values after merging defaults, file and environment, by dotted key.
struct Raw {
    values: BTreeMap<String, String>,
}

impl Raw {
    fn text(&self, dotted: &str) -> &str {
        self.values
            .get(dotted)
            .map(String::as_str)
            .unwrap_or_default()
    }

    fn checked(&self, dotted: &str, kind: Kind) -> Result<&str, ConfigError> {
        let text = self.text(dotted);
        check(dotted, kind, text)?;
        Ok(text)
    }

    fn uint(&self, dotted: &str) -> Result<u64, ConfigError> {
        let kind = find_key(PLATFORM, dotted).map_or(Kind::Uint(0, u64::MAX), |k| k.kind);
        self.checked(dotted, kind)?
            .parse()
            .map_err(|_| key_error(dotted, "expected a whole number"))
    }

    fn ms(&self, dotted: &str) -> Result<Duration, ConfigError> {
        self.uint(dotted).map(Duration::from_millis)
    }

    fn addr(&self, dotted: &str) -> Result<SocketAddr, ConfigError> {
        let text = self.checked(dotted, Kind::Addr)?;
        text.parse()
            .map_err(|_| key_error(dotted, "expected host:port"))
    }

    fn non_empty(&self, dotted: &str) -> Result<String, ConfigError> {
        let text = self.text(dotted);
        if text.trim().is_empty() {
            return Err(key_error(dotted, "must not be empty"));
        }
        Ok(text.to_string())
    }

    fn url(&self, dotted: &str, schemes: &[&str]) -> Result<Secret, ConfigError> {
        let text = self.text(dotted);
        if !schemes.iter().any(|s| text.starts_with(&format!("{s}://"))) {
            // Never echo the value: it may hold a password.
            return Err(key_error(
                dotted,
                format!(
                    "expected a URL starting with {}://",
                    schemes.join(":// or ")
                ),
            ));
        }
        Ok(Secret::new(text))
    }
}

fn find_key<'a>(sections: &'a [Section], dotted: &str) -> Option<&'a Key> {
    let (section, name) = dotted.split_once('.')?;
    sections
        .iter()
        .find(|s| s.name == section)?
        .all_keys()
        .find(|k| k.name == name)
}

/// Every section: the platform's, then the services' in the order given.
fn all_sections(services: &[Section]) -> Vec<Section> {
    PLATFORM.iter().chain(services).copied().collect()
}

impl Config {
    /// Defaults, then the file (if given), then the process environment. `services`: the
    /// sections of the services this binary knows.
    pub fn load(file: Option<&Path>, services: &[Section]) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Config::load_from(file, &env, services)
    }

    /// As [`Config::load`], with the environment passed in (for tests).
    pub fn load_from(
        file: Option<&Path>,
        env: &BTreeMap<String, String>,
        services: &[Section],
    ) -> Result<Config, ConfigError> {
        let sections = all_sections(services);
        let mut values = BTreeMap::new();
        for section in &sections {
            for key in section.all_keys() {
                values.insert(
                    format!("{}.{}", section.name, key.name),
                    key.default.to_string(),
                );
            }
        }
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
            merge_file(&table, "", &sections, &mut values)?;
        }
        for dotted in values.keys().cloned().collect::<Vec<_>>() {
            if let Some(v) = env.get(&env_name(&dotted)) {
                values.insert(dotted, v.clone());
            }
        }
        Config::from_raw(&Raw { values }, services)
    }

    fn from_raw(raw: &Raw, services: &[Section]) -> Result<Config, ConfigError> {
        let log_format = match raw.text("telemetry.log_format") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                return Err(key_error(
                    "telemetry.log_format",
                    format!("expected json or text, got {other:?}"),
                ));
            }
        };
        let otlp = raw.text("telemetry.otlp_endpoint").trim().to_string();
        if !(otlp.is_empty() || otlp.starts_with("http://") || otlp.starts_with("https://")) {
            return Err(key_error(
                "telemetry.otlp_endpoint",
                "expected http://host:port or empty",
            ));
        }
        let mut sections = BTreeMap::new();
        for section in services {
            sections.insert(section.name, ServiceSection::new(*section, raw)?);
        }
        Ok(Config {
            database: DatabaseConfig {
                url: raw.url("database.url", &["postgres", "postgresql"])?,
                pool_size_max: raw.uint("database.pool_size_max")? as u32,
                acquire_timeout: raw.ms("database.acquire_timeout_ms")?,
                ping_idle: raw.ms("database.ping_idle_ms")?,
            },
            redis: RedisConfig {
                url: raw.url("redis.url", &["redis", "rediss", "redis+unix"])?,
                key_prefix: raw.text("redis.key_prefix").to_string(),
                command_timeout: raw.ms("redis.command_timeout_ms")?,
            },
            auth: AuthConfig {
                issuer: raw.non_empty("auth.issuer")?,
                audience: raw.non_empty("auth.audience")?,
                public_keys_dir: PathBuf::from(raw.non_empty("auth.public_keys_dir")?),
                private_key_file: PathBuf::from(raw.non_empty("auth.private_key_file")?),
                operator_private_key_file: PathBuf::from(
                    raw.non_empty("auth.operator_private_key_file")?,
                ),
                leeway_seconds: raw.uint("auth.leeway_seconds")?,
                token_lifetime_max_seconds: raw.uint("auth.token_lifetime_max_seconds")?,
            },
            server: ServerConfig {
                message_bytes_max: raw.uint("server.message_bytes_max")? as usize,
                concurrency_per_connection_max: raw.uint("server.concurrency_per_connection_max")?
                    as usize,
                request_timeout: raw.ms("server.request_timeout_ms")?,
                load_timeout: raw.ms("server.load_timeout_ms")?,
                shutdown_grace: raw.ms("server.shutdown_grace_ms")?,
            },
            idempotency: IdempotencyConfig {
                lease: raw.ms("idempotency.lease_ms")?,
                retention: Duration::from_secs(raw.uint("idempotency.retention_seconds")?),
                sweep_interval: raw.ms("idempotency.sweep_interval_ms")?,
            },
            telemetry: TelemetryConfig {
                log_format,
                log_level: raw.non_empty("telemetry.log_level")?,
                otlp_endpoint: (!otlp.is_empty()).then_some(otlp),
                metrics_listen: raw.addr("telemetry.metrics_listen")?,
            },
            services: sections,
        })
    }

    /// A service's section. Refused when the service's section was not loaded.
    pub fn service(&self, name: &str) -> Result<&ServiceSection, ConfigError> {
        self.services
            .get(name)
            .ok_or_else(|| ConfigError::Unknown(format!("{name}.*")))
    }

    /// `(key, env var, default, description)` for every key, for `paymesh config keys`.
    pub fn keys(services: &[Section]) -> Vec<(String, String, &'static str, &'static str)> {
        all_sections(services)
            .iter()
            .flat_map(|s| {
                s.all_keys().map(move |k| {
                    let dotted = format!("{}.{}", s.name, k.name);
                    let env = env_name(&dotted);
                    (dotted, env, k.default, k.help)
                })
            })
            .collect()
    }
}

/// Flattens a TOML table into dotted keys, rejecting unknown keys and wrong types.
fn merge_file(
    table: &toml::Table,
    prefix: &str,
    sections: &[Section],
    values: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let dotted = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let toml::Value::Table(inner) = value {
            merge_file(inner, &dotted, sections, values)?;
            continue;
        }
        let Some(key) = find_key(sections, &dotted) else {
            return Err(ConfigError::Unknown(dotted));
        };
        let text = match (key.kind, value) {
            (Kind::Uint(..), toml::Value::Integer(i)) => i.to_string(),
            (Kind::Uint(..), _) => return Err(key_error(&dotted, "expected an integer")),
            (_, toml::Value::String(s)) => s.clone(),
            _ => return Err(key_error(&dotted, "expected a string")),
        };
        values.insert(dotted, text);
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

    /// A service section as a service crate declares one.
    const DEMO: Section = Section {
        name: "demo",
        shared: &[],
        keys: &[
            Key::new("listen", Kind::Addr, "127.0.0.1:50051", "gRPC address"),
            Key::new(
                "batch_max",
                Kind::Uint(1, 65_536),
                "8190",
                "items per batch",
            ),
            Key::new("bank_bin", Kind::Digits(6, 6), "970436", "a BIN"),
        ],
    };

    fn load(file: Option<&std::path::Path>, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load_from(file, &env(pairs), &[DEMO])
    }

    #[test]
    fn defaults_load() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.service("demo").unwrap().uint("batch_max").unwrap(), 8190);
        assert_eq!(c.telemetry.log_format, LogFormat::Json);
        assert!(c.telemetry.otlp_endpoint.is_none());
        assert_eq!(c.redis.key_prefix, "paymesh:");
    }

    #[test]
    fn env_overrides_file_and_file_overrides_default() {
        let f = file("[demo]\nlisten = \"127.0.0.1:6000\"\nbatch_max = 100\n");
        let c = load(Some(&f.0), &[("PAYMESH_DEMO_BATCH_MAX", "7")]).unwrap();
        let demo = c.service("demo").unwrap();
        assert_eq!(demo.addr("listen").unwrap().port(), 6000);
        assert_eq!(demo.uint("batch_max").unwrap(), 7);
    }

    #[test]
    fn errors_name_the_key() {
        let e = load(None, &[("PAYMESH_DEMO_BATCH_MAX", "lots")]).unwrap_err();
        assert!(e.to_string().contains("demo.batch_max"), "{e}");
        let e = load(None, &[("PAYMESH_DEMO_BATCH_MAX", "0")]).unwrap_err();
        assert!(e.to_string().contains("outside"), "{e}");
        let f = file("[demo]\nlisten = 5\n");
        let e = load(Some(&f.0), &[]).unwrap_err();
        assert!(e.to_string().contains("demo.listen"), "{e}");
        let f = file("[demo]\nlisen = \"x\"\n");
        let e = load(Some(&f.0), &[]).unwrap_err();
        assert!(e.to_string().contains("demo.lisen"), "{e}");
        for value in ["97043", "", "12345a", "1234567"] {
            let e = load(None, &[("PAYMESH_DEMO_BANK_BIN", value)]).unwrap_err();
            assert!(e.to_string().contains("demo.bank_bin"), "{e}");
        }
        let e = load(None, &[("PAYMESH_SERVER_REQUEST_TIMEOUT_MS", "1")]).unwrap_err();
        assert!(e.to_string().contains("server.request_timeout_ms"), "{e}");
    }

    #[test]
    fn a_section_unknown_to_the_binary_is_refused() {
        let f = file("[payroll]\nlisten = \"127.0.0.1:1\"\n");
        let e = load(Some(&f.0), &[]).unwrap_err();
        assert!(e.to_string().contains("payroll.listen"), "{e}");
    }

    #[test]
    fn set_checks_the_kind() {
        let mut c = load(None, &[]).unwrap();
        let demo = c.services.get_mut("demo").unwrap();
        demo.set("listen", "127.0.0.1:0").unwrap();
        assert_eq!(demo.addr("listen").unwrap().port(), 0);
        assert!(demo.set("listen", "nowhere").is_err());
        assert!(demo.set("nope", "1").is_err());
    }

    #[test]
    fn secrets_are_never_printed() {
        let url = "postgres://paymesh:hunter2@127.0.0.1/x";
        let c = load(None, &[("PAYMESH_DATABASE_URL", url)]).unwrap();
        assert_eq!(c.database.url.expose(), url);
        assert!(!format!("{c:?}").contains("hunter2"));
        let e = load(None, &[("PAYMESH_DATABASE_URL", "mysql://u:hunter2@x")]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("database.url"), "{e}");
    }
}
