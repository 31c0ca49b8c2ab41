//! ES256 signing keys (RFC 7518 §3.4: ECDSA on P-256 with SHA-256).
//!
//! A key's id is its RFC 7638 JWK thumbprint, so the id names the public key itself and two
//! keys can never share one. The private half is held as PKCS#8 DER only in memory; at rest it
//! is sealed under KMS by the sign-in function (see `docs/architecture.md`, "Signing keys").

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The system's random source or the crypto library refused to make a key.
    #[error("a signing key could not be generated")]
    Generate,
    /// The bytes are not a PKCS#8 P-256 private key.
    #[error("not a PKCS#8 P-256 private key")]
    Pkcs8,
    /// A public key's coordinates are not a point of P-256.
    #[error("not a P-256 public key: {0}")]
    Public(#[source] jsonwebtoken::errors::Error),
}

/// A public key as a JWK (RFC 7517 §4, RFC 7518 §6.2.1): what `jwks_uri` publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// `EC`.
    pub kty: String,
    /// `P-256`.
    pub crv: String,
    /// The x coordinate, base64url.
    pub x: String,
    /// The y coordinate, base64url.
    pub y: String,
    /// The RFC 7638 thumbprint.
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `ES256`.
    pub alg: String,
}

impl PublicJwk {
    /// The JWK of an uncompressed P-256 point (`04 || x || y`).
    fn from_point(point: &[u8]) -> Result<PublicJwk, KeyError> {
        if point.len() != 65 || point[0] != 4 {
            return Err(KeyError::Pkcs8);
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..]);
        Ok(PublicJwk::new(x, y))
    }

    /// The JWK of coordinates `x`, `y` (base64url), with its thumbprint as `kid`.
    pub fn new(x: String, y: String) -> PublicJwk {
        // RFC 7638 §3.2: the required members in lexicographic order, no white space.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        PublicJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x,
            y,
            kid,
            use_: "sig".into(),
            alg: "ES256".into(),
        }
    }

    /// The key that verifies signatures made by its private half.
    pub fn decoding_key(&self) -> Result<DecodingKey, KeyError> {
        DecodingKey::from_ec_components(&self.x, &self.y).map_err(KeyError::Public)
    }
}

