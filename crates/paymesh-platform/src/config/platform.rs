//! The platform's own configuration keys; each service declares its section in its crate.

use super::{Key, Kind, Section};

/// The platform's own sections.
pub(super) const PLATFORM: &[Section] = &[
    Section {
        name: "database",
        shared: &[],
        keys: &[
            Key::new(
                "url",
                Kind::Secret,
                "postgres://paymesh@127.0.0.1:54329/paymesh",
                "PostgreSQL URL",
            ),
            Key::new(
                "pool_size_max",
                Kind::Uint(1, 512),
                "16",
                "connections per service",
            ),
            Key::new(
                "acquire_timeout_ms",
                Kind::Uint(10, 600_000),
                "5000",
                "wait for a pooled connection",
            ),
            Key::new(
                "ping_idle_ms",
                Kind::Uint(0, 3_600_000),
                "1000",
                "a pooled connection idle longer than this is pinged before use (0: always, one round trip more per use)",
            ),
        ],
    },
    Section {
        name: "redis",
        shared: &[],
        keys: &[
            Key::new("url", Kind::Secret, "redis://127.0.0.1:63799/", "Redis URL"),
            Key::new(
                "key_prefix",
                Kind::Str,
                "paymesh:",
                "prefix of every Redis key paymesh writes (one Redis can serve several meshes)",
            ),
            Key::new(
                "command_timeout_ms",
                Kind::Uint(10, 10_000),
                "250",
                "longest wait for one Redis command; after a failure Redis is skipped for 5 s",
            ),
        ],
    },
    Section {
        name: "auth",
        shared: &[],
        keys: &[
            Key::new(
                "issuer",
                Kind::Str,
                "paymesh",
                "required `iss` of every JWT",
            ),
            Key::new(
                "audience",
                Kind::Str,
                "paymesh",
                "required `aud` of every JWT",
            ),
            Key::new(
                "public_keys_dir",
                Kind::Str,
                ".paymesh/keys/public",
                "Ed25519 public keys (SPKI PEM) that verify JWTs, one `<kid>.pem` per key id; only ids `operator`/`operator-*` may sign operator tokens",
            ),
            Key::new(
                "private_key_file",
                Kind::Str,
                ".paymesh/keys/private/mesh.pem",
                "Ed25519 private key (PKCS#8 PEM) the services sign their calls and credential tokens with; its file name is its key id, never `operator*`",
            ),
            Key::new(
                "operator_private_key_file",
                Kind::Str,
                ".paymesh/keys/private/operator.pem",
                "Ed25519 private key (PKCS#8 PEM) for operator tokens (`paymesh token mint`, `paymesh merchant`); only the CLI reads it",
            ),
            Key::new(
                "leeway_seconds",
                Kind::Uint(0, 300),
                "30",
                "clock skew allowed on exp/nbf/iat",
            ),
            Key::new(
                "token_lifetime_max_seconds",
                Kind::Uint(60, 86_400),
                "3600",
                "longest JWT lifetime (exp - iat) accepted or minted",
            ),
        ],
    },
    Section {
        name: "server",
        shared: &[],
        keys: &[
            Key::new(
                "message_bytes_max",
                Kind::Uint(1024, 64 << 20),
                "8388608",
                "largest gRPC message in or out",
            ),
            Key::new(
                "concurrency_per_connection_max",
                Kind::Uint(1, 100_000),
                "256",
                "in-flight RPCs per HTTP/2 connection",
            ),
            Key::new(
                "request_timeout_ms",
                Kind::Uint(10, 600_000),
                "10000",
                "deadline for one RPC",
            ),
            Key::new(
                "load_timeout_ms",
                Kind::Uint(1_000, 3_600_000),
                "600000",
                "deadline for one client-streaming bulk load (UpsertBills, UploadBillsCsv: one transaction however many bills)",
            ),
            Key::new(
                "shutdown_grace_ms",
                Kind::Uint(0, 600_000),
                "15000",
                "time to drain in-flight RPCs on shutdown",
            ),
        ],
    },
    Section {
        name: "idempotency",
        shared: &[],
        keys: &[
            Key::new(
                "lease_ms",
                Kind::Uint(100, 600_000),
                "30000",
                "how long a claimed key blocks duplicates while its first call runs",
            ),
            Key::new(
                "retention_seconds",
                Kind::Uint(1, 30 * 86_400),
                "86400",
                "how long keys and their responses are kept (24 h or more in production)",
            ),
            Key::new(
                "sweep_interval_ms",
                Kind::Uint(100, 86_400_000),
                "60000",
                "how often expired idempotency keys are deleted from PostgreSQL",
            ),
        ],
    },
    Section {
        name: "telemetry",
        shared: &[],
        keys: &[
            Key::new("log_format", Kind::Str, "json", "json or text"),
            Key::new(
                "log_level",
                Kind::Str,
                "info",
                "tracing filter, e.g. info,paymesh_ledger=debug",
            ),
            Key::new(
                "otlp_endpoint",
                Kind::Str,
                "",
                "OTLP/gRPC collector, e.g. http://127.0.0.1:4317 (empty: no export)",
            ),
            Key::new(
                "metrics_listen",
                Kind::Addr,
                "127.0.0.1:9464",
                "Prometheus /metrics address",
            ),
        ],
    },
];
