//! The public signing keys as a verifier holds them: read from the store, kept for
//! [`RELOAD_AFTER`], and read again at once (at most every [`MIN_RELOAD_GAP`]) when a token
//! names a key id not among them — a rotation reaches a verifier with its first token.

use std::time::Duration;

use tokio::sync::RwLock;
use tokio::time::Instant;

use super::keys::{KeyError, KeySet};
use crate::store::{Store, StoreError};

/// How long read keys are trusted.
pub const RELOAD_AFTER: Duration = Duration::from_secs(300);
/// The least time between two reads caused by unknown key ids (a flood of forged `kid`s
/// can't turn into a flood of reads).
pub const MIN_RELOAD_GAP: Duration = Duration::from_secs(10);

/// Why the keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PublishedKeysError {
    /// The store failed.
    #[error("reading the signing keys failed")]
    Store(#[from] StoreError),
    /// A stored public key is not a P-256 point.
    #[error("a stored signing key is unusable")]
    Key(#[from] KeyError),
}

/// The deployment's public keys, cached.
pub struct PublishedKeys {
    store: Store,
    cache: RwLock<Option<Cached>>,
}

struct Cached {
    keys: KeySet,
    read_at: Instant,
    /// When an unknown key id last made it read: at most one such read per
    /// [`MIN_RELOAD_GAP`].
    unknown_read_at: Option<Instant>,
}

impl std::fmt::Debug for PublishedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublishedKeys").finish_non_exhaustive()
    }
}

impl PublishedKeys {
    /// Keys read from `store` on first use.
    pub fn new(store: Store) -> Self {
        PublishedKeys {
            store,
            cache: RwLock::new(None),
        }
    }

    /// The keys, read again if stale or if none of them is `kid` (an unknown `kid` reads again
    /// at once, then at most once per [`MIN_RELOAD_GAP`]).
    pub async fn for_kid(&self, kid: Option<&str>) -> Result<KeySet, PublishedKeysError> {
        let wants_read = |c: &Cached| {
            let stale = c.read_at.elapsed() >= RELOAD_AFTER;
            let unknown = kid.is_some_and(|k| c.keys.get(k).is_none())
                && c.unknown_read_at
                    .is_none_or(|at| at.elapsed() >= MIN_RELOAD_GAP);
            stale || unknown
        };
        if let Some(c) = self.cache.read().await.as_ref()
            && !wants_read(c)
        {
            return Ok(c.keys.clone());
        }
        let mut slot = self.cache.write().await;
        if let Some(c) = slot.as_ref()
            && !wants_read(c)
        {
            return Ok(c.keys.clone());
        }
        let unknown = slot
            .as_ref()
            .is_some_and(|c| kid.is_some_and(|k| c.keys.get(k).is_none()));
        let stored = self.store.signing_keys().await?;
        let keys = KeySet::new(stored.into_iter().map(|k| k.public).collect())?;
        let now = Instant::now();
        *slot = Some(Cached {
            keys: keys.clone(),
            read_at: now,
            unknown_read_at: if unknown {
                Some(now)
            } else {
                slot.as_ref().and_then(|c| c.unknown_read_at)
            },
        });
        Ok(keys)
    }
}
