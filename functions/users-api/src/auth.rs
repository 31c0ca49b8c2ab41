//! Bearer-token authentication. The token is a JWT whose claims name the tenant, the user
//! (`sub`) and the management role; it is verified here, in the function, against keys from
//! configuration. The tenant comes only from the token: nothing in a path or body can name
//! another tenant.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rollcall::config::{self, ConfigError};
use rollcall::domain::{Role, TenantId, UserId};
use rollcall::oidc::PublishedKeys;
use rollcall::oidc::tokens::{self, VerifyError};
use rollcall::store::Store;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::problem::{ApiError, AuthFailure};

/// The claims rollcall reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant.
    pub tenant: String,
    /// The user id.
    pub sub: String,
    /// `admin`, `manager` or `member`.
    pub role: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Their tenant: every read and write is confined to it.
    pub tenant: TenantId,
    /// Their user id.
    pub user_id: UserId,
    /// Their management role.
    pub role: Role,
}

impl Caller {
    /// Admins only: anyone else gets 403.
    pub fn ensure_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// Where the keys that verify tokens come from.
#[derive(Debug, Default)]
pub struct TokenSettings {
    /// A shared HS256 secret (at least 32 characters).
    pub hs256_secret: Option<SecretString>,
    /// The identity provider's public key, PEM.
    pub public_key_pem: Option<String>,
    /// `RS256` (default) or `ES256`, for the public key.
    pub algorithm: Option<String>,
    /// The required `iss` claim.
    pub issuer: Option<String>,
    /// The required `aud` claim.
    pub audience: Option<String>,
    /// Tokens rollcall issues are accepted too (`PUBLIC_BASE_URL` is set): then neither key is
    /// required.
    pub rollcall_issued: bool,
}

/// Verifies tokens: an HS256 shared secret (local use and simple deployments) and/or a public
/// key (RS256 or ES256) of the identity provider.
pub struct TokenVerifier {
    keys: Vec<(Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "algorithms",
                &self.keys.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            )
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl TokenVerifier {
    /// Verifies HS256 tokens signed with `secret`.
    pub fn hs256(secret: &SecretString) -> Self {
        TokenVerifier {
            keys: vec![(
                Algorithm::HS256,
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            )],
            issuer: None,
            audience: None,
        }
    }

    /// Reads `JWT_HS256_SECRET`, `JWT_PUBLIC_KEY_PEM` (with `JWT_ALGORITHM`, RS256 by default),
    /// `JWT_ISSUER` and `JWT_AUDIENCE`. At least one key is required.
    pub fn from_env() -> Result<Self, ConfigError> {
        TokenVerifier::from_settings(TokenSettings {
            hs256_secret: config::optional("JWT_HS256_SECRET").map(SecretString::from),
            public_key_pem: config::optional("JWT_PUBLIC_KEY_PEM"),
            algorithm: config::optional("JWT_ALGORITHM"),
            issuer: config::optional("JWT_ISSUER"),
            audience: config::optional("JWT_AUDIENCE"),
            rollcall_issued: config::optional("PUBLIC_BASE_URL").is_some(),
        })
    }

    /// Builds a verifier from settings, refusing weak or unusable keys.
    pub fn from_settings(s: TokenSettings) -> Result<Self, ConfigError> {
        let mut keys = Vec::new();
        if let Some(secret) = s.hs256_secret {
            if secret.expose_secret().len() < 32 {
                return Err(ConfigError::Invalid {
                    name: "JWT_HS256_SECRET",
                    reason: "must be at least 32 characters".into(),
                });
            }
            keys.push((
                Algorithm::HS256,
                DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            ));
        }
        if let Some(pem) = s.public_key_pem {
            let alg = match s.algorithm.as_deref() {
                None | Some("RS256") => Algorithm::RS256,
                Some("ES256") => Algorithm::ES256,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: "JWT_ALGORITHM",
                        reason: format!("{other} is not supported; use RS256 or ES256"),
                    });
                }
            };
            let key = match alg {
                Algorithm::ES256 => DecodingKey::from_ec_pem(pem.as_bytes()),
                _ => DecodingKey::from_rsa_pem(pem.as_bytes()),
            }
            .map_err(|e| ConfigError::Invalid {
                name: "JWT_PUBLIC_KEY_PEM",
                reason: e.to_string(),
            })?;
            keys.push((alg, key));
        }
        if keys.is_empty() && !s.rollcall_issued {
            return Err(ConfigError::Missing(
                "PUBLIC_BASE_URL, JWT_HS256_SECRET or JWT_PUBLIC_KEY_PEM",
            ));
        }
        Ok(TokenVerifier {
            keys,
            issuer: s.issuer,
            audience: s.audience,
        })
    }

    /// Verifies a token and returns its caller.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthFailure> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::Invalid)?;
        let (alg, key) = self
            .keys
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .ok_or(AuthFailure::Invalid)?;
        let mut validation = Validation::new(*alg);
        validation.leeway = 30;
        // A configured issuer or audience must be present in the token, not merely match when
        // present: jsonwebtoken checks only the claims it is told are required.
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => AuthFailure::Expired,
            _ => AuthFailure::Invalid,
        })?;
        let c = data.claims;
        Ok(Caller {
            tenant: TenantId::parse(&c.tenant).map_err(|_| AuthFailure::Invalid)?,
            user_id: UserId::parse(&c.sub).map_err(|_| AuthFailure::Invalid)?,
            role: c.role.parse().map_err(|_| AuthFailure::Invalid)?,
        })
    }
}

