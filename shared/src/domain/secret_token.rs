//! Secret tokens: invitation and reset links, authorization codes, refresh tokens, sign-in
//! sessions, client secrets. Each is 256 bits from the operating system's CSPRNG, written
//! base64url (43 characters), and only its SHA-256 is ever stored, so a copy of the table does
//! not let anyone in (a digest of 256 random bits needs no slow hash: there is nothing to guess).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;
/// Characters of a token in base64url without padding.
const TOKEN_CHARS: usize = 43;

/// A secret token, as handed out (in a link, a cookie, a token response). Never logged, never
/// stored: only its [`TokenDigest`] is.
pub struct SecretToken(SecretString);

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(..)")
    }
}

/// A token could not be minted or the text is not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The text does not have the shape of a token.
    #[error("not a token")]
    Malformed,
    /// The system's random source failed.
    #[error("no randomness available")]
    NoRandomness,
}

impl SecretToken {
    /// A fresh token: 256 bits from the system CSPRNG.
    pub fn mint() -> Result<SecretToken, TokenError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TokenError::NoRandomness)?;
        Ok(SecretToken(SecretString::from(
            URL_SAFE_NO_PAD.encode(bytes),
        )))
    }

    /// Accepts text of a token's shape (43 base64url characters); whether it names an
    /// invitation is for the store to say.
    pub fn parse(s: &str) -> Result<SecretToken, TokenError> {
        let shaped = s.len() == TOKEN_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(s).is_ok();
        if shaped {
            Ok(SecretToken(SecretString::from(s.to_owned())))
        } else {
            Err(TokenError::Malformed)
        }
    }

    /// The token, for building the link.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Its SHA-256: the only form that is stored.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest(crate::digest::sha256_hex(self.expose().as_bytes()))
    }
}

/// The SHA-256 of a token, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenDigest(String);

impl TokenDigest {
    /// The digest of `text` (for secrets that are not [`SecretToken`]s).
    pub(crate) fn of_text(text: &str) -> TokenDigest {
        TokenDigest(crate::digest::sha256_hex(text.as_bytes()))
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn minted_tokens_are_43_url_safe_characters_and_all_different() {
        let a = SecretToken::mint().unwrap();
        let b = SecretToken::mint().unwrap();
        assert_eq!(a.expose().len(), 43);
        assert!(SecretToken::parse(a.expose()).is_ok());
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest().as_str().len(), 64);
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn text_that_is_not_token_shaped_is_refused() {
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
        ] {
            assert_eq!(
                SecretToken::parse(bad).err(),
                Some(TokenError::Malformed),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_what_mint_produces(s in "[A-Za-z0-9_-]{43}") {
            // Every 43-character base64url text decodes only when its last character carries no
            // stray bits; parse must agree with the decoder, and never panic.
            let parsed = SecretToken::parse(&s).is_ok();
            prop_assert_eq!(parsed, URL_SAFE_NO_PAD.decode(&s).is_ok());
        }
    }
}
