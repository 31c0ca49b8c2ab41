//! Who may sign in, and checking what they typed.
//!
//! A refusal never says why (ASVS 5.0 §6.3.8): an unknown name, a wrong password, and an
//! account that may not sign in (invited, suspended, outside its validity window) all get the
//! same answer after the same work: an unknown name is checked against a dummy argon2id hash of
//! the same cost, so its time matches a wrong password's.

use chrono::{DateTime, Utc};
use rollcall::domain::{PasswordHash, Status, Tenant, User};
use rollcall::store::{Store, StoreError};

/// An argon2id hash (rollcall's parameters) of a random password nobody knows: what an unknown
/// name's password is checked against. Not a secret.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2lnbmluLWR1bW15LXNhbHQ$1WbO3xFo9dCMLY2Kv8i7xYyQ+u0oW9T2ZLkQmJ2rSg4";

/// Why a sign-in did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Refused: the one answer to every reason (see the module's documentation).
    #[error("sign-in refused")]
    Refused,
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The password could not be checked (the blocking pool is gone).
    #[error("the password check could not run")]
    Hash(#[source] tokio::task::JoinError),
}

/// Why an account may not sign in now (for logs and tests; never shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAllowed {
    /// Invited or suspended.
    Status(Status),
    /// Outside the validity window.
    OutsideValidity,
}

/// Whether `user` may sign in (or refresh) at `now`: active, and inside the validity window.
pub fn may_sign_in(user: &User, now: DateTime<Utc>) -> Result<(), NotAllowed> {
    if user.status != Status::Active {
        return Err(NotAllowed::Status(user.status));
    }
    if !user.profile.validity.contains(now) {
        return Err(NotAllowed::OutsideValidity);
    }
    Ok(())
}

/// Checks `login` (a login id or an email, any case) and `password` at `tenant`.
pub async fn authenticate(
    store: &Store,
    tenant: &Tenant,
    login: &str,
    password: &str,
) -> Result<User, SignInError> {
    let user = store.find_for_sign_in(&tenant.id, login.trim()).await?;
    let hash = user
        .as_ref()
        .and_then(|u| u.password_hash.clone())
        .or_else(|| PasswordHash::from_phc(DUMMY_HASH));
    let candidate = password.to_owned();
    // argon2id takes tens of milliseconds of CPU: off the async executor.
    let matches = tokio::task::spawn_blocking(move || hash.is_some_and(|h| h.verify(&candidate)))
        .await
        .map_err(SignInError::Hash)?;
    let Some(user) = user else {
        return Err(SignInError::Refused);
    };
    if !matches || user.password_hash.is_none() {
        return Err(SignInError::Refused);
    }
    if let Err(why) = may_sign_in(&user, store.clock().now()) {
        tracing::info!(user_id = %user.id, reason = ?why, "sign-in refused: the account may not sign in now");
        return Err(SignInError::Refused);
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollcall::domain::{ARGON2_ITERATIONS, ARGON2_LANES, ARGON2_MEMORY_KIB};

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let dummy = PasswordHash::from_phc(DUMMY_HASH).expect("an argon2id PHC string");
        let params = format!("m={ARGON2_MEMORY_KIB},t={ARGON2_ITERATIONS},p={ARGON2_LANES}");
        assert!(dummy.as_str().contains(&params), "{params}");
        let real = PasswordHash::of(
            &rollcall::domain::PasswordPolicy::default()
                .check(
                    "Tr0ub4dor&3",
                    &rollcall::domain::LoginId::parse("taro").unwrap(),
                )
                .unwrap(),
        )
        .unwrap();
        let output = |h: &str| h.rsplit('$').next().unwrap().len();
        assert_eq!(
            output(dummy.as_str()),
            output(real.as_str()),
            "same output length"
        );
        assert!(!dummy.verify(""));
    }
}
