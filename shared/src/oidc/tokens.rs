//! The tokens rollcall signs: the ID token (OIDC Core §2) and the access token, a JWT in the
//! shape of RFC 9068. Both are ES256 with the signing key's thumbprint as `kid`.
//!
//! Verification takes "now" from the caller (the injectable clock), not the system: expiry is
//! checked here rather than by `jsonwebtoken`, whose check reads the system time.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use super::keys::{KeySet, SigningKey};

/// Seconds of clock skew tolerated on `exp` and `iat` between rollcall's instances.
pub const LEEWAY_SECONDS: i64 = 30;

/// The ID token's claims.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdClaims {
    /// The issuer: `{PUBLIC_BASE_URL}/t/{tenant}`.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The client id.
    pub aud: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user authenticated (OIDC Core §2, required with `max_age`).
    pub auth_time: i64,
    /// The `nonce` of the authorization request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// How the user authenticated (RFC 8176: `pwd`, `otp`).
    pub amr: Vec<String>,
    /// The session the token belongs to (OIDC Front-Channel Logout §3 `sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `email` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `email` scope: addresses reach rollcall's users by the invitation they accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// `profile` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `profile` scope: the login id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// `profile` scope: `ja` or `en`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// `profile` scope: an IANA time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<String>,
    /// The tenant id.
    pub tenant: String,
}

/// The access token's claims (RFC 9068 §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The resource it is for: rollcall's API (scope `rollcall`) or the client itself.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// A unique id.
    pub jti: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The granted scopes, space-separated.
    pub scope: String,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The tenant.
    pub tenant: String,
    /// The management role at issue (rollcall's API reads the current one from the store).
    pub role: String,
    /// The grant it belongs to (the code redeemed, and the refresh tokens rotated from it):
    /// revoking the grant ends it at rollcall's API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
}

/// Which token a JWT is meant to be: the `typ` header tells them apart (RFC 9068 §2.1), so an
/// ID token can't be presented as an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `typ: JWT`.
    Id,
    /// `typ: at+jwt`.
    Access,
}

impl TokenKind {
    fn typ(self) -> &'static str {
        match self {
            TokenKind::Id => "JWT",
            TokenKind::Access => "at+jwt",
        }
    }
}

/// Why a token was not accepted. Each is the caller's fault; none is worth a retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT, not ES256, a `typ` of another kind, an unknown `kid`, a bad signature, or
    /// claims of the wrong shape.
    #[error("the token is malformed or its signature does not verify")]
    Invalid,
    /// Another issuer (e.g. another tenant) or another audience.
    #[error("the token was issued by another issuer or for another audience")]
    WrongParty,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
}

/// Signs `claims` as a token of `kind`.
pub fn sign<T: Serialize>(
    key: &SigningKey,
    kind: TokenKind,
    claims: &T,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid().to_owned());
    header.typ = Some(kind.typ().to_owned());
    jsonwebtoken::encode(&header, claims, key.encoding_key())
}

/// What a verified token must say.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// The issuer.
    pub issuer: &'a str,
    /// The audience; `None` accepts any (the provider's own `userinfo` takes every access token
    /// it issued).
    pub audience: Option<&'a str>,
    /// Now, seconds since the epoch.
    pub now: i64,
}

/// Verifies an access token: ES256 under a key of `keys`, `typ: at+jwt`, the expected issuer
/// and audience, not expired.
pub fn verify_access(
    token: &str,
    keys: &KeySet,
    expect: Expect<'_>,
) -> Result<AccessClaims, VerifyError> {
    let claims: AccessClaims = verify(token, keys, TokenKind::Access)?;
    check(&claims.iss, &claims.aud, claims.exp, expect)?;
    Ok(claims)
}

/// Verifies an access token of `issuer` for any audience, past its expiry too: what revocation
/// (RFC 7009) needs, since an expired token's grant lives on.
pub fn verify_access_of_any_age(
    token: &str,
    keys: &KeySet,
    issuer: &str,
) -> Result<AccessClaims, VerifyError> {
    let claims: AccessClaims = verify(token, keys, TokenKind::Access)?;
    if claims.iss != issuer {
        return Err(VerifyError::WrongParty);
    }
    Ok(claims)
}

