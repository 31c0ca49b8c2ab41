//! The bucket of imports, reports and billing lists: writes, and presigned links that let a
//! caller fetch (or upload) one object directly, without the API carrying its bytes.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

/// What kind of failure an S3 operation met: it decides whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileErrorKind {
    /// The object (or the bucket) is not there.
    NotFound,
    /// Throttling, S3's own failures, timeouts, a connection or a body that broke off: the
    /// same request may succeed later.
    Transient,
    /// S3 refused the request (access denied, a malformed request): it fails the same way
    /// every time.
    Refused,
}

/// An S3 operation failed.
#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} of {key} failed ({})", self.code.as_deref().unwrap_or(match self.kind {
    FileErrorKind::NotFound => "not found",
    FileErrorKind::Transient => "transient",
    FileErrorKind::Refused => "refused",
}))]
pub struct FileError {
    /// What was attempted.
    pub operation: &'static str,
    /// The object.
    pub key: String,
    /// The kind of failure.
    pub kind: FileErrorKind,
    /// S3's error code, when it sent one (`AccessDenied`, `SlowDown`, ...).
    pub code: Option<String>,
    /// The SDK's error.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl FileError {
    /// The failure of `operation` on `key` with the SDK's error `e`, classified.
    pub fn from_sdk<E>(operation: &'static str, key: &str, e: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = e.code().map(str::to_owned);
        let not_found = e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
            || matches!(
                code.as_deref(),
                Some("NoSuchKey" | "NotFound" | "NoSuchBucket")
            );
        let kind = if not_found {
            FileErrorKind::NotFound
        } else if crate::retry::is_transient(&e) {
            FileErrorKind::Transient
        } else {
            FileErrorKind::Refused
        };
        FileError {
            operation,
            key: key.to_owned(),
            kind,
            code,
            source: Box::new(e),
        }
    }

    /// An object's body that broke off while it was read: worth reading again.
    fn body(key: &str, e: aws_sdk_s3::primitives::ByteStreamError) -> Self {
        FileError {
            operation: "GetObject",
            key: key.to_owned(),
            kind: FileErrorKind::Transient,
            code: None,
            source: Box::new(e),
        }
    }

    /// A presigned link that could not be made (its lifetime is out of range): a bug, never
    /// worth retrying.
    fn presigning(
        operation: &'static str,
        key: &str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        FileError {
            operation,
            key: key.to_owned(),
            kind: FileErrorKind::Refused,
            code: None,
            source: Box::new(e),
        }
    }

    /// Whether the same operation may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        self.kind == FileErrorKind::Transient
    }
}

/// One bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    client: Client,
    name: Arc<str>,
}

impl Bucket {
    /// The bucket `name`, through a client built from `sdk`. Requests use path-style addresses
    /// (`https://s3.{region}.amazonaws.com/{bucket}/{key}`), which S3 and local emulators both
    /// serve, so nothing depends on where the endpoint is.
    pub fn from_sdk(sdk: &SdkConfig, name: impl Into<String>) -> Bucket {
        let client = Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(true)
                .build(),
        );
        Bucket::new(client, name)
    }

    /// The bucket `name` through `client`.
    pub fn new(client: Client, name: impl Into<String>) -> Bucket {
        Bucket {
            client,
            name: Arc::from(name.into()),
        }
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The S3 client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Writes an object.
    pub async fn put(&self, key: &str, content_type: &str, body: Vec<u8>) -> Result<(), FileError> {
        self.client
            .put_object()
            .bucket(self.name.as_ref())
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| FileError::from_sdk("PutObject", key, e))?;
        Ok(())
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, FileError> {
        let out = self
            .client
            .get_object()
            .bucket(self.name.as_ref())
            .key(key)
            .send()
            .await
            .map_err(|e| FileError::from_sdk("GetObject", key, e))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| FileError::body(key, e))?;
        Ok(body.to_vec())
    }

    /// Deletes an object (nothing if it is not there).
    pub async fn delete(&self, key: &str) -> Result<(), FileError> {
        self.client
            .delete_object()
            .bucket(self.name.as_ref())
            .key(key)
            .send()
            .await
            .map_err(|e| FileError::from_sdk("DeleteObject", key, e))?;
        Ok(())
    }

    /// A link that downloads the object (as `filename`) until `ttl` has passed.
    pub async fn presigned_get(
        &self,
        key: &str,
        filename: &str,
        ttl: Duration,
    ) -> Result<String, FileError> {
        const OPERATION: &str = "presigned GetObject";
        let config = PresigningConfig::expires_in(ttl)
            .map_err(|e| FileError::presigning(OPERATION, key, e))?;
        let req = self
            .client
            .get_object()
            .bucket(self.name.as_ref())
            .key(key)
            .response_content_disposition(format!("attachment; filename=\"{filename}\""))
            .presigned(config)
            .await
            .map_err(|e| FileError::from_sdk(OPERATION, key, e))?;
        Ok(req.uri().to_owned())
    }

    /// A link that uploads the object with one `PUT` until `ttl` has passed.
    pub async fn presigned_put(&self, key: &str, ttl: Duration) -> Result<String, FileError> {
        const OPERATION: &str = "presigned PutObject";
        let config = PresigningConfig::expires_in(ttl)
            .map_err(|e| FileError::presigning(OPERATION, key, e))?;
        let req = self
            .client
            .put_object()
            .bucket(self.name.as_ref())
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| FileError::from_sdk(OPERATION, key, e))?;
        Ok(req.uri().to_owned())
    }
}
