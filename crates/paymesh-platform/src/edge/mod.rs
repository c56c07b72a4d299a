//! What every handler does at the edge, done one way: collect every bad field of a request
//! ([`Violations`], with the common field checks of [`fields`]), page a listing ([`Paging`], AIP-158), and make an effect exactly once
//! under an idempotency key ([`Transactions`]).

pub mod fields;
pub mod json;
mod paging;
mod transactions;
mod violations;

pub use paging::{PageLimits, Paging, cursor_i64, i64_cursor};
pub use transactions::{Begun, Transactions, Work};
pub use violations::{VIOLATIONS_MAX, Violations};

/// A handler's answer on the wire: the message, or the error as its gRPC status.
pub fn answer<T>(result: Result<T, crate::ApiError>) -> Result<tonic::Response<T>, tonic::Status> {
    result
        .map(tonic::Response::new)
        .map_err(tonic::Status::from)
}
