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
