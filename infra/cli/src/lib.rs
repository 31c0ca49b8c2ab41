//! # rollcall-cli
//!
//! The `rollcall` command's building blocks, shared with the end-to-end tests: the local stack
//! ([`local`]), tenant and admin bootstrap ([`bootstrap`]), the development server ([`dev`]), the scripted tour ([`demo`]),
//! the stand-in for the stream event source mapping ([`streams`]) and the mail moto received
//! ([`mail`]).

pub mod billing;
pub mod bootstrap;
pub mod demo;
pub mod dev;
pub mod import;
pub mod local;
pub mod mail;
pub mod queue;
pub mod streams;

use secrecy::SecretString;

/// The HS256 key of the local stack. Only `rollcall dev` and `rollcall token` fall back to it;
/// a deployed function has no default and refuses to start without a configured key.
pub const DEV_JWT_SECRET: &str = "rollcall-local-development-key-never-use-in-production";

/// The cursor-signing key of the local stack.
pub const DEV_CURSOR_SECRET: &str = "rollcall-local-cursor-key-never-use-in-production";

/// The token-signing key: `$JWT_HS256_SECRET`, else the local stack's.
pub fn signing_key() -> SecretString {
    SecretString::from(
        rollcall::config::optional("JWT_HS256_SECRET").unwrap_or_else(|| DEV_JWT_SECRET.to_owned()),
    )
}