/// A private signing key with its public JWK.
pub struct SigningKey {
    pkcs8: SecretSlice<u8>,
    encoding: EncodingKey,
    public: PublicJwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key from the system CSPRNG.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| KeyError::Generate)?;
        SigningKey::from_pkcs8(doc.as_ref())
    }

    /// The key in `der` (PKCS#8).
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| KeyError::Pkcs8)?;
        let public = PublicJwk::from_point(pair.public_key().as_ref())?;
        Ok(SigningKey {
            pkcs8: SecretSlice::from(der.to_vec()),
            encoding: EncodingKey::from_ec_der(der),
            public,
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.public.kid
    }

    /// The public half.
    pub fn public(&self) -> &PublicJwk {
        &self.public
    }

    /// The PKCS#8 bytes, to be sealed for storage; never to be written anywhere else.
    pub fn pkcs8(&self) -> &[u8] {
        self.pkcs8.expose_secret()
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// How long a new key is published before it signs: longer than any verifier or relying party
/// keeps a key set (instances read again every 5 minutes, `jwks_uri` may be cached 5 minutes),
/// so no token reaches a verifier before the key that verifies it does.
pub const PUBLISH_AHEAD: chrono::Duration = chrono::Duration::minutes(10);

/// The longest an access or ID token lives (a tenant's `access_token_minutes` is at most 60).
pub const MAX_TOKEN_LIFETIME: chrono::Duration = chrono::Duration::minutes(60);

/// Of keys created at `created` (newest first), the one that signs at `now`: the newest that
/// has been published for [`PUBLISH_AHEAD`]; on a fresh deployment, where no key is that old,
/// the oldest (there is no older key set anyone could hold).
pub fn signer_of(
    created: &[chrono::DateTime<chrono::Utc>],
    now: chrono::DateTime<chrono::Utc>,
) -> Option<usize> {
    created
        .iter()
        .position(|c| *c + PUBLISH_AHEAD <= now)
        .or_else(|| created.len().checked_sub(1))
}

/// Of keys created at `created` (newest first), those no token can need at `now`: a key whose
/// successor has signed for longer than [`MAX_TOKEN_LIFETIME`] signed its last token longer
/// ago than that token lives.
pub fn retired(
    created: &[chrono::DateTime<chrono::Utc>],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<usize> {
    (1..created.len())
        .filter(|&i| created[i - 1] + PUBLISH_AHEAD + MAX_TOKEN_LIFETIME < now)
        .collect()
}

/// The public keys a verifier accepts, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<(PublicJwk, DecodingKey)>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(k, _)| &k.kid))
            .finish()
    }
}

impl KeySet {
    /// The set of `keys`; a key whose coordinates are not a P-256 point is an error.
    pub fn new(keys: Vec<PublicJwk>) -> Result<KeySet, KeyError> {
        let keys = keys
            .into_iter()
            .map(|k| k.decoding_key().map(|d| (k, d)))
            .collect::<Result<_, _>>()?;
        Ok(KeySet { keys })
    }

    /// The key with id `kid`.
    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.iter().find(|(k, _)| k.kid == kid).map(|(_, d)| d)
    }

    /// The JWKs, for `jwks_uri` (RFC 7517 §5).
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.keys.iter().map(|(k, _)| k).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_its_pkcs8_and_its_id_is_the_rfc_7638_thumbprint() {
        let k = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(k.pkcs8()).unwrap();
        assert_eq!(k.public(), again.public());
        assert_eq!(k.kid().len(), 43);
        assert!(!format!("{k:?}").contains(&URL_SAFE_NO_PAD.encode(k.pkcs8())));
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
    }

    #[test]
    fn a_new_key_signs_only_once_published_long_enough_and_old_keys_leave_after_their_tokens() {
        use chrono::{Duration, TimeZone, Utc};
        let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        // A fresh deployment: its one key signs at once.
        assert_eq!(signer_of(&[t0], t0), Some(0));
        assert_eq!(signer_of(&[], t0), None);
        // Rotated at t1: the old key signs for ten more minutes, then the new one.
        let t1 = t0 + Duration::days(30);
        let keys = [t1, t0];
        assert_eq!(signer_of(&keys, t1 + Duration::minutes(9)), Some(1));
        assert_eq!(signer_of(&keys, t1 + Duration::minutes(10)), Some(0));
        // The old key stays while its last tokens may live (10 + 60 minutes), then goes.
        assert!(retired(&keys, t1 + Duration::minutes(70)).is_empty());
        assert_eq!(retired(&keys, t1 + Duration::minutes(71)), vec![1]);
        // Two rotations in a row: neither new key signs before its time, and nothing is
        // dropped that may still verify a token.
        let t2 = t1 + Duration::minutes(5);
        let keys = [t2, t1, t0];
        assert_eq!(signer_of(&keys, t2), Some(2));
        assert_eq!(signer_of(&keys, t2 + Duration::minutes(10)), Some(0));
        assert_eq!(retired(&keys, t2 + Duration::minutes(75)), vec![1, 2]);
    }

    #[test]
    fn a_public_key_is_two_32_byte_coordinates() {
        let k = SigningKey::generate().unwrap();
        for c in [&k.public().x, &k.public().y] {
            assert_eq!(URL_SAFE_NO_PAD.decode(c).unwrap().len(), 32);
        }
        let set = KeySet::new(vec![k.public().clone()]).unwrap();
        assert!(set.get(k.kid()).is_some());
        assert!(set.get("other").is_none());
        assert_eq!(set.jwks()["keys"][0]["kid"], k.kid());
    }
}