/// Verifies an access token presented to rollcall's own API at `base` (`PUBLIC_BASE_URL`):
/// issued by the issuer of the tenant it names (`{base}/t/{tenant}`) for the audience `base`,
/// so a token any tenant issued for an application is refused, as is one naming a tenant other
/// than its issuer's.
pub fn verify_for_api(
    token: &str,
    keys: &KeySet,
    base: &str,
    now: i64,
) -> Result<AccessClaims, VerifyError> {
    let claims: AccessClaims = verify(token, keys, TokenKind::Access)?;
    let issuer = format!("{base}/t/{}", claims.tenant);
    check(
        &claims.iss,
        &claims.aud,
        claims.exp,
        Expect {
            issuer: &issuer,
            audience: Some(base),
            now,
        },
    )?;
    Ok(claims)
}

/// Whether a JWT says it is an access token (`typ: at+jwt`), read without verifying anything:
/// only to choose which verifier gets to verify it.
pub fn looks_like_access_token(token: &str) -> bool {
    jsonwebtoken::decode_header(token).is_ok_and(|h| h.typ.as_deref() == Some("at+jwt"))
}

/// Verifies an ID token the same way (`typ: JWT`), e.g. an `id_token_hint`. An expired one is
/// accepted when `allow_expired` (RP-initiated logout reads hints after their expiry).
pub fn verify_id(
    token: &str,
    keys: &KeySet,
    expect: Expect<'_>,
    allow_expired: bool,
) -> Result<IdClaims, VerifyError> {
    let claims: IdClaims = verify(token, keys, TokenKind::Id)?;
    match check(&claims.iss, &claims.aud, claims.exp, expect) {
        Err(VerifyError::Expired) if allow_expired => Ok(claims),
        other => other.map(|()| claims),
    }
}

fn verify<T: serde::de::DeserializeOwned>(
    token: &str,
    keys: &KeySet,
    kind: TokenKind,
) -> Result<T, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Invalid)?;
    // Only ES256: `none`, HS256 with the public key as secret and the like never get a say.
    if header.alg != Algorithm::ES256 || header.typ.as_deref() != Some(kind.typ()) {
        return Err(VerifyError::Invalid);
    }
    let key = header
        .kid
        .as_deref()
        .and_then(|k| keys.get(k))
        .ok_or(VerifyError::Invalid)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<T>(token, key, &validation)
        .map(|d| d.claims)
        .map_err(|_| VerifyError::Invalid)
}

