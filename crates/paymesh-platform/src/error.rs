//! One table from domain errors to gRPC codes.
//!
//! Handlers return [`ApiError`]; clients get a `tonic::Status` with the code from the table
//! below and, as details, a `google.rpc.ErrorInfo` (a stable `reason` to branch on, domain
//! `paymesh`) and, for bad input, a `google.rpc.BadRequest` listing every field violation.
//!
//! | ApiError              | gRPC code           |
//! |-----------------------|---------------------|
//! | InvalidArgument       | INVALID_ARGUMENT    |
//! | Malformed             | INVALID_ARGUMENT (reason MALFORMED_REQUEST) |
//! | NotFound              | NOT_FOUND           |
//! | AlreadyExists         | ALREADY_EXISTS      |
//! | FailedPrecondition    | FAILED_PRECONDITION |
//! | Aborted               | ABORTED             |
//! | Unauthenticated       | UNAUTHENTICATED     |
//! | PermissionDenied      | PERMISSION_DENIED   |
//! | Overloaded            | RESOURCE_EXHAUSTED  |
//! | TooLarge              | RESOURCE_EXHAUSTED (reason MESSAGE_TOO_LARGE) |
//! | Unavailable           | UNAVAILABLE         |
//! | Internal              | INTERNAL (details logged, not sent) |

use std::collections::HashMap;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

pub const ERROR_DOMAIN: &str = "paymesh";

