//! The one place where errors become gRPC statuses.
//!
//! | variant             | code                 | details                      |
//! |---------------------|----------------------|------------------------------|
//! | `InvalidArgument`   | `INVALID_ARGUMENT`   | BadRequest field violations  |
//! | `NotFound`          | `NOT_FOUND`          |                              |
//! | `FailedPrecondition`| `FAILED_PRECONDITION`|                              |
//! | `OutOfRange`        | `OUT_OF_RANGE`       |                              |
//! | `RateLimited`       | `RESOURCE_EXHAUSTED` | RetryInfo + `retry-after`    |
//! | `Busy`              | `RESOURCE_EXHAUSTED` | RetryInfo (1 s)              |
//! | `ShuttingDown`      | `UNAVAILABLE`        |                              |
//! | `Unauthenticated`   | `UNAUTHENTICATED`    |                              |
//! | `Store(NotFound)`   | `NOT_FOUND`          |                              |
//! | `Store(WrongState)` | `FAILED_PRECONDITION`|                              |
//! | `Store(Log(NoSpace))`| `UNAVAILABLE`       | disk full: nothing written   |
//! | `Store(Log(Write))` | `UNAVAILABLE`        | write failed: outcome unknown|
//! | `Internal`          | `INTERNAL` (logged; cause hidden)                   |
//! | `Store`             | `INTERNAL` / `UNAVAILABLE` (logged; cause hidden)   |

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    domain::FieldViolation,
    store::{LogError, StoreError},
};

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
    /// `what` says which limit: "too many submissions from this client_id".
    #[error("{what}; retry in {} ms", retry_after.as_millis().max(1))]
    RateLimited {
        what: &'static str,
        retry_after: Duration,
    },
    /// The server sheds load (screening queue full).
    #[error("{0}")]
    Busy(String),
    #[error("the server is shutting down; retry on another instance or later")]
    ShuttingDown,
    #[error("{0}")]
    Unauthenticated(String),
    /// A bug (a screening task that panicked): logged, cause hidden.
    #[error("{0}")]
    Internal(String),
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

impl From<crate::screening::pool::ScreeningError> for Error {
    fn from(error: crate::screening::pool::ScreeningError) -> Self {
        use crate::screening::pool::ScreeningError;
        match error {
            ScreeningError::Busy(_) => Self::Busy(error.to_string()),
            ScreeningError::Failed(cause) => Self::Internal(cause),
        }
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
            Error::Busy(_) => Status::with_error_details(
                Code::ResourceExhausted,
                message,
                ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
            ),
            Error::RateLimited { retry_after, .. } => {
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
            Error::Store(StoreError::Log(
                LogError::NoSpace(message) | LogError::Unavailable(message),
            )) => Status::unavailable(message),
            Error::Store(StoreError::Log(LogError::Write(cause))) => {
                tracing::error!(error = %cause, "writing to disk failed");
                Status::unavailable(
                    "writing to disk failed, so the change may or may not be stored; retry with the same idempotency_key once the server reports SERVING",
                )
            }
            Error::ShuttingDown | Error::Store(StoreError::Closed) => {
                Status::unavailable("the server is shutting down; retry shortly")
            }
            Error::Internal(cause) => {
                tracing::error!(error = %cause, "internal failure");
                Status::internal("internal failure; the request may be retried")
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
