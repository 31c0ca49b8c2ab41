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
pub mod forms;
pub mod import;
pub mod local;
pub mod login;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    /// `events/local.env` is what `cargo lambda watch` runs the functions with against
    /// `make dev`'s stack; it must name that stack's keys, region, table, bucket and queue.
    #[test]
    fn the_sample_environment_is_the_dev_stacks() {
        let env: BTreeMap<&str, &str> = include_str!("../../../events/local.env")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| l.split_once('=').expect("KEY=VALUE"))
            .collect();
        assert_eq!(env["JWT_HS256_SECRET"], super::DEV_JWT_SECRET);
        assert_eq!(env["CURSOR_SECRET"], super::DEV_CURSOR_SECRET);
        assert_eq!(env["AWS_REGION"], crate::local::LOCAL_REGION);
        assert_eq!(env["SENDER_ADDRESS"], crate::local::DEV_SENDER_ADDRESS);
        assert_eq!(env["TABLE_NAME"], "rollcall");
        assert_eq!(env["BUCKET_NAME"], "rollcall-local");
        assert!(env["IMPORT_QUEUE_URL"].ends_with("/rollcall-imports"));
        assert_eq!(
            env["SIGNING_KEY_KMS_KEY_ID"],
            crate::local::DEV_SIGNING_KEY_ALIAS
        );
        assert_eq!(env["PUBLIC_BASE_URL"], env["APP_BASE_URL"]);
    }
}