fn check(iss: &str, aud: &str, exp: i64, expect: Expect<'_>) -> Result<(), VerifyError> {
    if iss != expect.issuer || expect.audience.is_some_and(|a| a != aud) {
        return Err(VerifyError::WrongParty);
    }
    if exp + LEEWAY_SECONDS <= expect.now {
        return Err(VerifyError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(now: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://id.example.com/t/acme".into(),
            sub: "01J0000000000000000000000A".into(),
            aud: "https://id.example.com".into(),
            exp: now + 900,
            iat: now,
            jti: "j".into(),
            client_id: "c".into(),
            scope: "openid rollcall".into(),
            auth_time: now,
            tenant: "acme".into(),
            role: "admin".into(),
            grant_id: None,
        }
    }

    const NOW: i64 = 1_900_000_000;

    fn expect(now: i64) -> Expect<'static> {
        Expect {
            issuer: "https://id.example.com/t/acme",
            audience: Some("https://id.example.com"),
            now,
        }
    }

    #[test]
    fn a_signed_access_token_verifies_until_it_expires() {
        let key = SigningKey::generate().unwrap();
        let keys = KeySet::new(vec![key.public().clone()]).unwrap();
        let t = sign(&key, TokenKind::Access, &access(NOW)).unwrap();
        assert_eq!(verify_access(&t, &keys, expect(NOW)).unwrap(), access(NOW));
        assert!(verify_access(&t, &keys, expect(NOW + 900 + LEEWAY_SECONDS - 1)).is_ok());
        assert_eq!(
            verify_access(&t, &keys, expect(NOW + 900 + LEEWAY_SECONDS)),
            Err(VerifyError::Expired)
        );
    }

    #[test]
    fn another_tenant_another_audience_another_key_or_kind_is_refused() {
        let key = SigningKey::generate().unwrap();
        let keys = KeySet::new(vec![key.public().clone()]).unwrap();
        let t = sign(&key, TokenKind::Access, &access(NOW)).unwrap();
        let other_tenant = Expect {
            issuer: "https://id.example.com/t/globex",
            ..expect(NOW)
        };
        assert_eq!(
            verify_access(&t, &keys, other_tenant),
            Err(VerifyError::WrongParty)
        );
        let other_aud = Expect {
            audience: Some("client-1"),
            ..expect(NOW)
        };
        assert_eq!(
            verify_access(&t, &keys, other_aud),
            Err(VerifyError::WrongParty)
        );

        let stranger = SigningKey::generate().unwrap();
        let forged = sign(&stranger, TokenKind::Access, &access(NOW)).unwrap();
        assert_eq!(
            verify_access(&forged, &keys, expect(NOW)),
            Err(VerifyError::Invalid)
        );

        // The same claims signed as an ID token are not an access token.
        let as_id = sign(&key, TokenKind::Id, &access(NOW)).unwrap();
        assert_eq!(
            verify_access(&as_id, &keys, expect(NOW)),
            Err(VerifyError::Invalid)
        );
    }

    #[test]
    fn the_api_takes_only_tokens_for_itself_from_the_tenant_they_name() {
        let key = SigningKey::generate().unwrap();
        let keys = KeySet::new(vec![key.public().clone()]).unwrap();
        let base = "https://id.example.com";
        let good = sign(&key, TokenKind::Access, &access(NOW)).unwrap();
        assert!(looks_like_access_token(&good));
        assert_eq!(
            verify_for_api(&good, &keys, base, NOW).unwrap().tenant,
            "acme"
        );
        // A token for an application, or naming a tenant its issuer is not.
        let for_app = AccessClaims {
            aud: "client-1".into(),
            ..access(NOW)
        };
        let other_tenant = AccessClaims {
            tenant: "globex".into(),
            ..access(NOW)
        };
        for claims in [for_app, other_tenant] {
            let t = sign(&key, TokenKind::Access, &claims).unwrap();
            assert_eq!(
                verify_for_api(&t, &keys, base, NOW),
                Err(VerifyError::WrongParty)
            );
        }
        assert!(!looks_like_access_token(
            &sign(&key, TokenKind::Id, &access(NOW)).unwrap()
        ));
    }

    #[test]
    fn revocation_reads_an_expired_token_of_its_own_issuer_only() {
        let key = SigningKey::generate().unwrap();
        let keys = KeySet::new(vec![key.public().clone()]).unwrap();
        let old = AccessClaims {
            exp: NOW - 86_400,
            ..access(NOW - 90_000)
        };
        let t = sign(&key, TokenKind::Access, &old).unwrap();
        assert_eq!(
            verify_access(&t, &keys, expect(NOW)),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            verify_access_of_any_age(&t, &keys, "https://id.example.com/t/acme"),
            Ok(old)
        );
        assert_eq!(
            verify_access_of_any_age(&t, &keys, "https://id.example.com/t/globex"),
            Err(VerifyError::WrongParty)
        );
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        let key = SigningKey::generate().unwrap();
        let keys = KeySet::new(vec![key.public().clone()]).unwrap();
        use base64::Engine;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let header = serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": key.kid()});
        let claims = serde_json::to_value(access(NOW)).unwrap();
        let unsigned = format!("{}.{}.", b64(&header), b64(&claims));
        for bad in [unsigned.as_str(), "", "a.b.c", "not a jwt"] {
            assert_eq!(
                verify_access(bad, &keys, expect(NOW)),
                Err(VerifyError::Invalid)
            );
        }
    }
}
