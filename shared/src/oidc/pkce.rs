//! Proof Key for Code Exchange (RFC 7636), `S256` only: `plain` would let anyone who sees the
//! authorization request redeem the code (RFC 9700 §2.1.1 says to use S256).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What was wrong with a PKCE parameter (each maps to `invalid_request` or `invalid_grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    /// No `code_challenge` on the authorization request: PKCE is required for every client.
    #[error("code_challenge is required (PKCE, RFC 7636)")]
    Missing,
    /// A method other than `S256`.
    #[error("code_challenge_method must be S256")]
    Method,
    /// A challenge that is not 43 base64url characters (the S256 of anything).
    #[error("code_challenge must be 43 base64url characters (RFC 7636 §4.2)")]
    Challenge,
    /// A verifier that is not 43–128 unreserved characters (RFC 7636 §4.1).
    #[error("code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~")]
    Verifier,
    /// The verifier does not hash to the challenge.
    #[error("code_verifier does not match the code_challenge")]
    Mismatch,
}

/// An `S256` code challenge, as sent on the authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// Checks the authorization request's `code_challenge` and `code_challenge_method`. An
    /// absent method means `plain` (RFC 7636 §4.3), which is refused.
    pub fn parse(
        challenge: Option<&str>,
        method: Option<&str>,
    ) -> Result<CodeChallenge, PkceError> {
        let challenge = challenge.ok_or(PkceError::Missing)?;
        if method != Some("S256") {
            return Err(PkceError::Method);
        }
        CodeChallenge::try_from(challenge.to_owned())
    }

    /// Whether `verifier` (from the token request) is the one this challenge was made from.
    pub fn verify(&self, verifier: &str) -> Result<(), PkceError> {
        let shaped = (43..=128).contains(&verifier.len())
            && verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if !shaped {
            return Err(PkceError::Verifier);
        }
        let computed = s256(verifier);
        // Both sides are public once the code is redeemed; the comparison still takes the same
        // time whatever the first differing byte.
        let same = computed.len() == self.0.len()
            && computed
                .bytes()
                .zip(self.0.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if same {
            Ok(())
        } else {
            Err(PkceError::Mismatch)
        }
    }
}

/// The `S256` challenge of `verifier`: BASE64URL(SHA256(verifier)) (RFC 7636 §4.2), for
/// clients (the CLI, the local tour) that make one.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl TryFrom<String> for CodeChallenge {
    type Error = PkceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let shaped = s.len() == 43
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && URL_SAFE_NO_PAD.decode(&s).is_ok();
        if shaped {
            Ok(CodeChallenge(s))
        } else {
            Err(PkceError::Challenge)
        }
    }
}

impl From<CodeChallenge> for String {
    fn from(c: CodeChallenge) -> String {
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn the_rfc_example_verifies() {
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert_eq!(c.verify(VERIFIER), Ok(()));
        assert_eq!(
            c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"),
            Err(PkceError::Mismatch)
        );
    }

    #[test]
    fn plain_missing_and_malformed_are_refused() {
        assert_eq!(
            CodeChallenge::parse(None, Some("S256")),
            Err(PkceError::Missing)
        );
        assert_eq!(
            CodeChallenge::parse(Some(CHALLENGE), None),
            Err(PkceError::Method)
        );
        assert_eq!(
            CodeChallenge::parse(Some(CHALLENGE), Some("plain")),
            Err(PkceError::Method)
        );
        assert_eq!(
            CodeChallenge::parse(Some("short"), Some("S256")),
            Err(PkceError::Challenge)
        );
        let c = CodeChallenge::parse(Some(CHALLENGE), Some("S256")).unwrap();
        assert_eq!(c.verify("short"), Err(PkceError::Verifier));
        assert_eq!(c.verify(&"a".repeat(129)), Err(PkceError::Verifier));
        assert_eq!(
            c.verify(&format!("{}!", "a".repeat(43))),
            Err(PkceError::Verifier)
        );
    }
}
