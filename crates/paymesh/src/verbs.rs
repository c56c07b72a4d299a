//! What every operator verb shares: JSON on stdout, a one-line refusal on stderr, idempotency
//! keys, the operator's name, the tokens minted for whoever the verb calls as, money and times
//! as RFC 3339.

use std::process::ExitCode;

use anyhow::Context;
use paymesh_platform::auth::{Minter, Principal};
use paymesh_platform::config::Config;
use paymesh_proto::common::v1 as cpb;
use serde_json::{Value, json};

/// Lifetime of a token minted for one command.
pub(crate) const TOKEN_TTL_SECONDS: u64 = 300;

pub(crate) fn print(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints the answer (exit 0) or the refusal (exit 1).
pub(crate) fn finish(result: Result<Value, tonic::Status>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(value) => {
            print(&value)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => Ok(refused(&status)),
    }
}

/// The token to call as `principal`: `given` (`--token`), else one minted from
/// `auth.operator_private_key_file` (the operators' key signs any principal).
pub(crate) fn token(
    cfg: &Config,
    given: Option<&str>,
    principal: &Principal,
) -> anyhow::Result<String> {
    if let Some(t) = given {
        return Ok(t.to_owned());
    }
    Minter::operator_from_config(&cfg.auth)
        .context("minting a token (or pass --token)")?
        .mint(principal, TOKEN_TTL_SECONDS)
}

/// `{kind}:{id}` as a principal; `flag` names the option it came from in the error.
pub(crate) fn principal(kind: &str, id: &str, flag: &str) -> anyhow::Result<Principal> {
    Principal::parse(&format!("{kind}:{id}")).map_err(|e| anyhow::anyhow!("{flag} {id:?}: {e}"))
}

/// The operator acting (see [`operator_name`]).
pub(crate) fn operator(given: Option<&str>) -> anyhow::Result<Principal> {
    principal("operator", &operator_name(given), "--operator")
}

/// An amount of whole đồng.
pub(crate) fn vnd(amount: &str) -> cpb::Money {
    cpb::Money {
        amount: amount.to_owned(),
        currency_code: "VND".into(),
    }
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

/// Prints a refused call on one line (code, the `ErrorInfo` reason when it says more than the
/// code, message) and returns the failure exit code.
pub(crate) fn refused(status: &tonic::Status) -> ExitCode {
    eprintln!("{}", refusal(status));
    ExitCode::FAILURE
}

/// `refused: FailedPrecondition (BILL_PAID): bill HD-1: the bill is paid already`.
fn refusal(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let code = format!("{:?}", status.code());
    let reason = status
        .get_details_error_info()
        .map(|i| i.reason)
        .filter(|r| !r.is_empty() && r.replace('_', "") != code.to_ascii_uppercase());
    let message = status.message().replace(['\n', '\r'], " ");
    match reason {
        Some(reason) => format!("refused: {code} ({reason}): {message}"),
        None => format!("refused: {code}: {message}"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_one_line_with_its_reason() {
        let status: tonic::Status = paymesh_platform::ApiError::FailedPrecondition {
            reason: "BILL_PAID",
            message: "bill HD-1: the bill is paid already".into(),
        }
        .into();
        assert_eq!(
            refusal(&status),
            "refused: FailedPrecondition (BILL_PAID): bill HD-1: the bill is paid already"
        );
        // The reason that only repeats the code is left out.
        let status: tonic::Status =
            paymesh_platform::ApiError::NotFound { resource: "bill" }.into();
        assert_eq!(refusal(&status), "refused: NotFound: bill not found");
        assert_eq!(
            refusal(&tonic::Status::unavailable("connection refused\nretry")),
            "refused: Unavailable: connection refused retry"
        );
    }
}
