//! The one rule for whether an AWS request that failed is worth trying again, shared by the
//! store (DynamoDB), the bucket (S3) and the mail sender (SES): throttling, the service's own
//! failures (5xx), timeouts and connections that broke are transient; anything the service
//! refused for what was asked (a missing object, access denied, a malformed request) is
//! permanent, and retrying it only delays the answer.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes that mean "not now" whatever the HTTP status says.
const TRANSIENT_CODES: [&str; 12] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "LimitExceededException",
    "SlowDown",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
];

/// Whether the request that failed with `e` may succeed if sent again later.
pub fn is_transient<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status == 429
                || status >= 500
                || s.err().code().is_some_and(|c| TRANSIENT_CODES.contains(&c))
        }
        // The request could not be built: the same request fails the same way.
        _ => false,
    }
}

/// Exponential back-off for retries inside one request: `base`, `2 × base`, `4 × base`, ...,
/// for at most `attempts` retries. Each retry loop of the store asks it how long to wait, and
/// gets `None` when it is time to give up and report the error (as retryable) to the caller.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    base: std::time::Duration,
    attempts: u32,
    done: u32,
}

impl Backoff {
    /// Waits of `base` doubling, `attempts` of them at most.
    pub const fn new(base: std::time::Duration, attempts: u32) -> Backoff {
        Backoff {
            base,
            attempts,
            done: 0,
        }
    }

    /// The wait before the next retry, or `None` once every retry is spent.
    pub fn next_delay(&mut self) -> Option<std::time::Duration> {
        if self.done >= self.attempts {
            return None;
        }
        let delay = self.base * 2u32.pow(self.done.min(16));
        self.done += 1;
        Some(delay)
    }

    /// Retries made so far.
    pub fn retries(&self) -> u32 {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn back_off_doubles_and_gives_up_after_its_attempts() {
        let mut b = Backoff::new(Duration::from_millis(25), 3);
        assert_eq!(b.next_delay(), Some(Duration::from_millis(25)));
        assert_eq!(b.next_delay(), Some(Duration::from_millis(50)));
        assert_eq!(b.next_delay(), Some(Duration::from_millis(100)));
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.retries(), 3);
    }
}
