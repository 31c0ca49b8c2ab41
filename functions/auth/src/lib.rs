//! # auth
//!
//! rollcall's sign-in: each tenant's OpenID Provider at `{PUBLIC_BASE_URL}/t/{tenant}`. An axum
//! [`Router`] that the Lambda runtime drives through `lambda_http` behind the same HTTP API as
//! users-api, and that `rollcall dev` and the tests serve over plain HTTP.
//!
//! - `/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4) and `/jwks.json`;
//! - `/authorize` (RFC 6749 §4.1, RFC 7636, OIDC Core §3.1.2): the sign-in page, `/signin` its
//!   form;
//! - `/token` (RFC 6749 §3.2, §4.1.3, §6), `/userinfo` (OIDC Core §5.3), `/revoke` (RFC 7009),
//!   `/logout` (OpenID Connect RP-Initiated Logout 1.0).
//!
//! It is its own function, with its own role: it alone may `kms:Decrypt` the signing keys and
//! it never needs users-api's rights (imports, exports, the bucket).

pub mod account;
pub mod authorize;
pub mod discovery;
pub mod error;
pub mod forgot;
pub mod keyring;
pub mod links;
pub mod logout;
pub mod pages;
pub mod second_step;
pub mod session;
pub mod signin;
pub mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, get, post};
use rollcall::config::{self, ConfigError, StoreConfig};
use rollcall::domain::TenantId;
use rollcall::store::Store;

use crate::keyring::Keyring;

/// Lifetimes of what the provider issues.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// An authorization code (RFC 6749 §4.1.2 recommends at most 10 minutes; rollcall: 60 s).
    /// Token lifetimes are the tenant's ([`rollcall::domain::SignInPolicy`]).
    pub code: Duration,
    /// A browser session at the provider.
    pub session: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            code: Duration::from_secs(60),
            session: Duration::from_secs(12 * 3600),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct AuthState {
    /// The store.
    pub store: Store,
    /// The key that signs.
    pub keys: Arc<Keyring>,
    /// The public keys that verify (the JWKS).
    pub published: Arc<rollcall::oidc::PublishedKeys>,
    /// `https://id.example.com`: issuers are `{base}/t/{tenant}`, and access tokens for
    /// rollcall's own API carry it as their audience.
    pub public_base_url: Arc<str>,
    /// Lifetimes.
    pub lifetimes: Lifetimes,
}

impl AuthState {
    /// State over `store` and `keys`, at `public_base_url` (no trailing slash).
    pub fn new(store: Store, keys: Keyring, public_base_url: &str) -> Self {
        AuthState {
            store: store.clone(),
            keys: Arc::new(keys),
            published: Arc::new(rollcall::oidc::PublishedKeys::new(store.clone())),
            public_base_url: Arc::from(public_base_url.trim_end_matches('/')),
            lifetimes: Lifetimes::default(),
        }
    }

    /// The issuer of `tenant` (OIDC Core §2 `iss`; Discovery §4.3 says it must equal the URL
    /// the configuration was fetched under, minus the well-known suffix).
    pub fn issuer(&self, tenant: &TenantId) -> String {
        format!("{}/t/{tenant}", self.public_base_url)
    }

    /// The public keys, read again if none is `token`'s `kid`.
    pub async fn verifying_keys(
        &self,
        token: &str,
    ) -> Result<rollcall::oidc::KeySet, rollcall::oidc::PublishedKeysError> {
        let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
        self.published.for_kid(kid.as_deref()).await
    }

    /// Whether the public URL is `https` (cookies then carry `Secure` and the `__Host-` prefix).
    pub fn secure(&self) -> bool {
        self.public_base_url.starts_with("https://")
    }
}

/// The function's configuration.
#[derive(Debug)]
pub struct AuthConfig {
    /// Where the users are.
    pub store: StoreConfig,
    /// `PUBLIC_BASE_URL`.
    pub public_base_url: String,
    /// `SIGNING_KEY_KMS_KEY_ID`: the KMS key that seals the signing keys.
    pub kms_key_id: String,
}

impl AuthConfig {
    /// Reads `TABLE_NAME`, `PUBLIC_BASE_URL` and `SIGNING_KEY_KMS_KEY_ID`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let public_base_url = config::required("PUBLIC_BASE_URL")?;
        if !(public_base_url.starts_with("https://") || public_base_url.starts_with("http://")) {
            return Err(ConfigError::Invalid {
                name: "PUBLIC_BASE_URL",
                reason: "must be an absolute http(s) URL".into(),
            });
        }
        Ok(AuthConfig {
            store: StoreConfig::from_env()?,
            public_base_url,
            kms_key_id: config::required("SIGNING_KEY_KMS_KEY_ID")?,
        })
    }
}

/// Every route: method, path (axum syntax) and handler. The router is folded from this table,
/// and the template's events are checked against it.
pub fn routes() -> Vec<(Method, &'static str, MethodRouter<AuthState>)> {
    vec![
        (
            Method::GET,
            "/t/{tenant}/.well-known/openid-configuration",
            get(discovery::configuration),
        ),
        (Method::GET, "/t/{tenant}/jwks.json", get(discovery::jwks)),
        (
            Method::GET,
            "/t/{tenant}/authorize",
            get(authorize::authorize_get),
        ),
        (
            Method::POST,
            "/t/{tenant}/authorize",
            post(authorize::authorize_post),
        ),
        (Method::POST, "/t/{tenant}/signin", post(authorize::signin)),
        (Method::POST, "/t/{tenant}/token", post(token::token)),
        (Method::POST, "/t/{tenant}/revoke", post(token::revoke)),
        (Method::GET, "/t/{tenant}/logout", get(logout::logout_get)),
        (
            Method::POST,
            "/t/{tenant}/logout",
            post(logout::logout_post),
        ),
        (Method::GET, "/t/{tenant}/userinfo", get(token::userinfo)),
        (Method::POST, "/t/{tenant}/userinfo", post(token::userinfo)),
        (
            Method::GET,
            "/t/{tenant}/assets/rollcall.css",
            get(pages::stylesheet),
        ),
        (
            Method::GET,
            "/t/{tenant}/assets/tenant.css",
            get(pages::tenant_stylesheet),
        ),
        (
            Method::GET,
            "/t/{tenant}/assets/password.js",
            get(pages::password_script),
        ),
        (
            Method::GET,
            "/t/{tenant}/invitations/{token}",
            get(links::invitation_get),
        ),
        (
            Method::POST,
            "/t/{tenant}/invitations/{token}",
            post(links::invitation_post),
        ),
        (
            Method::GET,
            "/t/{tenant}/reset/{token}",
            get(links::reset_get),
        ),
        (
            Method::POST,
            "/t/{tenant}/reset/{token}",
            post(links::reset_post),
        ),
        (Method::GET, "/t/{tenant}/forgot", get(forgot::forgot_get)),
        (
            Method::POST,
            "/t/{tenant}/forgot",
            post(forgot::forgot_post),
        ),
        (
            Method::GET,
            "/t/{tenant}/account",
            get(account::account_get),
        ),
        (
            Method::POST,
            "/t/{tenant}/account",
            post(account::account_post),
        ),
        (Method::GET, "/t/{tenant}/code", get(second_step::code_get)),
        (
            Method::POST,
            "/t/{tenant}/code",
            post(second_step::code_post),
        ),
        (
            Method::POST,
            "/t/{tenant}/code/resend",
            post(second_step::resend_post),
        ),
    ]
}

/// The router.
pub fn app(state: AuthState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
        .fallback(|| async { error::PageError::NotFound })
        .with_state(state)
}
