//! The importer's configuration, read once from the environment.

use std::time::Duration;

use rollcall::config::{self, BucketConfig, ConfigError, StoreConfig};

/// Default largest file, in bytes (10 MB).
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default most rows in a file.
pub const DEFAULT_MAX_ROWS: usize = 2_000;
/// The most rows a deployment may allow.
pub const MAX_ROWS_CEILING: usize = 100_000;
/// Default lease of the tenant's import lock: longer than the queue's visibility timeout, so a
/// redelivered job finds its own lease still standing.
pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(1_200);

/// Default chunks of one job in flight at once (see `docs/architecture.md`, "Import at
/// DynamoDB's limits"): a chunk is about 33 users × 11 write units, and one transaction takes
/// 30–60 ms, so 16 in flight ask for about 100,000–190,000 write units a second, more than the
/// table's default 40,000 (so the table's limit, not the function, sets the pace) while the
/// adaptive pace backs off when DynamoDB throttles.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// The most chunks a deployment may put in flight.
pub const MAX_CONCURRENCY: usize = 32;

/// Limits of one import.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// Largest file accepted (`IMPORT_MAX_BYTES`).
    pub max_bytes: u64,
    /// Most data rows accepted (`IMPORT_MAX_ROWS`, 1 to 100,000).
    pub max_rows: usize,
    /// Lease of the tenant's lock, renewed while the job runs (`IMPORT_LOCK_LEASE_SECONDS`,
    /// 60 or more).
    pub lock_lease: Duration,
    /// Chunks in flight at once at most (`IMPORT_CONCURRENCY`, 1 to 32); fewer while
    /// DynamoDB throttles.
    pub concurrency: usize,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            max_bytes: DEFAULT_MAX_BYTES,
            max_rows: DEFAULT_MAX_ROWS,
            lock_lease: DEFAULT_LOCK_LEASE,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

impl ImportConfig {
    /// Reads the limits, and `TABLE_NAME` and `BUCKET_NAME`.
    pub fn from_env() -> Result<(StoreConfig, BucketConfig, ImportConfig), ConfigError> {
        let store = StoreConfig::from_env()?;
        let bucket = BucketConfig::from_env()?;
        let max_bytes = config::parsed::<u64>("IMPORT_MAX_BYTES")?.unwrap_or(DEFAULT_MAX_BYTES);
        if max_bytes == 0 {
            return Err(ConfigError::Invalid {
                name: "IMPORT_MAX_BYTES",
                reason: "must be more than 0".into(),
            });
        }
        let max_rows = config::parsed::<usize>("IMPORT_MAX_ROWS")?.unwrap_or(DEFAULT_MAX_ROWS);
        if !(1..=MAX_ROWS_CEILING).contains(&max_rows) {
            return Err(ConfigError::Invalid {
                name: "IMPORT_MAX_ROWS",
                reason: format!("must be from 1 to {MAX_ROWS_CEILING}"),
            });
        }
        let lease = config::parsed::<u64>("IMPORT_LOCK_LEASE_SECONDS")?
            .map_or(DEFAULT_LOCK_LEASE, Duration::from_secs);
        if lease < Duration::from_secs(60) {
            return Err(ConfigError::Invalid {
                name: "IMPORT_LOCK_LEASE_SECONDS",
                reason: "must be 60 or more".into(),
            });
        }
        let concurrency =
            config::parsed::<usize>("IMPORT_CONCURRENCY")?.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(ConfigError::Invalid {
                name: "IMPORT_CONCURRENCY",
                reason: format!("must be from 1 to {MAX_CONCURRENCY}"),
            });
        }
        Ok((
            store,
            bucket,
            ImportConfig {
                max_bytes,
                max_rows,
                lock_lease: lease,
                concurrency,
            },
        ))
    }
}