/// One bad field: its path in the request (`transfers[3].amount.amount`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> FieldViolation {
        FieldViolation {
            field: field.into(),
            description: description.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The request is not a message of the RPC's type (bytes that are not protobuf, a string
    /// field that is not UTF-8): the caller's fault, whatever tonic's decoder says.
    #[error("the request is not a valid message: {0}")]
    Malformed(String),
    /// The request is over the server's message size limit.
    #[error("{0}")]
    TooLarge(String),
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    #[error("{resource} already exists")]
    AlreadyExists { resource: &'static str },
    #[error("{message}")]
    FailedPrecondition {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    Aborted {
        reason: &'static str,
        message: String,
    },
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn describe(v: &[FieldViolation]) -> String {
    v.iter()
        .map(|f| format!("{}: {}", f.field, f.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// The same failure for another caller of one shared call (a batch several requests
    /// waited on; `ApiError` is not `Clone`, its `Internal` carries an `anyhow::Error`):
    /// UNAVAILABLE and overload stay what they are, anything else is INTERNAL with its text.
    pub fn for_another_caller(&self) -> ApiError {
        match self {
            ApiError::Unavailable(m) => ApiError::Unavailable(m.clone()),
            ApiError::Overloaded(m) => ApiError::Overloaded(m.clone()),
            other => ApiError::Internal(anyhow::anyhow!("{other:#}")),
        }
    }

    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> ApiError {
        ApiError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn code(&self) -> Code {
        match self {
            ApiError::InvalidArgument(_) | ApiError::Malformed(_) => Code::InvalidArgument,
            ApiError::TooLarge(_) => Code::ResourceExhausted,
            ApiError::NotFound { .. } => Code::NotFound,
            ApiError::AlreadyExists { .. } => Code::AlreadyExists,
            ApiError::FailedPrecondition { .. } => Code::FailedPrecondition,
            ApiError::Aborted { .. } => Code::Aborted,
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied(_) => Code::PermissionDenied,
            ApiError::Overloaded(_) => Code::ResourceExhausted,
            ApiError::Unavailable(_) => Code::Unavailable,
            ApiError::Internal(_) => Code::Internal,
        }
    }

    /// The stable machine-readable reason in `ErrorInfo`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_) => "INVALID_ARGUMENT",
            ApiError::Malformed(_) => "MALFORMED_REQUEST",
            ApiError::TooLarge(_) => "MESSAGE_TOO_LARGE",
            ApiError::NotFound { .. } => "NOT_FOUND",
            ApiError::AlreadyExists { .. } => "ALREADY_EXISTS",
            ApiError::FailedPrecondition { reason, .. } | ApiError::Aborted { reason, .. } => {
                reason
            }
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::PermissionDenied(_) => "PERMISSION_DENIED",
            ApiError::Overloaded(_) => "OVERLOADED",
            ApiError::Unavailable(_) => "UNAVAILABLE",
            ApiError::Internal(_) => "INTERNAL",
        }
    }
}

/// What tonic's own decoder says (tonic 0.14, tonic-prost 0.14) when a request is bad:
/// `Status::internal(prost::DecodeError)` for bytes that do not decode, `internal("Missing
/// request message.")` for an empty body, `out_of_range("Error, decoded message length too
/// large: …")` over `max_decoding_message_size`.
const DECODE_ERROR_PREFIX: &str = "failed to decode Protobuf message";
const MISSING_MESSAGE: &str = "Missing request message.";
const TOO_LARGE_PREFIX: &str = "Error, decoded message length too large";

/// The caller's fault in a status that tonic's decoder made (see above), as the error the
/// table answers with; `None` for any other status. The server applies it to every answer
/// (`server::DecodeErrorLayer`), so every service reports bad bytes the same way.
pub fn caller_fault(status: &tonic::Status) -> Option<ApiError> {
    let message = status.message();
    match status.code() {
        Code::Internal
            if message.starts_with(DECODE_ERROR_PREFIX) || message == MISSING_MESSAGE =>
        {
            Some(ApiError::Malformed(message.to_string()))
        }
        Code::OutOfRange if message.starts_with(TOO_LARGE_PREFIX) => Some(ApiError::TooLarge(
            format!("the request is over the size limit ({message})"),
        )),
        _ => None,
    }
}

/// Why an internal error is the database being out of reach for a moment, not our fault: the
/// pool had no connection within its wait (overload), or the connection was lost (the server
/// restarted or ended it, the network broke: an I/O error, SQLSTATE class 08, or 57P01–57P03).
/// The caller should retry (with its idempotency key, a retry finds what was made).
fn database_unavailable(e: &anyhow::Error) -> Option<&'static str> {
    e.chain()
        .find_map(|cause| match cause.downcast_ref::<sqlx::Error>()? {
            sqlx::Error::PoolTimedOut => {
                Some("the database is busy (no connection free in time); retry")
            }
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Some("the connection to the database was lost; retry")
            }
            sqlx::Error::Database(d) => {
                let code = d.code()?;
                (code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03"))
                    .then_some("the connection to the database was lost; retry")
            }
            _ => None,
        })
}

impl ApiError {
    /// The error as callers are told it: an internal error that is the database out of reach
    /// for a moment (see [`database_unavailable`]) is UNAVAILABLE (retry), every other one as it
    /// is.
    pub fn as_answered(self) -> ApiError {
        match self {
            ApiError::Internal(e) => match database_unavailable(&e) {
                Some(why) => {
                    tracing::warn!(error = format!("{e:#}"), "database unavailable");
                    ApiError::Unavailable(why.to_string())
                }
                None => ApiError::Internal(e),
            },
            other => other,
        }
    }
}

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> tonic::Status {
        let err = err.as_answered();
        let code = err.code();
        let message = match &err {
            ApiError::Internal(inner) => {
                // The cause stays in our logs; the client gets no internals.
                tracing::error!(error = format!("{inner:#}"), "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let mut details = ErrorDetails::with_error_info(err.reason(), ERROR_DOMAIN, HashMap::new());
        if let ApiError::InvalidArgument(violations) = &err {
            for v in violations {
                details.add_bad_request_violation(v.field.clone(), v.description.clone());
            }
        }
        tonic::Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::ApiError;

    #[test]
    fn errors_copy_for_every_caller() {
        let e = ApiError::Unavailable("down".into());
        assert!(matches!(e.for_another_caller(), ApiError::Unavailable(m) if m == "down"));
        let e = ApiError::Overloaded("busy".into());
        assert!(matches!(e.for_another_caller(), ApiError::Overloaded(m) if m == "busy"));
        let e = ApiError::Internal(anyhow::anyhow!("broken"));
        assert!(
            matches!(e.for_another_caller(), ApiError::Internal(i) if i.to_string() == "broken")
        );
    }

    #[test]
    fn an_exhausted_database_pool_is_unavailable_not_internal() {
        let e = anyhow::Error::from(sqlx::Error::PoolTimedOut).context("reading bills");
        let status = tonic::Status::from(super::ApiError::Internal(e));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let lost = anyhow::Error::from(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )))
        .context("reading bills");
        let status = tonic::Status::from(super::ApiError::Internal(lost));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let other = anyhow::anyhow!("a bug");
        assert_eq!(
            tonic::Status::from(super::ApiError::Internal(other)).code(),
            tonic::Code::Internal
        );
    }

    use super::*;

    #[test]
    fn invalid_argument_carries_field_violations_and_reason() {
        let status: tonic::Status = ApiError::InvalidArgument(vec![
            FieldViolation::new("transfers[0].amount.amount", "must be positive"),
            FieldViolation::new("transfers[1].id", "must be 16 bytes"),
        ])
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "INVALID_ARGUMENT");
        assert_eq!(info.domain, ERROR_DOMAIN);
        let bad = details.bad_request().expect("BadRequest");
        assert_eq!(bad.field_violations.len(), 2);
        assert_eq!(bad.field_violations[0].field, "transfers[0].amount.amount");
    }

    #[test]
    fn decoder_errors_are_the_callers_fault() {
        let decode = tonic::Status::internal(
            "failed to decode Protobuf message: X.y: invalid string value: data is not UTF-8 encoded",
        );
        let status: tonic::Status = caller_fault(&decode).expect("mapped").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("not UTF-8"),
            "{}",
            status.message()
        );
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "MALFORMED_REQUEST");

        let big = tonic::Status::out_of_range(
            "Error, decoded message length too large: found 9 bytes, the limit is: 8 bytes",
        );
        let status: tonic::Status = caller_fault(&big).expect("mapped").into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "MESSAGE_TOO_LARGE");

        // Our own internal errors and other codes stay what they are.
        let ours: tonic::Status = ApiError::Internal(anyhow::anyhow!("db down")).into();
        assert!(caller_fault(&ours).is_none());
        assert!(caller_fault(&tonic::Status::out_of_range("page past the end")).is_none());
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status: tonic::Status = ApiError::Internal(anyhow::anyhow!("password=hunter2")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }

    #[test]
    fn table_maps_every_variant() {
        let cases: Vec<(ApiError, Code)> = vec![
            (
                ApiError::NotFound {
                    resource: "account",
                },
                Code::NotFound,
            ),
            (
                ApiError::AlreadyExists {
                    resource: "account",
                },
                Code::AlreadyExists,
            ),
            (
                ApiError::FailedPrecondition {
                    reason: "IDEMPOTENCY_KEY_REUSED",
                    message: "x".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                ApiError::Aborted {
                    reason: "IDEMPOTENCY_KEY_IN_USE",
                    message: "x".into(),
                },
                Code::Aborted,
            ),
            (ApiError::Unauthenticated("x".into()), Code::Unauthenticated),
            (
                ApiError::PermissionDenied("x".into()),
                Code::PermissionDenied,
            ),
            (ApiError::Overloaded("x".into()), Code::ResourceExhausted),
            (ApiError::Unavailable("x".into()), Code::Unavailable),
        ];
        for (err, code) in cases {
            let reason = err.reason();
            let status: tonic::Status = err.into();
            assert_eq!(status.code(), code);
            assert_eq!(
                status
                    .get_error_details()
                    .error_info()
                    .map(|i| i.reason.clone()),
                Some(reason.to_string())
            );
        }
    }
}
