//! The bucket of imports, reports and billing lists: writes, and presigned links that let a
//! caller fetch (or upload) one object directly, without the API carrying its bytes.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

/// An S3 operation failed.
#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} of {key} failed: {message}")]
pub struct FileError {
    /// What was attempted.
    pub operation: &'static str,
    /// The object.
    pub key: String,
    /// The SDK's description.
    pub message: String,
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
            .map_err(|e| FileError {
                operation: "PutObject",
                key: key.to_owned(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }

    /// Reads a whole object.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, FileError> {
        let failed = |message: String| FileError {
            operation: "GetObject",
            key: key.to_owned(),
            message,
        };
        let out = self
            .client
            .get_object()
            .bucket(self.name.as_ref())
            .key(key)
            .send()
            .await
            .map_err(|e| failed(DisplayErrorContext(&e).to_string()))?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?;
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
            .map_err(|e| FileError {
                operation: "DeleteObject",
                key: key.to_owned(),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(())
    }

    /// A link that downloads the object (as `filename`) until `ttl` has passed.
    pub async fn presigned_get(
        &self,
        key: &str,
        filename: &str,
        ttl: Duration,
    ) -> Result<String, FileError> {
        let failed = |message: String| FileError {
            operation: "presigned GetObject",
            key: key.to_owned(),
            message,
        };
        let config = PresigningConfig::expires_in(ttl).map_err(|e| failed(e.to_string()))?;
        let req = self
            .client
            .get_object()
            .bucket(self.name.as_ref())
            .key(key)
            .response_content_disposition(format!("attachment; filename=\"{filename}\""))
            .presigned(config)
            .await
            .map_err(|e| failed(DisplayErrorContext(&e).to_string()))?;
        Ok(req.uri().to_owned())
    }

    /// A link that uploads the object with one `PUT` until `ttl` has passed.
    pub async fn presigned_put(&self, key: &str, ttl: Duration) -> Result<String, FileError> {
        let failed = |message: String| FileError {
            operation: "presigned PutObject",
            key: key.to_owned(),
            message,
        };
        let config = PresigningConfig::expires_in(ttl).map_err(|e| failed(e.to_string()))?;
        let req = self
            .client
            .put_object()
            .bucket(self.name.as_ref())
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| failed(DisplayErrorContext(&e).to_string()))?;
        Ok(req.uri().to_owned())
    }
}
