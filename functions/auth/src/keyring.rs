//! The signing key as the sign-in function holds it: the private key of the key that signs now
//! ([`signer_of`]: the newest published for ten minutes) opened once per instance with one
//! `kms:Decrypt`, then kept in memory. Read again every [`RELOAD_AFTER`], so every instance
//! moves to a new key within minutes of its turn. Verifying goes through
//! [`rollcall::oidc::PublishedKeys`], which also reads at once on an unknown key id.
//!
//! The private key is sealed with `kms:Encrypt` under a symmetric KMS key, with an encryption
//! context naming the key id, so a sealed key copied onto another key's item does not open.
//! Why sealed keys rather than `kms:Sign` per token: see `docs/architecture.md`, "Signing keys".

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rollcall::oidc::keys::signer_of;
use rollcall::oidc::{KeyError, SigningKey};
use rollcall::store::{Store, StoreError, StoredKey};
use tokio::sync::RwLock;
use tokio::time::Instant;

/// How long an instance trusts the keys it read.
pub const RELOAD_AFTER: Duration = Duration::from_secs(300);

/// The encryption context's purpose entry.
const PURPOSE: &str = "rollcall-token-signing-key";

/// Why the keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The store failed.
    #[error("reading or writing the signing keys failed")]
    Store(#[from] StoreError),
    /// KMS refused or failed.
    #[error("KMS {operation} failed: {message}")]
    Kms {
        /// `Encrypt` or `Decrypt`.
        operation: &'static str,
        /// The SDK's description.
        message: String,
        /// Whether a retry may help.
        retryable: bool,
        /// The SDK error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored key does not open into a key, or a new one could not be made.
    #[error("a signing key is unusable")]
    Key(#[from] KeyError),
    /// A sealed key is not base64.
    #[error("a sealed signing key is not base64")]
    Sealed(#[from] base64::DecodeError),
    /// No key exists yet: `rollcall keys rotate` (or the deployment's first start) makes one.
    #[error("no signing key exists yet; run `rollcall keys rotate`")]
    NoKey,
}

impl KeyringError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        match self {
            KeyringError::Store(e) => e.is_retryable(),
            KeyringError::Kms { retryable, .. } => *retryable,
            KeyringError::Key(_) | KeyringError::Sealed(_) | KeyringError::NoKey => false,
        }
    }

    fn kms<E>(
        operation: &'static str,
        e: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Self
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    {
        KeyringError::Kms {
            operation,
            message: DisplayErrorContext(&e).to_string(),
            retryable: rollcall::retry::is_transient(&e),
            source: Box::new(e),
        }
    }
}

/// Seals and opens private keys with a KMS key.
#[derive(Debug, Clone)]
pub struct Sealer {
    kms: aws_sdk_kms::Client,
    key_id: String,
}

impl Sealer {
    /// A sealer using KMS key `key_id` (an id, ARN or alias).
    pub fn new(kms: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Sealer {
            kms,
            key_id: key_id.into(),
        }
    }

    async fn seal(&self, key: &SigningKey) -> Result<String, KeyringError> {
        let out = self
            .kms
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(key.pkcs8()))
            .encryption_context("purpose", PURPOSE)
            .encryption_context("kid", key.kid())
            .send()
            .await
            .map_err(|e| KeyringError::kms("Encrypt", e))?;
        let blob = out
            .ciphertext_blob
            .map(Blob::into_inner)
            .unwrap_or_default();
        Ok(STANDARD.encode(blob))
    }

    async fn open(&self, stored: &StoredKey) -> Result<SigningKey, KeyringError> {
        let sealed = STANDARD.decode(&stored.sealed)?;
        let out = self
            .kms
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(sealed))
            .encryption_context("purpose", PURPOSE)
            .encryption_context("kid", &stored.public.kid)
            .send()
            .await
            .map_err(|e| KeyringError::kms("Decrypt", e))?;
        let der = out.plaintext.map(Blob::into_inner).unwrap_or_default();
        let key = SigningKey::from_pkcs8(&der)?;
        if key.kid() != stored.public.kid {
            return Err(KeyringError::Key(KeyError::Pkcs8));
        }
        Ok(key)
    }
}

struct Loaded {
    signer: Arc<SigningKey>,
    at: Instant,
}

/// The keys of one instance.
pub struct Keyring {
    store: Store,
    sealer: Sealer,
    loaded: RwLock<Option<Loaded>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").finish_non_exhaustive()
    }
}

impl Keyring {
    /// Keys read from `store` and opened with `sealer`, on first use.
    pub fn new(store: Store, sealer: Sealer) -> Self {
        Keyring {
            store,
            sealer,
            loaded: RwLock::new(None),
        }
    }

    /// The key that signs now.
    pub async fn signer(&self) -> Result<Arc<SigningKey>, KeyringError> {
        if let Some(l) = self.loaded.read().await.as_ref()
            && l.at.elapsed() < RELOAD_AFTER
        {
            return Ok(l.signer.clone());
        }
        let mut slot = self.loaded.write().await;
        if let Some(l) = slot.as_ref()
            && l.at.elapsed() < RELOAD_AFTER
        {
            return Ok(l.signer.clone());
        }
        let stored = self.store.signing_keys().await?;
        let created: Vec<_> = stored.iter().map(|k| k.created_at).collect();
        let current = signer_of(&created, self.store.clock().now())
            .map(|i| &stored[i])
            .ok_or(KeyringError::NoKey)?;
        // The private key is opened only when the current key changed.
        let signer = match slot.as_ref() {
            Some(l) if l.signer.kid() == current.public.kid => l.signer.clone(),
            _ => Arc::new(self.sealer.open(current).await?),
        };
        *slot = Some(Loaded {
            signer: signer.clone(),
            at: Instant::now(),
        });
        Ok(signer)
    }

    /// Forgets what was read, so the next call reads the store again.
    pub async fn forget(&self) {
        *self.loaded.write().await = None;
    }
}

/// Adds a new key: published at once, signing once it has been published for
/// [`PUBLISH_AHEAD`](rollcall::oidc::keys::PUBLISH_AHEAD), so every verifier and relying party
/// holds it before any token it signed arrives. Keys no live token can need any more (their
/// successor has signed longer than a token lives) are dropped in the same transaction.
/// Returns the new key's id.
pub async fn rotate(store: &Store, sealer: &Sealer) -> Result<String, KeyringError> {
    let stored = store.signing_keys().await?;
    let now = store.clock().now();
    let created: Vec<_> = stored.iter().map(|k| k.created_at).collect();
    let retired: Vec<&StoredKey> = rollcall::oidc::keys::retired(&created, now)
        .into_iter()
        .map(|i| &stored[i])
        .collect();
    let key = SigningKey::generate()?;
    let new = StoredKey {
        public: key.public().clone(),
        sealed: sealer.seal(&key).await?,
        created_at: now,
    };
    store
        .add_signing_key(&new, stored.first(), &retired)
        .await?;
    Ok(new.public.kid)
}

/// Makes the first key if there is none (a fresh deployment or local stack); returns whether it
/// made one.
pub async fn ensure_key(store: &Store, sealer: &Sealer) -> Result<bool, KeyringError> {
    if store.signing_keys().await?.is_empty() {
        match rotate(store, sealer).await {
            Ok(_) => Ok(true),
            // Another instance made it at the same moment.
            Err(KeyringError::Store(StoreError::KeysChanged)) => Ok(false),
            Err(e) => Err(e),
        }
    } else {
        Ok(false)
    }
}
