//! The snapshotter's configuration, read once from the environment.

use rollcall::config::{self, BucketConfig, ConfigError, StoreConfig};

/// Default number of tenants counted at once.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How much runs at once.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    /// Tenants counted at once (`SNAPSHOT_CONCURRENCY`, 1 to 64, default 8).
    pub concurrency: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

impl SnapshotConfig {
    /// Reads `SNAPSHOT_CONCURRENCY`, and `TABLE_NAME` and `BUCKET_NAME` for the store and the
    /// bucket of the lists.
    pub fn from_env() -> Result<(StoreConfig, BucketConfig, SnapshotConfig), ConfigError> {
        let store = StoreConfig::from_env()?;
        let bucket = BucketConfig::from_env()?;
        let concurrency =
            config::parsed::<usize>("SNAPSHOT_CONCURRENCY")?.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=64).contains(&concurrency) {
            return Err(ConfigError::Invalid {
                name: "SNAPSHOT_CONCURRENCY",
                reason: "must be from 1 to 64".into(),
            });
        }
        Ok((store, bucket, SnapshotConfig { concurrency }))
    }
}
