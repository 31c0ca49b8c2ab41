//! rollcall as each tenant's OpenID Provider: the values of the protocol, checked once at the
//! edge like every other domain value.
//!
//! - [`client`]: relying parties (RFC 7591 metadata), their redirect URIs and exact matching.
//! - [`pkce`]: RFC 7636 proof keys, `S256` only.
//! - [`scope`]: the scopes rollcall grants and which claims each releases (OIDC Core §5.4).
//! - [`keys`]: ES256 signing keys, their JWKs (RFC 7517/7518) and RFC 7638 thumbprint ids.
//! - [`tokens`]: the ID token (OIDC Core §2) and the RFC 9068 access token, issued and verified.

pub mod client;
pub mod keys;
pub mod pkce;
pub mod published;
pub mod scope;
pub mod throttle;
pub mod tokens;

pub use client::{AuthMethod, Client, ClientError, ClientId, GrantType, RedirectUri};
pub use keys::{KeyError, KeySet, PublicJwk, SigningKey};
pub use pkce::{CodeChallenge, PkceError};
pub use published::{PublishedKeys, PublishedKeysError};
pub use scope::Scopes;
pub use tokens::{AccessClaims, Expect, IdClaims, TokenKind, VerifyError};