/// Signs an HS256 token for `caller`, valid for `ttl_seconds`: for the local stack, the CLI's
/// `rollcall token` and tests. Production tokens come from the identity provider.
pub fn issue_hs256(
    secret: &SecretString,
    tenant: &TenantId,
    user: &UserId,
    role: Role,
    ttl_seconds: u64,
) -> Result<String, jsonwebtoken::errors::Error> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        tenant: tenant.to_string(),
        sub: user.to_string(),
        role: role.as_str().to_owned(),
        exp: now + ttl_seconds,
        iat: Some(now),
        iss: None,
        aud: None,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )
}

/// Tokens rollcall's own sign-in issued for this API: verified against the deployment's
/// published keys, and their caller read from the store on every request, so a suspension,
/// a demotion, a deletion, a revoked grant or "sign out everywhere" takes effect at once.
#[derive(Debug)]
pub struct IssuedTokens {
    /// `PUBLIC_BASE_URL`: the audience of tokens for this API, and the issuers' prefix.
    pub base: String,
    /// The public keys.
    pub keys: PublishedKeys,
}

impl IssuedTokens {
    /// The caller of a rollcall access token: one read (the user, their sign-in record and the
    /// token's grant, in one `BatchGetItem`).
    pub async fn caller(&self, store: &Store, token: &str) -> Result<Caller, ApiError> {
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
        let keys = self
            .keys
            .for_kid(kid.as_deref())
            .await
            .map_err(ApiError::internal)?;
        let now = store.clock().now();
        let claims = tokens::verify_for_api(token, &keys, &self.base, now.timestamp()).map_err(
            |e| match e {
                VerifyError::Expired => ApiError::Unauthenticated(AuthFailure::Expired),
                VerifyError::Invalid | VerifyError::WrongParty => {
                    ApiError::Unauthenticated(AuthFailure::Invalid)
                }
            },
        )?;
        let invalid = || ApiError::Unauthenticated(AuthFailure::Invalid);
        let tenant = TenantId::parse(&claims.tenant).map_err(|_| invalid())?;
        let user_id = UserId::parse(&claims.sub).map_err(|_| invalid())?;
        let found = store
            .caller_state(&tenant, &user_id, claims.grant_id.as_deref())
            .await?;
        let revoked = || ApiError::Unauthenticated(AuthFailure::Revoked);
        let user = found.user.ok_or_else(revoked)?;
        let zone = found.tenant.ok_or_else(revoked)?.billing_time_zone;
        let issued_at = chrono::DateTime::from_timestamp(claims.iat, 0).ok_or_else(invalid)?;
        if found.grant_revoked
            || found.sign_in.revokes(issued_at)
            || user.may_sign_in(now, zone).is_err()
        {
            return Err(revoked());
        }
        Ok(Caller {
            tenant,
            user_id,
            role: user.profile.role,
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthenticated(AuthFailure::Missing))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Unauthenticated(AuthFailure::Invalid))?;
        if let Some(issued) = &state.issued
            && tokens::looks_like_access_token(token)
        {
            return issued.caller(&state.store, token).await;
        }
        state
            .verifier
            .verify(token)
            .map_err(ApiError::Unauthenticated)
    }
}

