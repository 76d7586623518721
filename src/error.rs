//! The one place where errors become gRPC statuses.
//!
//! | variant             | code                 | details                      |
//! |---------------------|----------------------|------------------------------|
//! | `InvalidArgument`   | `INVALID_ARGUMENT`   | BadRequest field violations  |
//! | `NotFound`          | `NOT_FOUND`          |                              |
//! | `FailedPrecondition`| `FAILED_PRECONDITION`|                              |
//! | `OutOfRange`        | `OUT_OF_RANGE`       |                              |
//! | `RateLimited`       | `RESOURCE_EXHAUSTED` | RetryInfo + `retry-after`    |
//! | `ShuttingDown`      | `UNAVAILABLE`        |                              |
//! | `Unauthenticated`   | `UNAUTHENTICATED`    |                              |
//! | `Store(NotFound)`   | `NOT_FOUND`          |                              |
//! | `Store(WrongState)` | `FAILED_PRECONDITION`|                              |
//! | `Store`             | `INTERNAL` / `UNAVAILABLE` (logged; cause hidden)   |

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{domain::FieldViolation, store::StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("too many submissions from this client_id; retry in {:.1} s", retry_after.as_secs_f64())]
    RateLimited { retry_after: Duration },
    #[error("the server is shutting down; retry on another instance or later")]
    ShuttingDown,
    #[error("{0}")]
    Unauthenticated(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{} {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<Vec<FieldViolation>> for Error {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument(violations)
    }
}

impl From<FieldViolation> for Error {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = error.to_string();
        match error {
            Error::InvalidArgument(violations) => {
                let violations: Vec<_> = violations
                    .into_iter()
                    .map(|v| tonic_types::FieldViolation::new(v.field, v.description))
                    .collect();
                Status::with_error_details(
                    Code::InvalidArgument,
                    message,
                    ErrorDetails::with_bad_request(violations),
                )
            }
            Error::NotFound(_) => Status::not_found(message),
            Error::FailedPrecondition(_) => Status::failed_precondition(message),
            Error::OutOfRange(_) => Status::out_of_range(message),
            Error::RateLimited { retry_after } => {
                let mut status = Status::with_error_details(
                    Code::ResourceExhausted,
                    message,
                    ErrorDetails::with_retry_info(Some(retry_after)),
                );
                let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                if let Ok(value) = seconds.to_string().parse() {
                    status.metadata_mut().insert("retry-after", value);
                }
                status
            }
            Error::Unauthenticated(_) => Status::unauthenticated(message),
            Error::Store(StoreError::NotFound(message)) => Status::not_found(message),
            Error::Store(StoreError::WrongState(message)) => Status::failed_precondition(message),
            Error::ShuttingDown | Error::Store(StoreError::Closed) => {
                Status::unavailable("the server is shutting down; retry shortly")
            }
            Error::Store(cause) => {
                tracing::error!(error = %cause, "storage failure");
                Status::internal(
                    "storage failure; the request may be retried with the same idempotency_key",
                )
            }
        }
    }
}
