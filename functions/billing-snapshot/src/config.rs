//! The snapshotter's configuration, read once from the environment.

use rollcall::config::{self, BucketConfig, ConfigError, StoreConfig};

/// Default number of tenants counted at once.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Where the lists go and how much runs at once.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    /// The bucket of the lists of counted users (`BUCKET_NAME`).
    pub bucket: String,
    /// Tenants counted at once (`SNAPSHOT_CONCURRENCY`, 1 to 64, default 8).
    pub concurrency: usize,
}

impl SnapshotConfig {
    /// Settings with the default concurrency.
    pub fn new(bucket: impl Into<String>) -> SnapshotConfig {
        SnapshotConfig {
            bucket: bucket.into(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// Reads `BUCKET_NAME` and `SNAPSHOT_CONCURRENCY`, and `TABLE_NAME` for the store.
    pub fn from_env() -> Result<(StoreConfig, SnapshotConfig), ConfigError> {
        let store = StoreConfig::from_env()?;
        let bucket = BucketConfig::from_env()?.bucket_name;
        let concurrency =
            config::parsed::<usize>("SNAPSHOT_CONCURRENCY")?.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=64).contains(&concurrency) {
            return Err(ConfigError::Invalid {
                name: "SNAPSHOT_CONCURRENCY",
                reason: "must be from 1 to 64".into(),
            });
        }
        Ok((
            store,
            SnapshotConfig {
                bucket,
                concurrency,
            },
        ))
    }
}