/// Shared ownership of the verifier for the router state.
pub type SharedVerifier = Arc<TokenVerifier>;

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("a-test-secret-of-at-least-32-characters!")
    }

    #[test]
    fn a_token_signed_with_the_key_names_its_caller() {
        let t = TenantId::parse("acme").unwrap();
        let u = UserId::generate();
        let token = issue_hs256(&secret(), &t, &u, Role::Manager, 60).unwrap();
        let caller = TokenVerifier::hs256(&secret()).verify(&token).unwrap();
        assert_eq!(
            caller,
            Caller {
                tenant: t,
                user_id: u,
                role: Role::Manager
            }
        );
    }

    #[test]
    fn tokens_with_another_key_or_garbage_are_refused() {
        let t = TenantId::parse("acme").unwrap();
        let token = issue_hs256(&secret(), &t, &UserId::generate(), Role::Admin, 60).unwrap();
        let other = TokenVerifier::hs256(&SecretString::from(
            "another-secret-of-32-characters-or-more",
        ));
        assert_eq!(other.verify(&token), Err(AuthFailure::Invalid));
        assert_eq!(
            TokenVerifier::hs256(&secret()).verify("not.a.jwt"),
            Err(AuthFailure::Invalid)
        );
    }

    fn signed(tenant: &str, role: &str, exp: u64) -> String {
        let claims = Claims {
            tenant: tenant.into(),
            sub: UserId::generate().to_string(),
            role: role.into(),
            exp,
            iat: None,
            iss: None,
            aud: None,
        };
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret().expose_secret().as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn an_expired_token_is_reported_as_expired() {
        let token = signed(
            "acme",
            "admin",
            jsonwebtoken::get_current_timestamp() - 3600,
        );
        assert_eq!(
            TokenVerifier::hs256(&secret()).verify(&token),
            Err(AuthFailure::Expired)
        );
    }

    #[test]
    fn a_token_with_an_unknown_role_or_bad_tenant_is_invalid() {
        for (tenant, role) in [("acme", "owner"), ("ACME#x", "admin")] {
            let token = signed(tenant, role, jsonwebtoken::get_current_timestamp() + 60);
            assert_eq!(
                TokenVerifier::hs256(&secret()).verify(&token),
                Err(AuthFailure::Invalid),
                "{tenant} {role}"
            );
        }
    }

    /// A fresh P-256 key pair: the private key for signing (PKCS#8 DER) and the public key as
    /// the PEM an identity provider publishes.
    fn es256_pair() -> (EncodingKey, String) {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        use base64::Engine;
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        // SubjectPublicKeyInfo for id-ecPublicKey / prime256v1, then the uncompressed point.
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(pair.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&spki);
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
        (EncodingKey::from_ec_der(pkcs8.as_ref()), pem)
    }

    fn es256_token(key: &EncodingKey, iss: Option<&str>, aud: Option<&str>) -> String {
        let claims = Claims {
            tenant: "acme".into(),
            sub: UserId::generate().to_string(),
            role: "member".into(),
            exp: jsonwebtoken::get_current_timestamp() + 60,
            iat: None,
            iss: iss.map(str::to_owned),
            aud: aud.map(str::to_owned),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, key).unwrap()
    }

    #[test]
    fn tokens_from_an_identity_provider_are_verified_with_its_public_key_issuer_and_audience() {
        let (signing, pem) = es256_pair();
        let verifier = TokenVerifier::from_settings(TokenSettings {
            public_key_pem: Some(pem),
            algorithm: Some("ES256".into()),
            issuer: Some("https://idp.example".into()),
            audience: Some("rollcall".into()),
            ..TokenSettings::default()
        })
        .unwrap();
        let good = es256_token(&signing, Some("https://idp.example"), Some("rollcall"));
        assert_eq!(verifier.verify(&good).unwrap().role, Role::Member);
        for bad in [
            es256_token(&signing, Some("https://evil.example"), Some("rollcall")),
            es256_token(&signing, Some("https://idp.example"), Some("another-app")),
            es256_token(&signing, None, Some("rollcall")),
            es256_token(&signing, Some("https://idp.example"), None),
            es256_token(
                &es256_pair().0,
                Some("https://idp.example"),
                Some("rollcall"),
            ),
        ] {
            assert_eq!(verifier.verify(&bad), Err(AuthFailure::Invalid));
        }
        // An HS256 token can't pass where only the public key is configured.
        let hs = issue_hs256(
            &secret(),
            &TenantId::parse("acme").unwrap(),
            &UserId::generate(),
            Role::Admin,
            60,
        )
        .unwrap();
        assert_eq!(verifier.verify(&hs), Err(AuthFailure::Invalid));
    }

    #[test]
    fn weak_missing_or_unusable_keys_refuse_to_start() {
        let short = TokenVerifier::from_settings(TokenSettings {
            hs256_secret: Some(SecretString::from("too-short")),
            ..TokenSettings::default()
        });
        assert!(matches!(
            short,
            Err(ConfigError::Invalid {
                name: "JWT_HS256_SECRET",
                ..
            })
        ));
        assert!(matches!(
            TokenVerifier::from_settings(TokenSettings::default()),
            Err(ConfigError::Missing(_))
        ));
        let garbage = TokenVerifier::from_settings(TokenSettings {
            public_key_pem: Some("not a key".into()),
            ..TokenSettings::default()
        });
        assert!(matches!(
            garbage,
            Err(ConfigError::Invalid {
                name: "JWT_PUBLIC_KEY_PEM",
                ..
            })
        ));
        let alg = TokenVerifier::from_settings(TokenSettings {
            public_key_pem: Some(es256_pair().1),
            algorithm: Some("none".into()),
            ..TokenSettings::default()
        });
        assert!(matches!(
            alg,
            Err(ConfigError::Invalid {
                name: "JWT_ALGORITHM",
                ..
            })
        ));
    }
}
