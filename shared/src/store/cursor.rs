//! Opaque pagination cursors, bound to the tenant and the query they were made for by an
//! HMAC-SHA256, so a cursor can't be forged, edited, or replayed against another tenant.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::PageKey;
use crate::domain::TenantId;

/// A cursor that is not one this service made for this tenant and query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct CursorError;

/// Seals and opens cursors with a secret key.
#[derive(Clone)]
pub struct CursorSigner {
    key: std::sync::Arc<SecretString>,
}

impl std::fmt::Debug for CursorSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorSigner(..)")
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    t: String,
    q: String,
    k: PageKey,
}

impl CursorSigner {
    /// A signer using `key`.
    pub fn new(key: SecretString) -> Self {
        CursorSigner {
            key: std::sync::Arc::new(key),
        }
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(data);
        mac
    }

    /// Makes an opaque cursor for `key`, valid only for `tenant` and the query `fingerprint`.
    pub fn seal(&self, tenant: &TenantId, fingerprint: &str, key: &PageKey) -> String {
        let payload = serde_json::to_vec(&Payload {
            t: tenant.to_string(),
            q: fingerprint.to_owned(),
            k: key.clone(),
        })
        .expect("a page key always serialises");
        let tag = self.mac(&payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Opens a cursor, refusing it unless this signer made it for `tenant` and `fingerprint`.
    pub fn open(
        &self,
        tenant: &TenantId,
        fingerprint: &str,
        cursor: &str,
    ) -> Result<PageKey, CursorError> {
        let (payload, tag) = cursor.split_once('.').ok_or(CursorError)?;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| CursorError)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| CursorError)?;
        self.mac(&payload)
            .verify_slice(&tag)
            .map_err(|_| CursorError)?;
        let p: Payload = serde_json::from_slice(&payload).map_err(|_| CursorError)?;
        if p.t != tenant.as_str() || p.q != fingerprint {
            return Err(CursorError);
        }
        Ok(p.k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> PageKey {
        serde_json::from_value(serde_json::json!({"after": "taro\u{1}01J"})).unwrap()
    }

    fn signer() -> CursorSigner {
        CursorSigner::new(SecretString::from("test-cursor-key"))
    }

    #[test]
    fn a_cursor_opens_only_for_its_tenant_and_query() {
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("other").unwrap();
        let c = signer().seal(&acme, "q1", &key());
        assert_eq!(signer().open(&acme, "q1", &c), Ok(key()));
        assert_eq!(signer().open(&other, "q1", &c), Err(CursorError));
        assert_eq!(signer().open(&acme, "q2", &c), Err(CursorError));
        let stranger = CursorSigner::new(SecretString::from("another-key"));
        assert_eq!(stranger.open(&acme, "q1", &c), Err(CursorError));
    }

    proptest! {
        #[test]
        fn an_edited_cursor_is_refused(pos in 0usize..200, byte in 0u8..=255) {
            let acme = TenantId::parse("acme").unwrap();
            let c = signer().seal(&acme, "q", &key());
            let mut bytes = c.clone().into_bytes();
            let pos = pos % bytes.len();
            prop_assume!(bytes[pos] != byte);
            bytes[pos] = byte;
            if let Ok(edited) = String::from_utf8(bytes) {
                prop_assert_eq!(signer().open(&acme, "q", &edited), Err(CursorError));
            }
        }
    }
}
