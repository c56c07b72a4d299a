//! What every operator verb shares: JSON on stdout, a one-line refusal on stderr, idempotency
//! keys, the operator's name, and times as RFC 3339.

use std::process::ExitCode;

use paymesh_platform::auth::Principal;
use serde_json::{Value, json};

pub(crate) fn print(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A request with the given or a fresh idempotency key.
pub(crate) fn keyed<T>(message: T, key: Option<String>) -> anyhow::Result<tonic::Request<T>> {
    let key = key.unwrap_or_else(|| {
        let key = uuid::Uuid::new_v4().to_string();
        eprintln!("idempotency-key: {key}");
        key
    });
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "idempotency-key",
        key.parse()
            .map_err(|_| anyhow::anyhow!("--idempotency-key must be visible ASCII"))?,
    );
    Ok(request)
}

/// Prints a refused call (code, reason, message) and returns the failure exit code.
pub(crate) fn refused(status: &tonic::Status) -> ExitCode {
    eprintln!("refused: {:?}: {}", status.code(), status.message());
    ExitCode::FAILURE
}

/// The operator's name: `--operator`, else the OS user (`$USER`, `$LOGNAME`) when it is a
/// valid principal id, else `cli`.
pub(crate) fn operator_name(given: Option<&str>) -> String {
    if let Some(name) = given {
        return name.to_string();
    }
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|u| Principal::parse(&format!("operator:{u}")).is_ok())
        .unwrap_or_else(|| "cli".to_string())
}

pub(crate) fn time(t: &Option<prost_types::Timestamp>) -> Value {
    t.as_ref().map_or(Value::Null, |t| json!(t.to_string()))
}
