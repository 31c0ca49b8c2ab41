//! Configuration read once from the environment at start-up, typed, failing fast with the name
//! of what is missing or wrong.

use secrecy::SecretString;

/// A configuration variable is missing or malformed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads a required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

/// Reads an optional variable; empty counts as unset.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Reads a required secret (kept out of logs and `Debug`).
pub fn required_secret(name: &'static str) -> Result<SecretString, ConfigError> {
    required(name).map(SecretString::from)
}

/// Reads an optional variable and parses it.
pub fn parsed<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError>
where
    T::Err: std::fmt::Display,
{
    optional(name)
        .map(|v| {
            v.trim().parse::<T>().map_err(|e| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// Where the store lives: the table every function reads and writes.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The DynamoDB table (`TABLE_NAME`).
    pub table_name: String,
}

impl StoreConfig {
    /// Reads `TABLE_NAME`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(StoreConfig {
            table_name: required("TABLE_NAME")?,
        })
    }
}

/// The bucket of imports, reports and billing lists (`BUCKET_NAME`).
#[derive(Debug, Clone)]
pub struct BucketConfig {
    /// The S3 bucket.
    pub bucket_name: String,
}

impl BucketConfig {
    /// Reads `BUCKET_NAME`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(BucketConfig {
            bucket_name: required("BUCKET_NAME")?,
        })
    }
}
